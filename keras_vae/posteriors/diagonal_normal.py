"""The diagonal Gaussian posterior."""

import keras

from keras_vae.layers import IndependentNormal
from keras_vae.ops.math import reparameterize
from keras_vae.posteriors.posterior import Posterior


@keras.saving.register_keras_serializable(package="keras_vae")
class DiagonalNormal(Posterior):
    """Q(z|x) = N(mu(x), diag(sigma(x)^2)), the tutorial's posterior.

    A Dense layer maps the features to the mean and the raw scale, which
    goes through `softplus(raw) + 1e-5`. The KL to a diagonal Gaussian prior
    is analytic.

    Args:
        latent_dim: int or `None`. Number of latents; `None` takes the
            model's. Defaults to `None`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> import tensorflow as tf
    >>> posterior = DiagonalNormal(latent_dim=2)
    >>> posterior.bind(2)
    >>> posterior(tf.zeros([3, 8])).sample().shape
    TensorShape([3, 2])

    Reference:
        Kingma & Welling, *Auto-Encoding Variational Bayes*, arXiv:1312.6114.
    """

    def make_layers(self):
        self.params = keras.layers.Dense(
            IndependentNormal.params_size(self.latent_dim), name="params"
        )
        self.head = IndependentNormal(self.latent_dim, name="head")

    def call(self, features):
        return self.head(self.params(features))

    def reparameterize(self, distribution, eps):
        normal = distribution.distribution
        return reparameterize(normal.loc, normal.scale, eps)

    def export_outputs(self, distribution):
        return {"loc": distribution.distribution.loc, "scale": distribution.distribution.scale}
