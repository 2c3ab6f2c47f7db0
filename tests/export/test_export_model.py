"""export_model: every check before any write, verification, then all or nothing."""

import importlib
import os

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import LATENT_DIM, binary_images, earlier_export

from keras_vae.cli.main import main
from keras_vae.data import make_conditional_pairs
from keras_vae.export import TOLERANCES, Sampler, export_model, format_report
from keras_vae.models.presets import build_vae
from keras_vae.utils.staged_path import StagedPath

# The package re-exports the function under the module's name.
export_model_module = importlib.import_module("keras_vae.export.export_model")


def test_export_model_from_a_keras_file(vae, tmp_path):
    path = tmp_path / "model.keras"
    vae.save(path)
    report = export_model(
        str(path), saved_model_base=str(tmp_path / "served"), tflite_path=str(tmp_path / "m.tflite")
    )
    assert report["ok"] and report["written"] and report["model"] == "VAE"
    assert report["saved_model"]["version"] == 1
    assert report["saved_model"]["path"] == str(tmp_path / "served" / "1")
    assert report["tflite"]["path"] == str(tmp_path / "m.tflite")
    # Published under their names, with no staged copy left beside them.
    assert sorted(os.listdir(tmp_path)) == ["m.tflite", "model.keras", "served"]
    assert os.listdir(tmp_path / "served") == ["1"]
    lines = format_report(report).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"saved_model {tmp_path / 'served' / '1'}: ")
    assert lines[1].startswith(f"tflite (float32) {tmp_path / 'm.tflite'}: ")
    assert all(line.endswith(": ok") for line in lines[:2])
    assert lines[2] == "verified with seed=0, num_samples=4: all exports match the Keras model"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, r"^Expected saved_model_base, saved_model_dir, tflite_path or onnx_dir"),
        ({"tflite_path": "m.tflite", "quantize": "int3"}, r"^Expected quantize to be one of"),
        ({"tflite_path": "m.onnx"}, r"^Expected path to a \.tflite file"),
        ({"saved_model_base": "s", "version": 0}, r"^Expected version to be a positive integer"),
        ({"saved_model_base": "s", "quantize": "int8"}, r"^Expected tflite_path with quantize"),
        ({"tflite_path": "m.tflite", "version": 3}, r"^Expected saved_model_base with version"),
        ({"saved_model_dir": "d", "version": 3}, r"^Expected saved_model_base with version"),
        (
            {"saved_model_base": "s", "saved_model_dir": "d"},
            r"^Expected saved_model_base \(a version folder in it\) or saved_model_dir, not both",
        ),
        ({"saved_model_base": "s", "num_samples": 0}, r"^Expected num_samples in \[1, 4096\]"),
        ({"tflite_path": "m.tflite", "seed": 1.5}, r"^Expected seed to be an integer"),
        (
            {"tflite_path": "m.tflite", "representative_conditions": np.ones((2, 10))},
            r"^Expected quantize='int8' or 'int8-full' with representative_conditions",
        ),
        (
            {"tflite_path": "m.tflite", "quantize": "int8", "representative_conditions": [[1.0]]},
            r"^Expected representative_conditions=None for a model without conditions",
        ),
    ],
)
def test_export_model_checks_arguments_before_writing(vae, tmp_path, kwargs, message):
    kwargs = {
        key: str(tmp_path / value) if key.endswith(("path", "base", "dir")) else value
        for key, value in kwargs.items()
    }
    with pytest.raises(ValueError, match=message):
        export_model(vae, **kwargs)
    assert os.listdir(tmp_path) == []


def test_tflite_path_is_checked_before_the_saved_model_is_written(vae, tmp_path):
    folder = tmp_path / "d.tflite"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"^Expected path to a \.tflite file"):
        export_model(vae, saved_model_base=str(tmp_path / "sm"), tflite_path=str(folder))
    assert os.listdir(tmp_path) == ["d.tflite"]


def test_existing_version_is_refused_before_the_tflite_file_is_written(vae, tmp_path):
    (tmp_path / "sm" / "3").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"^Expected a new version"):
        export_model(
            vae,
            saved_model_base=str(tmp_path / "sm"),
            tflite_path=str(tmp_path / "m.tflite"),
            version=3,
        )
    assert sorted(os.listdir(tmp_path)) == ["sm"]


