"""Each .tflite names the oldest TFLite runtime it runs on; an older runtime's refusal says so."""

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae.export import Sampler, export_tflite, litert_sampler


@pytest.fixture(scope="module")
def vae_tflite(vae, tmp_path_factory):
    """The VAE's float32 and dynamic-range `.tflite` files (the conftest's has every mode)."""
    folder = tmp_path_factory.mktemp("runtime")
    return {
        mode: export_tflite(vae, folder / f"vae-{mode}.tflite", quantize=mode)
        for mode in (None, "dynamic")
    }


def _converter_metadata(content):
    """The converter's `min_runtime_version` and our `keras_vae` record, read independently."""
    model = schema.Model.GetRootAs(content, 0)
    found = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        found[entry.Name().decode()] = bytes(model.Buffers(entry.Buffer()).DataAsNumpy())
    return found["min_runtime_version"].rstrip(b"\0").decode(), json.loads(found["keras_vae"])


def _version(text):
    return tuple(int(part) for part in text.split("."))


@pytest.mark.parametrize("mode", [None, "dynamic"])
def test_the_metadata_names_the_converters_minimum_runtime(vae_tflite, mode):
    content = open(vae_tflite[mode], "rb").read()
    converter, record = _converter_metadata(content)
    assert record["min_runtime_version"] == converter
    assert Sampler(vae_tflite[mode]).min_runtime_version == converter
    if mode == "dynamic":  # FULLY_CONNECTED version 12 came with TFLite 2.17
        assert _version(converter) >= (2, 17, 0)
    else:
        assert _version(converter) < (2, 17, 0)


def test_a_runtime_without_an_op_version_names_the_version_the_file_needs(vae_tflite, tmp_path):
    model = flatbuffer_utils.convert_bytearray_to_object(open(vae_tflite[None], "rb").read())
    model.operatorCodes[0].version = 99  # an op version no runtime has
    path = tmp_path / "future.tflite"
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    needs = _converter_metadata(path.read_bytes())[0]
    with pytest.raises(ValueError) as refused:
        Sampler(str(path))
    message = str(refused.value)
    assert message.startswith(f"Expected a TFLite runtime of version {needs} or newer")
    assert "\n" not in message and message.count("find op") == 1


def _op_versions(content, op_name):
    model = schema.Model.GetRootAs(content, 0)
    code = getattr(schema.BuiltinOperator, op_name)
    return {
        model.OperatorCodes(i).Version()
        for i in range(model.OperatorCodesLength())
        if max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
        == code
    }


@pytest.fixture(scope="module")
def dynamic_for_2_14(vae, tmp_path_factory):
    path = tmp_path_factory.mktemp("old-runtime") / "vae-dynamic-2.14.tflite"
    return export_tflite(vae, path, quantize="dynamic", min_runtime="2.14")


def test_min_runtime_keeps_a_dynamic_file_on_older_runtimes(vae_tflite, dynamic_for_2_14):
    default = open(vae_tflite["dynamic"], "rb").read()
    older = open(dynamic_for_2_14, "rb").read()
    assert _op_versions(default, "FULLY_CONNECTED") == {12}
    assert max(_op_versions(older, "FULLY_CONNECTED")) < 12  # per-tensor hybrid weights
    converter, record = _converter_metadata(older)
    assert record["min_runtime_version"] == converter
    assert _version(converter) <= (2, 14, 0)


def test_a_min_runtime_file_decodes_like_keras(vae, vae_tflite, dynamic_for_2_14):
    z = np.random.default_rng(0).normal(size=(32, vae.latent_dim)).astype("float32")
    keras_images = np.asarray(vae.decode(z).mean())
    older = Sampler(dynamic_for_2_14).decode(z)
    per_channel = Sampler(vae_tflite["dynamic"]).decode(z)
    # Per-tensor int8 weights round each weight to 1/127 of its layer's largest.
    assert np.abs(older - keras_images).max() < 0.02
    assert np.abs(older - per_channel).max() < 0.02
    assert not np.array_equal(older, per_channel)  # the weights are quantized differently


def test_a_file_that_needs_a_newer_runtime_is_refused(vae, tmp_path):
    path = tmp_path / "too-old.tflite"
    with pytest.raises(ValueError) as refused:
        export_tflite(vae, path, quantize="dynamic", min_runtime="2.3")
    message = str(refused.value)
    assert message.startswith("Expected a .tflite file that runs on TFLite 2.3; ")
    assert message.endswith("Received: min_runtime='2.3'") and "\n" not in message
    assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["2", "two.14", "2.14.0.1", 2.14, "2.14-rc0"])
