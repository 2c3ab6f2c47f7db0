"""A learned mixture-of-Gaussians prior."""

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.networks.validation import check_positive_int
from keras_vae.priors.mixture import component_indices, mixture
from keras_vae.priors.prior import Prior
from keras_vae.priors.standard_normal import diagonal_normal

tfd = tfp.distributions

_SCALE_FLOOR = 1e-5


@keras.saving.register_keras_serializable(package="keras_vae")
class MixtureOfGaussians(Prior):
    """P(z) = sum_k w_k N(z; mu_k, diag(sigma_k^2)), all learned.

    The means start as draws of N(0, I), the scales at 1 (`softplus(raw) +
    1e-5`) and the weights equal (a softmax of learned logits). No closed
    form exists for the KL from a Gaussian to a mixture: the model uses the
    Monte Carlo estimate log q(z) - log p(z) at its posterior draws.

    A seeded draw chooses its component with the portable uniform generator
    (see `component_indices`) and adds the component's scale times the
    portable normal noise, so Keras, a SavedModel and TFLite agree.

    Args:
        num_components: int. Number of Gaussians K. Defaults to `10`.
        latent_dim: int or `None`. Number of latents; `None` takes the
            model's. Defaults to `None`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> prior = MixtureOfGaussians(num_components=3, latent_dim=2)
    >>> prior.build()
    >>> prior.sample(4, seed=0).shape
    TensorShape([4, 2])

    Reference:
        Dilokthanakul et al., *Deep Unsupervised Clustering with Gaussian
        Mixture Variational Autoencoders*, arXiv:1611.02648; Tomczak &
        Welling, *VAE with a VampPrior*, AISTATS 2018 (the MoG baseline).
    """

    uses_uniform = True

    def __init__(self, num_components=10, latent_dim=None, **kwargs):
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.num_components = check_positive_int("num_components", num_components)

    def build(self, condition_shape=None):
        shape = (self.num_components, self.checked_latent_dim())
        self.means = self.add_weight(
            shape=shape, initializer=keras.initializers.RandomNormal(stddev=1.0), name="means"
        )
        self.raw_scales = self.add_weight(
            shape=shape,
            # softplus(log(e - 1)) = 1: every component starts as N(mu_k, I).
            initializer=keras.initializers.Constant(math.log(math.e - 1.0)),
            name="raw_scales",
        )
        self.logits = self.add_weight(
            shape=(self.num_components,), initializer="zeros", name="logits"
        )
        self.built = True

    def _scales(self):
        return tf.nn.softplus(self.raw_scales) + _SCALE_FLOOR

    def distribution(self, condition):
        del condition
        return mixture(
            tf.convert_to_tensor(self.logits),
            diagonal_normal(tf.convert_to_tensor(self.means), self._scales()),
        )

    def sample_from_noise(self, normal, uniform, temperature, condition):
        del condition
        index = component_indices(tf.nn.softmax(self.logits), uniform)
        loc = tf.gather(tf.convert_to_tensor(self.means), index)
        scale = tf.gather(self._scales(), index)
        return loc + temperature * scale * normal

    def get_config(self):
        config = super().get_config()
        config.update({"num_components": self.num_components})
        return config
