"""The variational autoencoder, and the machinery the whole VAE family shares."""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_vae import posteriors as posterior_registry
from keras_vae import priors as prior_registry
from keras_vae.layers import DistributionLayer, IndependentBernoulli
from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.elbo_model import ELBOModel, keras_keywords, likelihood_seed
from keras_vae.models.validation import (
    call_network,
    check_data,
    check_decoder_output,
    check_network_input,
    check_network_output,
    check_no_class_weight,
    check_positive_int,
    check_same_batch,
    check_sample_weight,
    checked_array,
    first_batch,
    lists_as_arrays,
    shape_of,
)
from keras_vae.ops import elbo as elbo_ops
from keras_vae.ops.math import kl_divergence
from keras_vae.priors.prior import check_sample_arguments
from keras_vae.utils import cpu
from keras_vae.utils.checks import check_seed

OBJECTIVES = ("elbo", "iwae")
_MAX_LATENT_VALUES = 2**31


def _check_objective_beta(objective, beta):
    if objective == "iwae" and beta != 1.0:
        raise ValueError(
            "Expected beta=1.0 with objective='iwae' (the bound has no KL weight). "
            f"Received: beta={beta}"
        )


def _check_samples_fit_in_memory(count, event_shape, num_samples):
    """Refuses `count` samples whose float32 values alone exceed the machine's memory.

    Caught before drawing: past it the operating system would page for
    minutes before failing (or the process be killed), not raise.
    """
    memory = cpu.physical_memory()
    size = 4 * count * math.prod(event_shape)
    if memory is not None and size > memory:
        raise ValueError(
            f"Expected num_samples whose samples fit in this machine's memory "
            f"({memory / 2**30:.1f} GiB): {count} samples of shape {tuple(event_shape)} "
            f"take {size / 2**30:.1f} GiB in float32. Received: num_samples={num_samples}"
        )


