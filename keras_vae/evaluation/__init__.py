from keras_vae.evaluation.format_metrics import format_metrics
from keras_vae.evaluation.log_likelihood import log_likelihood

__all__ = ["format_metrics", "log_likelihood"]
