from keras_vae.evaluation.log_likelihood import log_likelihood

__all__ = ["log_likelihood"]
