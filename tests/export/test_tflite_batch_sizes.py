"""Static-shape TFLite signatures (`batch_sizes`): shapes, parity, metadata, bad values."""

import warnings

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from export_helpers import LATENT_DIM, STATIC_BATCH_SIZES, one_hot
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae.cli.main import main
from keras_vae.export import Sampler, export_tflite, format_report, verify_export
from keras_vae.export.litert_sampler import _read_metadata
from keras_vae.export.tflite import _BUILTIN_NAMES, SLOW_DYNAMIC_CONV, convert_tflite

# A run-time output shape: the batch read from the input (SHAPE), cut out
# (STRIDED_SLICE) and packed with the constant dimensions (PACK).
RUNTIME_SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}


def signature_ops(path):
    """Signature key -> the op names of its subgraph, in order."""
    model = flatbuffer_utils.read_model(path)
    ops = {}
    for signature in model.signatureDefs:
        subgraph = model.subgraphs[signature.subgraphIndex]
        names = []
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            names.append(_BUILTIN_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)])
        ops[signature.signatureKey.decode()] = names
    return ops


def latents(rows, seed=0):
    return np.random.default_rng(seed).standard_normal((rows, LATENT_DIM)).astype("float32")


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_static_signatures_compute_no_shape_at_run_time(static_tflite, name):
    ops = signature_ops(static_tflite[name])
    expected = {"decode", "sample"}
    for batch in STATIC_BATCH_SIZES:
        expected |= {f"decode_b{batch}", f"sample_b{batch}"}
    assert set(ops) == expected
    for batch in STATIC_BATCH_SIZES:
        for key in (f"decode_b{batch}", f"sample_b{batch}"):
            assert not RUNTIME_SHAPE_OPS & set(ops[key]), (key, ops[key])
    if name == "conv":
        # The dynamic decode reads its batch before each transposed convolution.
        dynamic = ops["decode"]
        first = dynamic.index("TRANSPOSE_CONV")
        assert dynamic[first - 3 : first] == ["SHAPE", "STRIDED_SLICE", "PACK"]
        assert "TRANSPOSE_CONV" in ops["decode_b64"]


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_static_inputs_and_outputs_have_fixed_shapes(static_tflite, name):
    interpreter = Interpreter(model_path=static_tflite[name])
    for batch in STATIC_BATCH_SIZES:
        decode = interpreter.get_signature_runner(f"decode_b{batch}")
        assert list(decode.get_input_details()["z"]["shape_signature"]) == [batch, LATENT_DIM]
        image = decode.get_output_details()["image"]
        assert list(image["shape_signature"]) == [batch, 28, 28, 1]
        sample = interpreter.get_signature_runner(f"sample_b{batch}")
        assert set(sample.get_input_details()) == {"seed"}
        assert list(sample.get_output_details()["z"]["shape_signature"]) == [batch, LATENT_DIM]


@pytest.mark.parametrize("batch", STATIC_BATCH_SIZES)
@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_static_decode_equals_dynamic_decode_and_keras(static_tflite, vae, conv_vae, name, batch):
    model = {"mlp": vae, "conv": conv_vae}[name]
    interpreter = Interpreter(model_path=static_tflite[name])
    z = latents(batch, seed=batch)
    static = interpreter.get_signature_runner(f"decode_b{batch}")(z=z)["image"]
    dynamic = interpreter.get_signature_runner("decode")(z=z)["image"]
    np.testing.assert_allclose(static, dynamic, atol=1e-6)
    np.testing.assert_allclose(static, model.decode(z).mean().numpy(), atol=1e-5)


@pytest.mark.parametrize("batch", STATIC_BATCH_SIZES)
@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_static_sample_equals_dynamic_sample_and_keras(static_tflite, vae, conv_vae, name, batch):
    model = {"mlp": vae, "conv": conv_vae}[name]
    interpreter = Interpreter(model_path=static_tflite[name])
    seed = 7 + batch
    static = interpreter.get_signature_runner(f"sample_b{batch}")(seed=np.int32(seed))
    dynamic = interpreter.get_signature_runner("sample")(
        seed=np.int32(seed), num_samples=np.int32(batch)
    )
    np.testing.assert_array_equal(static["z"], dynamic["z"])
    np.testing.assert_allclose(static["image"], dynamic["image"], atol=1e-6)
    np.testing.assert_allclose(static["image"], model.sample(batch, seed=seed), atol=1e-5)


