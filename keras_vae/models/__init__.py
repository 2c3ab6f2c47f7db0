from keras_vae.models.conditional_vae import ConditionalVAE
from keras_vae.models.presets import build_cvae, build_vae
from keras_vae.models.vae import VAE

__all__ = ["ConditionalVAE", "VAE", "build_cvae", "build_vae"]
