"""The learned conditional Gaussian prior P(z|c) of the conditional VAE."""

import keras

from keras_vae.layers import IndependentNormal
from keras_vae.networks.validation import check_units
from keras_vae.ops.math import reparameterize
from keras_vae.priors.prior import Prior


@keras.saving.register_keras_serializable(package="keras_vae")
class ConditionalGaussian(Prior):
    """P(z|c): a diagonal Gaussian whose mean and scale a network reads off c.

    The condition is flattened, passed through ReLU layers of
    `hidden_units`, and a Dense layer gives the mean and the raw scale
    (`softplus(raw) + 1e-5`). With a diagonal Gaussian posterior the KL is
    analytic. At generation time this network alone turns the condition into
    z, so for image completion it decides what the missing part shows: give
    it the depth of a regressor of the missing part.

    Args:
        hidden_units: int or sequence of ints. Widths of the hidden layers, in
            order. Defaults to `256`.
        latent_dim: int or `None`. Number of latents; `None` takes the
            model's. Defaults to `None`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> import tensorflow as tf
    >>> prior = ConditionalGaussian(hidden_units=(64,), latent_dim=4)
    >>> prior.build((10,))
    >>> prior.sample(5, seed=0, condition=tf.zeros([2, 10])).shape
    TensorShape([2, 5, 4])

    Reference:
        Sohn, Lee & Yan, *Learning Structured Output Representation using Deep
        Conditional Generative Models*, NeurIPS 2015.
    """

    conditional = True

    def __init__(self, hidden_units=256, latent_dim=None, **kwargs):
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.hidden_units = check_units("hidden_units", hidden_units)
        self.flatten = keras.layers.Flatten(name="flatten")
        self.hidden = [
            keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")
            for i, units in enumerate(self.hidden_units)
        ]

    def bind(self, model):
        if not model.conditional:
            raise ValueError(
                "Expected a conditional model (a ConditionalVAE) for ConditionalGaussian, a "
                f"prior P(z|c). Received: model={type(model).__name__}"
            )
        super().bind(model)
        self._make_head()

    def _make_head(self):
        # Once the number of latents is known: from the model (`bind`) or given.
        if not hasattr(self, "params"):
            latent_dim = self.checked_latent_dim()
            self.params = keras.layers.Dense(
                IndependentNormal.params_size(latent_dim), name="params"
            )
            self.head = IndependentNormal(latent_dim, name="head")

    def build(self, condition_shape=None):
        # `condition_shape` is one condition's shape, without the batch axis.
        if condition_shape is None:
            raise ValueError(
                "Expected a condition shape to build ConditionalGaussian (it is a prior "
                "P(z|c) of a conditional model). Received: condition_shape=None"
            )
        self._make_head()
        self.distribution(keras.ops.zeros((1, *tuple(condition_shape))))
        self.built = True

    def distribution(self, condition):
        hidden = self.flatten(condition)
        for layer in self.hidden:
            hidden = layer(hidden)
        return self.head(self.params(hidden))

    def sample_from_noise(self, normal, uniform, temperature, condition):
        del uniform
        gaussian = self.distribution(condition).distribution
        loc, scale = gaussian.loc[:, None, :], gaussian.scale[:, None, :]
        return reparameterize(loc, temperature * scale, normal)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_units": self.hidden_units})
        return config