@pytest.mark.slow
def test_cvae_static_signatures_take_fixed_conditions(static_tflite, cvae):
    interpreter = Interpreter(model_path=static_tflite["cvae"])
    condition = one_hot(np.arange(64) % 10)
    z = latents(64, seed=3)
    static = interpreter.get_signature_runner("decode_b64")(z=z, condition=condition)["image"]
    np.testing.assert_allclose(static, cvae.decode(z, condition).mean().numpy(), atol=1e-5)
    # sample_b{B}: B draws for one condition, as sample(num_samples=B) with that condition.
    seven = one_hot([7])
    drawn = interpreter.get_signature_runner("sample_b64")(seed=np.int32(5), condition=seven)
    dynamic = interpreter.get_signature_runner("sample")(
        seed=np.int32(5), num_samples=np.int32(64), condition=seven
    )
    np.testing.assert_array_equal(drawn["z"], dynamic["z"])
    expected = np.reshape(cvae.generate(seven, 64, seed=5), (64, 28, 28, 1))
    np.testing.assert_allclose(drawn["image"], expected, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_metadata_records_the_batch_sizes(static_tflite, name):
    with open(static_tflite[name], "rb") as f:
        metadata = _read_metadata(f.read())
    assert metadata["batch_sizes"] == list(STATIC_BATCH_SIZES)
    assert set(metadata["signatures"]) == set(signature_ops(static_tflite[name]))


def test_files_without_batch_sizes_record_none(vae_tflite):
    with open(vae_tflite[None], "rb") as f:
        metadata = _read_metadata(f.read())
    assert metadata["batch_sizes"] == []
    assert Sampler(vae_tflite[None]).batch_sizes == ()


class Counting:
    """A runner that counts its calls."""

    def __init__(self, runner):
        self.runner, self.rows = runner, []

    def __call__(self, **inputs):
        self.rows.append(len(inputs["z"]) if "z" in inputs else np.ndim(inputs["seed"]))
        return self.runner(**inputs)


@pytest.mark.parametrize("rows", [64, 200, 40, 1, 10])
def test_sampler_decodes_through_the_static_signatures(static_tflite, conv_vae, rows):
    sampler = Sampler(static_tflite["conv"], runtime="interpreter")
    assert sampler.batch_sizes == STATIC_BATCH_SIZES
    static = {b: Counting(r) for b, r in sampler._static["decode"].items()}
    dynamic = Counting(sampler._decode)
    sampler._static["decode"], sampler._decode = static, dynamic
    z = latents(rows, seed=rows)
    np.testing.assert_allclose(sampler.decode(z), conv_vae.decode(z).mean().numpy(), atol=1e-5)
    # Full chunks of 64; a remainder of 40 padded to 64; 1 row static; 10 rows and
    # 200 - 192 = 8 rows (64 is more than twice them) dynamic.
    expected = {64: ([64], [], []), 200: ([64] * 3, [], [8]), 40: ([64], [], [])}
    expected |= {1: ([], [1], []), 10: ([], [], [10])}
    assert (static[64].rows, static[1].rows, dynamic.rows) == expected[rows]


def test_sampler_samples_through_the_static_signature(static_tflite, conv_vae):
    sampler = Sampler(static_tflite["conv"], runtime="interpreter")
    static = Counting(sampler._static["sample"][64])
    sampler._static["sample"][64] = static
    images, z = sampler.sample(11, 64, return_latent=True)
    assert static.rows == [0]  # one call, with a scalar seed alone
    np.testing.assert_allclose(images, conv_vae.sample(64, seed=11), atol=1e-5)
    assert z.shape == (64, LATENT_DIM)
    sampler.sample(11, 63)  # another number of draws: the dynamic signature
    assert static.rows == [0]


@pytest.mark.parametrize(
    "batch_sizes", ["0", "a,b", "", "1,,64", "1.5", [0], [True], [2.0], 5000, "-1"]
)
def test_bad_batch_sizes_are_refused_in_one_line(vae, tmp_path, batch_sizes):
    path = tmp_path / "model.tflite"
    with pytest.raises(ValueError, match=r"^Expected batch_sizes to be integers in \[1, 4096\]"):
        export_tflite(vae, path, batch_sizes=batch_sizes)
    assert not path.exists()


@pytest.mark.parametrize("value", ["0", "a,b", ""])
def test_cli_refuses_bad_batch_sizes_in_one_line(tmp_path, capsys, value):
    path = tmp_path / "model.tflite"
    argv = ["export", str(tmp_path / "none.keras"), "--tflite", str(path)]
    with pytest.raises(SystemExit) as exit_info:  # refused while parsing
        main([*argv, "--batch-sizes", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("keras-vae export: error: argument --batch-sizes: Expected")
    assert f"Received: batch_sizes={value!r}" in err
    assert "Traceback" not in err and not path.exists()


def test_cli_refuses_batch_sizes_without_tflite(tmp_path, capsys):
    argv = ["export", str(tmp_path / "none.keras"), "--saved-model", str(tmp_path / "sm")]
    assert main([*argv, "--batch-sizes", "1,64"]) == 1
    assert "Expected --tflite FILE with --batch-sizes" in capsys.readouterr().err


def test_dynamic_quantization_of_a_conv_model_warns(conv_vae):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert_tflite(conv_vae, "dynamic")
    assert [str(w.message) for w in caught] == [SLOW_DYNAMIC_CONV]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert_tflite(conv_vae, "dynamic", batch_sizes=(1,))  # static signatures: no warning
    assert not [w for w in caught if "quantize='dynamic'" in str(w.message)]


@pytest.mark.slow
def test_dynamic_quantization_of_an_mlp_does_not_warn(vae):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert_tflite(vae, "dynamic")  # no convolution: no warning
    assert not [w for w in caught if "quantize='dynamic'" in str(w.message)]


def test_verify_export_checks_each_static_signature(static_tflite, conv_vae):
    report = verify_export(conv_vae, tflite_path=static_tflite["conv"])
    assert report["ok"]
    for batch in STATIC_BATCH_SIZES:
        assert report["tflite"][f"decode_b{batch}_max_abs_diff"] <= 1e-5
    line = format_report(report).splitlines()[0]
    assert ", decode_b1 " in line and ", decode_b64 " in line


@pytest.mark.slow
def test_cli_exports_static_signatures(vae, tmp_path, capsys):
    model = tmp_path / "model.keras"
    vae.save(model)
    path = tmp_path / "m.tflite"
    assert main(["export", str(model), "--tflite", str(path), "--batch-sizes", "64,1"]) == 0
    assert ", decode_b1 " in capsys.readouterr().out
    with open(path, "rb") as f:
        assert _read_metadata(f.read())["batch_sizes"] == [1, 64]
    assert Sampler(path).batch_sizes == (1, 64)
