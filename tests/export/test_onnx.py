"""ONNX export: every signature converts, runs under onnxruntime and matches Keras."""

import importlib
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
from export_helpers import LATENT_DIM, earlier_export

from keras_vae.export import export_model
from keras_vae.export.onnx import ONNX_FILES, ONNX_OPSET, convert_onnx

export_model_module = importlib.import_module("keras_vae.export.export_model")


@pytest.fixture(scope="module")
def onnx_export(vae, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx") / "model"
    report = export_model(vae, onnx_dir=str(folder))
    return folder, report


def test_the_cli_export_prints_nothing_to_stderr(vae, tmp_path):
    # The TensorFlow functions tf2onnx calls logged about 8 deprecation lines.
    vae.save(tmp_path / "model.keras")
    done = subprocess.run(
        [sys.executable, "-m", "keras_vae.cli.main", "export", str(tmp_path / "model.keras"),
         "--onnx", str(tmp_path / "onnx")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "" and "ok" in done.stdout


def test_every_signature_is_written_at_opset_18_with_its_names(onnx_export):
    folder, report = onnx_export
    assert report["ok"] and report["written"]
    assert sorted(os.listdir(folder)) == sorted(ONNX_FILES.values())
    names = {}
    for file in ONNX_FILES.values():
        proto = onnx.load(str(folder / file))
        onnx.checker.check_model(proto)
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
        names[file] = (
            sorted(i.name for i in proto.graph.input),
            sorted(o.name for o in proto.graph.output),
        )
    assert names["decode.onnx"] == (["z"], ["image"])
    assert names["sample.onnx"] == (["num_samples", "seed"], ["image", "z"])
    assert names["encode.onnx"][0] == ["x"] and names["reconstruct.onnx"] == (["x"], ["image"])


# Negative int32 seeds are Python's 2**31 .. 2**32 - 1; tf2onnx lowers a shift or a
# floor_mod of a negative number to other ONNX ops' results (-454625808 was one).
@pytest.mark.parametrize("seed", [0, 7, 2**31 - 1, -1, -454625808, -1171849213, -(2**31)])
def test_seeded_samples_match_keras(onnx_export, vae, seed):
    folder, _ = onnx_export
    session = onnxruntime.InferenceSession(
        str(folder / "sample.onnx"), providers=["CPUExecutionProvider"]
    )
    image, z = session.run(
        ["image", "z"], {"seed": np.array(seed, np.int32), "num_samples": np.array(5, np.int32)}
    )
    python_seed = seed % 2**32  # the same 32 bits
    np.testing.assert_allclose(z, vae.sample_latent(5, python_seed), atol=1e-5)
    np.testing.assert_allclose(image, vae.sample(5, seed=python_seed), atol=1e-5)


def test_decode_and_encode_match_keras(onnx_export, vae):
    folder, _ = onnx_export
    z = np.random.default_rng(0).normal(size=(3, vae.latent_dim)).astype(np.float32)
    decode = onnxruntime.InferenceSession(str(folder / "decode.onnx"))
    (image,) = decode.run(["image"], {"z": z})
    np.testing.assert_allclose(image, vae.decode(z).mean().numpy(), atol=1e-5)
    x = (np.random.default_rng(1).random((2, 28, 28, 1)) < 0.5).astype(np.float32)
    encode = onnxruntime.InferenceSession(str(folder / "encode.onnx"))
    outputs = dict(
        zip([o.name for o in encode.get_outputs()], encode.run(None, {"x": x}), strict=True)
    )
    np.testing.assert_allclose(outputs["loc"], vae.encode(x).mean().numpy(), atol=1e-5)


def test_an_opset_without_bitwise_ops_is_refused(vae):
    with pytest.raises(ValueError, match=r"^Expected opset to be an integer of at least 18"):
        convert_onnx(vae, opset=ONNX_OPSET - 1)


def test_a_file_where_the_folder_goes_is_refused_before_anything_is_written(vae, tmp_path):
    (tmp_path / "blocker").write_text("")
    with pytest.raises(ValueError, match=r"^Expected onnx_dir to be a folder or a new path"):
        export_model(vae, onnx_dir=str(tmp_path / "blocker" / "onnx"))
    assert os.listdir(tmp_path) == ["blocker"]


def test_a_convolutional_model_converts_and_matches_keras(conv_vae, tmp_path):
    # The session's untrained conv VAE: training it first (a step) took longer than the test.
    report = export_model(
        conv_vae, onnx_dir=str(tmp_path / "onnx"), num_samples=3, allow_untrained=True
    )
    assert report["ok"], report
    assert report["onnx"]["sample_max_abs_diff"] <= 1e-5
    decode = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "decode.onnx"))
    (empty,) = decode.run(["image"], {"z": np.zeros((0, LATENT_DIM), np.float32)})
    assert empty.shape == (0, 28, 28, 1)


@pytest.mark.parametrize(
    "fixture", ["cvae", pytest.param("completion_cvae", marks=pytest.mark.slow)]
)
def test_a_conditional_model_exports_with_its_condition(fixture, request, tmp_path):
    model = request.getfixturevalue(fixture)
    report = export_model(model, onnx_dir=str(tmp_path / "onnx"))
    assert report["ok"], report
    sample = onnx.load(str(tmp_path / "onnx" / "sample.onnx"))
    assert sorted(i.name for i in sample.graph.input) == ["condition", "num_samples", "seed"]


def test_a_folder_holding_other_files_is_refused_and_kept(vae, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    (folder / "decode.onnx").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"^Expected onnx_dir to be a new or empty folder.*'thesis.txt'"
    ):
        export_model(vae, onnx_dir=str(folder))
    assert sorted(os.listdir(tmp_path)) == ["notes"]
    assert sorted(os.listdir(folder)) == ["decode.onnx", "thesis.txt"]


def test_a_file_added_during_the_export_stops_it_before_anything_is_published(
    vae, tmp_path, monkeypatch, reused_vae_tflite, vae_tflite
):
    onnx_module = importlib.import_module("keras_vae.export.onnx")
    folder, tflite = tmp_path / "onnx", tmp_path / "model.tflite"
    folder.mkdir()
    previous = earlier_export(vae_tflite)
    tflite.write_bytes(previous)
    convert = onnx_module.convert_onnx

    def convert_then_add_a_file(model):
        (folder / "later.txt").write_text("written while converting")
        return convert(model)

    monkeypatch.setattr(export_model_module, "convert_onnx", convert_then_add_a_file)
    with pytest.raises(ValueError, match=r"which holds 'later.txt'"):
        export_model(vae, onnx_dir=str(folder), tflite_path=str(tflite))
    assert sorted(os.listdir(tmp_path)) == ["model.tflite", "onnx"]
    assert os.listdir(folder) == ["later.txt"]
    assert tflite.read_bytes() == previous


def test_an_earlier_export_is_replaced_whole(onnx_export, cvae, tmp_path):
    earlier, _ = onnx_export
    folder = tmp_path / "onnx"
    folder.mkdir()
    for name in ("decode.onnx", "sample.onnx"):  # part of an earlier export
        (folder / name).write_bytes((earlier / name).read_bytes())
    report = export_model(cvae, onnx_dir=str(folder))
    assert report["written"]
    assert sorted(os.listdir(folder)) == sorted(ONNX_FILES.values())
    assert os.listdir(tmp_path) == ["onnx"]  # nothing hidden left beside it
    sample = onnx.load(str(folder / "sample.onnx"))
    assert "condition" in {i.name for i in sample.graph.input}
