"""The variational autoencoder."""

import keras
import numpy as np
import tensorflow as tf

from keras_vae.layers import IndependentBernoulli, IndependentNormal
from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.layers.pixelcnn_bernoulli import PixelCNNBernoulliDistribution
from keras_vae.models.elbo_model import ELBOModel, keras_keywords, likelihood_seed
from keras_vae.models.priors import draw_latent, is_diagonal_normal, standard_normal
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
from keras_vae.ops import elbo as elbo_ops

OBJECTIVES = ("elbo", "iwae")


def _check_objective_beta(objective, beta):
    if objective == "iwae" and beta != 1.0:
        raise ValueError(
            "Expected beta=1.0 with objective='iwae' (the bound has no KL weight). "
            f"Received: beta={beta}"
        )


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(ELBOModel):
    """Variational autoencoder trained with `model.fit` on the ELBO.

    The encoder network maps x to features; a Dense layer and an
    `IndependentNormal` head turn them into the approximate posterior Q(z|x).
    The decoder network maps z to the parameters of the likelihood P(x|z).
    By default training maximises the evidence lower bound

        ELBO = E_{z~Q(z|x)}[log P(x|z)] - KL(Q(z|x) || P(z)),

    with one reparameterized sample z = mu(x) + sigma(x) * eps and the
    analytic KL where TFP registers one. `fit` and `evaluate` report, per
    example in nats, `loss` (-ELBO with the KL weighted by `beta`), `elbo`,
    `reconstruction` and `kl`; `predict` returns reconstructions.

    Args:
        encoder: Keras layer or model. Maps x to a feature tensor.
        decoder: Keras layer or model. Maps z `[batch, latent_dim]` to the
            likelihood's parameters, e.g. logits `[batch, 28, 28, 1]` for
            `IndependentBernoulli(event_shape=(28, 28, 1))`.
        latent_dim: int. Number of latent dimensions.
        likelihood: `keras_vae.layers.DistributionLayer` or `None`. P(x|z).
            Defaults to `IndependentBernoulli` over the input shape.
        prior: `tfd.Distribution` or `None`. P(z), with event shape
            `[latent_dim]`. Defaults to a standard normal.
        beta: float. Weight of the KL term in the loss (beta-VAE). Defaults
            to `1.0`, the ELBO. The `beta` attribute can be changed later,
            also during `fit` (a KL warm-up: `keras_vae.callbacks.BetaScheduler`).
        objective: str. `"elbo"` or `"iwae"`, the importance-weighted bound
            of Burda et al. (2016) with `num_samples` samples, whose loss is
            the negated bound. Defaults to `"elbo"`.
        num_samples: int. Latent samples per example in the objective: the
            ELBO averages over them, the IWAE bound weights them. Defaults
            to `1`. The `objective` and `num_samples` attributes can be
            changed later, also during `fit` from a callback (e.g. to
            fine-tune with a larger K).
        seed: int or `None`. Seed for the training samples. Defaults to `None`.
        **kwargs: Base `keras.Model` keyword arguments.

    Example:

    >>> import keras_vae
    >>> from keras_vae.networks import mlp_decoder, mlp_encoder
    >>> vae = keras_vae.VAE(
    ...     encoder=mlp_encoder((28, 28, 1)),
    ...     decoder=mlp_decoder(16, (28, 28, 1)),
    ...     latent_dim=16,
    ... )
    >>> vae.compile(optimizer="adam")
    >>> history = vae.fit(x_train, epochs=1, batch_size=128)  # doctest: +SKIP
    >>> images = vae.sample(16, seed=0)  # doctest: +SKIP

    Reference:
        Kingma & Welling, *Auto-Encoding Variational Bayes*, arXiv:1312.6114;
        Doersch, *Tutorial on Variational Autoencoders*, arXiv:1606.05908.
    """

    def __init__(
        self,
        encoder,
        decoder,
        latent_dim,
        likelihood=None,
        prior=None,
        beta=1.0,
        objective="elbo",
        num_samples=1,
        seed=None,
        **kwargs,
    ):
        super().__init__(beta=beta, seed=seed, **kwargs)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.num_samples = num_samples
        self.objective = objective
        for name, value in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(value, keras.layers.Layer):
                raise ValueError(
                    f"Expected {name} to be a Keras layer or model. Received: {name}={value!r}"
                )
        if likelihood is not None and not hasattr(likelihood, "params_size"):
            raise ValueError(
                "Expected likelihood to be a keras_vae distribution layer such as "
                f"IndependentBernoulli. Received: likelihood={likelihood!r}"
            )
        if prior is not None and not (
            is_diagonal_normal(prior)
            and prior.event_shape[-1] == self.latent_dim
            and prior.batch_shape.rank == 0
        ):
            raise ValueError(
                "Expected prior to be None or a diagonal Gaussian "
                "(tfd.Independent(tfd.Normal)) with event shape "
                f"[{self.latent_dim}] and no batch shape. Received: prior={prior!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.prior = standard_normal(self.latent_dim) if prior is None else prior
        self._custom_prior = prior is not None
        self.flatten = keras.layers.Flatten(name="flatten_features")
        self.posterior_params = keras.layers.Dense(
            IndependentNormal.params_size(self.latent_dim), name="posterior_params"
        )
        self.posterior = IndependentNormal(self.latent_dim, name="posterior")

    def build(self, input_shape):
        event_shape = tuple(input_shape[1:])
        if self.likelihood is None:
            self.likelihood = IndependentBernoulli(event_shape, name="likelihood")
        elif tuple(self.likelihood.event_shape) != event_shape:
            raise ValueError(
                f"Expected inputs shaped [batch, "
                f"{', '.join(map(str, self.likelihood.event_shape))}] to match the "
                f"likelihood's event_shape. Received: input_shape={tuple(input_shape)}"
            )
        check_network_input("encoder", self.encoder, event_shape, "x, the likelihood's event shape")
        check_network_input(
            "decoder", self.decoder, (self.latent_dim,), f"z, latent_dim={self.latent_dim}"
        )
        x = tf.zeros((1,) + event_shape)
        # Keras builds on a first call wherever it happens: the variables go
        # to the model's strategy, not to the one (if any) of the caller.
        with self.distribute_strategy.scope():
            self.decode(self.encode(x).mean())
        self.built = True

    @property
    def event_shape(self):
        """Shape of one example x, known once the model is built."""
        return None if self.likelihood is None else tuple(self.likelihood.event_shape)

    def encode(self, x, training=False):
        """The approximate posterior Q(z|x), a `tfd.Distribution` of batch `[B]`."""
        x = checked_array("x", x, self.event_shape)
        features = self.flatten(call_network(self.encoder, x, training))
        return self.posterior(self.posterior_params(features))

    def decode(self, z, training=False):
        """The likelihood P(x|z), a `tfd.Distribution` of batch `[B]`."""
        z = checked_array("z", z, (self.latent_dim,))
        params = check_decoder_output(call_network(self.decoder, z, training), self.likelihood)
        return self.likelihood(params)

    def call(self, x, training=False):
        """Reconstructions: the likelihood mean at the posterior mean of z.

        An autoregressive likelihood (`PixelCNNBernoulli`) has no closed-form
        mean; it gives p(x_i = 1 | x_<i, z) at the input's own pixels.
        """
        likelihood = self.decode(self.encode(x, training=training).mean(), training)
        if isinstance(likelihood, PixelCNNBernoulliDistribution):
            return likelihood.conditional_probs(x)
        return likelihood.mean()

    def reconstruct(self, x):
        """Reconstructions of `x` (see `call`), as a numpy array."""
        self._check_inputs(x)
        return keras.ops.convert_to_numpy(self(tf.convert_to_tensor(x, tf.float32)))

    @property
    def objective(self):
        """str. `"elbo"` or `"iwae"`, the bound trained on.

        Setting it (or `num_samples`) changes the loss from the next training
        step on, also inside `fit` (from a callback): the compiled steps hold
        both as constants, so they are traced again.
        """
        return self._objective

    @objective.setter
    def objective(self, value):
        if value not in OBJECTIVES:
            raise ValueError(
                f"Expected objective to be one of {OBJECTIVES}. Received: objective={value!r}"
            )
        _check_objective_beta(value, self.beta)
        self._set_step_constant("objective", value)

    @property
    def num_samples(self):
        """int. Draws of z per example in the training objective (K)."""
        return self._num_samples

    @num_samples.setter
    def num_samples(self, value):
        value = check_positive_int("num_samples", value)
        self._set_step_constant("num_samples", value)

    def _check_beta(self, beta):
        _check_objective_beta(getattr(self, "objective", "elbo"), beta)
        return beta

    def compute_terms(self, x, y=None, training=False):
        x = tf.cast(x, self.likelihood.compute_dtype)
        posterior = self.encode(x, training=training)
        decode = lambda z: self.decode(z, training=training)  # noqa: E731
        if self.objective == "elbo" and self.num_samples == 1:
            z = self.sample_posterior(posterior)
            return elbo_ops.elbo(posterior, decode, self.prior, x, z, beta=self.kl_weight())
        z = self.sample_posterior(posterior, self.num_samples)
        return elbo_ops.multi_sample_terms(
            posterior, decode, self.prior, x, z, objective=self.objective, beta=self.kl_weight()
        )

    def sample_latent(self, num_samples, seed, temperature=1.0):
        """`num_samples` draws of z from the prior with the portable RNG.

        Args:
            num_samples: int or int scalar tensor.
            seed: int or int scalar tensor.
            temperature: float. Scales the prior's standard deviation (see
                `keras_vae.models.priors.draw_latent`). Defaults to `1.0`.

        Returns:
            float32 tensor `[num_samples, latent_dim]`.
        """
        return draw_latent(self.prior, num_samples, seed, temperature)

    def sample(self, num_samples, seed=None, use_mean=True, temperature=1.0, batch_size=1024):
        """Generates data from the prior.

        Args:
            num_samples: int. How many examples.
            seed: int or `None`. The same seed gives the same latents here, in
                an exported SavedModel and in a TFLite model. Defaults to a
                random seed.
            use_mean: bool. Return the likelihood's mean (e.g. pixel
                probabilities) rather than a draw from it. An autoregressive
                likelihood, which has no closed-form mean, returns
                p(x_i = 1 | x_<i, z) along a draw instead. Defaults to `True`.
            temperature: float in [0, 1] (or above). Draws z with the prior's
                scale multiplied by it: lower values trade variety for
                typical-looking samples; `0` decodes the prior mean. Exported
                models sample at `1.0`. Defaults to `1.0`.
            batch_size: int. Latents decoded at a time, which bounds the
                decoder's memory; the samples do not depend on it. Defaults
                to `1024`.

        Returns:
            numpy array `[num_samples, *event_shape]`.
        """
        num_samples = check_positive_int("num_samples", num_samples)
        temperature = check_positive_float("temperature", temperature, allow_zero=True)
        if self.likelihood is None:
            raise ValueError(
                "Expected a built model: call it on data or fit it first. Received: an unbuilt VAE"
            )
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        z = self.sample_latent(num_samples, seed, temperature)
        likelihood = self._decode_in_chunks(z, batch_size)
        pixel_seed = likelihood_seed(seed)
        if isinstance(likelihood, PixelCNNBernoulliDistribution):
            x = likelihood.sample(seed=pixel_seed)
            x = likelihood.conditional_probs(x) if use_mean else x
        else:
            x = likelihood.mean() if use_mean else likelihood.sample(seed=pixel_seed)
        return keras.ops.convert_to_numpy(x)

    def _check_inputs(self, x):
        """Builds the model for `x`'s shape if needed, then checks `x` against it."""
        if x is None:
            raise ValueError(
                "Expected x: an array, a tf.data.Dataset, a keras.utils.PyDataset, an iterator "
                "or a generator of images. Received: x=None"
            )
        batch = first_batch(x)
        if isinstance(x, (tf.data.Dataset, keras.utils.PyDataset)) and isinstance(batch, tuple):
            batch = batch[0]  # (x, y) or (x, y, sample_weight): y is unused
        if batch is None:
            if not self.built:
                raise ValueError(
                    "Expected a built model to read data from an iterator or a generator "
                    "(call build(input_shape) first), or arrays, a tf.data.Dataset or a "
                    f"keras.utils.PyDataset. Received: x={type(x).__name__}"
                )
            return
        x = batch
        if not self.built:
            shape = tuple(x.shape) if isinstance(x, tf.TensorSpec) else tuple(np.shape(x))
            if self.likelihood is not None:
                check_data("x", tf.TensorSpec((None,) + shape[1:]), self.event_shape)
            self.build((None,) + shape[1:])
        if self.event_shape is None:
            return
        check_data("x", x, self.event_shape, unit_interval=self.likelihood.binary)

    def fit(self, x=None, y=None, *args, **kwargs):
        kwargs = keras_keywords("fit", args, kwargs)
        (x,) = lists_as_arrays(x)
        check_no_class_weight(kwargs.get("class_weight"))
        self._check_inputs(x)
        y = _weight_carrier(x, y, kwargs.get("sample_weight"))
        if isinstance(kwargs.get("validation_data"), tuple):
            val_x, val_y, val_weight = keras.utils.unpack_x_y_sample_weight(
                kwargs["validation_data"]
            )
            val_y = _weight_carrier(val_x, val_y, val_weight)
            kwargs["validation_data"] = (val_x, val_y, val_weight)
        return super().fit(x, y, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        kwargs = keras_keywords("evaluate", args, kwargs)
        (x,) = lists_as_arrays(x)
        self._check_inputs(x)
        y = _weight_carrier(x, y, kwargs.get("sample_weight"))
        return super().evaluate(x, y, **kwargs)

    def predict(self, x, *args, **kwargs):
        kwargs = keras_keywords("predict", args, kwargs)
        (x,) = lists_as_arrays(x)
        self._check_inputs(x)
        return super().predict(x, **kwargs)

    def get_config(self):
        if self._custom_prior:
            raise ValueError(
                "Expected the default standard normal prior to save the model: "
                "a custom prior is not serializable. Received: prior="
                f"{self.prior!r}"
            )
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "objective": self.objective,
                "num_samples": self.num_samples,
            }
        )
        return config


def _weight_carrier(x, y, sample_weight):
    """`y`, or a placeholder for it when only `sample_weight` comes with `x`.

    Keras drops `sample_weight` when `y` is `None` (it packs `(x,)` alone),
    and a VAE has no target, so without a `y` the weights would be silently
    ignored. The ELBO never reads `y`: zeros of `x`'s length carry the weights.
    """
    check_sample_weight(sample_weight, x)
    if y is not None or sample_weight is None or not hasattr(x, "shape"):
        return y  # Keras itself refuses weights beside a dataset or a generator
    return np.zeros((int(np.shape(x)[0]),), "float32")
