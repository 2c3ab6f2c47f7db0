"""Full-integer TFLite files (`quantize="int8-full"`) and int8 calibration at the extremes.

Tolerances: an int8 file's image differs from float32 Keras by its
quantization error. The image output has a step of 1/256 (about 0.004);
each int8 layer before it rounds its activations to 1/255 of their
calibrated range, and those errors add up through the decoder. For these
small, barely trained decoders that stays within 0.02 of Keras (0.004 is
typical), and so does an MLP trained for 3 epochs on 2,000 MNIST images
over 8,192 draws (0.012; 0.044 before z came in two inputs and the weights
were rounded by GPTQ); the figures of the MNIST run (0.037 over 86,016
images) are in benchmarks/RESULTS.md. z itself is exact up to float32
rounding (1e-6): the host draws it with the integer words of the portable
RNG.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from export_helpers import LATENT_DIM, NUM_CLASSES, binary_images, one_hot
from rng_reference import ref_word

from keras_vae import VAE, ConditionalVAE
from keras_vae.data import make_conditional_pairs
from keras_vae.export import (
    Sampler,
    export_model,
    export_tflite,
    integer,
    litert_sampler,
    tflite_ops,
)
from keras_vae.export import tflite as tflite_module
from keras_vae.export.integer import NORMAL_BOUND, Z_STEP, extreme_latents, gptq_rounding
from keras_vae.layers import IndependentBernoulli
from keras_vae.models.presets import build_vae
from keras_vae.networks import mlp_decoder, mlp_encoder
from keras_vae.ops import random as portable_random

BATCH = 4
# The quantization error of a small int8 decoder (see the module docstring).
INT8_TOLERANCE = 0.02
# Ops of the int8 builtin set a decoder converts to; no QUANTIZE or DEQUANTIZE.
INT8_DECODER_OPS = {
    "FULLY_CONNECTED",
    "ADD",
    "CONV_2D",
    "TRANSPOSE_CONV",
    "CONCATENATION",
    "RESHAPE",
    "LOGISTIC",
    "MINIMUM",
    "MAXIMUM",
}


@pytest.fixture(scope="module")
def vae_full(vae, tmp_path_factory):
    path = tmp_path_factory.mktemp("int8_full") / "vae.tflite"
    return export_tflite(vae, path, quantize="int8-full", batch_sizes=(BATCH,))


def moved_as_by_one_step(model, seed=0):
    """Moves `model`'s trainable weights by a random 1e-3 each, as one Adam step does.

    The models that these tests need untrained take this instead of a fit step
    (tracing a training step took longer than most tests here): the quantization
    error is the same, and no bias is left at zero. That the session's fitted `vae`
    and `cvae` export is what the other tests use.
    """
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        weight.assign(weight + 1e-3 * rng.choice([-1.0, 1.0], size=weight.shape))
    return model


def untrained_int8_full_file(vae, path, batch_size):
    """Builds an MNIST `vae`, moves its weights (`moved_as_by_one_step`) and exports it
    int8-full for batches of `batch_size`; returns the file's path."""
    vae.build((None, 28, 28, 1))
    moved_as_by_one_step(vae)
    return export_tflite(
        vae, path, quantize="int8-full", batch_sizes=(batch_size,), allow_untrained=True
    )


@pytest.fixture(scope="module")
def label_cvae():
    """A label CVAE with the standard normal prior (the default), its weights moved by
    `moved_as_by_one_step`."""
    keras.utils.set_random_seed(3)
    model = ConditionalVAE(
        mlp_encoder((28, 28, 1), hidden_units=(32,)),
        mlp_decoder(LATENT_DIM + NUM_CLASSES, (28, 28, 1), hidden_units=(32,)),
        latent_dim=LATENT_DIM,
        likelihood=IndependentBernoulli((28, 28, 1)),
        condition_type="label",
        seed=0,
    )
    model.build((None, NUM_CLASSES))  # built from its one-hot conditions
    return moved_as_by_one_step(model)


@pytest.fixture(scope="module")
def cvae_full(label_cvae, tmp_path_factory):
    path = tmp_path_factory.mktemp("int8_full") / "cvae.tflite"
    return export_tflite(label_cvae, path, quantize="int8-full", allow_untrained=True)


def _metadata(path):
    with open(path, "rb") as f:
        return litert_sampler._read_metadata(f.read())


