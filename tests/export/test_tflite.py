"""TFLite export: builtin ops only, parity with Keras, quantization, bad input."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from export_helpers import (
    BUILTIN_OPS,
    LATENT_DIM,
    NUM_CLASSES,
    QUANTIZE,
    QUANTIZE_IDS,
    MatrixInverse,
    one_hot,
    reference_normal,
)

from keras_vae import VAE
from keras_vae.export import Sampler, export_model, export_tflite, tflite_ops
from keras_vae.layers import IndependentBernoulli
from keras_vae.models.presets import build_vae


def keras_decode(model, z, condition=None):
    if condition is None:
        return model.decode(tf.constant(z)).mean().numpy()
    return model.decode(tf.constant(z), tf.constant(condition)).mean().numpy()


# --- ops --------------------------------------------------------------------------


@pytest.mark.parametrize("quantize", QUANTIZE, ids=QUANTIZE_IDS)
def test_builtin_ops_only(vae_tflite, cvae_tflite, quantize):
    for path in (vae_tflite[quantize], cvae_tflite.get(quantize)):
        if path is None:
            continue
        ops = tflite_ops(path)
        assert ops <= BUILTIN_OPS, sorted(ops - BUILTIN_OPS)
        # The sampler and the decoder both made it into the file.
        assert {"FULLY_CONNECTED", "LOGISTIC", "COS", "LOG", "BITWISE_XOR"} <= ops
        # The interpreter's own view of the primary subgraph agrees.
        interpreter = Interpreter(model_path=path)
        assert {op["op_name"] for op in interpreter._get_ops_details()} <= ops


def test_tflite_ops_reports_flex_ops(tmp_path):
    # An op without a builtin kernel, converted with Flex allowed: the helper
    # the tests rely on must see it.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def cumprod(x):
        return tf.math.cumprod(x)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [cumprod.get_concrete_function()], cumprod
    )
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    content = converter.convert()
    assert tflite_ops(content) == {"CUSTOM:FlexCumprod"}
    path = tmp_path / "flex.tflite"
    path.write_bytes(content)
    assert tflite_ops(str(path)) == tflite_ops(content)


def test_signatures_and_metadata(vae_tflite, cvae_tflite):
    interpreter = Interpreter(model_path=vae_tflite[None])
    assert interpreter.get_signature_list() == {
        "decode": {"inputs": ["z"], "outputs": ["image"]},
        "sample": {"inputs": ["num_samples", "seed"], "outputs": ["image", "z"]},
    }
    interpreter = Interpreter(model_path=cvae_tflite["int8"])
    assert interpreter.get_signature_list() == {
        "decode": {"inputs": ["condition", "z"], "outputs": ["image"]},
        "sample": {"inputs": ["condition", "num_samples", "seed"], "outputs": ["image", "z"]},
    }
    sampler = Sampler(cvae_tflite["int8"])
    assert sampler.latent_dim == LATENT_DIM
    assert sampler.condition_shape == (NUM_CLASSES,)
    assert sampler.condition_type == "label"
    assert sampler.image_shape == (28, 28, 1)
    assert (sampler.quantize, Sampler(vae_tflite[None]).quantize) == ("int8", None)
    runner = interpreter.get_signature_runner("sample")
    inputs = runner.get_input_details()
    assert inputs["seed"]["dtype"] == np.int32 and list(inputs["seed"]["shape"]) == []
    assert inputs["num_samples"]["dtype"] == np.int32


# --- float32 parity -------------------------------------------------------------------


@pytest.fixture(scope="module")
def float_runners(vae_tflite):
    interpreter = Interpreter(model_path=vae_tflite[None])
    return interpreter.get_signature_runner("decode"), interpreter.get_signature_runner("sample")


@pytest.fixture(scope="module")
def served_sample(vae_saved_model):
    return tf.saved_model.load(vae_saved_model).signatures["sample"]


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_float_decode_matches_keras(vae, float_runners, batch):
    decode, _ = float_runners
    z = np.random.default_rng(batch).normal(size=(batch, LATENT_DIM)).astype("float32")
    image = decode(z=z)["image"]
    assert image.shape == (batch, 28, 28, 1)
    np.testing.assert_allclose(image, keras_decode(vae, z), atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_samples", [1, 7, 64])
@pytest.mark.parametrize("seed", [0, 3, -(2**31)])
def test_float_sample_matches_python_and_saved_model(
    vae, served_sample, float_runners, num_samples, seed
):
    _, sample = float_runners
    out = sample(seed=np.int32(seed), num_samples=np.int32(num_samples))
    assert out["image"].shape == (num_samples, 28, 28, 1)
    reference_z = reference_normal((num_samples, LATENT_DIM), seed)
    np.testing.assert_allclose(out["z"], reference_z, atol=1e-5, rtol=0)
    # A negative int32 seed is Keras's seed of the same 32 bits.
    python_seed = seed % 2**32
    np.testing.assert_allclose(out["image"], vae.sample(num_samples, seed=python_seed), atol=1e-5)
    served = served_sample(seed=tf.constant(seed), num_samples=tf.constant(num_samples))
    np.testing.assert_allclose(out["image"], served["image"], atol=1e-5, rtol=0)


def test_different_seeds_give_different_images(float_runners):
    _, sample = float_runners
    a, b = (sample(seed=np.int32(s), num_samples=np.int32(4))["image"] for s in (5, 6))
    assert np.abs(a - b).max() > 1e-3


def test_cvae_float_sample_and_decode(cvae, cvae_tflite):
    sampler = Sampler(cvae_tflite[None])
    condition = one_hot([0, 5, 9])
    images, z = sampler.sample(4, 3, condition, return_latent=True)
    generated = cvae.generate(condition, 3, seed=4)
    np.testing.assert_allclose(images, generated.reshape(9, 28, 28, 1), atol=1e-5, rtol=0)
    latents = cvae.sample_latent(3, 4, condition=condition).numpy().reshape(9, LATENT_DIM)
    np.testing.assert_allclose(z, latents, atol=1e-5, rtol=0)
    repeated = np.repeat(condition, 3, axis=0)
    np.testing.assert_allclose(
        sampler.decode(z, repeated), keras_decode(cvae, z, repeated), atol=1e-5, rtol=0
    )


# --- quantized models -------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantize, max_size_ratio, latent_atol",
    [("float16", 0.6, 2e-2), ("dynamic", 0.4, 1e-5), ("int8", 0.4, 1e-5)],
)
def test_quantized_models_are_smaller_and_close(
    vae, cvae, vae_tflite, cvae_tflite, quantize, max_size_ratio, latent_atol
):
    # Small files show the weights really were quantized.
    ratio = os.path.getsize(vae_tflite[quantize]) / os.path.getsize(vae_tflite[None])
    assert ratio < max_size_ratio
    sampler = Sampler(vae_tflite[quantize])
    z = np.random.default_rng(0).normal(size=(64, LATENT_DIM)).astype("float32")
    decoded = sampler.decode(z)
    assert np.abs(decoded - keras_decode(vae, z)).mean() < 0.05
    images, latents = sampler.sample(8, 16, return_latent=True)
    np.testing.assert_allclose(latents, reference_normal((16, LATENT_DIM), 8), atol=latent_atol)
    assert np.abs(images - vae.sample(16, seed=8)).mean() < 0.05
    # The sampler's images are the decoder's on its own latents.
    np.testing.assert_allclose(images, sampler.decode(latents), atol=1e-6)

    if quantize not in cvae_tflite:
        return
    cvae_sampler = Sampler(cvae_tflite[quantize])
    condition = one_hot([1, 2, 3, 4])
    images, latents = cvae_sampler.sample(2, 4, condition, return_latent=True)
    expected = cvae.sample_latent(4, 2, condition=condition).numpy().reshape(16, LATENT_DIM)
    np.testing.assert_allclose(latents, expected, atol=latent_atol)
    assert np.abs(images - cvae.generate(condition, 4, seed=2).reshape(16, 28, 28, 1)).mean() < 0.05


def test_int8_decoder_computes_in_int8(vae_tflite):
    interpreter = Interpreter(model_path=vae_tflite["int8"])
    types = {detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert np.int8 in types
    float_model = Interpreter(model_path=vae_tflite[None])
    assert np.int8 not in {detail["dtype"] for detail in float_model.get_tensor_details()}


def test_float16_file_stores_float16_weights(vae_tflite):
    # Not int8 weights: without float16 as a supported type, Optimize.DEFAULT alone
    # would quantize the weights to int8 (the dynamic mode) under the float16 name.
    types = {d["dtype"] for d in Interpreter(vae_tflite["float16"]).get_tensor_details()}
    assert np.float16 in types and np.int8 not in types


# --- bad input and atomic writes ---------------------------------------------------------


@pytest.mark.parametrize("quantize", ["int4", "INT8", "fp16", 8])
def test_unknown_quantize(vae, tmp_path, quantize):
    message = (
        r"^Expected quantize to be one of \(None, 'float16', 'dynamic', 'int8', 'int8-full'\)\. "
        r"Received: quantize="
    )
    with pytest.raises(ValueError, match=message):
        export_tflite(vae, tmp_path / "m.tflite", quantize=quantize)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["model.lite", "model"])
def test_path_must_be_a_tflite_file(vae, tmp_path, name):
    with pytest.raises(ValueError, match=r"^Expected path to a \.tflite file"):
        export_tflite(vae, tmp_path / name)


def test_unbuilt_and_untrained_models(tmp_path):
    model = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM)
    with pytest.raises(ValueError, match=r"^Expected a built model"):
        export_tflite(model, tmp_path / "m.tflite")
    model.build((None, 28, 28, 1))
    with pytest.raises(ValueError, match=r"^Expected a trained model"):
        export_tflite(model, tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []


def test_int8_cvae_needs_conditions_unless_labels(cvae, tmp_path, monkeypatch):
    monkeypatch.setattr(cvae, "condition_type", "top-half")
    with pytest.raises(
        ValueError, match=r"^Expected representative_conditions, an array \[M, 10\]"
    ):
        export_tflite(cvae, tmp_path / "m.tflite", quantize="int8")
    with pytest.raises(ValueError, match=r"^Expected representative_conditions shaped \[M, 10\]"):
        export_tflite(
            cvae, tmp_path / "m.tflite", quantize="int8", representative_conditions=np.ones((4, 3))
        )
    with pytest.raises(ValueError, match=r"^Expected representative_conditions to be an array"):
        export_tflite(
            cvae, tmp_path / "m.tflite", quantize="int8", representative_conditions=[[1], [1, 2]]
        )
    with pytest.raises(
        ValueError, match=r"^Expected quantize='int8' or 'int8-full' with representative_"
    ):
        export_tflite(cvae, tmp_path / "m.tflite", representative_conditions=np.ones((4, 10)))
    assert os.listdir(tmp_path) == []


def test_failed_conversion_keeps_the_old_file(vae, vae_tflite, tmp_path, monkeypatch):
    path = tmp_path / "model.tflite"
    previous = open(vae_tflite[None], "rb").read()  # an earlier export, which is replaced
    path.write_bytes(previous)

    def fail(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", fail)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_tflite(vae, path)
    assert path.read_bytes() == previous
    assert os.listdir(tmp_path) == ["model.tflite"]


@pytest.mark.usefixtures("reused_vae_tflite")
def test_failed_write_leaves_no_partial_file(vae, vae_tflite, tmp_path, monkeypatch):
    path = tmp_path / "model.tflite"
    previous = open(vae_tflite[None], "rb").read()
    path.write_bytes(previous)

    def fail(*args, **kwargs):
        raise OSError("rename failed")

    # The converted file is written beside its destination, then renamed over it.
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        export_tflite(vae, path)
    assert path.read_bytes() == previous
    assert os.listdir(tmp_path) == ["model.tflite"]
    # Nor the folders made for a new file.
    with pytest.raises(OSError, match="rename failed"):
        export_tflite(vae, tmp_path / "new" / "deeper" / "m.tflite")
    assert os.listdir(tmp_path) == ["model.tflite"]


def test_a_file_keras_vae_did_not_write_is_never_replaced(vae, tmp_path):
    # It was replaced silently; an earlier export is (the tests above).
    path = tmp_path / "model.tflite"
    path.write_bytes(b"the user's own model")
    with pytest.raises(ValueError) as error:
        export_tflite(vae, path)
    assert str(error.value) == (
        "Expected path to a new .tflite file or to one keras-vae exported, which is replaced. "
        f"Received: path={str(path)!r}, a file keras-vae did not write"
    )
    assert path.read_bytes() == b"the user's own model" and os.listdir(tmp_path) == [path.name]


def test_path_that_is_a_folder(vae, tmp_path):
    (tmp_path / "d.tflite").mkdir()
    with pytest.raises(ValueError, match=r"^Expected path to a \.tflite file"):
        export_tflite(vae, tmp_path / "d.tflite")


def test_a_network_of_ops_tflite_lacks_is_refused_in_one_line(tmp_path):
    # The converter's report ran to 57 lines (the whole MLIR function) or more.
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    decoder = keras.Sequential([keras.Input((2,)), MatrixInverse(), keras.layers.Dense(3)])
    model = VAE(encoder, decoder, 2, likelihood=IndependentBernoulli(3))
    model.build((None, 3))
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError) as error:
        export_tflite(model, path, allow_untrained=True)
    assert str(error.value) == (
        "Expected networks of ops that TFLite's builtins hold (a SavedModel export takes any "
        "TensorFlow op). Received: the converter refused 'decode': TF Select ops: MatrixInverse"
    )
    assert not path.exists()


class RealFFT(keras.layers.Layer):
    """Converts to TFLite builtins that then fail to run (RESHAPE fails to prepare)."""

    def call(self, h):
        return tf.concat([h, tf.math.real(tf.signal.fft(tf.cast(h, tf.complex64)))], -1)


def test_a_converted_file_that_does_not_run_is_named_as_meant(tmp_path):
    # The refusal named the hidden staging file (".m.tflite.tmp-..."), not the export's.
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    decoder = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(8), RealFFT(), keras.layers.Dense(3)]
    )
    model = VAE(encoder, decoder, 2, likelihood=IndependentBernoulli(3))
    model.build((None, 3))
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError) as error:
        export_model(model, tflite_path=path, allow_untrained=True)
    assert f"model={str(path)!r}" in str(error.value) and ".tmp" not in str(error.value)
    assert len(str(error.value).splitlines()) == 1 and os.listdir(tmp_path) == []
