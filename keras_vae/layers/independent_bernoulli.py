"""Independent Bernoulli distribution layer for binary data."""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.layers.distribution_layer import DistributionLayer

tfd = tfp.distributions

_LOGIT_CLIP = 88.0


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

    def portable_mean(self, distribution):
        """The probabilities `sigmoid(logits)`, with the logits clipped to [-88, 88].

        XNNPack, LiteRT's default CPU delegate, returns NaN for the sigmoid
        of |logits| >= 1e30 (a latent of 1e30 gets there), where TensorFlow
        returns 0 or 1. In float32 the sigmoid is 1 from 17 on and below
        1e-38 under -88, so the clip changes no probability by more than
        1e-38.
        """
        logits = distribution.distribution.logits
        return tf.sigmoid(tf.clip_by_value(logits, -_LOGIT_CLIP, _LOGIT_CLIP))

    def call(self, params):
        (logits,) = self._split_params(params, 1)
        return tfd.Independent(
            tfd.Bernoulli(logits=logits, dtype=tf.float32),
            reinterpreted_batch_ndims=len(self.event_shape),
        )