def _tensor_types(path):
    interpreter = Interpreter(model_path=os.fspath(path))
    return {np.dtype(detail["dtype"]) for detail in interpreter.get_tensor_details()}


# --- the file: ops, types, shapes, metadata -----------------------------------------


@pytest.mark.parametrize("which", ["vae", "cvae"])
def test_integer_ops_and_tensors_only(vae_full, cvae_full, which):
    path = vae_full if which == "vae" else cvae_full
    ops = tflite_ops(path)
    assert ops <= INT8_DECODER_OPS, sorted(ops - INT8_DECODER_OPS)
    assert "FULLY_CONNECTED" in ops
    assert _tensor_types(path) <= {np.dtype(np.int8), np.dtype(np.int32)}
    # The RNG is not in the file: the host draws z.
    assert not {"COS", "LOG", "BITWISE_XOR", "QUANTIZE", "DEQUANTIZE"} & ops


def test_one_decode_signature_with_static_int8_inputs_and_output(vae_full, cvae_full):
    split = {"z", "z_residual"}
    for path, batch, inputs in ((vae_full, BATCH, split), (cvae_full, 1, split | {"condition"})):
        runner = Interpreter(model_path=os.fspath(path)).get_signature_runner("decode")
        details = {**runner.get_input_details(), **runner.get_output_details()}
        assert set(details) == inputs | {"image"}
        for detail in details.values():
            assert detail["dtype"] == np.int8
            assert list(detail["shape_signature"]) == list(detail["shape"])
            assert detail["shape"][0] == batch
        assert list(Interpreter(model_path=os.fspath(path)).get_signature_list()) == ["decode"]


def test_metadata_records_the_interpreters_quantization(vae_full, cvae_full):
    for path in (vae_full, cvae_full):
        record = _metadata(path)
        assert record["quantize"] == "int8-full"
        assert record["sampling"] == "host"
        runner = Interpreter(model_path=os.fspath(path)).get_signature_runner("decode")
        details = {**runner.get_input_details(), **runner.get_output_details()}
        assert set(record["quantization"]) == set(details)
        for name, detail in details.items():
            scale, zero_point = detail["quantization"]
            recorded = record["quantization"][name]
            assert recorded["dtype"] == np.dtype(detail["dtype"]).name
            assert recorded["scale"] == pytest.approx(scale, rel=1e-7)
            assert recorded["zero_point"] == zero_point
        # The z input covers what the sampler draws.
        z = record["quantization"]["z"]
        assert (-128 - z["zero_point"]) * z["scale"] <= -NORMAL_BOUND + z["scale"]
        assert (127 - z["zero_point"]) * z["scale"] >= NORMAL_BOUND - z["scale"]


# --- images against Keras ------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7, -3])
def test_sampler_matches_keras(vae, vae_full, seed):
    sampler = Sampler(vae_full)
    # 10 rows: two full batches of 4 and one padded.
    images, z = sampler.sample(seed, 10, return_latent=True)
    # A negative int32 seed is Keras's seed of the same 32 bits.
    np.testing.assert_allclose(z, vae.sample_latent(10, seed % 2**32).numpy(), atol=1e-6)
    expected = np.asarray(vae.sample(10, seed=seed % 2**32))
    assert images.shape == expected.shape
    assert np.abs(images - expected).max() <= INT8_TOLERANCE


def test_cvae_sampler_matches_keras(label_cvae, cvae_full):
    sampler = Sampler(cvae_full)
    condition = one_hot([3, 8])
    images, z = sampler.sample(5, 3, condition, return_latent=True)
    expected_z = label_cvae.sample_latent(3, 5, condition=condition).numpy().reshape(-1, LATENT_DIM)
    np.testing.assert_allclose(z, expected_z, atol=1e-6)
    expected = np.asarray(label_cvae.sample(3, condition, seed=5)).reshape(images.shape)
    assert np.abs(images - expected).max() <= INT8_TOLERANCE


def test_completion_cvae_completes_images(completion_cvae, tmp_path):
    images = binary_images(6, seed=4)
    observed, _ = make_conditional_pairs(images, None, "top-half")
    path = export_tflite(
        completion_cvae,
        tmp_path / "completion.tflite",
        quantize="int8-full",
        representative_conditions=observed,
    )
    sampler = Sampler(path)
    assert _tensor_types(path) <= {np.dtype(np.int8), np.dtype(np.int32)}
    generated = sampler.sample(2, 3, observed[:2])
    expected = np.asarray(completion_cvae.sample(3, observed[:2], seed=2)).reshape(generated.shape)
    assert np.abs(generated - expected).max() <= INT8_TOLERANCE
    completed = sampler.complete(images[:2], seed=2, num_samples=3)
    assert completed.shape == (6, 28, 28, 1)


