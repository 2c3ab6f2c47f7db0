import os
import subprocess
import sys
import uuid

from keras_vae.export.staged_path import StagedPath, process_namespace


def _staged_name(target, pid, owner):
    return f".{target}.tmp-{uuid.uuid4().hex}-{pid}-{owner}"


def test_staged_name_records_the_process_and_its_namespace(tmp_path):
    staged = StagedPath(tmp_path / "model.tflite")
    name = os.path.basename(staged.path)
    assert name.startswith(".model.tflite.tmp-")
    assert name.endswith(f"-{os.getpid()}-{process_namespace()}")
    assert len(name) == len(".model.tflite.tmp-") + 32 + len(f"-{os.getpid()}-") + 12


def test_leftovers_of_ended_processes_are_removed(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its id is now free
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = process_namespace()
    try:
        killed_folder = tmp_path / _staged_name("2", ended.pid, owner)
        killed_file = tmp_path / _staged_name("model.tflite", ended.pid, owner)
        live = tmp_path / _staged_name("3", running.pid, owner)
        own = tmp_path / _staged_name("5", os.getpid(), owner)
        elsewhere = tmp_path / _staged_name("4", ended.pid, "0123456789ab")
        older_format = tmp_path / f".6.tmp-{uuid.uuid4().hex}"
        (killed_folder / "variables").mkdir(parents=True)
        (killed_folder / "saved_model.pb").write_bytes(b"half")
        for path in (killed_file, live, own, elsewhere, older_format):
            path.write_bytes(b"")
        (tmp_path / "1").mkdir()
        staged = StagedPath(tmp_path / "7")
    finally:
        running.kill()
        running.wait()
    # Only the two paths of the ended process in this namespace are gone.
    assert sorted(os.listdir(tmp_path)) == sorted(
        p.name for p in (live, own, elsewhere, older_format, tmp_path / "1")
    )
    assert not os.path.exists(staged.path)  # nothing is written before the caller does


def test_a_missing_folder_has_nothing_to_sweep(tmp_path):
    staged = StagedPath(tmp_path / "new" / "deeper" / "model.tflite")
    staged.write_bytes(b"flatbuffer")
    assert staged.publish() == str(tmp_path / "new" / "deeper" / "model.tflite")
    assert os.listdir(tmp_path / "new" / "deeper") == ["model.tflite"]


def test_other_pid_namespaces_on_one_host_get_other_tags(monkeypatch):
    # Containers sharing a host name (and a folder) but not process ids.
    tags = set()
    for namespace in ("pid:[4026531836]", "pid:[4026532512]"):
        monkeypatch.setattr(os, "readlink", lambda path, namespace=namespace: namespace)
        tags.add(process_namespace())
    assert len(tags) == 2
