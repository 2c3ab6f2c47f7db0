"""The conditional variational autoencoder."""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_vae.data.conditional import CONDITIONS, pixel_indices
from keras_vae.layers import DistributionLayer, IndependentNormal, PixelCNNBernoulli
from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.elbo_model import ELBOModel, keras_keywords, likelihood_seed
from keras_vae.models.priors import draw_latent, standard_normal
from keras_vae.models.validation import (
    call_network,
    check_data,
    check_decoder_output,
    check_network_input,
    check_no_class_weight,
    check_positive_int,
    check_sample_weight,
    checked_array,
    first_batch,
    lists_as_arrays,
)
from keras_vae.networks.validation import check_units
from keras_vae.ops import elbo as elbo_ops

PRIORS = ("standard", "learned")


@keras.saving.register_keras_serializable(package="keras_vae")
class ConditionalVAE(ELBOModel):
    """Conditional VAE: models P(Y|X) with Q(z|Y, X), P(Y|z, X) and P(z|X).

    Trained on the conditional ELBO

        E_{z~Q(z|Y,X)}[log P(Y|z, X)] - KL(Q(z|Y, X) || P(z|X)),

    with data as `(condition, target)` pairs, Keras's `(x, y)`: call
    `fit(conditions, targets)` or fit a dataset of pairs. The condition joins
    the encoder (its flattened value is concatenated with the encoder's
    features, then a hidden layer forms Q's parameters) and the decoder (the
    decoder network receives `[z, flattened condition]`, so it takes
    `latent_dim + condition_size` inputs). The prior is a standard normal (as
    in the tutorial) or a learned Gaussian whose mean and scale depend on X;
    with both Gaussian the KL is analytic.

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
        likelihood: `keras_vae.layers.DistributionLayer`. P(Y|z, X); its
            `event_shape` is the target's shape.
        prior: str. `"standard"` (N(0, I)) or `"learned"` (a Gaussian network
            of the condition). Defaults to `"standard"`.
        hidden_units: int. Width of the hidden layer that joins the condition
            to the encoder's features (and of the learned prior's, unless
            `prior_hidden_units` is given). Defaults to `256`.
        prior_hidden_units: int, sequence of ints or `None`. Widths of the
            learned prior's hidden layers, in order. At generation time the
            prior network alone turns the condition into z, so for completion
            it decides which digit the missing part shows: give it the depth
            of a regressor of the missing part (`build_cvae` gives it the
            decoder's `(256, 512)` for completion). `None` means one layer of
            `hidden_units`. Defaults to `None`.
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
        seed: int or `None`. Seed for the training samples.
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

    def __init__(
        self,
        encoder,
        decoder,
        latent_dim,
        likelihood,
        prior="standard",
        hidden_units=256,
        prior_hidden_units=None,
        condition_type=None,
        image_shape=None,
        beta=1.0,
        gsnn_weight=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(beta=beta, seed=seed, **kwargs)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.gsnn_weight = gsnn_weight
        self.hidden_units = check_positive_int("hidden_units", hidden_units)
        self.prior_hidden_units = (
            None
            if prior_hidden_units is None
            else check_units("prior_hidden_units", prior_hidden_units)
        )
        for name, value in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(value, keras.layers.Layer):
                raise ValueError(
                    f"Expected {name} to be a Keras layer or model. Received: {name}={value!r}"
                )
        if not isinstance(likelihood, DistributionLayer):
            raise ValueError(
                "Expected likelihood to be a keras_vae distribution layer such as "
                f"IndependentBernoulli. Received: likelihood={likelihood!r}"
            )
        if isinstance(likelihood, PixelCNNBernoulli):
            raise ValueError(
                "Expected a likelihood with a closed-form mean for a ConditionalVAE "
                "(IndependentBernoulli or GaussianLikelihood); PixelCNNBernoulli is "
                f"supported by VAE only. Received: likelihood={likelihood!r}"
            )
        if prior not in PRIORS:
            raise ValueError(f"Expected prior to be one of {PRIORS}. Received: prior={prior!r}")
        if prior != "learned" and prior_hidden_units is not None:
            raise ValueError(
                "Expected prior_hidden_units=None for a standard prior, which has no "
                f"network (prior='learned' has one). Received: prior_hidden_units="
                f"{prior_hidden_units!r}"
            )
        self._check_condition_type(condition_type, image_shape, likelihood)
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.prior_type = prior
        self.condition_type = condition_type
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.condition_shape = None

        self.flatten = keras.layers.Flatten(name="flatten")
        self.concatenate = keras.layers.Concatenate(name="concatenate")
        self.posterior_hidden = keras.layers.Dense(
            self.hidden_units, activation="relu", name="posterior_hidden"
        )
        self.posterior_params = keras.layers.Dense(
            IndependentNormal.params_size(self.latent_dim), name="posterior_params"
        )
        self.posterior = IndependentNormal(self.latent_dim, name="posterior")
        self.standard_prior = standard_normal(self.latent_dim)
        if prior == "learned":
            widths = self.prior_hidden_units or (self.hidden_units,)
            # Keras saves layers by creation order: the prior's layers come
            # after the posterior's, first layer first, so files saved with
            # the one-layer prior (before `prior_hidden_units`) still load.
            self.prior_hidden = keras.layers.Dense(
                widths[0], activation="relu", name="prior_hidden"
            )
            self.prior_deeper = [
                keras.layers.Dense(units, activation="relu", name=f"prior_hidden_{i}")
                for i, units in enumerate(widths[1:], start=1)
            ]
            self.prior_params = keras.layers.Dense(
                IndependentNormal.params_size(self.latent_dim), name="prior_params"
            )
            self.prior_head = IndependentNormal(self.latent_dim, name="prior")

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
        return tuple(self.likelihood.event_shape)

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
        condition = tf.zeros((1,) + self.condition_shape)
        target = tf.zeros((1,) + self.target_shape)
        # Keras builds on a first call wherever it happens: the variables go
        # to the model's strategy, not to the one (if any) of the caller.
        with self.distribute_strategy.scope():
            self.decode(self.encode(target, condition).mean(), condition)
            self.prior(condition)
        self.built = True

    def encode(self, target, condition, training=False):
        """Q(z|Y, X), a `tfd.Distribution` of batch `[B]`."""
        target = checked_array("target", target, self.target_shape)
        condition = checked_array("condition", condition, self.condition_shape)
        features = self.flatten(call_network(self.encoder, target, training))
        joined = self.concatenate([features, self.flatten(condition)])
        return self.posterior(self.posterior_params(self.posterior_hidden(joined)))

    def decode(self, z, condition, training=False):
        """P(Y|z, X), a `tfd.Distribution` of batch `[B]`."""
        z = checked_array("z", z, (self.latent_dim,))
        condition = checked_array("condition", condition, self.condition_shape)
        params = call_network(self.decoder, self._decoder_inputs(z, condition), training)
        return self.likelihood(check_decoder_output(params, self.likelihood))

    def _decoder_inputs(self, z, condition):
        return self.concatenate([z, self.flatten(condition)])

    def prior(self, condition):
        """P(z|X): a standard normal (batch `[]`) or the learned Gaussian (batch `[B]`)."""
        if self.prior_type == "standard":
            return self.standard_prior
        hidden = self.prior_hidden(self.flatten(condition))
        for layer in self.prior_deeper:
            hidden = layer(hidden)
        return self.prior_head(self.prior_params(hidden))

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

    def call(self, condition, training=False):
        """The likelihood mean at the prior mean of z: the typical Y for X."""
        z = self._prior_for_batch(condition).mean()
        return self.decode(z, condition, training=training).mean()

    def _prior_for_batch(self, condition):
        # The standard prior has batch shape []; samplers want one row per condition.
        if self.prior_type == "standard":
            return standard_normal(self.latent_dim, batch_shape=tf.shape(condition)[:1])
        return self.prior(condition)

    def compute_terms(self, x, y=None, training=False):
        if y is None:
            raise ValueError(
                "Expected (condition, target) pairs to train a ConditionalVAE. "
                "Received: only conditions"
            )
        condition = tf.cast(x, self.compute_dtype)
        target = tf.cast(y, self.likelihood.compute_dtype)
        posterior = self.encode(target, condition, training=training)
        z = self.sample_posterior(posterior)
        decode = lambda z: self.decode(z, condition, training=training)  # noqa: E731
        terms = elbo_ops.elbo(
            posterior, decode, self.prior(condition), target, z, beta=self.kl_weight()
        )
        if self.gsnn_weight > 0:
            prior_z = self.sample_posterior(self._prior_for_batch(condition))
            terms["loss"] = elbo_ops.hybrid_loss(
                terms["loss"], decode(prior_z).log_prob(target), self.gsnn_weight
            )
        return terms

    def sample_latent(self, condition, num_samples, seed, temperature=1.0):
        """`num_samples` draws of z from P(z|X) for each condition, portable RNG.

        Returns:
            float32 tensor `[B, num_samples, latent_dim]`.
        """
        return draw_latent(self._prior_for_batch(condition), num_samples, seed, temperature)

    def generate(
        self, condition, num_samples=1, seed=None, use_mean=True, temperature=1.0, batch_size=1024
    ):
        """Draws targets Y for each condition X.

        Args:
            condition: array `[B, *condition_shape]`.
            num_samples: int. Draws per condition. Defaults to `1`.
            seed: int or `None`. Same seed, same latents (also in exports).
            use_mean: bool. Return the likelihood's mean rather than a draw
                from it. Defaults to `True`.
            temperature: float. Draws z with the scale of P(z|X) multiplied
                by it: below 1, fewer but more typical variations; `0`
                decodes the prior mean. Exported models sample at `1.0`.
                Defaults to `1.0`.
            batch_size: int. Draws decoded at a time, which bounds the
                decoder's memory; the result does not depend on it. Defaults
                to `1024`.

        Returns:
            numpy array `[B, num_samples, *target_shape]`.
        """
        num_samples = check_positive_int("num_samples", num_samples)
        temperature = check_positive_float("temperature", temperature, allow_zero=True)
        condition = self._checked_condition(condition)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        z = self.sample_latent(condition, num_samples, seed, temperature)
        batch = tf.shape(condition)[0]
        repeated = tf.repeat(condition, num_samples, axis=0)
        inputs = self._decoder_inputs(tf.reshape(z, [-1, self.latent_dim]), repeated)
        likelihood = self._decode_in_chunks(inputs, batch_size)
        y = likelihood.mean() if use_mean else likelihood.sample(seed=likelihood_seed(seed))
        shape = tf.concat([[batch, num_samples], self.target_shape], 0)
        return keras.ops.convert_to_numpy(tf.reshape(y, shape))

    def reconstruct(self, condition, target):
        """The likelihood mean at the posterior mean of z, given X and Y."""
        condition = self._checked_condition(condition)
        check_data("target", target, self.target_shape)
        target = tf.convert_to_tensor(target, tf.float32)
        if target.shape[0] != condition.shape[0]:
            raise ValueError(
                "Expected target and condition with the same batch size. Received: "
                f"target.shape={tuple(target.shape)}, condition.shape={tuple(condition.shape)}"
            )
        z = self.encode(target, condition).mean()
        return keras.ops.convert_to_numpy(self.decode(z, condition).mean())

    def _checked_condition(self, condition):
        self._check_condition_batch(condition)
        return tf.convert_to_tensor(condition, tf.float32)

    def _check_condition_batch(self, batch):
        """Builds the model for a batch of conditions (or its `TensorSpec`) if needed, then
        checks the batch against it."""
        shape = tuple(batch.shape) if isinstance(batch, tf.TensorSpec) else tuple(np.shape(batch))
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
        bernoulli = self.likelihood.binary
        check_data("target", y, self.target_shape, unit_interval=bernoulli)
        if not isinstance(x, tf.TensorSpec) and np.shape(x)[0] != np.shape(y)[0]:
            raise ValueError(
                "Expected as many conditions as targets. Received: "
                f"condition.shape={np.shape(x)}, target.shape={np.shape(y)}"
            )

    def fit(self, x=None, y=None, *args, **kwargs):
        kwargs = keras_keywords("fit", args, kwargs)
        x, y = lists_as_arrays(x, y)
        check_no_class_weight(kwargs.get("class_weight"))
        self._check_pairs(x, y)
        check_sample_weight(kwargs.get("sample_weight"), x)
        if isinstance(kwargs.get("validation_data"), tuple):
            # Keras reads the validation arrays before it calls `evaluate`, which checks them.
            val_x, val_y, val_weight = keras.utils.unpack_x_y_sample_weight(
                kwargs["validation_data"]
            )
            val_x, val_y = lists_as_arrays(val_x, val_y)
            self._check_pairs(val_x, val_y)
            check_sample_weight(val_weight, val_x)
        return super().fit(x, y, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        kwargs = keras_keywords("evaluate", args, kwargs)
        x, y = lists_as_arrays(x, y)
        self._check_pairs(x, y)
        check_sample_weight(kwargs.get("sample_weight"), x)
        return super().evaluate(x, y, **kwargs)

    def predict(self, x, *args, **kwargs):
        kwargs = keras_keywords("predict", args, kwargs)
        (x,) = lists_as_arrays(x)
        self._check_conditions(x)
        return super().predict(x, **kwargs)

    def _check_conditions(self, x):
        """Builds the model for the conditions' shape if needed, then checks them against it."""
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
                "latent_dim": self.latent_dim,
                "prior": self.prior_type,
                "hidden_units": self.hidden_units,
                "prior_hidden_units": self.prior_hidden_units,
                "gsnn_weight": self.gsnn_weight,
                "condition_type": self.condition_type,
                "image_shape": self.image_shape,
            }
        )
        return config
