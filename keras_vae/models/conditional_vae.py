"""The conditional variational autoencoder."""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_vae.data.conditional import CONDITIONS, pixel_indices
from keras_vae.layers import DistributionLayer
from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.vae import VAE
from keras_vae.models.validation import (
    check_data,
    check_network_input,
    check_positive_int,
    check_sample_weight,
    first_batch,
    is_eager_tensor,
    shape_of,
)
from keras_vae.networks.validation import check_units
from keras_vae.ops import elbo as elbo_ops
from keras_vae.priors import ConditionalGaussian


@keras.saving.register_keras_serializable(package="keras_vae")
class ConditionalVAE(VAE):
    """Conditional VAE: models P(Y|X) with Q(z|Y, X), P(Y|z, X) and P(z|X).

    Trained on the conditional ELBO

        E_{z~Q(z|Y,X)}[log P(Y|z, X)] - KL(Q(z|Y, X) || P(z|X)),

    with data as `(condition, target)` pairs, Keras's `(x, y)`: call
    `fit(conditions, targets)` or fit a dataset of pairs. The condition joins
    the encoder (its flattened value is concatenated with the encoder's
    features, then a hidden layer feeds the posterior layer) and the decoder
    (the decoder network receives `[z, flattened condition]`, so it takes
    `latent_dim + condition_size` inputs). The prior is a standard normal (as
    in the tutorial), a learned Gaussian P(z|X) (`"learned"`, a
    `keras_vae.priors.ConditionalGaussian`) or any unconditional prior of
    `keras_vae.priors` except the VampPrior.

    It shares all of `VAE`'s machinery and contract, with the condition
    given: `encode(target, condition)`, `decode(z, condition)`,
    `prior(condition)`, `sample(num_samples, condition)`,
    `reconstruct(target, condition)`; `generate(condition, ...)` is
    `sample` with the condition first.

    At test time z comes from the prior P(z|X), but the ELBO trains the
    decoder only on draws of Q(z|Y, X). `gsnn_weight` > 0 adds Sohn et al.'s
    Gaussian stochastic neural network term, the reconstruction of Y from
    z ~ P(z|X), so the decoder also learns from the draws it will see when
    generating (their "hybrid" objective):

        loss = (1 - gsnn_weight) * (-ELBO) - gsnn_weight * log P(Y|z~P(z|X), X).

    The reported `elbo`, `reconstruction` and `kl` stay the conditional ELBO.

    `predict(conditions)` returns the likelihood mean at the prior mean of z,
    the model's single "typical" output; `generate` draws varied outputs.

    Args:
        encoder: Keras layer or model. Maps the target Y to features.
        decoder: Keras layer or model. Maps `[z, condition]` (concatenated,
            `latent_dim + condition_size` wide) to the likelihood's parameters.
        latent_dim: int. Number of latent dimensions.
        likelihood: `keras_vae.layers.DistributionLayer` with a closed-form
            mean. P(Y|z, X); its `event_shape` is the target's shape.
        prior: `keras_vae.priors.Prior` or a name: `"standard"` (N(0, I)),
            `"learned"` (a Gaussian network of the condition) or `"mog"`.
            Defaults to `"standard"`.
        posterior: `keras_vae.posteriors.Posterior`, a name (`"diagonal"`,
            `"full"`, `"iaf"`) or `None` (diagonal Gaussian).
        hidden_units: int. Width of the hidden layer that joins the condition
            to the encoder's features (and of the learned prior's, unless
            `prior_hidden_units` is given). Defaults to `256`.
        prior_hidden_units: int, sequence of ints or `None`. Widths of the
            learned prior's hidden layers, for `prior="learned"`. At
            generation time the prior network alone turns the condition into
            z, so for completion it decides which digit the missing part
            shows: give it the depth of a regressor of the missing part
            (`build_cvae` gives it the decoder's `(256, 512)` for
            completion). `None` means one layer of `hidden_units`. Defaults
            to `None`.
        condition_type: str or `None`. What the condition is: `"label"`
            (one-hot rows `[B, num_classes]`), `"center-column"` or
            `"top-half"` (the observed pixels, as `keras_vae.data.split_image`
            gives them; needs `image_shape`). It is saved with the model and
            its exports: `keras-vae sample --label` and the LiteRT sampler's
            `--label` need `"label"`, `complete` a completion type. `None`
            for any other condition. Defaults to `None`.
        image_shape: tuple of ints or `None`. Shape of the full image: needed
            for the completion conditions, to reassemble completions; for
            `"label"` it may be given and must be the target's shape.
        beta: float. Weight of the KL term; the `beta` attribute can be
            changed later, also during `fit` (see
            `keras_vae.callbacks.BetaScheduler`). Defaults to `1.0`.
        gsnn_weight: float in [0, 1). Weight of the reconstruction from prior
            draws in the loss (the hybrid objective above); the
            `gsnn_weight` attribute can be changed later, also during `fit`
            from a callback. Defaults to `0.0`, the conditional ELBO alone.
        objective: str. `"elbo"` or `"iwae"`, as for `VAE`. Defaults to
            `"elbo"`.
        num_samples: int. Latent samples per example in the objective, as
            for `VAE`. Defaults to `1`.
        seed: int in [0, 2**32) or `None`. Seed for the training samples.
        **kwargs: Base `keras.Model` keyword arguments.

    Example:

    >>> from keras_vae.layers import IndependentBernoulli
    >>> from keras_vae.networks import mlp_decoder, mlp_encoder
    >>> cvae = ConditionalVAE(
    ...     encoder=mlp_encoder((28, 28, 1)),
    ...     decoder=mlp_decoder(16 + 10, (28, 28, 1)),
    ...     latent_dim=16,
    ...     likelihood=IndependentBernoulli((28, 28, 1)),
    ...     condition_type="label",
    ... )
    >>> cvae.compile(optimizer="adam")
    >>> cvae.fit(one_hot_labels, images, epochs=1)  # doctest: +SKIP
    >>> sevens = cvae.generate(one_hot_labels[:1], num_samples=8, seed=0)  # doctest: +SKIP

    Reference:
        Sohn, Lee & Yan, *Learning Structured Output Representation using Deep
        Conditional Generative Models*, NeurIPS 2015; Doersch, *Tutorial on
        Variational Autoencoders*, arXiv:1606.05908, section 4.
    """

    conditional = True
    data_name = "target"

    def __init__(
        self,
        encoder,
        decoder,
        latent_dim,
        likelihood,
        prior="standard",
        posterior=None,
        hidden_units=256,
        prior_hidden_units=None,
        condition_type=None,
        image_shape=None,
        beta=1.0,
        gsnn_weight=0.0,
        objective="elbo",
        num_samples=1,
        seed=None,
        **kwargs,
    ):
        if not isinstance(likelihood, DistributionLayer):
            raise ValueError(
                "Expected likelihood to be a keras_vae distribution layer such as "
                f"IndependentBernoulli. Received: likelihood={likelihood!r}"
            )
        if not likelihood.closed_form_mean:
            raise ValueError(
                "Expected a likelihood with a closed-form mean for a ConditionalVAE "
                "(IndependentBernoulli or GaussianLikelihood). "
                f"Received: likelihood={likelihood!r}"
            )
        hidden_units = check_positive_int("hidden_units", hidden_units)
        if prior == "learned":
            widths = (hidden_units,) if prior_hidden_units is None else prior_hidden_units
            prior = ConditionalGaussian(check_units("prior_hidden_units", widths), name="prior")
        elif prior_hidden_units is not None:
            raise ValueError(
                "Expected prior_hidden_units=None unless prior='learned' (the other priors "
                f"have no network of the condition). Received: prior_hidden_units="
                f"{prior_hidden_units!r}"
            )
        self._check_condition_type(condition_type, image_shape, likelihood)
        super().__init__(
            encoder,
            decoder,
            latent_dim,
            likelihood=likelihood,
            prior=prior,
            posterior=posterior,
            beta=beta,
            objective=objective,
            num_samples=num_samples,
            seed=seed,
            **kwargs,
        )
        self.gsnn_weight = gsnn_weight
        self.hidden_units = hidden_units
        self.condition_type = condition_type
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.concatenate = keras.layers.Concatenate(name="concatenate")
        self.posterior_hidden = keras.layers.Dense(
            self.hidden_units, activation="relu", name="posterior_hidden"
        )

    @staticmethod
    def _check_condition_type(condition_type, image_shape, likelihood):
        """Checks `condition_type` and `image_shape` against the likelihood."""
        if condition_type is not None and condition_type not in CONDITIONS:
            raise ValueError(
                f"Expected condition_type to be None or one of {CONDITIONS}. "
                f"Received: condition_type={condition_type!r}"
            )
        target_shape = tuple(likelihood.event_shape)
        if condition_type in (None, "label"):
            if image_shape is not None and tuple(image_shape) != target_shape:
                raise ValueError(
                    "Expected image_shape to be None or the target's shape (the likelihood's "
                    f"event shape {target_shape}) for condition_type={condition_type!r}. "
                    f"Received: image_shape={image_shape!r}"
                )
            return
        if image_shape is None:
            raise ValueError(
                f"Expected image_shape, the full image's (H, W) or (H, W, C), for "
                f"condition_type={condition_type!r}: completions are put back into it. "
                "Received: image_shape=None"
            )
        _, missing = pixel_indices(condition_type, image_shape)
        if target_shape != (len(missing),):
            raise ValueError(
                f"Expected a likelihood over the {len(missing)} missing pixels of an image "
                f"shaped {tuple(image_shape)} for condition_type={condition_type!r} (event "
                f"shape ({len(missing)},)). Received: likelihood event shape {target_shape}"
            )

    @property
    def target_shape(self):
        """Shape of one target Y (the likelihood's event shape)."""
        return self.event_shape

    def build(self, condition_shape):
        condition_shape = tuple(condition_shape[1:])
        if self.condition_type == "label" and len(condition_shape) != 1:
            raise ValueError(
                "Expected one-hot label conditions shaped [B, num_classes] for "
                f"condition_type='label'. Received: condition shape {condition_shape}"
            )
        observed = (
            None
            if self.condition_type in (None, "label")
            else len(pixel_indices(self.condition_type, self.image_shape)[0])
        )
        if observed is not None and condition_shape != (observed,):
            raise ValueError(
                f"Expected conditions shaped [B, {observed}], the observed pixels of "
                f"condition_type={self.condition_type!r} in an image shaped {self.image_shape}. "
                f"Received: condition shape {condition_shape}"
            )
        self.condition_shape = condition_shape
        check_network_input(
            "encoder", self.encoder, self.target_shape, "targets, the likelihood's event shape"
        )
        condition_size = math.prod(self.condition_shape)
        check_network_input(
            "decoder",
            self.decoder,
            (self.latent_dim + condition_size,),
            f"[z, flattened condition]: latent_dim={self.latent_dim} + condition size "
            f"{condition_size}",
        )
        self._build_parts()

    # -- The hooks of the shared machinery -------------------------------------

    def encoder_features(self, x, condition, training=False):
        features = super().encoder_features(x, condition, training)
        return self.posterior_hidden(self.concatenate([features, self.flatten(condition)]))

    def decoder_inputs(self, z, condition):
        return self.concatenate([z, self.flatten(condition)])

    def split_batch(self, x, y):
        if y is None:
            raise ValueError(
                "Expected (condition, target) pairs to train a ConditionalVAE. "
                "Received: only conditions"
            )
        return y, x

    # -- The conditional objective ---------------------------------------------

    @property
    def gsnn_weight(self):
        """float in [0, 1). The weight of the GSNN term in the loss.

        Setting it changes the loss from the next training step on, also
        inside `fit` (from a callback): the compiled steps hold it as a
        constant, so they are traced again.
        """
        return self._gsnn_weight

    @gsnn_weight.setter
    def gsnn_weight(self, value):
        value = check_positive_float("gsnn_weight", value, allow_zero=True)
        if value >= 1.0:
            raise ValueError(
                "Expected gsnn_weight to be in [0, 1) (1 would drop the ELBO and "
                f"leave the encoder untrained). Received: gsnn_weight={value}"
            )
        self._set_step_constant("gsnn_weight", value)

    def compute_terms(self, x, y=None, training=False):
        terms = super().compute_terms(x, y, training)
        if self.gsnn_weight > 0:
            target, condition = self.split_batch(x, y)
            condition = tf.cast(condition, self.compute_dtype)
            prior_z = self._training_prior_draw(condition, training)
            reconstruction = self.decode(prior_z, condition, training=training).log_prob(
                tf.cast(target, self.likelihood.compute_dtype)
            )
            terms["loss"] = elbo_ops.hybrid_loss(terms["loss"], reconstruction, self.gsnn_weight)
        return terms

    def _training_prior_draw(self, condition, training):
        """One reparameterized draw of P(z|X) per condition `[B, latent_dim]`, Philox noise."""
        batch = tf.shape(condition)[0]
        leading = tf.stack([batch, 1]) if self.prior_layer.conditional else tf.reshape(batch, [1])
        seed = self.next_seed(training)
        eps = tf.random.stateless_normal(
            tf.concat([leading, [self.latent_dim]], 0), seed, alg="philox"
        )
        uniform = tf.random.stateless_uniform(leading, seed[::-1], alg="philox")
        z = self.prior_layer.sample_from_noise(eps, uniform, 1.0, condition)
        return tf.reshape(z, [batch, self.latent_dim])

    # -- Generation ------------------------------------------------------------

    def call(self, condition, training=False):
        """The likelihood mean at the prior mean of z: the typical Y for X."""
        prior = self.prior(condition)
        z = tf.broadcast_to(prior.mean(), [tf.shape(condition)[0], self.latent_dim])
        return self.decode(z, condition, training=training).mean()

    def generate(
        self, condition, num_samples=1, seed=None, use_mean=True, temperature=1.0, batch_size=1024
    ):
        """Draws targets Y for each condition X: `sample` with the condition first.

        Args:
            condition: array `[B, *condition_shape]`.
            num_samples: int. Draws per condition. Defaults to `1`.
            seed: int in [0, 2**32) or `None`. Same seed, same latents (also
                in exports).
            use_mean: bool. Return the likelihood's mean rather than a draw
                from it. Defaults to `True`.
            temperature: float. Scales the spread of P(z|X): below 1, fewer
                but more typical variations; `0` decodes the prior mean.
                Exported models sample at `1.0`. Defaults to `1.0`.
            batch_size: int. Draws decoded at a time, which bounds the
                decoder's memory; the result does not depend on it. Defaults
                to `1024`.

        Returns:
            numpy array `[B, num_samples, *target_shape]`.
        """
        return self.sample(
            num_samples,
            condition,
            seed=seed,
            temperature=temperature,
            use_mean=use_mean,
            batch_size=batch_size,
        )

    # -- Data checks -----------------------------------------------------------

    def _checked_condition_batch(self, condition):
        self._condition_argument(condition)
        self._check_condition_batch(condition)
        return tf.convert_to_tensor(condition, tf.float32)

    def _checked_reconstruct_inputs(self, x, condition):
        condition = self._checked_condition_batch(condition)
        check_data("target", x, self.target_shape, unit_interval=self.likelihood.binary)
        x = tf.convert_to_tensor(x, tf.float32)
        if x.shape[0] != condition.shape[0]:
            raise ValueError(
                "Expected target and condition with the same batch size. Received: "
                f"target.shape={tuple(x.shape)}, condition.shape={tuple(condition.shape)}"
            )
        return x, condition

    def _build_on_first_call(self, x, condition):
        del x  # the condition gives the shapes
        if self.built or self._building:
            return
        if isinstance(condition, np.ndarray) or is_eager_tensor(condition):
            self._check_condition_batch(condition)  # builds, then checks its dtype and rank
        else:  # symbolic (a KerasTensor, a traced tensor): its shape alone
            self.build((None, *shape_of(condition)[1:]))

    def _check_condition_batch(self, batch):
        """Builds the model for a batch of conditions (or its `TensorSpec`) if needed, then
        checks the batch against it."""
        shape = shape_of(batch)
        if not self.built:
            self.build((None,) + shape[1:])
        check_data("condition", batch, self.condition_shape)

    def _check_pairs(self, x, y):
        if isinstance(x, (tf.data.Dataset, keras.utils.PyDataset)):
            batch = first_batch(x)
            if not (isinstance(batch, tuple) and len(batch) >= 2):
                raise ValueError(
                    "Expected a dataset of (condition, target) pairs. "
                    f"Received: {'element_spec' if isinstance(x, tf.data.Dataset) else 'x[0]'}="
                    f"{batch if isinstance(x, tf.data.Dataset) else type(batch).__name__}"
                )
            x, y = batch[0], batch[1]
        elif x is not None and first_batch(x) is None:
            if not self.built:
                raise ValueError(
                    "Expected a built model to read pairs from an iterator or a generator "
                    "(call build(condition_shape) first), or arrays, a tf.data.Dataset or a "
                    f"keras.utils.PyDataset. Received: x={type(x).__name__}"
                )
            return
        elif y is None:
            raise ValueError(
                "Expected (condition, target) pairs: fit(conditions, targets) or a "
                "dataset of pairs. Received: y=None"
            )
        self._check_condition_batch(x)
        check_data("target", y, self.target_shape, unit_interval=self.likelihood.binary)
        if not isinstance(x, tf.TensorSpec) and np.shape(x)[0] != np.shape(y)[0]:
            raise ValueError(
                "Expected as many conditions as targets. Received: "
                f"condition.shape={np.shape(x)}, target.shape={np.shape(y)}"
            )

    def _checked_training_data(self, x, y, sample_weight):
        self._check_pairs(x, y)
        check_sample_weight(sample_weight, x)
        return y

    def _check_predict_inputs(self, x):
        """Builds the model for the conditions' shape if needed, then checks them against it."""
        if x is None:
            raise ValueError(
                "Expected conditions: an array, a tf.data.Dataset, a keras.utils.PyDataset, an "
                "iterator or a generator of them. Received: x=None"
            )
        batch = first_batch(x)
        if isinstance(x, (tf.data.Dataset, keras.utils.PyDataset)) and isinstance(batch, tuple):
            batch = batch[0]  # (condition, target): predict reads the conditions
        if batch is None or isinstance(batch, dict):
            return  # an iterator, a generator or named inputs: Keras checks those
        self._check_condition_batch(batch)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "gsnn_weight": self.gsnn_weight,
                "condition_type": self.condition_type,
                "image_shape": self.image_shape,
            }
        )
        return config
