"""Diagonal Gaussian distribution layer."""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.layers.distribution_layer import DistributionLayer, check_positive_float

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class IndependentNormal(DistributionLayer):
    """Builds a diagonal Gaussian from a location and an unconstrained scale.

    The first half of the parameters is the mean, the second half goes through
    `softplus(raw) + scale_floor` to give the standard deviation. Used for the
    approximate posterior Q(z|x) and, with a per-element scale, as a Gaussian
    likelihood for continuous data.

    Args:
        event_shape: int or tuple of ints. Shape of one draw.
        scale_floor: float. Smallest standard deviation, which keeps the
            log-density finite. Defaults to `1e-5`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> layer = IndependentNormal(event_shape=2)
    >>> dist = layer(tf.zeros([3, IndependentNormal.params_size(2)]))
    >>> dist.sample().shape
    TensorShape([3, 2])
    """

    def __init__(self, event_shape, scale_floor=1e-5, **kwargs):
        super().__init__(event_shape, **kwargs)
        self.scale_floor = check_positive_float("scale_floor", scale_floor, allow_zero=True)

    @staticmethod
    def params_size(event_shape):
        """Number of parameters: a mean and a raw scale per element."""
        shape = (event_shape,) if isinstance(event_shape, int) else event_shape
        return 2 * math.prod(shape)

    def call(self, params):
        loc, raw_scale = self._split_params(params, 2)
        scale = tf.nn.softplus(raw_scale) + self.scale_floor
        return tfd.Independent(
            tfd.Normal(loc=loc, scale=scale),
            reinterpreted_batch_ndims=len(self.event_shape),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"scale_floor": self.scale_floor})
        return config
