"""Tiny trained models, their exports (made once per session) and references."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from export_helpers import (  # noqa: E402
    LATENT_DIM,
    NUM_CLASSES,
    QUANTIZE,
    QUANTIZE_IDS,
    binary_images,
    one_hot,
)

from keras_vae import ConditionalVAE  # noqa: E402
from keras_vae.data import make_conditional_pairs  # noqa: E402
from keras_vae.export import export_saved_model, export_tflite  # noqa: E402
from keras_vae.layers import IndependentBernoulli  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.networks import mlp_decoder, mlp_encoder  # noqa: E402


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


@pytest.fixture(scope="session")
def vae_tflite(vae, exports_dir):
    """Quantize mode -> path of the VAE's `.tflite` file, for every mode."""
    return {
        mode: export_tflite(vae, exports_dir / f"vae-{name}.tflite", quantize=mode)
        for mode, name in zip(QUANTIZE, QUANTIZE_IDS, strict=True)
    }


@pytest.fixture(scope="session")
def cvae_tflite(cvae, exports_dir):
    """float32 and int8 only: the other modes take the VAE's code path."""
    return {
        mode: export_tflite(cvae, exports_dir / f"cvae-{name}.tflite", quantize=mode)
        for mode, name in ((None, "float32"), ("int8", "int8"))
    }
