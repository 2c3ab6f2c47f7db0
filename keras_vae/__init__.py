"""keras-vae: variational autoencoders on Keras 3 and TensorFlow Probability.

The public names below load on first use, so `import keras_vae` (and the
`keras-vae` command line, which answers `--help` and argument errors before
TensorFlow is imported) stays instant. Using any of them, or importing a
submodule, loads TensorFlow and registers keras-vae's Keras classes, which
`keras.saving.load_model` needs: load a `.keras` file with
`keras_vae.tasks.load_model`, or touch `keras_vae.VAE` first.
"""

import importlib
import os

# TensorFlow's C++ start-up chatter (CUDA probes on CPU machines) drowns the
# progress bar; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

_SUBMODULES = (
    "callbacks",
    "data",
    "evaluation",
    "layers",
    "networks",
    "ops",
    "posteriors",
    "priors",
    "visualize",
)
_MODELS = ("VAE", "ConditionalVAE")

__all__ = [*_MODELS, *_SUBMODULES, "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_vae.{name}")
    if name in _MODELS:
        return getattr(importlib.import_module("keras_vae.models"), name)
    raise AttributeError(f"module 'keras_vae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
