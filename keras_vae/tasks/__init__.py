from keras_vae.tasks.evaluation import evaluate_model, load_model
from keras_vae.tasks.training import sample_images, train_model

__all__ = ["evaluate_model", "load_model", "sample_images", "train_model"]
