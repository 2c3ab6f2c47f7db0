"""The standard normal prior N(0, I)."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.priors.prior import Prior

tfd = tfp.distributions


def diagonal_normal(loc, scale):
    """`tfd.Independent(tfd.Normal(loc, scale))` over the last axis."""
    return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)


@keras.saving.register_keras_serializable(package="keras_vae")
class StandardNormal(Prior):
    """The prior P(z) = N(0, I) of the tutorial, with no weights.

    The KL from a diagonal Gaussian posterior to it is analytic.

    Args:
        latent_dim: int or `None`. Number of latents; `None` takes the
            model's. Defaults to `None`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> prior = StandardNormal(latent_dim=2)
    >>> prior.sample(3, seed=0).shape
    TensorShape([3, 2])
    """

    noise_is_draw = True

    def distribution(self, condition):
        del condition
        return diagonal_normal(tf.zeros([self.latent_dim]), tf.ones([self.latent_dim]))

    def sample_from_noise(self, normal, uniform, temperature, condition):
        del uniform, condition
        return temperature * normal
