"""Closed-form and numerically stable math used by the VAE objectives.

Each function takes and returns tensors, so `train_step`, the evaluation code
and the exporters share one implementation and the tests can compare it
against TensorFlow Probability or a closed form.
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def gaussian_kl(loc_q, scale_q, loc_p=0.0, scale_p=1.0, axis=-1):
    """KL(N(loc_q, scale_q²) || N(loc_p, scale_p²)) for diagonal Gaussians.

    Args:
        loc_q: float tensor. Mean of the first Gaussian.
        scale_q: float tensor. Standard deviation of the first Gaussian.
        loc_p: float tensor. Mean of the second Gaussian. Defaults to `0.0`.
        scale_p: float tensor. Standard deviation of the second Gaussian.
            Defaults to `1.0`.
        axis: int, tuple of ints or `None`. Event axes to sum over. Defaults to
            `-1`; `None` returns the element-wise KL.

    Returns:
        The KL divergence in nats, summed over `axis`.

    Example:

    >>> float(gaussian_kl(tf.constant([0.0]), tf.constant([1.0])))
    0.0
    """
    ratio = tf.square(scale_q / scale_p)
    kl = 0.5 * (ratio + tf.square((loc_q - loc_p) / scale_p) - 1.0 - tf.math.log(ratio))
    return kl if axis is None else tf.reduce_sum(kl, axis=axis)


def log_mean_exp(x, axis=0):
    """Numerically stable `log(mean(exp(x), axis))`.

    Args:
        x: float tensor.
        axis: int. Axis to average over. Defaults to `0`.

    Returns:
        A tensor with `axis` removed.

    Example:

    >>> float(log_mean_exp(tf.constant([1000.0, 1000.0])))
    1000.0
    """
    n = tf.cast(tf.shape(x)[axis], x.dtype)
    return tf.reduce_logsumexp(x, axis=axis) - tf.math.log(n)


def reparameterize(loc, scale, eps):
    """The reparameterization trick: `z = loc + scale * eps`.

    Gradients flow to `loc` and `scale` through the sample, which is what lets
    the ELBO train the encoder (Kingma & Welling, 2014).

    Args:
        loc: float tensor. Posterior mean.
        scale: float tensor. Posterior standard deviation.
        eps: float tensor of standard normal draws, broadcastable with `loc`.

    Returns:
        The sample `z`.
    """
    return loc + scale * eps


def kl_divergence(q, p, z=None):
    """KL(q || p): analytic where TFP registers it, else a Monte Carlo estimate.

    Args:
        q: `tfd.Distribution`. The posterior.
        p: `tfd.Distribution`. The prior.
        z: optional tensor. Samples from `q` for the Monte Carlo estimate
            `log q(z) - log p(z)`; required when no closed form is registered.

    Returns:
        A tuple `(kl, analytic)`: the per-example KL and a Python bool saying
        whether the closed form was used.
    """
    try:
        return tfd.kl_divergence(q, p), True
    except NotImplementedError:
        if z is None:
            raise ValueError(
                "Expected samples `z` for a Monte Carlo KL: TFP has no closed form "
                f"for this pair. Received: q={type(q).__name__}, "
                f"p={type(p).__name__}, z=None"
            ) from None
        return q.log_prob(z) - p.log_prob(z), False
