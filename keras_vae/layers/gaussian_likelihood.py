"""Gaussian likelihood with one scale shared by every element."""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.layers.distribution_layer import DistributionLayer, check_positive_float

tfd = tfp.distributions

_SCALE_FLOOR = 1e-5


@keras.saving.register_keras_serializable(package="keras_vae")
class GaussianLikelihood(DistributionLayer):
    """Independent Gaussian P(x|z) with a fixed or learned shared scale.

    The decoder predicts only the mean; the standard deviation is a constant
    (`trainable_scale=False`, the classic squared-error VAE) or a single
    learned scalar, `softplus(raw) + 1e-5`, initialised at `scale`. A learned
    scale lets the model balance reconstruction against KL by itself instead
    of through a hand-tuned weight. For a per-element scale predicted by the
    decoder, use `IndependentNormal`.

    Args:
        event_shape: int or tuple of ints. Shape of one example.
        scale: float. The standard deviation, or its initial value when
            learned. Defaults to `1.0`.
        trainable_scale: bool. Whether to learn the scale. Defaults to `False`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> layer = GaussianLikelihood(event_shape=3, scale=0.1)
    >>> round(float(layer(tf.zeros([1, 3])).stddev()[0, 0]), 6)
    0.1
    """

    def __init__(self, event_shape, scale=1.0, trainable_scale=False, **kwargs):
        super().__init__(event_shape, **kwargs)
        self.scale = check_positive_float("scale", scale)
        self.trainable_scale = bool(trainable_scale)
        if self.trainable_scale and self.scale <= _SCALE_FLOOR:
            raise ValueError(
                f"Expected scale > {_SCALE_FLOOR} (the floor) when trainable_scale=True. "
                f"Received: scale={scale!r}"
            )

    @staticmethod
    def params_size(event_shape):
        """Number of parameters: one mean per element."""
        shape = (event_shape,) if isinstance(event_shape, int) else event_shape
        return math.prod(shape)

    def build(self, input_shape=None):
        if self.trainable_scale:
            # Inverse softplus (in a form that cannot overflow), so the scale
            # starts at `self.scale`.
            y = self.scale - _SCALE_FLOOR
            raw = y + math.log(-math.expm1(-y))
            self.raw_scale = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(raw),
                name="raw_scale",
            )
        self.built = True

    def call(self, params):
        (loc,) = self._split_params(params, 1)
        if self.trainable_scale:
            scale = tf.nn.softplus(self.raw_scale) + _SCALE_FLOOR
        else:
            scale = tf.constant(self.scale, dtype=loc.dtype)
        return tfd.Independent(
            tfd.Normal(loc=loc, scale=scale * tf.ones_like(loc)),
            reinterpreted_batch_ndims=len(self.event_shape),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "trainable_scale": self.trainable_scale})
        return config
