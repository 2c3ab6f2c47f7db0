"""The REST bodies in saved_models/README.md match the exported signatures."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.export import export_saved_model
from keras_vae.models.presets import build_vae

README = Path(__file__).resolve().parents[2] / "saved_models" / "README.md"
REQUEST = re.compile(r"/v1/models/(\w+):predict \\\n\s+-d '(\{.*?\})'")


def requests():
    """(model name, JSON body) of every predict request in the README."""
    return [(name, json.loads(body)) for name, body in REQUEST.findall(README.read_text())]


def test_readme_has_the_requests():
    bodies = requests()
    assert {(name, body["signature_name"]) for name, body in bodies} == {
        ("mnist_vae", "sample"),
        ("mnist_vae", "serving_default"),
        ("mnist_cvae", "sample"),
        ("mnist_cvae", "serving_default"),
    }


@pytest.fixture(scope="module")
def served(cvae_saved_model, tmp_path_factory):
    """Signatures of the README's models: an MNIST VAE with 50 latents, a label CVAE."""
    vae = build_vae("mlp", (28, 28, 1), latent_dim=50)
    vae.build((None, 28, 28, 1))
    path = export_saved_model(vae, tmp_path_factory.mktemp("readme"), allow_untrained=True)
    return {
        "mnist_vae": tf.saved_model.load(path).signatures,
        "mnist_cvae": tf.saved_model.load(cvae_saved_model).signatures,
    }


@pytest.mark.parametrize("index", range(4))
def test_request_matches_signature(served, index):
    name, body = requests()[index]
    assert set(body) == {"signature_name", "inputs"}
    signature = served[name][body["signature_name"]]
    specs = signature.structured_input_signature[1]
    assert set(body["inputs"]) == set(specs)
    inputs = {}
    for key, value in body["inputs"].items():
        spec = specs[key]
        # TF Serving reads JSON numbers as the input's dtype: ints must be
        # integral for int32 inputs.
        array = np.asarray(value, spec.dtype.as_numpy_dtype)
        assert np.array_equal(array, np.asarray(value)), key
        assert spec.shape.is_compatible_with(array.shape), (key, array.shape, spec.shape)
        inputs[key] = tf.constant(array)
    outputs = signature(**inputs)
    expected = {"sample": {"image", "z"}, "serving_default": {"image"}}
    assert set(outputs) == expected[body["signature_name"]]
    assert outputs["image"].shape[1:] == (28, 28, 1)
