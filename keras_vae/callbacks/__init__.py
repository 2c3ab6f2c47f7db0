from keras_vae.callbacks.beta_scheduler import BetaScheduler, linear_kl_warmup

__all__ = ["BetaScheduler", "linear_kl_warmup"]