@keras.saving.register_keras_serializable(package="keras_vae")
class VAE(ELBOModel):
    """Variational autoencoder trained with `model.fit` on the ELBO.

    The encoder network maps x to features; a posterior layer
    (`keras_vae.posteriors`) turns them into the approximate posterior
    Q(z|x). The decoder network maps z to the parameters of the likelihood
    P(x|z); the prior P(z) is a layer of `keras_vae.priors`. By default
    training maximises the evidence lower bound

        ELBO = E_{z~Q(z|x)}[log P(x|z)] - KL(Q(z|x) || P(z)),

    with one reparameterized sample z of Q and the analytic KL where TFP
    registers one, else the Monte Carlo estimate log Q(z|x) - log P(z) at
    that sample (`kl_estimator` says which, once the model is built). `fit`
    and `evaluate` report, per example in nats, `loss` (-ELBO with the KL
    weighted by `beta`), `elbo`, `reconstruction` and `kl`; `predict`
    returns reconstructions. A VAE models x alone: a `y` given to `fit` or
    `evaluate` is not read, so `fit(x, x)` and a labelled dataset work as
    they are (for P(y|x), see `ConditionalVAE`).

    Every model of the family (`VAE`, `ConditionalVAE`) answers the same
    contract, with `condition=None` for an unconditional model:
    `encode(x, condition)` -> Q(z|x[, c]), `decode(z, condition)` ->
    P(x|z[, c]), `prior(condition)` -> P(z[|c]), `sample_latent` and
    `sample` (seeded, portable draws), and `reconstruct(x, condition)`.
    `conditional`, `condition_type`, `event_shape` and `condition_shape` say
    what the model generates and what it is conditioned on. `export` writes
    these functions as a SavedModel, a LiteRT file or ONNX files, as Keras's
    `Model.export` does for `call`.

    Args:
        encoder: Keras layer or model. Maps x to a feature tensor.
        decoder: Keras layer or model. Maps z `[batch, latent_dim]` to the
            likelihood's parameters, e.g. logits `[batch, 28, 28, 1]` for
            `IndependentBernoulli(event_shape=(28, 28, 1))`.
        latent_dim: int. Number of latent dimensions.
        likelihood: `keras_vae.layers.DistributionLayer` or `None`. P(x|z).
            Defaults to `IndependentBernoulli` over the input shape.
        prior: `keras_vae.priors.Prior`, a name (`"standard"`, `"mog"`,
            `"vamp"`) or `None` (standard normal). P(z).
        posterior: `keras_vae.posteriors.Posterior`, a name (`"diagonal"`,
            `"full"`, `"iaf"`) or `None` (diagonal Gaussian). Q(z|x).
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
        seed: int in [0, 2**32) or `None`. Seed for the training samples.
            Defaults to `None`.
        **kwargs: Base `keras.Model` keyword arguments.

    Example:

    >>> import keras_vae
    >>> from keras_vae.networks import mlp_decoder, mlp_encoder
    >>> vae = keras_vae.VAE(
    ...     encoder=mlp_encoder((28, 28, 1)),
    ...     decoder=mlp_decoder(16, (28, 28, 1)),
    ...     latent_dim=16,
    ...     prior="vamp",
    ... )
    >>> vae.compile(optimizer="adam")
    >>> history = vae.fit(x_train, epochs=1, batch_size=128)  # doctest: +SKIP
    >>> images = vae.sample(16, seed=0)  # doctest: +SKIP

    Reference:
        Kingma & Welling, *Auto-Encoding Variational Bayes*, arXiv:1312.6114;
        Doersch, *Tutorial on Variational Autoencoders*, arXiv:1606.05908.
    """

    conditional = False
    # What a conditional model is conditioned on (see `ConditionalVAE`).
    condition_type = None
    # How error messages and exported signatures name the modelled data.
    data_name = "x"

    def __init__(
        self,
        encoder,
        decoder,
        latent_dim,
        likelihood=None,
        prior=None,
        posterior=None,
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
        if likelihood is not None and not isinstance(likelihood, DistributionLayer):
            raise ValueError(
                "Expected likelihood to be a keras_vae distribution layer such as "
                f"IndependentBernoulli. Received: likelihood={likelihood!r}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.condition_shape = None
        self.kl_estimator = None
        self._building = False  # `build` calls `encode` and `decode`
        self.flatten = keras.layers.Flatten(name="flatten_features")
        self.posterior_layer = posterior_registry.get(posterior)
        self.posterior_layer.bind(self.latent_dim)
        self.prior_layer = prior_registry.get(prior)
        self.prior_layer.bind(self)

    # -- The contract ----------------------------------------------------------

    @property
    def event_shape(self):
        """Shape of one modelled example (x, or a CVAE's target), once known."""
        return None if self.likelihood is None else tuple(self.likelihood.event_shape)

    def encode(self, x, condition=None, training=False):
        """The approximate posterior Q(z|x[, c]), a `tfd.Distribution` of batch `[B]`.

        Concrete inputs (numpy arrays, lists, eager tensors) must be finite,
        and lie in [0, 1] for a binary likelihood: a ValueError says what
        came, where uint8 images or a NaN would give a silently wrong
        posterior.
        """
        condition = self._condition_argument(condition)
        self._build_on_first_call(x, condition)  # first: a VAE's likelihood may come with it
        binary = getattr(self.likelihood, "binary", False)
        x = checked_array(self.data_name, x, self.event_shape, unit_interval=binary)
        if self.event_shape is not None:
            check_same_batch(self.data_name, x, condition, len(self.event_shape))
        features = self.encoder_features(x, condition, training)
        check_network_output("encoder", features, self.data_name, x)
        return self.posterior_layer(features)

    def decode(self, z, condition=None, training=False):
        """The likelihood P(x|z[, c]), a `tfd.Distribution` of batch `[B]`.

        Concrete `z` (and conditions) must be finite, as for `encode`, and
        so must the decoder's output: a `z` so large that the decoder
        overflows float32 raises rather than giving NaN.
        """
        z = checked_array("z", z, (self.latent_dim,))
        condition = self._condition_argument(condition)
        self._build_on_first_call(None, condition)
        check_same_batch("z", z, condition, 1)
        params = call_network(self.decoder, self.decoder_inputs(z, condition), training)
        check_network_output("decoder", params, "z", z)
        return self.likelihood(check_decoder_output(params, self.likelihood))

    def prior(self, condition=None):
        """The prior P(z) (batch `[]`), or P(z|c) (batch `[B]`) for a conditional prior.

        A first call builds the model, as `encode` and `decode` do: a VampPrior's
        pseudo-inputs take the data's shape.
        """
        condition = self._condition_argument(condition)
        if not self.built:
            self._checked_condition_batch(condition)
        return self.prior_layer.prior(condition)

    def sample_latent(self, num_samples, seed, temperature=1.0, condition=None):
        """`num_samples` draws of z from the prior with the portable RNG.

        The same seed gives the same z here, in an exported SavedModel and in
        a TFLite model.

        Args:
            num_samples: positive int or int scalar tensor. Draws (per
                condition).
            seed: int in [0, 2**32) or int scalar tensor.
            temperature: non-negative float. Scales the prior's spread; `0`
                gives the mean of the (chosen component's) Gaussian. Defaults
                to `1.0`.
            condition: tensor `[B, ...]` or `None`.

        Returns:
            float32 tensor `[num_samples, latent_dim]`, or `[B, num_samples,
            latent_dim]` given `B` conditions (row-major, so draw `k` for
            condition `b` uses the counters of row `b * num_samples + k`).
        """
        check_sample_arguments(num_samples, seed, temperature)
        condition = self._condition_argument(condition)
        if condition is None or self.prior_layer.conditional:
            return self.prior_layer.sample(num_samples, seed, temperature, condition)
        batch = tf.shape(condition)[0]
        num_samples = tf.cast(num_samples, tf.int32)
        z = self.prior_layer.sample(batch * num_samples, seed, temperature)
        return tf.reshape(z, [batch, num_samples, self.latent_dim])

    def sample(
        self,
        num_samples,
        condition=None,
        seed=None,
        temperature=1.0,
        use_mean=True,
        batch_size=1024,
    ):
        """Generates data from the prior.

        Args:
            num_samples: int. How many examples (per condition).
            condition: array `[B, *condition_shape]` or `None`. Required by
                a conditional model, refused by an unconditional one.
            seed: int in [0, 2**32) or `None`. The same seed gives the same
                latents here, in an exported SavedModel and in a TFLite model.
                Defaults to a random seed.
            temperature: float in [0, 1] (or above). Draws z with the prior's
                spread multiplied by it: lower values trade variety for
                typical-looking samples; `0` draws no noise and decodes the
                prior's mean or, for a mixture prior, the mean of the
                component drawn (an IAF component's base mean sent through
                its flow). Exported models sample at `1.0`. Defaults to
                `1.0`.
            use_mean: bool. Return the likelihood's mean (e.g. pixel
                probabilities) rather than a draw from it. A likelihood
                without a closed-form mean (autoregressive) returns its
                conditional probabilities along a draw instead. Defaults to
                `True`.
            batch_size: int. Latents decoded at a time, which bounds the
                decoder's memory; the samples do not depend on it. Defaults
                to `1024`.

        Returns:
            numpy array `[num_samples, *event_shape]`, or `[B, num_samples,
            *event_shape]` given `B` conditions.

        Raises:
            ValueError: for a bad argument, or more samples than the portable
                RNG counts (2**31 latent values) or than the machine's memory
                holds in float32.
        """
        num_samples = check_positive_int("num_samples", num_samples)
        temperature = check_positive_float("temperature", temperature, allow_zero=True)
        if seed is not None:
            seed = check_seed("seed", seed)
        if not isinstance(use_mean, (bool, np.bool_)):
            raise ValueError(
                f"Expected use_mean to be True or False. Received: use_mean={use_mean!r}"
            )
        condition = self._checked_condition_batch(condition)
        conditions = 1 if condition is None else int(condition.shape[0])
        if conditions * num_samples * self.latent_dim >= _MAX_LATENT_VALUES:
            # The portable RNG counts draws in int32: more would wrap around.
            product, received = "num_samples * latent_dim", ""
            if condition is not None:
                product, received = f"conditions * {product}", f"conditions={conditions}, "
            raise ValueError(
                f"Expected {product} below 2**31. Received: {received}"
                f"num_samples={num_samples}, latent_dim={self.latent_dim}"
            )
        if self.likelihood is None or not self.built:
            raise ValueError(
                "Expected a built model: call it on data or fit it first. Received: an "
                f"unbuilt {type(self).__name__}"
            )
        _check_samples_fit_in_memory(conditions * num_samples, self.event_shape, num_samples)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        z = self.sample_latent(num_samples, seed, temperature, condition)
        z = tf.reshape(z, [-1, self.latent_dim])
        if not bool(tf.reduce_all(tf.math.is_finite(z))):
            raise ValueError(
                "Expected a temperature whose latents are finite in float32. Received: "
                f"temperature={temperature:g}, which gives infinite z"
            )
        repeated = None if condition is None else tf.repeat(condition, num_samples, axis=0)
        likelihood = self._decode_in_chunks(self.decoder_inputs(z, repeated), batch_size)
        if use_mean and self.likelihood.closed_form_mean:
            x = likelihood.mean()
        else:
            x = likelihood.sample(seed=likelihood_seed(seed))
            x = self.likelihood.expected_value(likelihood, x) if use_mean else x
        if condition is not None:
            x = tf.reshape(x, [-1, num_samples, *self.event_shape])
        return keras.ops.convert_to_numpy(x)

    def reconstruct(self, x, condition=None):
        """The likelihood mean at the posterior's point (see `call`), as a numpy array."""
        x, condition = self._checked_reconstruct_inputs(x, condition)
        posterior = self.encode(x, condition)
        likelihood = self.decode(self.posterior_layer.point(posterior), condition)
        return keras.ops.convert_to_numpy(self.likelihood.expected_value(likelihood, x))

    # -- Hooks that a conditional model overrides ------------------------------

    def encoder_features(self, x, condition, training=False):
        """The features `[B, F]` that the posterior layer reads."""
        del condition
        return self.flatten(call_network(self.encoder, x, training))

    def decoder_inputs(self, z, condition):
        """What the decoder network reads: z, or z joined with the condition."""
        del condition
        return z

    def split_batch(self, x, y):
        """`(data, condition)` of a batch as Keras unpacks it into `(x, y)`."""
        del y
        return x, None

    # -- Building --------------------------------------------------------------

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
        self._build_parts()

    def _build_parts(self):
        """Builds every part on one example of zeros and records the KL estimator."""
        x = tf.zeros((1,) + self.event_shape)
        condition = None if self.condition_shape is None else tf.zeros((1,) + self.condition_shape)
        # Keras builds on a first call wherever it happens: the variables go
        # to the model's strategy, not to the one (if any) of the caller.
        self._building = True
        try:
            with self.distribute_strategy.scope():
                posterior = self.posterior_layer(self.encoder_features(x, condition))
                point = self.posterior_layer.point(posterior)
                self.decode(point, condition)
                self.prior_layer.build(self.condition_shape)
                _, analytic = kl_divergence(posterior, self.prior_layer.prior(condition), point)
        finally:
            self._building = False
        self.kl_estimator = "analytic" if analytic else "monte_carlo"
        self.built = True

    def _build_on_first_call(self, x, condition):
        """Builds an unbuilt model for `encode(x)` or `decode` (`x=None`), as `prior` does.

        The likelihood gives the data's shape, or else `x`: a `decode` before
        either is refused in one line.
        """
        if self.built or self._building:
            return
        if self.likelihood is not None:
            self.build((None, *self.event_shape))
        elif x is not None:
            self.build((None, *shape_of(x)[1:]))
        else:
            raise ValueError(
                f"Expected a likelihood, or a built {type(self).__name__}, to decode (the "
                "likelihood takes the data's shape: encode data, call the model on it, or "
                f"build(input_shape) first). Received: an unbuilt {type(self).__name__} "
                "without a likelihood"
            )

    def _condition_argument(self, condition):
        """`condition` for a conditional model (required), `None` otherwise (refused)."""
        if self.conditional:
            if condition is None:
                raise ValueError(
                    f"Expected a condition for the conditional {type(self).__name__}. "
                    "Received: condition=None"
                )
            return checked_array("condition", condition, self.condition_shape)
        if condition is not None:
            raise ValueError(
                f"Expected condition=None for the unconditional {type(self).__name__}. "
                f"Received: condition of shape {tuple(np.shape(condition))}"
            )
        return None

    def _checked_condition_batch(self, condition):
        """`condition` as a float32 tensor, the model built for it; `None` if unconditional."""
        self._condition_argument(condition)
        if self.likelihood is not None:  # it knows x's shape
            self._build_on_first_call(None, None)
        return None

    def _checked_reconstruct_inputs(self, x, condition):
        self._condition_argument(condition)
        self._check_inputs(x)
        return tf.convert_to_tensor(x, tf.float32), None

    # -- The objective ---------------------------------------------------------

    def call(self, x, training=False):
        """Reconstructions: the likelihood mean at the posterior's point.

        A likelihood without a closed-form mean (autoregressive) gives its
        conditional probabilities at the input's own pixels.
        """
        likelihood = self.decode(self.posterior_layer.point(self.encode(x, training=training)))
        return self.likelihood.expected_value(likelihood, x)

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
        data, condition = self.split_batch(x, y)
        data = tf.cast(data, self.likelihood.compute_dtype)
        if condition is not None:
            condition = tf.cast(condition, self.compute_dtype)
        posterior = self.encode(data, condition, training=training)
        prior = self.prior(condition)
        if self.objective == "elbo" and self.num_samples == 1:
            z = self.sample_posterior(posterior, training=training)
            decode = lambda z: self.decode(z, condition, training=training)  # noqa: E731
            return elbo_ops.elbo(posterior, decode, prior, data, z, beta=self.kl_weight())
        z = self.sample_posterior(posterior, self.num_samples, training=training)
        tiled = (
            None
            if condition is None
            else tf.tile(condition, [self.num_samples] + [1] * (condition.shape.rank - 1))
        )
        decode = lambda z: self.decode(z, tiled, training=training)  # noqa: E731
        return elbo_ops.multi_sample_terms(
            posterior, decode, prior, data, z, objective=self.objective, beta=self.kl_weight()
        )

    def sample_posterior(self, posterior, num_samples=None, training=True):
        """Reparameterized training draws of Q(z|x): the posterior layer's map of Philox noise.

        The noise is `tf.random.stateless_normal` with the Philox algorithm
        named explicitly, seeded by `next_seed()`. TFP's seeded `sample` and
        the default `alg="auto_select"` cost about 2 ms per call under XLA on
        CPU, which made an XLA-compiled MNIST step about 30% slower. XLA
        turns the same seed into other normals than TensorFlow's kernels
        do, so a model trained with and without `jit_compile` sees different
        (equally distributed) noise.

        Args:
            posterior: `tfd.Distribution` of batch shape `[B]`.
            num_samples: int or `None`. `None` draws `[B, d]`; an int draws
                `[num_samples, B, d]`.
            training: bool. Whether the draws are the training step's or
                the test step's (see `next_seed`). Defaults to `True`.
        """
        shape = tf.concat([posterior.batch_shape_tensor(), [self.latent_dim]], 0)
        if num_samples is not None:
            shape = tf.concat([[num_samples], shape], 0)
        eps = tf.random.stateless_normal(shape, self.next_seed(training), alg="philox")
        return self.posterior_layer.reparameterize(posterior, eps)

    # -- Data checks and Keras's entry points ----------------------------------

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
                    "of (x,) tuples (call build(input_shape) first), or arrays, a "
                    f"tf.data.Dataset or a keras.utils.PyDataset. Received: x={type(x).__name__}"
                )
            return
        x = batch
        if not self.built:
            shape = shape_of(x)
            if self.likelihood is not None:
                check_data("x", tf.TensorSpec((None,) + shape[1:]), self.event_shape)
            self.build((None,) + shape[1:])
        if self.event_shape is None:
            return
        check_data("x", x, self.event_shape, unit_interval=self.likelihood.binary)

    def _checked_training_data(self, x, y, sample_weight):
        """Checks (and builds for) the data of `fit` or `evaluate`; returns the `y` to pass."""
        self._check_inputs(x)
        return _weight_carrier(x, y, sample_weight)

    def _check_predict_inputs(self, x):
        self._check_inputs(x)

    def fit(self, x=None, y=None, *args, **kwargs):
        kwargs = keras_keywords("fit", args, kwargs)
        x, y = lists_as_arrays(x, y)
        check_no_class_weight(kwargs.get("class_weight"))
        y = self._checked_training_data(x, y, kwargs.get("sample_weight"))
        kwargs["sample_weight"] = _flat_weights(kwargs.get("sample_weight"))
        if isinstance(kwargs.get("validation_data"), tuple):
            # Keras reads the validation arrays before it calls `evaluate`, which checks them.
            val_x, val_y, val_weight = keras.utils.unpack_x_y_sample_weight(
                kwargs["validation_data"]
            )
            val_x, val_y = lists_as_arrays(val_x, val_y)
            val_y = self._checked_training_data(val_x, val_y, val_weight)
            kwargs["validation_data"] = (val_x, val_y, _flat_weights(val_weight))
        return super().fit(x, y, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        kwargs = keras_keywords("evaluate", args, kwargs)
        x, y = lists_as_arrays(x, y)
        y = self._checked_training_data(x, y, kwargs.get("sample_weight"))
        kwargs["sample_weight"] = _flat_weights(kwargs.get("sample_weight"))
        return super().evaluate(x, y, **kwargs)

    def predict(self, x, *args, **kwargs):
        kwargs = keras_keywords("predict", args, kwargs)
        (x,) = lists_as_arrays(x)
        self._check_predict_inputs(x)
        return super().predict(x, **kwargs)

    # The one-batch entrances check their data as `fit`, `evaluate` and `predict` do.

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        x, y = lists_as_arrays(x, y)
        check_no_class_weight(class_weight)
        y = self._checked_training_data(x, y, sample_weight)
        return super().train_on_batch(
            x, y, sample_weight=_flat_weights(sample_weight), return_dict=return_dict
        )

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        x, y = lists_as_arrays(x, y)
        y = self._checked_training_data(x, y, sample_weight)
        return super().test_on_batch(
            x, y, sample_weight=_flat_weights(sample_weight), return_dict=return_dict
        )

    def predict_on_batch(self, x):
        (x,) = lists_as_arrays(x)
        self._check_predict_inputs(x)
        return super().predict_on_batch(x)

    def export(
        self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs
    ):
        """Exports the model for inference, checked against it before it is put in place.

        Keras's `Model.export`, for the family: where Keras writes one
        `serve` function, the artifact holds the model's serving functions
        (`keras_vae.export.ServingModule`): `decode` (also `serving_default`),
        the seeded `sample` (the same draws as `sample` for the same seed),
        `encode` and `reconstruct`. It is written as
        `keras_vae.export.export_model` writes it: each file is compared with
        this model under its runtime, and a failed export leaves nothing.

        Args:
            filepath: str or path. For `"tf_saved_model"`, the SavedModel's
                folder (for TF Serving, a version folder such as
                `models/vae/1`; `export_model(saved_model_base=...)` numbers
                them): a new path, an empty folder or an earlier SavedModel,
                which is replaced. For `"litert"`, a `.tflite` file. For
                `"onnx"`, a folder for one `.onnx` file per function.
            format: str. `"tf_saved_model"`, `"litert"` or `"onnx"` (needs
                `pip install 'keras-vae[onnx]'`). Defaults to
                `"tf_saved_model"`.
            verbose: bool or `None`. Print the verification report. Defaults
                to `None`, which prints it.
            input_signature: `None`. The signatures are the model's own.
            **kwargs: `export_model` options: `allow_untrained`, `seed` and
                `num_samples` (the verification draws); with `"litert"`
                also `quantize`, `batch_sizes`, `min_runtime` and
                `representative_conditions`.

        Raises:
            ValueError: for another format or option, a destination that
                is not free (a folder holding other files), an untrained
                model, or files that do not reproduce the model (then
                nothing was written).

        Example:

        >>> vae.export("saved_models/mnist/1")  # doctest: +SKIP
        >>> vae.export("mnist.tflite", format="litert", quantize="float16")  # doctest: +SKIP
        """
        from keras_vae.export.export_model import export_artifact

        export_artifact(self, filepath, format, verbose, input_signature, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "latent_dim": self.latent_dim,
                "objective": self.objective,
                "num_samples": self.num_samples,
            }
        )
        return config


def _flat_weights(sample_weight):
    """Checked weights `[N]` or `[N, 1]` as `[N]` (`None` stays `None`).

    The compiled steps are traced for the weights' rank: a second `fit` with
    `[N]` after `[N, 1]` retraced them with a weight of unknown rank, which
    the metric trackers cannot read.
    """
    if sample_weight is None or not hasattr(sample_weight, "shape"):
        return sample_weight
    return np.reshape(np.asarray(sample_weight), [-1])


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
