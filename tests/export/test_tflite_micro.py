"""The TensorFlow Lite Micro export, run in `tflite_micro` and compared with Keras."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import LATENT_DIM, MatrixInverse, one_hot
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae import VAE
from keras_vae.cli.main import main
from keras_vae.export.tflite import tflite_ops
from keras_vae.export.tflite_micro import (
    TFLM_OPS,
    estimate_arena,
    export_tflite_micro,
    micro_io,
    read_micro_record,
)
from keras_vae.layers import IndependentBernoulli
from keras_vae.models.presets import build_vae

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

NUM_SAMPLES = 4
SEEDS = [0, 7, -(2**31), 2**31 - 1]


def run_micro(path, arena=None, **inputs):
    """Outputs by name of the file's function run in tflite_micro."""
    with open(path, "rb") as f:
        content = f.read()
    arena = arena or read_micro_record(content)["arena_bytes"]
    interpreter = runtime.Interpreter.from_bytes(content, arena_size=arena)
    input_names, output_names = micro_io(content)
    for index, name in enumerate(input_names):
        interpreter.set_input(np.asarray(inputs[name]), index)
    interpreter.invoke()
    return {name: interpreter.get_output(i) for i, name in enumerate(output_names)}


def allocates(path, arena):
    with open(path, "rb") as f:
        content = f.read()
    try:
        runtime.Interpreter.from_bytes(content, arena_size=arena)
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="module")
def vae_micro(vae, tmp_path_factory):
    path = tmp_path_factory.mktemp("micro") / "vae-micro.tflite"
    return export_tflite_micro(vae, path, num_samples=NUM_SAMPLES)


@pytest.fixture(scope="module")
def cvae_micro(cvae, tmp_path_factory):
    path = tmp_path_factory.mktemp("micro") / "cvae-micro.tflite"
    return export_tflite_micro(cvae, path, num_samples=NUM_SAMPLES)


@pytest.mark.parametrize("seed", SEEDS)
def test_vae_sample_matches_keras(vae, vae_micro, seed):
    out = run_micro(vae_micro, seed=np.int32(seed))
    assert out["image"].shape == (NUM_SAMPLES, 28, 28, 1)
    z = vae.sample_latent(NUM_SAMPLES, seed % 2**32).numpy()  # the int32 seed's bits
    np.testing.assert_allclose(out["z"], z, atol=1e-5, rtol=0)
    images = np.asarray(vae.sample(NUM_SAMPLES, seed=seed % 2**32))
    np.testing.assert_allclose(out["image"], images, atol=1e-5, rtol=0)


def test_different_seeds_give_different_images(vae_micro):
    a, b = (run_micro(vae_micro, seed=np.int32(s))["image"] for s in (5, 6))
    assert np.abs(a - b).max() > 1e-3


def test_cvae_sample_matches_keras(cvae, cvae_micro):
    for label, seed in ((3, 0), (9, 11)):
        condition = one_hot([label]).astype(np.float32)
        out = run_micro(cvae_micro, seed=np.int32(seed), condition=condition)
        generated = np.asarray(cvae.generate(condition, NUM_SAMPLES, seed=seed))
        assert out["image"].shape == (NUM_SAMPLES, 28, 28, 1)
        np.testing.assert_allclose(out["image"], generated.reshape(out["image"].shape), atol=1e-5)
        z = cvae.sample_latent(NUM_SAMPLES, seed, condition=condition).numpy()
        np.testing.assert_allclose(out["z"], z.reshape(NUM_SAMPLES, LATENT_DIM), atol=1e-5)


@pytest.mark.slow
def test_cvae_decode_matches_keras(cvae, tmp_path):
    path = export_tflite_micro(cvae, tmp_path / "decode.tflite", function="decode", batch_size=3)
    assert read_micro_record(path)["sampling"] == "host"
    z = np.random.default_rng(0).normal(size=(3, LATENT_DIM)).astype(np.float32)
    condition = one_hot([1, 4, 8]).astype(np.float32)
    out = run_micro(path, z=z, condition=condition)
    expected = cvae.likelihood.portable_mean(cvae.decode(z, condition)).numpy()
    np.testing.assert_allclose(out["image"], expected.reshape(3, 28, 28, 1), atol=1e-5)


