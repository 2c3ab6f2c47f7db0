"""keras-vae: variational autoencoders on Keras 3 and TensorFlow Probability.

The public names below load on first use, so `import keras_vae` (and the
`keras-vae` command line, which answers `--help` and argument errors before
TensorFlow is imported) stays instant. Using any of them, or importing a
submodule, loads TensorFlow and registers keras-vae's Keras classes, which
`keras.saving.load_model` needs. Imported after Keras, as in a training
script, keras_vae registers them at once; otherwise load a `.keras` file with
`keras_vae.tasks.load_model`, or touch `keras_vae.VAE` first.
"""

import importlib
import os
import platform
import sys

# TensorFlow's C++ start-up chatter (CUDA probes on CPU machines) drowns the
# progress bar; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by default only on x86 CPUs with
# AVX-512 or AMX; on an AVX2-only AMD EPYC they trained the conv VAE about
# 1.35x faster, and the MLP's XLA step as fast (benchmarks/RESULTS.md). Read
# once, when TensorFlow is imported: it counts if keras_vae comes first (the
# `keras-vae` command's case). A user's own setting wins.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_SUBMODULES = (
    "callbacks",
    "data",
    "evaluation",
    "export",
    "layers",
    "models",
    "networks",
    "ops",
    "posteriors",
    "priors",
    "tasks",
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


# `keras.saving.load_model` finds keras-vae's classes once they are registered,
# which importing them does. A program that imported Keras first has paid for
# TensorFlow already: register them now. Otherwise they register on first use
# (any name above, or `keras_vae.tasks.load_model`).
if "keras" in sys.modules:
    importlib.import_module("keras_vae.models")
