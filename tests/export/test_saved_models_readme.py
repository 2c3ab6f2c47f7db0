"""The REST bodies in saved_models/README.md match the exported signatures."""

import json
import os
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
        ("mnist_vae", "sample_rows"),
        ("mnist_cvae", "sample_rows"),
    }


@pytest.fixture(scope="module")
def served_paths(tmp_path_factory):
    """The README's models, as `make demo` and `train --model cvae --condition label` make
    them (an MNIST VAE with 50 latents, a label CVAE with 8), exported untrained."""
    vae = build_vae("mlp", (28, 28, 1), latent_dim=50)
    vae.build((None, 28, 28, 1))
    cvae = build_cvae(condition="label")
    cvae.build((None, 10))  # built from its one-hot conditions
    folder = tmp_path_factory.mktemp("readme")
    return {
        "mnist_vae": export_saved_model(vae, folder / "vae", allow_untrained=True),
        "mnist_cvae": export_saved_model(cvae, folder / "cvae", allow_untrained=True),
    }


@pytest.fixture(scope="module")
def served(served_paths):
    return {name: tf.saved_model.load(path).signatures for name, path in served_paths.items()}


def columns(body):
    """The named inputs of a body, as TF Serving reads them: the row form stacked by name."""
    if "inputs" in body:
        assert set(body) == {"signature_name", "inputs"}
        return body["inputs"]
    assert set(body) == {"signature_name", "instances"}
    rows = body["instances"]
    assert rows and all(set(row) == set(rows[0]) for row in rows)
    return {key: [row[key] for row in rows] for key in rows[0]}


@pytest.mark.parametrize("index", range(6))
def test_request_matches_signature(served, index):
    name, body = requests()[index]
    signature = served[name][body["signature_name"]]
    specs = signature.structured_input_signature[1]
    named = columns(body)
    assert set(named) == set(specs)
    inputs = {}
    for key, value in named.items():
        spec = specs[key]
        # TF Serving reads JSON numbers as the input's dtype: ints must be
        # integral for int32 inputs.
        array = np.asarray(value, spec.dtype.as_numpy_dtype)
        assert np.array_equal(array, np.asarray(value)), key
        assert spec.shape.is_compatible_with(array.shape), (key, array.shape, spec.shape)
        inputs[key] = tf.constant(array)
    outputs = signature(**inputs)
    expected = {
        "sample": {"image", "z"},
        "serving_default": {"image"},
        "sample_rows": {"image", "z"},
    }
    assert set(outputs) == expected[body["signature_name"]]
    assert outputs["image"].shape[1:] == (28, 28, 1)
    if body["signature_name"] == "sample_rows":  # row n: `sample` at seed n, one draw
        assert outputs["image"].shape[0] == len(body["instances"])
        for n, row in enumerate(body["instances"]):
            one = {"seed": tf.constant(row["seed"]), "num_samples": tf.constant(1)}
            if "condition" in row:
                one["condition"] = tf.constant([row["condition"]], tf.float32)
            drawn = served[name]["sample"](**one)
            np.testing.assert_array_equal(outputs["z"][n], drawn["z"][0])
            np.testing.assert_allclose(outputs["image"][n], drawn["image"][0], atol=1e-6)


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


def _session_error(path, signature_name, feeds, server):
    """The first line-joined error of running a signature in a TF1 session.

    `server=False` feeds the signature's placeholders as `saved_model_cli run`
    does (a Python session, which checks shapes first); `server=True` feeds
    them through placeholders of unknown shape, as TF Serving's C++ session
    passes tensors on without that check, so the graph's own checks answer.
    """
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta_graph.signature_def[signature_name]
        fetch = [output.name for output in signature.outputs.values()]
        graph_def = session.graph.as_graph_def()
        if not server:
            feed = {signature.inputs[k].name: v for k, v in feeds.items()}
            with pytest.raises((tf.errors.InvalidArgumentError, ValueError)) as error:
                session.run(fetch, feed)
            return " ".join(str(error.value).split())
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        holders = {
            k: tf.compat.v1.placeholder(tf.as_dtype(v.dtype), shape=None) for k, v in feeds.items()
        }
        outputs = tf.graph_util.import_graph_def(
            graph_def,
            input_map={signature.inputs[k].name: holders[k] for k in feeds},
            return_elements=fetch,
            name="",
        )
        saver = meta_graph.saver_def
        variables = os.path.join(str(path), "variables", "variables")
        session.run(saver.restore_op_name, {saver.filename_tensor_name: variables})
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            session.run(outputs, {holders[k]: v for k, v in feeds.items()})
        return " ".join(str(error.value).split())


LABELS = np.eye(10, dtype="float32")
# Each error text the README quotes, and a request that makes it.
QUOTED_ERRORS = [
    (
        "assertion failed: [Expected num_samples to be an integer in [1, 4096]. Received: "
        "num_samples=] [5000]",
        "mnist_vae", "sample", {"seed": np.int32(0), "num_samples": np.int32(5000)}, True,
    ),
    (
        "assertion failed: [Expected at most 4096 rows in all (condition batch * num_samples). "
        "Received: condition batch=] [2] [num_samples=] [4096]",
        "mnist_cvae", "sample",
        {"seed": np.int32(0), "num_samples": np.int32(4096), "condition": LABELS[:2]}, True,
    ),
    (
        "Shape of tensor … [1,9] is not compatible with expected shape [?,10]",
        "mnist_cvae", "sample",
        {"seed": np.int32(0), "num_samples": np.int32(4), "condition": LABELS[:1, :9]}, True,
    ),
    (
        "Cannot feed value of shape (1, 9) for Tensor sample_condition:0, which has shape "
        "(None, 10)",
        "mnist_cvae", "sample",
        {"seed": np.int32(0), "num_samples": np.int32(4), "condition": LABELS[:1, :9]}, False,
    ),
    (
        "Expected target and condition with the same batch size. Received: target batch=] [3] "
        "[condition batch=] [2]",
        "mnist_cvae", "reconstruct",
        {"target": np.zeros((3, 28, 28, 1), "float32"), "condition": LABELS[:2]}, True,
    ),
    (
        "assertion failed: [Expected z to hold finite values. Received: z with NaN or infinite "
        "values]",
        "mnist_vae", "serving_default", {"z": np.full((1, 50), np.nan, "float32")}, True,
    ),
    (
        "Expected x values in [0, 1] for a Bernoulli likelihood. Received: x values outside [0, 1]",
        "mnist_vae", "reconstruct", {"x": np.full((1, 28, 28, 1), 255.0, "float32")}, True,
    ),
    (
        "Shape of tensor … [1] is not compatible with expected shape []",
        "mnist_vae", "sample",
        {"seed": np.array([0], np.int32), "num_samples": np.array([4], np.int32)}, True,
    ),
]  # fmt: skip


def test_every_quoted_error_is_in_the_readme():
    text = " ".join(README.read_text().split())
    quoted = re.findall(r"`([^`]*(?:assertion failed|Expected|Cannot feed|Shape of)[^`]*)`", text)
    assert sorted(quoted) == sorted({case[0] for case in QUOTED_ERRORS})


@pytest.mark.parametrize("case", QUOTED_ERRORS, ids=lambda case: case[0][:40])
def test_a_quoted_error_is_what_a_session_prints(served_paths, case):
    quoted, name, signature, feeds, server = case
    error = _session_error(served_paths[name], signature, feeds, server)
    start = 0
    for part in quoted.split("…"):  # `…` stands for the server's name of the tensor
        found = error.find(part.strip(), start)
        assert found >= 0, (part, error)
        start = found + len(part.strip())
