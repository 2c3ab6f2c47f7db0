"""Mixture distributions, and choosing their components with the portable uniform draws."""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.ops import random as portable_random

tfd = tfp.distributions


def mixture(logits, components):
    """The mixture with component log-weights `logits` `[K]` of `components` (batch `[K]`).

    A `DiagonalGaussianMixture` when the components are diagonal Gaussians
    (`tfd.Independent` of a `tfd.Normal` over the last axis, as the
    mixture-of-Gaussians prior and a VampPrior over `DiagonalNormal`
    posteriors give), a `FullCovarianceGaussianMixture` when they are
    `tfd.MultivariateNormalTriL` (a VampPrior over `FullCovarianceNormal`
    posteriors), else a `Mixture`.

    Args:
        logits: float tensor `[K]`. Unnormalized log-weights.
        components: `tfd.Distribution` with batch shape `[K]` and event
            shape `[d]`.

    Returns:
        A `tfd.MixtureSameFamily` (or subclass) with batch shape `[]`.
    """
    mixing = tfd.Categorical(logits=logits)
    if (
        isinstance(components, tfd.Independent)
        and type(components.distribution) is tfd.Normal
        and components.event_shape.rank == 1  # a Normal's event is scalar: one axis reinterpreted
        and components.batch_shape.rank == 1
    ):
        return DiagonalGaussianMixture(mixing, components)
    if (
        type(components) is tfd.MultivariateNormalTriL
        and components.batch_shape.rank == 1
        and None not in (components.batch_shape[0], components.event_shape[-1])  # sized chunks
    ):
        return FullCovarianceGaussianMixture(mixing, components)
    return Mixture(mixing, components)


class Mixture(tfd.MixtureSameFamily):
    """A mixture whose log-density has zero gradients where every component's density is 0.

    `tfd.MixtureSameFamily` takes the log-sum-exp of the components'
    log-densities, whose gradient is NaN (exp(-inf - -inf)) where all of
    them are -inf, as for a z that no component's flow can reach in float32
    (a VampPrior over `IAF` posteriors after a KL-free epoch). A
    zero weight on such a log-density (the KL's under beta = 0,
    `keras_vae.ops.elbo.weighted_kl`) then still made every gradient NaN.
    Here such a z has log-density -inf and zero gradients; everywhere else
    the log-density and its gradients are `tfd.MixtureSameFamily`'s.
    Everything else (sampling, mean, the shapes) is `tfd.MixtureSameFamily`'s.
    """

    def _log_prob(self, x):
        # A z [..., d] against the K components: [..., 1, d] -> [..., K].
        event_rank = self.components_distribution.event_shape.rank
        x = tf.expand_dims(tf.convert_to_tensor(x, self.dtype), axis=-1 - event_rank)
        log_weights = tf.math.log_softmax(self.mixture_distribution.logits_parameter())
        terms = self.components_distribution.log_prob(x) + log_weights
        zero_density = tf.reduce_all(tf.math.is_inf(terms) & (terms < 0), axis=-1)
        safe_terms = tf.where(zero_density[..., tf.newaxis], tf.zeros_like(terms), terms)
        log_prob = tf.reduce_logsumexp(safe_terms, axis=-1)
        return tf.where(zero_density, tf.constant(-math.inf, self.dtype), log_prob)


