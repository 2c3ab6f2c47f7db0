"""Each .tflite names the oldest TFLite runtime it runs on; an older runtime's refusal says so."""

import json

import pytest
from ai_edge_litert import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae.export import Sampler, export_tflite


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