@pytest.fixture(scope="module")
def mnist_vae(mnist_test_images):
    """The MNIST MLP preset (latent 50), trained for 3 epochs on 2,000 test images."""
    images, _ = mnist_test_images
    binary = (np.random.default_rng(0).random(images.shape) < images).astype("float32")
    keras.utils.set_random_seed(0)
    model = build_vae("mlp", (28, 28, 1), latent_dim=50, seed=0)
    model.compile(optimizer="adam")
    model.fit(binary, batch_size=64, epochs=3, verbose=0)
    return model


def test_trained_mnist_decoder_stays_near_keras(mnist_vae, tmp_path):
    # Over 8,192 draws; 0.044 when z was one int8 input and weights rounded to nearest.
    path = export_tflite(mnist_vae, tmp_path / "m.tflite", quantize="int8-full", batch_sizes=(64,))
    sampler = Sampler(path)
    assert {"z", "z_residual"} <= set(_metadata(path)["quantization"])
    for seed in (0, 1):
        expected = np.asarray(mnist_vae.sample(4096, seed=seed))
        assert np.abs(sampler.sample(seed, 4096) - expected).max() <= INT8_TOLERANCE


def test_decoder_without_a_leading_relu_dense_takes_z_alone(tmp_path):
    # A tanh first layer cannot be split exactly: the file keeps one int8 z.
    keras.utils.set_random_seed(2)
    model = VAE(
        mlp_encoder((28, 28, 1), hidden_units=(32,)),
        mlp_decoder(LATENT_DIM, (28, 28, 1), hidden_units=(32,), activation="tanh"),
        latent_dim=LATENT_DIM,
        seed=0,
    )
    path = untrained_int8_full_file(model, tmp_path / "m.tflite", BATCH)
    assert set(_metadata(path)["quantization"]) == {"z", "image"}
    images = Sampler(path).sample(1, 10)
    assert np.abs(images - np.asarray(model.sample(10, seed=1))).max() <= INT8_TOLERANCE


class SubclassedDecoder(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="tanh")
        self.out = keras.layers.Dense(28 * 28)
        self.image = keras.layers.Reshape((28, 28, 1))

    def call(self, z):
        return self.image(self.out(self.hidden(z)))


