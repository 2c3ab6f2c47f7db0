"""`keras-vae export` killed between its writes: no SavedModel is left without its TFLite file."""

import json
import os

import pytest

from benchmarks import reliability
from keras_vae.export import export_model


@pytest.fixture(scope="module")
def model_file(vae, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    vae.save(path)
    return path


def test_a_version_published_without_its_tflite_is_removed_by_the_next_export(
    vae, model_file, tmp_path, reused_vae_saved_model, reused_vae_tflite
):
    base, tflite = tmp_path / "served", tmp_path / "model.tflite"
    tflite.write_bytes(b"the previous export's file")
    # Killed (no clean-up) between the SavedModel's rename and the TFLite file's.
    code, _ = reliability.run_child(
        "export", base, "publish 1", "after", model=model_file, tflite=tflite
    )
    assert code == reliability.KILLED
    assert sorted(os.listdir(base)) == [".1.publishing.json", "1"]
    journal = json.loads((base / ".1.publishing.json").read_text())
    assert journal["tflite"] == str(tflite)
    assert tflite.read_bytes() == b"the previous export's file"

    # The next export, of the same model in this process: what is checked is
    # the roll-back and the publishing around the writes, so its SavedModel and
    # TFLite file are the session's exports of `vae` (reused_vae_*), not made again.
    with pytest.warns(UserWarning, match=r"Removed version\(s\) \[1\] of .*served: an export was"):
        report = export_model(vae, saved_model_base=str(base), tflite_path=str(tflite))
    assert report["ok"] and report["saved_model"]["version"] == 1
    assert reliability.export_state(str(base), str(tflite)) == []
    assert os.listdir(base) == ["1"]
    assert tflite.read_bytes() != b"the previous export's file"


@pytest.mark.slow
def test_a_finished_publish_is_kept_by_the_next_export(model_file, tmp_path):
    base, tflite = tmp_path / "served", tmp_path / "model.tflite"
    # Killed after both renames, before the journal was removed: nothing to undo.
    code, _ = reliability.run_child(
        "export", base, "publish model.tflite", "after", model=model_file, tflite=tflite
    )
    assert code == reliability.KILLED
    assert sorted(os.listdir(base)) == [".1.publishing.json", "1"]
    report = export_model(str(model_file), saved_model_base=str(base))
    assert report["saved_model"]["version"] == 2
    assert sorted(os.listdir(base)) == ["1", "2"]
