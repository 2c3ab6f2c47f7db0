"""The base class of the priors P(z) and P(z|c)."""

import keras
import tensorflow as tf

from keras_vae.networks.validation import check_positive_int
from keras_vae.ops import random as portable_random
from keras_vae.utils.checks import check_positive_float, check_seed


def check_sample_arguments(num_samples, seed, temperature):
    """Raises for a Python (or numpy) `num_samples`, `seed` or `temperature` out of range.

    Tensors pass unchecked: the exported samplers trace with them.
    """
    if not tf.is_tensor(num_samples):
        check_positive_int("num_samples", num_samples)
    if not tf.is_tensor(seed):
        check_seed("seed", seed)
    if not tf.is_tensor(temperature):
        check_positive_float("temperature", temperature, allow_zero=True)


class Prior(keras.layers.Layer):
    """A layer that holds the prior over the latents and draws from it portably.

    Every prior answers the same calls, so models, evaluation and export never
    ask which one they hold:

    - `prior(condition=None)`: the `tfd.Distribution` P(z) (batch shape `[]`)
      or, for a `conditional` prior, P(z|c) (batch shape `[B]`), with event
      shape `[latent_dim]`.
    - `sample(num_samples, seed, temperature=1.0, condition=None)`: draws with
      the counter RNG of `keras_vae.ops.random`, so the same seed gives the
      same z in Keras, a SavedModel and a TFLite model. A `temperature` below
      1 scales the spread of every Gaussian (component) the draw comes from;
      `0` gives its mean.

    Subclasses implement `distribution(condition)` and
    `sample_from_noise(normal, uniform, temperature, condition)`, where the
    noise is a standard normal `[..., latent_dim]` and a uniform `[...]` of
    the same leading shape (for choosing mixture components).

    Args:
        latent_dim: int or `None`. Number of latents. `None` takes the
            model's; a number that differs from the model's is refused when
            the model is made. Defaults to `None`.
        **kwargs: Base layer keyword arguments.
    """

    # Whether `prior` reads the condition (P(z|c)); unconditional priors ignore it.
    conditional = False
    # Whether `sample_from_noise` reads the uniform draws (mixtures do).
    uses_uniform = False
    # Whether a draw at temperature 1 is the standard normal noise itself, with
    # no weight involved: then a host with the portable RNG alone draws z
    # exactly (an int8-full file or a micro decode file leaves z to the host).
    noise_is_draw = False
    # Whether the model trains faster without XLA with this prior;
    # `compile(jit_compile="auto")` then leaves XLA off.
    prefers_graph_mode = False

    def __init__(self, latent_dim=None, **kwargs):
        # Draws and densities stay float32 under a mixed-precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.latent_dim = (
            None if latent_dim is None else check_positive_int("latent_dim", latent_dim)
        )

    def bind(self, model):
        """Ties the prior to `model` (its `latent_dim`; some priors need its encoder).

        Raises:
            ValueError: if the prior's `latent_dim` differs from the model's.
        """
        if self.latent_dim is not None and self.latent_dim != model.latent_dim:
            raise ValueError(
                f"Expected a prior over the model's latent_dim={model.latent_dim} latents. "
                f"Received: {type(self).__name__} with latent_dim={self.latent_dim}"
            )
        self.latent_dim = model.latent_dim

    def build(self, condition_shape=None):
        self.built = True

    def checked_latent_dim(self):
        """`latent_dim`, once known; a clear error before a model or a number gave it."""
        if self.latent_dim is None:
            raise ValueError(
                f"Expected {type(self).__name__} to know its number of latents: pass "
                "latent_dim, or give the prior to a model, which sets it. Received: "
                "latent_dim=None"
            )
        return self.latent_dim

    def build_from_config(self, config):
        # The model builds its prior once it knows the data and condition
        # shapes (a VampPrior needs the model's encoder first).
        del config

    def prior(self, condition=None):
        """The distribution P(z) (or P(z|c) for a conditional prior).

        A first call builds the prior, as Keras builds a layer on its first call.
        """
        condition = condition if self.conditional else None
        self._build_on_first_use(condition)
        return self.distribution(condition)

    def _build_on_first_use(self, condition):
        if not self.built:
            self.build(None if condition is None else tuple(condition.shape[1:]))

    def distribution(self, condition):
        raise NotImplementedError

    def sample(self, num_samples, seed, temperature=1.0, condition=None):
        """`num_samples` seeded, portable draws of z.

        Args:
            num_samples: positive int or int32 scalar tensor.
            seed: int in [0, 2**32) or int32 scalar tensor.
            temperature: non-negative float or float scalar tensor. Scales
                the spread. Defaults to `1.0`.
            condition: tensor `[B, ...]` or `None`. Read by a conditional
                prior only.

        Returns:
            float32 tensor `[num_samples, latent_dim]`, or `[B, num_samples,
            latent_dim]` for a conditional prior given `B` conditions.
        """
        check_sample_arguments(num_samples, seed, temperature)
        num_samples = tf.cast(num_samples, tf.int32)
        if self.conditional:
            if condition is None:
                raise ValueError(
                    f"Expected a condition for the conditional prior {type(self).__name__}. "
                    "Received: condition=None"
                )
            leading = tf.stack([tf.shape(condition)[0], num_samples])
        else:
            condition = None
            leading = tf.reshape(num_samples, [1])
        self._build_on_first_use(condition)
        eps = portable_random.normal(tf.concat([leading, [self.checked_latent_dim()]], 0), seed)
        uniform = portable_random.uniform(leading, seed) if self.uses_uniform else None
        return self.sample_from_noise(eps, uniform, temperature, condition)

    def sample_from_noise(self, normal, uniform, temperature, condition):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update({"latent_dim": self.latent_dim})
        return config