def test_ops_are_tflite_micro_ops(vae_micro, cvae_micro):
    for path in (vae_micro, cvae_micro):
        ops = tflite_ops(path)
        assert ops <= TFLM_OPS, ops - TFLM_OPS
        # The default export's RNG ops, which TFLite Micro lacks, are gone.
        assert not {"BITWISE_XOR", "RIGHT_SHIFT", "RANGE", "REDUCE_PROD", "SELECT"} & ops


def test_one_static_subgraph(vae_micro):
    with open(vae_micro, "rb") as f:
        model = flatbuffer_utils.convert_bytearray_to_object(f.read())
    assert len(model.subgraphs) == 1
    for tensor in model.subgraphs[0].tensors:
        assert tensor.shapeSignature is None or -1 not in list(tensor.shapeSignature)


def test_metadata_records_a_measured_arena(vae_micro):
    record = read_micro_record(vae_micro)
    assert record["runtime"] == "tflite-micro"
    assert record["signatures"] == ["sample"] and record["sampling"] == "in-model"
    assert record["num_samples"] == NUM_SAMPLES and record["arena_source"] == "measured"
    assert record["parity_max_abs_diff"] <= 1e-5
    arena = record["arena_bytes"]
    # The recorded arena allocates; one 10% margin below it no longer does.
    assert allocates(vae_micro, arena)
    assert not allocates(vae_micro, int(arena / 1.1) - 1100)
    with open(vae_micro, "rb") as f:
        assert estimate_arena(f.read()) >= arena / 1.1


@pytest.mark.slow  # test_metadata_records_a_measured_arena bounds the estimate
def test_estimated_arena_without_tflite_micro(vae, tmp_path, monkeypatch):
    import keras_vae.export.tflite_micro as micro

    monkeypatch.setattr(micro, "measure_arena", lambda content: (None, "estimated"))
    path = export_tflite_micro(vae, tmp_path / "m.tflite", num_samples=2)
    record = read_micro_record(path)
    assert record["arena_source"] == "estimated" and record["parity_max_abs_diff"] is None
    assert allocates(path, record["arena_bytes"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 0}, "Expected num_samples to be an integer in \\[1, 4096\\]"),
        ({"num_samples": 4097}, "Received: num_samples=4097"),
        ({"num_samples": True}, "Received: num_samples=True"),
        ({"num_samples": 2.0}, "Received: num_samples=2.0"),
        ({"batch_size": -1, "function": "decode"}, "Received: batch_size=-1"),
        ({"function": "encode"}, "Expected function to be one of"),
        ({"arena_limit": 0}, "Expected arena_limit to be an integer in \\[1, 1073741824\\]"),
        ({"quantize": "int8"}, "Expected quantize to be one of \\(None, 'int8-full'\\)"),
        ({"quantize": "int8-full"}, "Expected function='decode' with quantize='int8-full'"),
    ],
)
def test_bad_arguments(vae, tmp_path, kwargs, message):
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=message):
        export_tflite_micro(vae, path, **kwargs)
    assert not path.exists()


def test_a_model_too_large_for_the_arena_limit_is_refused(vae, tmp_path):
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError, match=r"fits in arena_limit=4096 bytes\. Received: .*needing"):
        export_tflite_micro(vae, path, function="decode", batch_size=1, arena_limit=4096)
    assert not path.exists()


def test_cli_refuses_a_micro_file_before_writing_the_other_exports(vae, tmp_path, capsys):
    # The SavedModel and .tflite file were published before the arena check failed.
    model = str(tmp_path / "model.keras")
    vae.save(model)
    out = tmp_path / "out"
    argv = [
        "export", model, "--saved-model", str(out / "sm"), "--tflite", str(out / "m.tflite"),
        "--tflite-micro", str(out / "micro.tflite"), "--micro-function", "decode",
        "--micro-num-samples", "1", "--micro-arena-limit", "4096",
    ]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Expected a model that fits in arena_limit=4096 bytes" in err[0]
    assert not out.exists()