def test_export_model_bad_model_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("not a zip")
    with pytest.raises(ValueError, match=r"^Expected a readable \.keras model"):
        export_model(str(path), tflite_path=str(tmp_path / "m.tflite"))


def test_export_model_untrained(tmp_path):
    model = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM)
    model.build((None, 28, 28, 1))
    message = r"^Expected a trained model.*pass allow_untrained=True \(--allow-untrained on the"
    with pytest.raises(ValueError, match=message):
        export_model(model, tflite_path=str(tmp_path / "m.tflite"))
    assert os.listdir(tmp_path) == []


# --- int8 calibration conditions of a completion CVAE ---------------------------------


def test_int8_completion_cvae_needs_conditions_before_writing(completion_cvae, tmp_path):
    message = (
        r"^Expected representative_conditions, an array \[M, 392\] of typical conditions.*"
        r"keras_vae\.export\.export_model\(\.\.\., quantize='int8', "
        r"representative_conditions=\.\.\.\) with observed parts of training images\. "
        r"Received: condition_type='top-half', representative_conditions=None$"
    )
    with pytest.raises(ValueError, match=message):
        export_model(
            completion_cvae,
            saved_model_base=str(tmp_path / "sm"),
            tflite_path=str(tmp_path / "m.tflite"),
            quantize="int8",
        )
    assert os.listdir(tmp_path) == []


def test_cli_int8_completion_cvae_calibrates_on_the_dataset(
    completion_cvae, tmp_path, capsys, tfds_data_dir
):
    model = tmp_path / "cvae.keras"
    completion_cvae.save(model)
    argv = ["export", str(model), "--saved-model", str(tmp_path / "sm"), "--tflite",
            str(tmp_path / "m.tflite"), "--quantize", "int8"]  # fmt: skip
    # A dataset that cannot give conditions: one line, nothing written.
    assert main([*argv, "--dataset", "no_such_dataset"]) == 1
    err = capsys.readouterr().err
    assert "Received: name='no_such_dataset'" in err and err.count("\n") == 1
    assert os.listdir(tmp_path) == ["cvae.keras"]
    # The observed top halves of MNIST images calibrate the int8 decoder.
    assert main([*argv, "--calibration-split", "train[:64]"]) == 0
    assert "all exports match the Keras model" in capsys.readouterr().out
    assert os.listdir(tmp_path / "sm") == ["1"] and (tmp_path / "m.tflite").exists()


def test_int8_completion_cvae_with_conditions(completion_cvae, tmp_path):
    conditions = make_conditional_pairs(binary_images(32, seed=3), None, "top-half")[0]
    path = str(tmp_path / "m.tflite")
    report = export_model(
        completion_cvae, tflite_path=path, quantize="int8", representative_conditions=conditions
    )
    assert report["ok"] and report["written"]
    assert report["tflite"]["quantize"] == "int8"
    sampler = Sampler(path)
    assert (sampler.quantize, sampler.condition_type) == ("int8", "top-half")
    assert sampler.condition_shape == (392,) and sampler.image_shape == (392,)
    images = sampler.sample(1, 3, conditions[:2])
    expected = completion_cvae.generate(conditions[:2], 3, seed=1).reshape(6, 392)
    assert np.abs(images - expected).mean() < TOLERANCES["int8"]


# --- failures and mismatches leave nothing new behind ----------------------------------


@pytest.fixture
def previous_tflite(tmp_path, vae_tflite):
    """An earlier export's file, which a finished export would replace."""
    path = tmp_path / "m.tflite"
    path.write_bytes(earlier_export(vae_tflite))
    return path


@pytest.mark.usefixtures("reused_vae_saved_model")
def test_failed_conversion_removes_the_saved_model(
    vae, vae_tflite, tmp_path, previous_tflite, monkeypatch
):
    def fail(*args, **kwargs):
        raise RuntimeError("converter crashed")

    # The SavedModel is written before the TFLite conversion starts.
    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", fail)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export_model(vae, saved_model_base=str(tmp_path / "sm"), tflite_path=str(previous_tflite))
    assert os.listdir(tmp_path) == ["m.tflite"]
    assert previous_tflite.read_bytes() == earlier_export(vae_tflite)


