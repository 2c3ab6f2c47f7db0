"""The full-covariance Gaussian posterior."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.posteriors.posterior import Posterior

tfd = tfp.distributions

_SCALE_FLOOR = 1e-5


@keras.saving.register_keras_serializable(package="keras_vae")
class FullCovarianceNormal(Posterior):
    """Q(z|x) = N(mu(x), Sigma(x)) with Sigma^{1/2}(x) a lower-triangular matrix.

    The tutorial's z = mu(X) + Sigma^{1/2}(X) eps with a full covariance: a
    Dense layer gives the mean and a `[d, d]` matrix whose lower triangle
    is the Cholesky factor L (`tfd.MultivariateNormalTriL`), with the
    diagonal through `softplus(raw) + 1e-5` so that L is invertible. The
    upper triangle of the matrix is unused; building L with constant masks
    rather than `fill_triangular` keeps the exported graph to plain builtin
    ops. The KL to a diagonal Gaussian prior is analytic (registered below
    with TFP); to a mixture it is a Monte Carlo estimate.

    Args:
        latent_dim: int or `None`. Number of latents; `None` takes the
            model's. Defaults to `None`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> posterior = FullCovarianceNormal(latent_dim=2)
    >>> posterior.bind(2)
    >>> posterior(tf.zeros([3, 8])).covariance().shape
    TensorShape([3, 2, 2])

    Reference:
        Doersch, *Tutorial on Variational Autoencoders*, arXiv:1606.05908,
        section 2.2.
    """

    # A VampPrior's mixture of these scores z with float64 triangular solves
    # (`FullCovarianceGaussianMixture`), which made the MLP's training step
    # 1.25x (ELBO) to 2x (IWAE bound, K = 5) slower under XLA than in graph
    # mode (hand probe, benchmarks/RESULTS.md).
    mixture_prefers_graph_mode = True

    def make_layers(self):
        d = self.latent_dim
        self.params = keras.layers.Dense(d + d * d, name="params")
        self._strict_lower = np.tril(np.ones((d, d), np.float32), -1)
        self._eye = np.eye(d, dtype=np.float32)

    def call(self, features):
        d = self.latent_dim
        params = tf.cast(self.params(features), tf.float32)
        loc = params[..., :d]
        raw = tf.reshape(params[..., d:], tf.concat([tf.shape(loc)[:-1], [d, d]], 0))
        diagonal = tf.nn.softplus(tf.reduce_sum(raw * self._eye, -1)) + _SCALE_FLOOR
        scale_tril = raw * self._strict_lower + diagonal[..., None] * self._eye
        return tfd.MultivariateNormalTriL(loc=loc, scale_tril=scale_tril)

    def reparameterize(self, distribution, eps):
        # Through the distribution's own bijector (loc + L eps), whose cache
        # then gives `log_prob` of this z from eps itself: log N(eps) - log
        # |det L|. Solving L x = z - loc instead amplifies float32 rounding by
        # L's condition number, which training can drive past 1e20 (a
        # triangular L with a diagonal of 0.04 and entries of 1.4 below it):
        # log q(z) became -inf and the Monte Carlo KL to a mixture prior NaN.
        return distribution.bijector.forward(eps)

    def point(self, distribution):
        return distribution.loc

    def export_outputs(self, distribution):
        return {"loc": distribution.loc, "scale_tril": distribution.scale.to_dense()}


@tfd.RegisterKL(tfd.MultivariateNormalTriL, tfd.Independent)
def _kl_full_to_diagonal(q, p, name=None):
    """KL(N(mu, L L^T) || diagonal Gaussian), TFP's closed form for linear-operator Gaussians.

    TFP registers the closed form between `MultivariateNormalLinearOperator`s
    only; a diagonal prior is an `Independent(Normal)`, the same Gaussian.
    """
    normal = p.distribution
    if not (isinstance(normal, tfd.Normal) and p.event_shape.rank == 1):
        raise NotImplementedError("KL to a non-Gaussian Independent distribution")
    diagonal = tfd.MultivariateNormalDiag(
        loc=normal.loc, scale_diag=normal.scale * tf.ones_like(normal.loc)
    )
    return tfd.kl_divergence(q, diagonal, name=name)
