"""`model.export(path, format=...)`, Keras's own way to export, writes the verified artifacts."""

import os

import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from export_helpers import LATENT_DIM, one_hot

from keras_vae.export import Sampler
from keras_vae.export.integer import tensor_types


def _condition(model):
    return one_hot([3, 7]) if model.conditional else None


@pytest.mark.parametrize("fixture", ["vae", "cvae"])
def test_a_saved_model_at_the_path_samples_and_decodes_as_keras(fixture, request, tmp_path, capsys):
    model = request.getfixturevalue(fixture)
    path = tmp_path / "model"
    assert model.export(path) is None
    assert capsys.readouterr().out.strip().endswith("all exports match the Keras model")
    signatures = tf.saved_model.load(str(path)).signatures
    condition = _condition(model)
    given = {} if condition is None else {"condition": tf.constant(condition)}
    sampled = signatures["sample"](seed=tf.constant(5), num_samples=tf.constant(3), **given)
    expected = np.reshape(model.sample(3, condition=condition, seed=5), (-1, 28, 28, 1))
    np.testing.assert_allclose(sampled["image"], expected, atol=1e-5)
    z = np.random.default_rng(0).normal(size=(2, LATENT_DIM)).astype("float32")
    decoded = signatures["serving_default"](z=tf.constant(z), **given)
    np.testing.assert_allclose(decoded["image"], model.decode(z, condition).mean(), atol=1e-5)


def test_an_earlier_saved_model_is_replaced_whole(vae, cvae, tmp_path):
    path = tmp_path / "model"
    vae.export(path, verbose=False)
    cvae.export(str(path), verbose=False)
    sample = tf.saved_model.load(str(path)).signatures["sample"]
    assert "condition" in sample.structured_input_signature[1]
    assert os.listdir(tmp_path) == ["model"]  # nothing hidden left beside it


@pytest.mark.parametrize(
    "contents, held",
    [
        ({"1/saved_model.pb": b""}, "holds '1' and no saved_model.pb"),  # TF Serving's base
        ({"notes.txt": b"kept"}, "holds 'notes.txt' and no saved_model.pb"),
        (  # TF Serving's warm-up requests beside an earlier SavedModel
            {"saved_model.pb": b"", "variables/v": b"", "assets.extra/tf_serving_warmup": b""},
            "holds 'assets.extra' beside a SavedModel",
        ),
    ],
)
def test_a_folder_that_is_not_a_saved_model_is_refused_and_kept(vae, tmp_path, contents, held):
    for name, content in contents.items():
        (tmp_path / "model" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "model" / name).write_bytes(content)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=r"^Expected saved_model_dir to be a new or empty") as e:
        vae.export(tmp_path / "model")
    assert held in str(e.value) and "\n" not in str(e.value)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_a_litert_file_samples_as_keras_with_its_options(vae, tmp_path, capsys):
    path = tmp_path / "model.tflite"
    vae.export(path, format="litert", verbose=False, quantize="float16", num_samples=2)
    assert capsys.readouterr().out == ""
    assert "FLOAT16" in tensor_types(path.read_bytes())
    images = Sampler(path).sample(9, 4)
    np.testing.assert_allclose(images, vae.sample(4, seed=9), atol=1e-2)


def test_an_onnx_folder_samples_as_keras(vae, tmp_path):
    vae.export(tmp_path / "onnx", format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "sample.onnx"))
    (image,) = session.run(
        ["image"], {"seed": np.array(4, np.int32), "num_samples": np.array(3, np.int32)}
    )
    np.testing.assert_allclose(image, vae.sample(3, seed=4), atol=1e-5)


@pytest.mark.parametrize(
    "path, arguments, message",
    [
        ("m", {"format": "openvino"}, "Expected format to be one of ('tf_saved_model', "),
        ("m.pt2", {"format": "torch"}, "Received: format='torch'"),
        ("m", {"input_signature": [tf.TensorSpec((None, 4))]}, "Expected input_signature=None"),
        ("m.tflite", {"format": "litert", "optimizations": ["DEFAULT"]},
         "Expected options among ('allow_untrained', 'seed', 'num_samples', 'quantize', "),
        ("m", {"quantize": "int8"}, "with format='tf_saved_model'. Received: quantize='int8'"),
        ("m", {"format": "onnx", "num_samples": 0}, "Received: num_samples=0"),
        ("m", {"format": "litert"}, "Expected path to a .tflite file. Received: path="),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_and_write_nothing(vae, tmp_path, path, arguments, message):
    with pytest.raises(ValueError) as e:
        vae.export(tmp_path / path, **arguments)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []
