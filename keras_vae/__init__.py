"""keras-vae: variational autoencoders on Keras 3 and TensorFlow Probability."""

import os

# TensorFlow's C++ start-up chatter (CUDA probes on CPU machines) drowns the
# progress bar; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_vae import (  # noqa: E402
    callbacks,
    data,
    evaluation,
    layers,
    networks,
    ops,
    posteriors,
    priors,
)
from keras_vae.models import VAE, ConditionalVAE  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "VAE",
    "ConditionalVAE",
    "callbacks",
    "data",
    "evaluation",
    "layers",
    "networks",
    "ops",
    "posteriors",
    "priors",
    "__version__",
]
