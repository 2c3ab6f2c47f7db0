"""Tiny trained models, their exports (made once per session) and references."""

import importlib
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from export_helpers import (  # noqa: E402
    LATENT_DIM,
    NUM_CLASSES,
    QUANTIZE,
    QUANTIZE_IDS,
    STATIC_BATCH_SIZES,
    binary_images,
    one_hot,
)

from keras_vae import ConditionalVAE  # noqa: E402
from keras_vae.data import make_conditional_pairs  # noqa: E402
from keras_vae.export import export_saved_model, export_tflite  # noqa: E402
from keras_vae.layers import IndependentBernoulli  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.networks import mlp_decoder, mlp_encoder  # noqa: E402

# The modules, not the functions the package re-exports under some of their names.
export_model_module = importlib.import_module("keras_vae.export.export_model")
saved_model_module = importlib.import_module("keras_vae.export.saved_model")
tflite_module = importlib.import_module("keras_vae.export.tflite")


@pytest.fixture(scope="session")
def vae():
    """An MLP VAE (latent_dim 4) fitted for one step on random binary images."""
    keras.utils.set_random_seed(0)
    model = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM, seed=0)
    model.compile(optimizer="adam")
    model.fit(binary_images(16), batch_size=16, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="session")
def cvae():
    """A label-conditioned CVAE with a learned prior, fitted for one step."""
    keras.utils.set_random_seed(1)
    model = ConditionalVAE(
        mlp_encoder((28, 28, 1), hidden_units=(32,)),
        mlp_decoder(LATENT_DIM + NUM_CLASSES, (28, 28, 1), hidden_units=(32,)),
        latent_dim=LATENT_DIM,
        likelihood=IndependentBernoulli((28, 28, 1)),
        prior="learned",
        hidden_units=16,
        condition_type="label",
        seed=0,
    )
    model.compile(optimizer="adam")
    model.fit(one_hot(np.arange(16) % NUM_CLASSES), binary_images(16), batch_size=16, verbose=0)
    return model


@pytest.fixture(scope="session")
def completion_cvae():
    """A top-half completion CVAE (392 observed -> 392 missing pixels), fitted for one step."""
    keras.utils.set_random_seed(2)
    model = ConditionalVAE(
        mlp_encoder((392,), hidden_units=(32,)),
        mlp_decoder(LATENT_DIM + 392, (392,), hidden_units=(32,)),
        latent_dim=LATENT_DIM,
        likelihood=IndependentBernoulli((392,)),
        condition_type="top-half",
        image_shape=(28, 28, 1),
        seed=0,
    )
    model.compile(optimizer="adam")
    observed, missing = make_conditional_pairs(binary_images(16), None, "top-half")
    model.fit(observed, missing, batch_size=16, verbose=0)
    return model


@pytest.fixture(scope="session")
def exports_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="session")
def vae_saved_model(vae, exports_dir):
    return export_saved_model(vae, exports_dir / "vae")


@pytest.fixture(scope="session")
def cvae_saved_model(cvae, exports_dir):
    return export_saved_model(cvae, exports_dir / "cvae")


class TFLiteExports(dict):
    """Quantize mode -> path of a model's `.tflite` file, converted when first asked for.

    Each worker of `make test` converts only the modes its tests read: a
    conversion takes seconds, and most files read the float32 one alone.
    """

    def __init__(self, model, folder, prefix, modes):
        super().__init__()
        self.model, self.folder, self.prefix = model, folder, prefix
        self.names = dict(modes)  # mode -> file name suffix

    def __missing__(self, mode):
        name = self.names[mode]  # a KeyError for a mode not exported
        self[mode] = export_tflite(
            self.model, self.folder / f"{self.prefix}-{name}.tflite", quantize=mode
        )
        return self[mode]

    def get(self, mode, default=None):
        return self[mode] if mode in self.names else default


@pytest.fixture(scope="session")
def vae_tflite(vae, exports_dir):
    """Quantize mode -> path of the VAE's `.tflite` file, for every mode."""
    return TFLiteExports(vae, exports_dir, "vae", zip(QUANTIZE, QUANTIZE_IDS, strict=True))


@pytest.fixture(scope="session")
def cvae_tflite(cvae, exports_dir):
    """float32 and int8 only: the other modes take the VAE's code path."""
    return TFLiteExports(cvae, exports_dir, "cvae", ((None, "float32"), ("int8", "int8")))


@pytest.fixture(scope="session")
def conv_vae():
    """A convolutional VAE (the `conv` preset, latent_dim 4), built, untrained."""
    keras.utils.set_random_seed(3)
    model = build_vae("conv", (28, 28, 1), latent_dim=LATENT_DIM, seed=0)
    model.build((None, 28, 28, 1))
    return model


class StaticTFLiteExports(dict):
    """Model name -> float32 `.tflite` file with `batch_sizes=STATIC_BATCH_SIZES`, made
    when first asked for (about 10 s each)."""

    def __init__(self, request, folder):
        super().__init__()
        self.request, self.folder = request, folder

    def __missing__(self, name):
        fixture = {"mlp": "vae", "conv": "conv_vae", "cvae": "cvae"}[name]
        self[name] = export_tflite(
            self.request.getfixturevalue(fixture),
            self.folder / f"{name}-static.tflite",
            allow_untrained=True,
            batch_sizes=STATIC_BATCH_SIZES,
        )
        return self[name]


@pytest.fixture(scope="session")
def static_tflite(request, exports_dir):
    """ "mlp", "conv" or "cvae" -> its float32 file with static signatures at 1 and 64."""
    return StaticTFLiteExports(request, exports_dir)


# For the tests of what happens around a write (version folders, staging, roll-back
# on failure), not of what is written: the writers copy the session's exports of
# `vae` instead of tracing, saving and converting it again (about 5 s per export).
# The copies are what the same functions made for the same model.


@pytest.fixture
def reused_vae_saved_model(monkeypatch, vae, vae_saved_model):
    """`write_saved_model` of `vae` copies `vae_saved_model` (which `export_saved_model`
    wrote with it); any other model is written for real."""
    write_saved_model = saved_model_module.write_saved_model

    def copy_saved_model(model, path):
        if model is not vae:
            return write_saved_model(model, path)
        shutil.copytree(vae_saved_model, path)

    for module in (saved_model_module, export_model_module):
        monkeypatch.setattr(module, "write_saved_model", copy_saved_model)


@pytest.fixture
def reused_vae_tflite(monkeypatch, vae, vae_tflite):
    """`convert_tflite` of `vae` with the default arguments returns the bytes of
    `vae_tflite[None]` (which `export_tflite` wrote with it); anything else is
    converted for real."""
    convert_tflite = tflite_module.convert_tflite
    with open(vae_tflite[None], "rb") as f:  # converted now, before a test patches anything
        float32_tflite = f.read()

    def converted_bytes(model, quantize=None, conditions=None, batch_sizes=(), min_runtime=None):
        args = (quantize, conditions, batch_sizes, min_runtime)
        if model is not vae or quantize or conditions is not None or batch_sizes or min_runtime:
            return convert_tflite(model, *args)
        return float32_tflite

    for module in (tflite_module, export_model_module):
        monkeypatch.setattr(module, "convert_tflite", converted_bytes)