def test_sequential_and_subclassed_decoders_export_int8_full(tmp_path):
    # GPTQ read the Dense layers' inputs from the decoder's functional graph, which a
    # Sequential decoder built by a call does not keep: the export failed with an
    # AttributeError. It reads them layer by layer now; a subclassed decoder keeps
    # the converter's rounding to nearest.
    layers = [
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(32, activation="tanh"),
        keras.layers.Dense(28 * 28),
        keras.layers.Reshape((28, 28, 1)),
    ]
    z = np.random.default_rng(0).standard_normal((16, LATENT_DIM)).astype("float32")
    inputs = keras.Input((LATENT_DIM,))
    outputs = inputs
    for layer in layers:
        outputs = layer(outputs)
    dense = layers[1:3]
    # Read before the Sequential calls the layers again (a layer of two graphs has no
    # single input).
    expected = integer._dense_inputs(keras.Model(inputs, outputs), dense, z)
    sequential = keras.Sequential(layers)
    sequential(z)
    for got, want in zip(integer._dense_inputs(sequential, dense, z), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    for name, decoder in (("sequential", sequential), ("subclassed", SubclassedDecoder())):
        keras.utils.set_random_seed(2)
        model = VAE(mlp_encoder((28, 28, 1), hidden_units=(32,)), decoder, LATENT_DIM, seed=0)
        path = untrained_int8_full_file(model, tmp_path / f"{name}.tflite", BATCH)
        images = Sampler(path).sample(1, 10)
        assert np.abs(images - np.asarray(model.sample(10, seed=1))).max() <= INT8_TOLERANCE


def test_integer_inputs_carry_z_to_the_residual_step():
    quantization = {
        "z": {"dtype": "int8", "scale": Z_STEP, "zero_point": -1},
        "z_residual": {"dtype": "int8", "scale": Z_STEP / 255, "zero_point": 0},
    }
    z = litert_sampler.portable_normal((512, 8), 5)
    inputs = litert_sampler.integer_inputs({"z": z}, quantization)
    assert {name: value.dtype for name, value in inputs.items()} == {
        "z": np.int8,
        "z_residual": np.int8,
    }
    coarse = litert_sampler.dequantized(inputs["z"], quantization["z"])
    fine = litert_sampler.dequantized(inputs["z_residual"], quantization["z_residual"])
    assert np.abs(coarse - z).max() > Z_STEP / 4  # one int8 input alone
    assert np.abs(coarse + fine - z).max() <= Z_STEP / 255 / 2 + 1e-6
    # A file with one z input gets one.
    assert set(litert_sampler.integer_inputs({"z": z}, {"z": quantization["z"]})) == {"z"}


def test_gptq_rounding_beats_round_to_nearest_on_correlated_inputs():
    rng = np.random.default_rng(0)
    # Correlated, non-negative inputs, like a relu layer's.
    inputs = np.maximum(rng.standard_normal((2048, 6)) @ rng.standard_normal((6, 32)), 0.0)
    kernel = rng.standard_normal((32, 16)) * 0.1
    scale = np.abs(kernel).max(axis=0) / 127
    rounded = gptq_rounding(kernel, scale, inputs)
    assert rounded.dtype == np.int8 and np.abs(rounded.astype(int)).max() <= 127
    nearest = np.round(kernel / scale)
    error = np.linalg.norm(inputs @ (rounded * scale - kernel))
    assert error < 0.5 * np.linalg.norm(inputs @ (nearest * scale - kernel))
    # Uncorrelated, equal inputs: nothing to compensate with, round-to-nearest.
    np.testing.assert_array_equal(gptq_rounding(kernel, scale, np.eye(32) * 3.0), nearest)


def test_decode_rows_do_not_depend_on_the_chunking(vae_full):
    sampler = Sampler(vae_full)
    z = litert_sampler.portable_normal((7, LATENT_DIM), 11)
    whole = sampler.decode(z)
    parts = np.concatenate([sampler.decode(z[:3]), sampler.decode(z[3:], batch_size=2)])
    np.testing.assert_array_equal(whole, parts)


def test_export_model_verifies_int8_full(vae, tmp_path):
    report = export_model(
        vae, tflite_path=tmp_path / "m.tflite", quantize="int8-full", batch_sizes=(BATCH,)
    )
    assert report["ok"] and report["written"], report
    assert report["tflite"]["quantize"] == "int8-full"
    assert report["tflite"]["decode_mean_abs_diff"] <= INT8_TOLERANCE


# --- calibration at the sampler's extremes (int8 and int8-full) -----------------------


def _keras_images(model, z):
    return np.asarray(model.likelihood.portable_mean(model.decode(tf.constant(z))))


@pytest.mark.parametrize("mode", ["int8", "int8-full"])
def test_extreme_latents_are_not_clipped(vae, vae_tflite, vae_full, mode):
    z, _ = extreme_latents(vae)
    assert np.abs(z).max() == pytest.approx(NORMAL_BOUND)
    sampler = Sampler(vae_tflite["int8"] if mode == "int8" else vae_full)
    difference = np.abs(sampler.decode(z) - _keras_images(vae, z)).max()
    assert difference <= INT8_TOLERANCE


def test_int8_sample_signature_covers_draws_beyond_the_calibration_seeds(vae, vae_tflite):
    # 4096 draws of 4 latents reach |z| ~ 4.3, beyond the 512 calibration draws.
    images, z = Sampler(vae_tflite["int8"]).sample(100, 4096, return_latent=True)
    assert np.abs(z).max() > 4.0
    expected = np.asarray(vae.sample(4096, seed=100))
    assert np.abs(images - expected).max() <= INT8_TOLERANCE


def test_without_the_extremes_int8_clips_them(vae, tmp_path, monkeypatch):
    """The check above fails on a file calibrated on the seeds' draws alone."""
    monkeypatch.setattr(tflite_module, "_extreme_calibration_data", lambda *args: [])
    monkeypatch.setattr(tflite_module, "_with_decode_latent_range", lambda content: content)
    path = export_tflite(vae, tmp_path / "m.tflite", quantize="int8")
    z, _ = extreme_latents(vae)
    difference = np.abs(Sampler(path).decode(z) - _keras_images(vae, z)).max()
    assert difference > INT8_TOLERANCE


# --- the host's RNG -----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, -1, 2**31 - 1, -(2**31), 123456789])
def test_host_rng_words_are_the_portable_ones(seed):
    counter = np.arange(0, 5000, 7)
    for stream in (1, 2):
        words = litert_sampler._stream_word(seed, counter.astype(np.uint32), stream)
        np.testing.assert_array_equal(words.astype(np.uint64), ref_word(seed, counter, stream))


@pytest.mark.parametrize("seed", [0, 42, -7, 2**31 - 1])
def test_host_normal_matches_tensorflow(seed):
    shape = (257, 3)
    expected = portable_random.normal(shape, seed).numpy()
    np.testing.assert_allclose(litert_sampler.portable_normal(shape, seed), expected, atol=2e-6)


def test_host_normal_reaches_the_bound_at_the_smallest_uniform():
    # u1 = 2**-24 and u2 = 2**-24 give the largest draw, sqrt(48 ln 2) cos(~0).
    u1 = np.float32(2.0**-24)
    assert np.sqrt(-2.0 * np.log(u1)) == pytest.approx(NORMAL_BOUND, rel=1e-6)


# --- refusals -------------------------------------------------------------------------


def test_refuses_priors_the_host_cannot_draw_from(cvae, tmp_path):
    with pytest.raises(ValueError, match=r"^Expected a model with the StandardNormal prior .*"):
        export_tflite(cvae, tmp_path / "m.tflite", quantize="int8-full")
    with pytest.raises(ValueError, match=r"Received: prior=ConditionalGaussian$"):
        export_model(cvae, tflite_path=tmp_path / "m.tflite", quantize="int8-full")
    assert os.listdir(tmp_path) == []


def test_refuses_several_batch_sizes(vae, tmp_path):
    with pytest.raises(ValueError, match=r"^Expected at most one batch size for quantize="):
        export_tflite(vae, tmp_path / "m.tflite", quantize="int8-full", batch_sizes=(1, 64))
    assert os.listdir(tmp_path) == []


def test_the_sampler_refuses_a_changed_quantization(vae_full, tmp_path):
    """The recorded scales are covered by the file's checksum."""
    with open(vae_full, "rb") as f:
        content = f.read()
    scale = json.dumps(_metadata(vae_full)["quantization"]["z"]["scale"])
    old = f'"scale": {scale}'.encode()
    new = f'"scale": {scale[:-1]}{"2" if scale[-1] == "1" else "1"}'.encode()
    assert content.count(old) == 1
    path = tmp_path / "changed.tflite"
    path.write_bytes(content.replace(old, new))
    with pytest.raises(ValueError, match=r"^Expected a TFLite model that matches the checksum"):
        Sampler(path)


# --- the command line -----------------------------------------------------------------


def test_cli_exports_int8_full_and_refuses_a_learned_prior(vae, cvae, tmp_path, capsys):
    from keras_vae.cli.main import main

    vae.save(tmp_path / "vae.keras")
    path = tmp_path / "vae.tflite"
    argv = ["export", str(tmp_path / "vae.keras"), "--tflite", str(path)]
    assert main([*argv, "--quantize", "int8-full", "--batch-sizes", "2"]) == 0
    record = _metadata(path)
    assert (record["quantize"], record["batch_sizes"], record["sampling"]) == (
        "int8-full",
        [2],
        "host",
    )
    cvae.save(tmp_path / "cvae.keras")
    capsys.readouterr()
    argv = ["export", str(tmp_path / "cvae.keras"), "--tflite", str(tmp_path / "c.tflite")]
    assert main([*argv, "--quantize", "int8-full"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Expected a model with the StandardNormal prior" in err[0], err
    assert not (tmp_path / "c.tflite").exists()


# --- a convolutional decoder ----------------------------------------------------------


def test_conv_vae(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_vae("conv", (28, 28, 1), latent_dim=LATENT_DIM, seed=0)
    path = untrained_int8_full_file(model, tmp_path / "conv.tflite", 64)
    ops = tflite_ops(path)
    assert {"TRANSPOSE_CONV", "CONV_2D"} <= ops <= INT8_DECODER_OPS
    assert {"z", "z_residual"} <= set(_metadata(path)["quantization"])  # a Dense comes first
    assert _tensor_types(path) <= {np.dtype(np.int8), np.dtype(np.int32)}
    images = Sampler(path).sample(0, 100)
    assert np.abs(images - np.asarray(model.sample(100, seed=0))).max() <= INT8_TOLERANCE
