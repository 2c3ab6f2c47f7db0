"""Independent Bernoulli distribution layer for binary data."""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.layers.distribution_layer import DistributionLayer

tfd = tfp.distributions


@keras.saving.register_keras_serializable(package="keras_vae")
class IndependentBernoulli(DistributionLayer):
    """Builds independent Bernoulli variables from logits.

    The standard likelihood P(x|z) for binarized images: one logit per pixel.
    Draws are float32 so they can be compared with float data. `mean()` is the
    per-pixel probability, which is what a sampler shows.

    Args:
        event_shape: int or tuple of ints. Shape of one image, e.g.
            `(28, 28, 1)`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> layer = IndependentBernoulli(event_shape=(28, 28, 1))
    >>> dist = layer(tf.zeros([2, 28, 28, 1]))
    >>> dist.log_prob(tf.ones([2, 28, 28, 1])).shape
    TensorShape([2])
    """

    binary = True

    @staticmethod
    def params_size(event_shape):
        """Number of parameters: one logit per element."""
        shape = (event_shape,) if isinstance(event_shape, int) else event_shape
        return math.prod(shape)

    def call(self, params):
        (logits,) = self._split_params(params, 1)
        return tfd.Independent(
            tfd.Bernoulli(logits=logits, dtype=tf.float32),
            reinterpreted_batch_ndims=len(self.event_shape),
        )
