"""keras-vae: variational autoencoders on Keras 3 and TensorFlow Probability."""

from keras_vae import data, layers, networks, ops
from keras_vae.models import VAE, ConditionalVAE

__version__ = "0.1.0"

__all__ = ["VAE", "ConditionalVAE", "data", "layers", "networks", "ops", "__version__"]
