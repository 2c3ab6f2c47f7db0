"""The VampPrior: a mixture of the encoder's posteriors at learned pseudo-inputs."""

import weakref

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.networks.validation import check_positive_int
from keras_vae.priors.mixture import component_indices, mixture
from keras_vae.priors.prior import Prior

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class VampPrior(Prior):
    """P(z) = (1/K) sum_k Q(z|u_k), with K learned pseudo-inputs u_k.

    The "variational mixture of posteriors" approximates the optimal prior,
    the aggregate posterior, with the model's own encoder evaluated at
    pseudo-inputs that are trained with the rest of the model. The
    pseudo-inputs have the data's shape and are clipped to [0, 1], the range
    of keras-vae's images (the paper's hard tanh). Any posterior works: the
    components are whatever `encode` returns. No closed-form KL exists; the
    model uses the Monte Carlo estimate. With an `IAF` posterior, log p(z)
    inverts the flow at every component: up to `latent_dim` passes of its
    networks per step (about 10 of 50 in `benchmarks/iaf_inverse.py`, where
    the inverse stops at a bitwise fixed point), for every z against every
    component. Correct, but far slower to train: with the IWAE paper's MLP,
    500 pseudo-inputs and batches of 100, a training step on the ELBO took
    about 3 s on 2 cores, against about 0.1 s with a full-covariance
    posterior (without XLA, which `compile`'s "auto" leaves off for it) and
    15 ms with a diagonal one (hand probes, `benchmarks/RESULTS.md`). A
    component at which z has no float32 inverse has density 0
    (`IAFDistribution`), so log p(z) and its gradient come from the other
    components.

    A seeded draw chooses a pseudo-input with the portable uniform generator,
    encodes it and draws from that posterior with the portable normal noise
    (scaled by the temperature), so Keras, a SavedModel and TFLite agree.

    Only unconditional models take a VampPrior (its components are
    Q(z|u_k) without a condition).

    Args:
        num_pseudo_inputs: int. Number of components K. Defaults to `500`,
            the paper's for MNIST.
        pseudo_inputs_initializer: Keras initializer. Defaults to
            `RandomNormal(0.05, 0.01)`, the paper's for MNIST.
        latent_dim: int or `None`. Number of latents; `None` takes the
            model's. Defaults to `None`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> vae = keras_vae.VAE(encoder, decoder, 16, prior=VampPrior(100))  # doctest: +SKIP

    Reference:
        Tomczak & Welling, *VAE with a VampPrior*, AISTATS 2018,
        arXiv:1705.07120.
    """

    uses_uniform = True

    def __init__(
        self, num_pseudo_inputs=500, pseudo_inputs_initializer=None, latent_dim=None, **kwargs
    ):
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.num_pseudo_inputs = check_positive_int("num_pseudo_inputs", num_pseudo_inputs)
        self.pseudo_inputs_initializer = keras.initializers.get(
            pseudo_inputs_initializer or keras.initializers.RandomNormal(0.05, 0.01)
        )
        self._model = None

    def bind(self, model):
        if model.conditional:
            raise ValueError(
                "Expected an unconditional model (a VAE) for VampPrior: its components are "
                f"posteriors Q(z|u_k) without a condition. Received: model={type(model).__name__}"
            )
        super().bind(model)
        # A weak reference: the model owns the prior, not the other way round.
        self._model = weakref.ref(model)

    @property
    def prefers_graph_mode(self):
        """Whether the model's posteriors mix faster without XLA (full-covariance ones do)."""
        model = None if self._model is None else self._model()
        return model is not None and model.posterior_layer.mixture_prefers_graph_mode

    def build(self, condition_shape=None):
        model = self._bound_model()
        if model.event_shape is None:
            raise ValueError(
                "Expected a model that knows its data's shape, which a VampPrior's "
                "pseudo-inputs take: give the model its likelihood, or call it on data or "
                "fit it first. Received: a model without a likelihood yet"
            )
        data_shape = tuple(model.event_shape)
        self.pseudo_inputs = self.add_weight(
            shape=(self.num_pseudo_inputs, *data_shape),
            initializer=self.pseudo_inputs_initializer,
            name="pseudo_inputs",
        )
        try:
            model.encode(self._clipped())
        except Exception as error:
            raise ValueError(
                f"Expected pseudo-inputs shaped {data_shape} to pass through the encoder. "
                f"Received: {type(error).__name__}: {str(error).splitlines()[0]}"
            ) from None
        self.built = True

    def _bound_model(self):
        model = None if self._model is None else self._model()
        if model is None:
            raise ValueError(
                "Expected a VampPrior inside a model (VAE(prior=VampPrior(...))): it uses "
                "the model's encoder. Received: a VampPrior on its own"
            )
        return model

    def _clipped(self):
        return tf.clip_by_value(tf.convert_to_tensor(self.pseudo_inputs), 0.0, 1.0)

    def distribution(self, condition):
        del condition
        components = self._bound_model().encode(self._clipped())
        return mixture(tf.zeros([self.num_pseudo_inputs]), components)

    def sample_from_noise(self, normal, uniform, temperature, condition):
        del condition
        model = self._bound_model()
        weights = tf.fill([self.num_pseudo_inputs], 1.0 / self.num_pseudo_inputs)
        index = component_indices(weights, uniform)
        inputs = tf.gather(self._clipped(), tf.reshape(index, [-1]))
        posterior = model.encode(inputs)
        return model.posterior_layer.reparameterize(posterior, temperature * normal)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_pseudo_inputs": self.num_pseudo_inputs,
                "pseudo_inputs_initializer": keras.initializers.serialize(
                    self.pseudo_inputs_initializer
                ),
            }
        )
        return config
