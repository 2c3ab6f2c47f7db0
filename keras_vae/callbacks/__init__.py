from keras_vae.callbacks.beta_scheduler import BetaScheduler, linear_kl_warmup
from keras_vae.callbacks.image_logger import ImageLogger

__all__ = ["BetaScheduler", "ImageLogger", "linear_kl_warmup"]