def test_cli_export_and_bad_count(vae, tmp_path, capsys):
    # decode converts in about a second; the sampler's RNG takes ten.
    model = str(tmp_path / "model.keras")
    vae.save(model)
    path = tmp_path / "m.tflite"
    argv = ["export", model, "--tflite-micro", str(path), "--micro-function", "decode"]
    assert main([*argv, "--micro-num-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "TFLite Micro:" in out and "arena" in out
    record = read_micro_record(path)
    assert record["signatures"] == ["decode"] and record["batch_size"] == 2
    z = np.random.default_rng(1).normal(size=(2, LATENT_DIM)).astype(np.float32)
    expected = vae.likelihood.portable_mean(vae.decode(z)).numpy().reshape(2, 28, 28, 1)
    np.testing.assert_allclose(run_micro(path, z=z)["image"], expected, atol=1e-5, rtol=0)
    with pytest.raises(SystemExit) as exit_info:  # refused while parsing
        main([*argv, "--micro-num-samples", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "argument --micro-num-samples: Expected micro_num_samples to be an integer" in err[-1]


def test_mixture_choice_is_the_same_under_micro_ops():
    from keras_vae.ops import random
    from keras_vae.priors.mixture import choose_components

    weights = tf.nn.softmax(tf.constant([0.3, -1.0, 2.0, 0.1, 0.0]))
    uniform = random.uniform([500], 3)
    with random.tflite_micro_ops():
        micro = choose_components(weights, uniform)
    np.testing.assert_array_equal(micro.numpy(), choose_components(weights, uniform).numpy())
    assert set(np.unique(micro.numpy().sum(axis=-1))) == {1.0}


@pytest.mark.slow
@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_mixture_priors_sample_in_tflite_micro(prior, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM, seed=0, prior=prior)
    model(np.zeros((1, 28, 28, 1), np.float32))
    path = export_tflite_micro(model, tmp_path / "m.tflite", num_samples=8, allow_untrained=True)
    assert tflite_ops(path) <= TFLM_OPS
    for seed in (0, 5):
        out = run_micro(path, seed=np.int32(seed))
        images = np.asarray(model.sample(8, seed=seed))
        np.testing.assert_allclose(out["image"], images, atol=1e-5, rtol=0)


def test_int8_full_decode_runs_in_tflite_micro(vae, tmp_path):
    # The full-integer decoder (z drawn on the host), with its arena measured and
    # recorded. TFLite Micro's reference int8 kernels round differently from
    # LiteRT's, so the images are compared with Keras within int8's error.
    from keras_vae.export.integer import tensor_types
    from keras_vae.export.litert_sampler import Sampler, integer_inputs, portable_normal

    path = export_tflite_micro(
        vae, tmp_path / "int8.tflite", function="decode", batch_size=2, quantize="int8-full"
    )
    with open(path, "rb") as f:
        content = f.read()
    assert tflite_ops(content) <= TFLM_OPS
    assert tensor_types(content) <= {"INT8", "INT32"}
    record = read_micro_record(content)
    assert record["runtime"] == "tflite-micro" and record["sampling"] == "host"
    assert record["arena_source"] == "measured" and record["arena_bytes"] < 256 * 1024
    assert record["batch_size"] == 2 and record["signatures"] == ["decode"]
    scales = record["quantization"]
    z = portable_normal((2, LATENT_DIM), 3)
    inputs = integer_inputs({"z": z}, scales)  # z and its residual, as the Sampler feeds them
    assert set(inputs) == {"z", "z_residual"}
    image = run_micro(path, **inputs)["image"]  # in the recorded arena
    assert image.dtype == np.int8
    image = (image.astype(np.float32) - scales["image"]["zero_point"]) * scales["image"]["scale"]
    expected = np.asarray(vae.sample(2, seed=3)).reshape(image.shape)
    assert np.abs(image - expected).max() < 0.1
    assert 0 < record["parity_max_abs_diff"] < 0.1  # the export's own check, seed 0
    # The TF-free sampler draws z and runs the same file in LiteRT.
    images = Sampler(path).sample(3, 2)
    np.testing.assert_allclose(images, np.asarray(vae.sample(2, seed=3)).reshape(images.shape),
                               atol=0.1, rtol=0)  # fmt: skip


def test_cli_int8_full_micro_export(vae, tmp_path, capsys):
    model = str(tmp_path / "model.keras")
    vae.save(model)
    path = tmp_path / "m.tflite"
    argv = ["export", model, "--tflite-micro", str(path), "--micro-quantize", "int8-full"]
    assert main([*argv, "--micro-function", "decode", "--micro-num-samples", "1"]) == 0
    assert "(decode, int8-full, 1 rows, arena" in capsys.readouterr().out
    assert read_micro_record(path)["quantization"]["image"]["dtype"] == "int8"
    path.unlink()
    assert main(argv) != 0  # the default function, sample, cannot be int8
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Expected function='decode' with quantize='int8-full'" in err[0]
    assert main(["export", model, "--tflite", str(path), "--micro-quantize", "int8-full"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Expected --tflite-micro FILE with --micro-quantize" in err[0]
    assert not path.exists()


def test_a_shape_that_stays_dynamic_is_one_line(vae, tmp_path, monkeypatch):
    from keras_vae.ops import random

    monkeypatch.setattr(random, "_static_value", lambda shape: None)
    path = tmp_path / "m.tflite"
    with pytest.raises(ValueError) as error:
        export_tflite_micro(vae, path, num_samples=2)
    assert str(error.value).startswith("Expected a static shape for TFLite Micro")
    assert len(str(error.value).splitlines()) == 1
    assert not path.exists()


def test_decode_file_runs_in_the_tf_free_sampler(vae, tmp_path):
    # The host-side fallback: litert_sampler draws z and runs the fixed batch.
    from keras_vae.export.litert_sampler import Sampler

    path = export_tflite_micro(vae, tmp_path / "d.tflite", function="decode", batch_size=2)
    images, z = Sampler(path).sample(9, 5, return_latent=True)  # 5 rows: a padded chunk
    np.testing.assert_allclose(z, vae.sample_latent(5, 9).numpy(), atol=1e-6, rtol=0)
    expected = np.asarray(vae.sample(5, seed=9)).reshape(images.shape)
    np.testing.assert_allclose(images, expected, atol=1e-5, rtol=0)


def test_sampler_refuses_a_decode_file_whose_prior_it_cannot_draw(tmp_path):
    from keras_vae.export.litert_sampler import Sampler

    keras.utils.set_random_seed(0)
    model = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM, seed=0, prior="mog")
    model(np.zeros((1, 28, 28, 1), np.float32))
    path = tmp_path / "d.tflite"
    export_tflite_micro(model, path, function="decode", batch_size=1, allow_untrained=True)
    with pytest.raises(ValueError, match="standard normal prior.*Received: prior='Mixture"):
        Sampler(path)


def test_cli_refuses_bad_micro_arguments_before_writing_anything(tmp_path, capsys):
    # The model file is never read: the micro arguments are checked first.
    tflite = tmp_path / "m.tflite"
    argv = ["export", str(tmp_path / "missing.keras"), "--tflite", str(tflite)]
    micro = ["--tflite-micro", str(tmp_path / "micro.tflite")]
    with pytest.raises(SystemExit) as exit_info:  # refused while parsing
        main([*argv, *micro, "--micro-arena-limit", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "argument --micro-arena-limit: Expected micro_arena_limit to be an integer" in err[-1]
    assert main([*argv, "--tflite-micro", str(tmp_path / "micro.onnx")]) != 0
    assert "tflite" in capsys.readouterr().err.strip().splitlines()[0]
    assert not tflite.exists() and not (tmp_path / "micro.tflite").exists()


@pytest.mark.parametrize("option", ["--saved-model", "--tflite"])
def test_cli_checks_the_export_paths_before_converting_the_micro_file(option, tmp_path, capsys):
    # A path the export refuses is named before the model loads (it does not exist
    # here) and before the TFLite Micro file converts, which takes about 10 s.
    taken = tmp_path / "notes.txt"
    taken.write_text("not an export")
    micro = tmp_path / "micro.tflite"
    argv = ["export", str(tmp_path / "missing.keras"), option, str(taken),
            "--tflite-micro", str(micro)]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Received: " in err[0] and "notes.txt" in err[0], err
    assert taken.read_text() == "not an export" and not micro.exists()


def test_a_network_of_ops_tflite_lacks_is_named_with_its_function(tmp_path):
    # The converter calls a lone function 'main': the refusal named that.
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    decoder = keras.Sequential([keras.Input((2,)), MatrixInverse(), keras.layers.Dense(3)])
    model = VAE(encoder, decoder, 2, likelihood=IndependentBernoulli(3))
    model.build((None, 3))
    with pytest.raises(ValueError, match=r"refused 'decode': TF Select ops: MatrixInverse$"):
        export_tflite_micro(model, tmp_path / "m.tflite", function="decode", batch_size=1,
                            allow_untrained=True)  # fmt: skip
