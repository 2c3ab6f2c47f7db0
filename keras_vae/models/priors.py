"""Priors over the latents and seeded, portable draws from them."""

import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.ops import random as portable_random
from keras_vae.ops.math import reparameterize

tfd = tfp.distributions


def standard_normal(latent_dim, batch_shape=()):
    """The N(0, I) prior over `latent_dim` latents, with batch shape `batch_shape`."""
    shape = tf.concat([tf.cast(batch_shape, tf.int32), [latent_dim]], 0)
    return tfd.Independent(
        tfd.Normal(loc=tf.zeros(shape), scale=tf.ones(shape)),
        reinterpreted_batch_ndims=1,
        name="StandardNormal",
    )


def is_diagonal_normal(distribution):
    """Whether `distribution` is an `Independent(Normal)` with a vector event."""
    return (
        isinstance(distribution, tfd.Independent)
        and isinstance(distribution.distribution, tfd.Normal)
        and distribution.event_shape.rank == 1
    )


def draw_latent(distribution, num_samples, seed, temperature=1.0):
    """`num_samples` draws of a diagonal Gaussian with the portable RNG.

    The noise comes from `keras_vae.ops.random`, so the same seed gives the
    same draws in Python, in a SavedModel and in a TFLite model. A
    `temperature` below 1 draws from the Gaussian with its scale multiplied
    by `temperature`: z = loc + temperature * scale * eps, the same eps for
    every temperature, and `temperature=0` gives the mean.

    Args:
        distribution: `tfd.Independent(tfd.Normal)` with batch shape `[]`
            (one distribution for all samples) or `[B]` (one per condition).
        num_samples: int or int scalar tensor. Draws per distribution.
        seed: int or int scalar tensor.
        temperature: float. Multiplies the scale. Defaults to `1.0`.

    Returns:
        float32 tensor `[num_samples, latent_dim]`, or `[B, num_samples,
        latent_dim]` for a batch of distributions.
    """
    loc = distribution.distribution.loc
    scale = temperature * distribution.distribution.scale * tf.ones_like(loc)
    latent_dim = distribution.event_shape[-1]
    batch_shape = tf.shape(loc)[:-1]
    eps = portable_random.normal(
        tf.concat([batch_shape, [tf.cast(num_samples, tf.int32), latent_dim]], 0), seed
    )
    return reparameterize(loc[..., tf.newaxis, :], scale[..., tf.newaxis, :], eps)
