"""Choosing mixture components with the portable uniform draws."""

import numpy as np
import tensorflow as tf

from keras_vae.ops import random as portable_random


def component_indices(weights, uniform):
    """Component choices as int32 indices `[...]` for uniform draws `[...]`.

    The indices of `choose_components`' one-hot rows. Priors take their
    component's parameters with `tf.gather` on them, not a product with the
    one-hot rows: the TFLite converter turns that product into an
    EMBEDDING_LOOKUP whose table int8 quantization gives a zero point,
    which LiteRT refuses to run.

    Args:
        weights: float tensor `[K]` of probabilities that sum to 1.
        uniform: float tensor `[...]` of draws in (0, 1).

    Returns:
        int32 tensor `[...]` in `[0, K)`.
    """
    return tf.cast(_counts_below(weights, uniform), tf.int32)


def choose_components(weights, uniform):
    """One-hot component choices `[..., K]` for uniform draws `[...]`.

    Component k is chosen when the cumulative weight of the components
    before it is at most `u` and the next one's is above it (inverse-CDF
    sampling). Written with MATMUL, GREATER_EQUAL, SUM and EQUAL, so a TFLite
    model makes the same choice as Keras. Draws above the last cumulative
    weight (rounding leaves it a few ulps below 1) take the last component.

    Args:
        weights: float tensor `[K]` of probabilities that sum to 1.
        uniform: float tensor `[...]` of draws in (0, 1).

    Returns:
        float tensor `[..., K]`.
    """
    index = _counts_below(weights, uniform)
    components = tf.constant(np.arange(int(weights.shape[-1])), index.dtype)
    return tf.cast(tf.equal(index[..., None], components), tf.float32)


def _counts_below(weights, uniform):
    """For each draw, how many cumulative weights (the last excluded) it reaches."""
    num = int(weights.shape[-1])
    # Cumulative sums as a product with a constant triangle: no CUMSUM kernel needed.
    triangle = tf.constant(np.triu(np.ones((num, num), np.float32)))
    upper = tf.linalg.matvec(triangle, weights, transpose_a=True)[:-1]
    # TFLite Micro's SUM takes float32, not int32; the counts are exact either way.
    dtype = tf.float32 if portable_random.uses_tflite_micro_ops() else tf.int32
    return tf.reduce_sum(tf.cast(uniform[..., None] >= upper, dtype), axis=-1)