def test_a_malformed_min_runtime_is_refused_in_one_line(vae, tmp_path, bad):
    with pytest.raises(ValueError, match=r"^Expected min_runtime to be a TFLite version") as e:
        export_tflite(vae, tmp_path / "m.tflite", min_runtime=bad)
    assert str(e.value).endswith(f"Received: min_runtime={bad!r}")


TFLITE_RUNTIME_2_14 = """
import sys
import numpy as np
from tflite_runtime.interpreter import Interpreter
path, z_path, out_path = sys.argv[1:]
try:
    runner = Interpreter(path).get_signature_runner("decode")
except ValueError as error:
    print(str(error).splitlines()[0])
    sys.exit(3)
np.save(out_path, runner(z=np.load(z_path))["image"])
"""


@pytest.fixture(scope="module")
def tflite_runtime_2_14(tmp_path_factory):
    """The Python of a fresh venv with tflite-runtime 2.14, the newest on PyPI."""
    folder = tmp_path_factory.mktemp("tflite-runtime-2.14")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = str(folder / "bin" / "python")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "tflite-runtime==2.14.0", "numpy<2"],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        pytest.skip(f"tflite-runtime 2.14 does not install here: {installed.stderr[-300:]}")
    return python


@pytest.mark.slow
def test_tflite_runtime_2_14_runs_a_min_runtime_file_and_refuses_the_default(
    vae, vae_tflite, dynamic_for_2_14, tflite_runtime_2_14, tmp_path
):
    z = np.random.default_rng(1).normal(size=(16, vae.latent_dim)).astype("float32")
    np.save(tmp_path / "z.npy", z)
    script = tmp_path / "decode.py"
    script.write_text(TFLITE_RUNTIME_2_14)

    def run(path):
        out = tmp_path / "images.npy"
        args = [tflite_runtime_2_14, str(script), str(path), str(tmp_path / "z.npy"), str(out)]
        return subprocess.run(args, capture_output=True, text=True), out

    done, out = run(dynamic_for_2_14)
    assert done.returncode == 0, done.stderr
    # The two releases' hybrid (dynamic-range) kernels round differently: up to 1.5e-5
    # apart for the fixture trained without XLA, within 1e-5 for one trained with it.
    np.testing.assert_allclose(np.load(out), Sampler(dynamic_for_2_14).decode(z), atol=1e-4)
    refused, _ = run(vae_tflite["dynamic"])
    assert refused.returncode == 3
    assert "FULLY_CONNECTED" in refused.stdout and "'12'" in refused.stdout


def test_a_conv_dynamic_file_for_2_14_is_refused_and_float32_is_not(conv_vae, tmp_path):
    # The converter dates dynamic quantization's TRANSPOSE_CONV (int8 weights,
    # float input) to 2.13, but tflite-runtime 2.14 cannot prepare it.
    path = tmp_path / "conv.tflite"
    refusal = pytest.raises(ValueError, match=r"transposed convolutions int8 weights")
    with pytest.warns(UserWarning, match="far slower"), refusal as refused:
        export_tflite(conv_vae, path, quantize="dynamic", min_runtime="2.14", allow_untrained=True)
    assert str(refused.value).endswith("Received: min_runtime='2.14'")
    assert not path.exists()
    export_tflite(conv_vae, path, min_runtime="2.14", allow_untrained=True)
    assert _version(_converter_metadata(path.read_bytes())[0]) <= (2, 14, 0)


def test_the_samplers_own_metadata_reader_matches_the_schemas(vae_tflite):
    # litert_sampler reads the flatbuffer with struct, so tflite-runtime (which
    # ships no schema module) can run it: it must agree with the schema's reading.
    for path in vae_tflite.values():
        content = open(path, "rb").read()
        assert litert_sampler._read_metadata(content) == _converter_metadata(content)[1]
        model = schema.Model.GetRootAs(content, 0)
        expected = [bytes(model.Buffers(i).DataAsNumpy()) for i in range(model.BuffersLength())]
        buffers = litert_sampler._Table.root(content).vector(4)
        assert [buffer.bytes(0) for buffer in buffers] == expected
        with pytest.raises(struct.error):
            litert_sampler._read_buffers(content[: len(content) // 2])


@pytest.mark.slow
def test_litert_sampler_runs_in_tflite_runtime_2_14(
    dynamic_for_2_14, tflite_runtime_2_14, tmp_path
):
    out = tmp_path / "images.npy"
    script = str(litert_sampler.__file__)
    args = [script, dynamic_for_2_14, "--seed", "3", "--num-samples", "6", "--output", str(out)]
    done = subprocess.run([tflite_runtime_2_14, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(out), Sampler(dynamic_for_2_14).sample(3, 6), atol=1e-5)