class DiagonalGaussianMixture(tfd.MixtureSameFamily):
    """A mixture of diagonal Gaussians whose log-density is two matrix products.

    For z `[N, d]` and components k with means m_k and precisions
    p_k = 1 / s_k^2, sum_j p_kj (z_j - m_kj)^2 = (z^2) p_k - 2 z (m_k p_k) +
    m_k^2 p_k: two `[N, d] x [d, K]` products instead of an `[N, K, d]`
    tensor, which made a VampPrior of 500 components about 12x slower to
    score 5,000 importance samples (`log_likelihood`). The expansion loses
    to cancellation what the direct form keeps, so it is computed in
    float64 (about 1e-12 relative, against float32's 1e-7 in the direct
    form) and returned in the mixture's dtype. Everything else (sampling,
    mean, the batch and event shapes) is `tfd.MixtureSameFamily`'s.
    """

    def _log_prob(self, x):
        normal = self.components_distribution.distribution
        shape = tf.broadcast_dynamic_shape(tf.shape(normal.loc), tf.shape(normal.scale))
        loc = tf.cast(tf.broadcast_to(normal.loc, shape), tf.float64)
        scale = tf.cast(tf.broadcast_to(normal.scale, shape), tf.float64)
        precision = tf.math.reciprocal(tf.square(scale))  # [K, d]
        flat = tf.cast(tf.reshape(x, [-1, tf.shape(x)[-1]]), tf.float64)  # [N, d]
        squared_distance = (
            tf.matmul(tf.square(flat), precision, transpose_b=True)
            - 2.0 * tf.matmul(flat, loc * precision, transpose_b=True)
            + tf.reduce_sum(tf.square(loc) * precision, axis=-1)
        )  # [N, K]
        dims = tf.cast(tf.shape(loc)[-1], tf.float64)
        log_norm = tf.reduce_sum(tf.math.log(scale), axis=-1) + 0.5 * dims * math.log(2 * math.pi)
        log_weights = tf.math.log_softmax(tf.cast(self.mixture_distribution.logits, tf.float64))
        log_prob = tf.reduce_logsumexp(log_weights - log_norm - 0.5 * squared_distance, axis=-1)
        return tf.reshape(tf.cast(log_prob, self.dtype), tf.shape(x)[:-1])


class FullCovarianceGaussianMixture(tfd.MixtureSameFamily):
    """A mixture of full-covariance Gaussians whose log-density is computed in float64.

    Component k's log-density needs ||L_k^-1 (z - m_k)||^2, a triangular
    solve that multiplies rounding by L_k's condition number. Trained
    full-covariance posteriors reach condition numbers past 1e20, and in
    float32 a z far from such a component overflows: its log-density is
    -inf from inf - inf, the mixture's NaN, and so are the gradients, though
    the other components hold z well. In float64 the far component's term is
    a large finite negative number whose weight in the log-sum-exp is
    exactly 0, and the gradients stay finite. The rows of z are solved
    against all K components at once, `SOLVE_ELEMENTS // (K * d)` rows at a
    time, which bounds the memory of the `[K, d, rows]` solve. Everything else
    (sampling, mean, the batch and event shapes) is `tfd.MixtureSameFamily`'s.
    """

    # Elements of one chunk's [K, d, rows] differences (32 MB in float64).
    SOLVE_ELEMENTS = 2**22

    def _log_prob(self, x):
        components = self.components_distribution
        loc = tf.cast(components.mean(), tf.float64)  # [K, d]
        tril = tf.cast(components.scale.to_dense(), tf.float64)  # [K, d, d]
        num_components, dims = int(loc.shape[0]), int(loc.shape[-1])
        log_norm = tf.reduce_sum(
            tf.math.log(tf.abs(tf.linalg.diag_part(tril))), axis=-1
        ) + 0.5 * dims * math.log(2 * math.pi)
        log_weights = tf.math.log_softmax(tf.cast(self.mixture_distribution.logits, tf.float64))
        offset = (log_weights - log_norm)[:, None]  # [K, 1]

        def chunk_log_prob(z):  # [rows, d] -> [rows]
            difference = tf.transpose(z)[None] - loc[:, :, None]  # [K, d, rows]
            solved = tf.linalg.triangular_solve(tril, difference, lower=True)
            squared_distance = tf.reduce_sum(tf.square(solved), axis=1)  # [K, rows]
            return tf.reduce_logsumexp(offset - 0.5 * squared_distance, axis=0)

        flat = tf.cast(tf.reshape(x, [-1, dims]), tf.float64)  # [N, d]
        rows = max(1, self.SOLVE_ELEMENTS // (num_components * dims))
        count = tf.shape(flat)[0]
        chunks = (count + rows - 1) // rows
        padded = tf.pad(flat, [[0, chunks * rows - count], [0, 0]])
        log_prob = tf.map_fn(
            chunk_log_prob, tf.reshape(padded, [chunks, rows, dims]), fn_output_signature=tf.float64
        )
        log_prob = tf.reshape(log_prob, [-1])[:count]
        return tf.reshape(tf.cast(log_prob, self.dtype), tf.shape(x)[:-1])


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
