from keras_vae.tasks.evaluation import evaluate_model, load_model
from keras_vae.tasks.generation import complete_images, completion_grid, sample_images
from keras_vae.tasks.plotting import PLOT_KINDS, plot_model
from keras_vae.tasks.run_folder import json_safe
from keras_vae.tasks.training import train_model

__all__ = [
    "PLOT_KINDS",
    "complete_images",
    "completion_grid",
    "evaluate_model",
    "json_safe",
    "load_model",
    "plot_model",
    "sample_images",
    "train_model",
]
