"""`keras-vae export` killed between its writes: no SavedModel is left without its TFLite file."""

import builtins
import importlib
import json
import os
import subprocess
import sys

import pytest
from export_helpers import earlier_export

from benchmarks import reliability
from keras_vae.export import export_model
from keras_vae.utils.staged_path import process_namespace

export_model_module = importlib.import_module("keras_vae.export.export_model")


@pytest.fixture(scope="module")
def model_file(vae, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    vae.save(path)
    return path


def test_a_version_published_without_its_tflite_is_removed_by_the_next_export(
    vae, model_file, tmp_path, reused_vae_saved_model, reused_vae_tflite, vae_tflite
):
    base, tflite = tmp_path / "served", tmp_path / "model.tflite"
    previous = earlier_export(vae_tflite)
    tflite.write_bytes(previous)
    # Killed (no clean-up) between the SavedModel's rename and the TFLite file's.
    code, _ = reliability.run_child(
        "export", base, "publish 1", "after", model=model_file, tflite=tflite
    )
    assert code == reliability.KILLED
    assert sorted(os.listdir(base)) == [".1.publishing.json", "1"]
    journal = json.loads((base / ".1.publishing.json").read_text())
    assert journal["tflite"] == str(tflite)
    assert tflite.read_bytes() == previous

    # The next export, of the same model in this process: what is checked is
    # the roll-back and the publishing around the writes, so its SavedModel and
    # TFLite file are the session's exports of `vae` (reused_vae_*), not made again.
    with pytest.warns(UserWarning, match=r"Removed version\(s\) \[1\] of .*served: an export was"):
        report = export_model(vae, saved_model_base=str(base), tflite_path=str(tflite))
    assert report["ok"] and report["saved_model"]["version"] == 1
    assert reliability.export_state(str(base), str(tflite)) == []
    assert os.listdir(base) == ["1"]
    assert tflite.read_bytes() != previous


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


def test_a_version_another_export_made_first_is_refused_not_removed(
    vae, tmp_path, monkeypatch, reused_vae_saved_model, reused_vae_tflite, vae_tflite
):
    base, tflite = tmp_path / "served", tmp_path / "model.tflite"
    previous = earlier_export(vae_tflite)
    tflite.write_bytes(previous)
    verify = export_model_module.verify_export

    def verify_while_another_export_publishes(*args, **kwargs):
        (base / "1").mkdir(parents=True)
        (base / "1" / "saved_model.pb").write_bytes(b"the other export's")
        return verify(*args, **kwargs)

    monkeypatch.setattr(export_model_module, "verify_export", verify_while_another_export_publishes)
    with pytest.raises(ValueError, match=r"^Expected a new version: exports never overwrite"):
        export_model(vae, saved_model_base=str(base), tflite_path=str(tflite))
    assert os.listdir(base) == ["1"]
    assert (base / "1" / "saved_model.pb").read_bytes() == b"the other export's"
    assert tflite.read_bytes() == previous


def _ended_pid():
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


def _journal(base, version, **record):
    (base / version).mkdir(parents=True)
    record = {"tflite": str(base / "never.tflite"), "sha256": "0", "pid": _ended_pid(), **record}
    path = base / f".{version}.publishing.json"
    path.write_text(json.dumps(record))
    return path


def test_a_journal_that_its_export_removes_meanwhile_removes_nothing(tmp_path, monkeypatch):
    base = tmp_path / "served"
    journal = _journal(base, "1", pid=os.getpid())  # an export publishing now, here

    def open_after_the_export_ends(path, *args, **kwargs):
        if os.fspath(path) == str(journal):
            journal.unlink()  # the export finished between listdir and open
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(export_model_module, "open", open_after_the_export_ends, raising=False)
    assert export_model_module._roll_back_unfinished(str(base)) == []
    assert os.listdir(base) == ["1"]


def test_a_journal_of_another_host_or_container_is_left_to_it(tmp_path):
    base = tmp_path / "served"
    journal = _journal(base, "1", namespace="0" * 12)  # its pid means nothing here
    assert export_model_module._roll_back_unfinished(str(base)) == []
    assert sorted(os.listdir(base)) == [journal.name, "1"]
    mine = _journal(base, "2", namespace=process_namespace())
    with pytest.warns(UserWarning, match=r"Removed version\(s\) \[2\]"):
        assert export_model_module._roll_back_unfinished(str(base)) == [2]
    assert sorted(os.listdir(base)) == [journal.name, "1"] and not mine.exists()