@pytest.mark.usefixtures("reused_vae_saved_model", "reused_vae_tflite")
def test_failed_verification_leaves_nothing_new(vae, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("verification crashed")

    monkeypatch.setattr(export_model_module, "verify_export", fail)
    (tmp_path / "sm" / "1").mkdir(parents=True)
    with pytest.raises(OSError, match="verification crashed"):
        export_model(
            vae,
            saved_model_base=str(tmp_path / "sm"),
            tflite_path=str(tmp_path / "new" / "m.tflite"),
        )
    assert sorted(os.listdir(tmp_path)) == ["sm"]
    assert os.listdir(tmp_path / "sm") == ["1"]


@pytest.mark.usefixtures("reused_vae_saved_model", "reused_vae_tflite")
@pytest.mark.parametrize(
    "saved_model_base, tflite_path",
    [("new/sm", "new/m.tflite"), ("out/b", "out/a/m.tflite"), ("sm", "sm/m.tflite")],
)
def test_failure_removes_the_folders_both_outputs_created(
    vae, tmp_path, monkeypatch, saved_model_base, tflite_path
):
    def fail(*args, **kwargs):
        raise OSError("verification crashed")

    monkeypatch.setattr(export_model_module, "verify_export", fail)
    with pytest.raises(OSError, match="verification crashed"):
        export_model(
            vae,
            saved_model_base=str(tmp_path / saved_model_base),
            tflite_path=str(tmp_path / tflite_path),
        )
    assert os.listdir(tmp_path) == []


def test_tflite_path_under_a_file_is_refused_before_writing(vae, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=r"^Expected path to a \.tflite file in a folder"):
        export_model(
            vae,
            saved_model_base=str(tmp_path / "sm"),
            tflite_path=str(tmp_path / "file" / "m.tflite"),
        )
    assert os.listdir(tmp_path) == ["file"]


@pytest.mark.usefixtures("reused_vae_saved_model", "reused_vae_tflite")
def test_failed_publish_removes_the_published_version(vae, tmp_path, monkeypatch):
    publish = StagedPath.publish

    def publish_saved_model_only(self):
        if self.target.endswith(".tflite"):
            raise OSError("rename failed")
        return publish(self)

    monkeypatch.setattr(StagedPath, "publish", publish_saved_model_only)
    with pytest.raises(OSError, match="rename failed"):
        export_model(
            vae, saved_model_base=str(tmp_path / "sm"), tflite_path=str(tmp_path / "m.tflite")
        )
    assert os.listdir(tmp_path) == []


@pytest.mark.usefixtures("reused_vae_saved_model", "reused_vae_tflite")
def test_mismatch_writes_nothing(vae, vae_tflite, tmp_path, previous_tflite, monkeypatch):
    monkeypatch.setitem(TOLERANCES, None, -1.0)  # every float32 file now "mismatches"
    (tmp_path / "sm" / "1").mkdir(parents=True)
    report = export_model(
        vae, saved_model_base=str(tmp_path / "sm"), tflite_path=str(previous_tflite)
    )
    assert not report["ok"] and report["written"] is False
    assert not report["saved_model"]["ok"] and not report["tflite"]["ok"]
    assert report["saved_model"]["path"] == str(tmp_path / "sm" / "2")
    assert report["saved_model"]["version"] == 2
    assert report["tflite"]["path"] == str(previous_tflite)
    # No version for TF Serving to pick up, and the old .tflite file as it was.
    assert os.listdir(tmp_path / "sm") == ["1"]
    assert sorted(os.listdir(tmp_path)) == ["m.tflite", "sm"]
    assert previous_tflite.read_bytes() == earlier_export(vae_tflite)
    last = format_report(report).splitlines()[-1]
    assert last.endswith("an export does not match; nothing was written")


def test_cli_mismatch_exits_non_zero_without_a_version(vae, tmp_path, monkeypatch, capsys):
    model = tmp_path / "model.keras"
    vae.save(model)
    monkeypatch.setitem(TOLERANCES, None, -1.0)
    assert main(["export", str(model), "--saved-model", str(tmp_path / "sm")]) == 1
    out, err = capsys.readouterr()
    assert "nothing was written" in out
    assert err.startswith("keras-vae export: error: Expected the exported files to reproduce")
    assert os.listdir(tmp_path) == ["model.keras"]
