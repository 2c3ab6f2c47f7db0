"""The REST bodies in saved_models/README.md match the exported signatures."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.export import export_saved_model
from keras_vae.models.presets import build_cvae, build_vae

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
def served_paths(tmp_path_factory):
    """The README's models, as `make demo` and `train --model cvae --condition label` make
    them (an MNIST VAE with 50 latents, a label CVAE with 8), exported untrained."""
    vae = build_vae("mlp", (28, 28, 1), latent_dim=50)
    vae.build((None, 28, 28, 1))
    cvae = build_cvae(condition="label")
    cvae.compile(optimizer="adam")
    labels = np.eye(10, dtype="float32")[np.arange(4) % 10]
    cvae.fit(labels, np.zeros((4, 28, 28, 1), "float32"), batch_size=4, verbose=0)
    folder = tmp_path_factory.mktemp("readme")
    return {
        "mnist_vae": export_saved_model(vae, folder / "vae", allow_untrained=True),
        "mnist_cvae": export_saved_model(cvae, folder / "cvae"),
    }


@pytest.fixture(scope="module")
def served(served_paths):
    return {name: tf.saved_model.load(path).signatures for name, path in served_paths.items()}


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


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_grpc_request_matches_the_signature_def_and_runs_in_a_session(served_paths):
    (block,) = [b for b in _python_blocks() if "PredictRequest()" in b]
    # Everything up to the call to a server: the request itself.
    scope = {}
    exec(block.split("stub = ")[0], scope)
    request = scope["request"]
    path = served_paths[request.model_spec.name]
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def[request.model_spec.signature_name]
        assert set(request.inputs) == set(signature.inputs)
        feed = {}
        for key, proto in request.inputs.items():
            expected = signature.inputs[key]
            assert proto.dtype == expected.dtype, key
            value = tf.make_ndarray(proto)
            assert tf.TensorShape(expected.tensor_shape).is_compatible_with(value.shape), key
            feed[expected.name] = value
        fetch = {key: output.name for key, output in signature.outputs.items()}
        outputs = session.run(fetch, feed)
    # What the block reads from the response.
    assert outputs["image"].shape == (4, 28, 28, 1) and outputs["image"].dtype == np.float32
    assert outputs["z"].shape == (4, 50)
    served_outputs = tf.saved_model.load(str(path)).signatures["sample"](
        seed=tf.constant(0), num_samples=tf.constant(4)
    )
    np.testing.assert_allclose(outputs["z"], served_outputs["z"].numpy(), atol=1e-6)
