from keras_vae.models.conditional_vae import ConditionalVAE
from keras_vae.models.vae import VAE

__all__ = ["ConditionalVAE", "VAE"]
