"""StagedPath: hidden names beside the target, renamed into place or removed."""

import os
import subprocess
import sys
import uuid

import pytest

from keras_vae.utils.staged_path import (
    StagedPath,
    process_namespace,
    publish_replacing,
    write_bytes_atomically,
)


def _staged_name(target, pid, owner, suffix=""):
    return f".{target}.tmp-{uuid.uuid4().hex}-{pid}-{owner}{suffix}"


class Stopped(BaseException):
    """Stands for a Ctrl+C."""


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
        killed_weights = tmp_path / _staged_name("w.weights.h5", ended.pid, owner, ".weights.h5")
        live = tmp_path / _staged_name("3", running.pid, owner)
        own = tmp_path / _staged_name("5", os.getpid(), owner)
        elsewhere = tmp_path / _staged_name("4", ended.pid, "0123456789ab")
        older_format = tmp_path / f".6.tmp-{uuid.uuid4().hex}"
        (killed_folder / "variables").mkdir(parents=True)
        (killed_folder / "saved_model.pb").write_bytes(b"half")
        for path in (killed_file, killed_weights, live, own, elsewhere, older_format):
            path.write_bytes(b"")
        (tmp_path / "1").mkdir()
        staged = StagedPath(tmp_path / "7")
    finally:
        running.kill()
        running.wait()
    # Only the three paths of the ended process in this namespace are gone.
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


@pytest.mark.parametrize("suffix", ["", ".keras", ".weights.h5"])
def test_the_hidden_name_ends_with_the_suffix(tmp_path, suffix):
    staged = StagedPath(tmp_path / "model.keras", suffix)
    assert os.path.basename(staged.path).endswith(f"-{process_namespace()}{suffix}")


@pytest.mark.parametrize("suffix", ["keras", ".", "./x", ".a/b", 5])
def test_a_bad_suffix_is_refused(tmp_path, suffix):
    with pytest.raises(ValueError, match=f"Received: suffix={suffix!r}$"):
        StagedPath(tmp_path / "model.keras", suffix)
    assert os.listdir(tmp_path) == []


def test_as_a_context_it_publishes_or_leaves_nothing(tmp_path):
    target = tmp_path / "new" / "model.tflite"
    with pytest.raises(Stopped), StagedPath(target) as staged:
        staged.write_bytes(b"half")
        raise Stopped
    assert os.listdir(tmp_path) == []  # the staged file and the folder made for it
    with StagedPath(target) as staged:
        staged.write_bytes(b"whole")
        assert staged.publish() == str(target)
    assert os.listdir(tmp_path / "new") == ["model.tflite"]
    assert target.read_bytes() == b"whole"
    with StagedPath(target) as staged:  # left unpublished: the old file stays
        staged.write_bytes(b"unverified")
    assert os.listdir(tmp_path / "new") == ["model.tflite"]
    assert target.read_bytes() == b"whole"


def _staged_folder(target, files):
    staged = StagedPath(target)
    os.mkdir(staged.path)
    for name, text in files.items():
        with open(os.path.join(staged.path, name), "w") as f:
            f.write(text)
    return staged


def test_a_folder_is_replaced_whole_and_a_refused_one_kept(tmp_path):
    target = tmp_path / "onnx"
    publish_replacing(_staged_folder(target, {"a": "first", "b": "first"}))
    publish_replacing(_staged_folder(target, {"a": "second"}))
    assert sorted(os.listdir(tmp_path)) == ["onnx"]
    assert os.listdir(target) == ["a"] and (target / "a").read_text() == "second"

    def refuse(folder):
        raise ValueError(f"keep {os.path.basename(folder)}")

    staged = _staged_folder(target, {"a": "third"})
    with pytest.raises(ValueError, match="keep onnx"):
        publish_replacing(staged, refuse)
    staged.discard()
    assert sorted(os.listdir(tmp_path)) == ["onnx"] and (target / "a").read_text() == "second"


def test_a_stop_between_the_renames_leaves_the_earlier_folder_until_the_next_publish(tmp_path):
    target = tmp_path / "onnx"
    publish_replacing(_staged_folder(target, {"a": "first"}))
    staged = _staged_folder(target, {"a": "second"})
    publish = StagedPath.publish
    try:
        StagedPath.publish = lambda self: (_ for _ in ()).throw(Stopped())
        with pytest.raises(Stopped):
            publish_replacing(staged)
    finally:
        StagedPath.publish = publish
    assert (target / "a").read_text() == "first"  # put back
    # Killed between the renames instead: only the hidden earlier folder is left.
    os.replace(target, tmp_path / ".onnx.replaced")
    publish_replacing(staged)
    assert sorted(os.listdir(tmp_path)) == ["onnx"] and (target / "a").read_text() == "second"


def test_a_symbolic_link_is_replaced_and_what_it_points_to_kept(tmp_path):
    real, target = tmp_path / "real", tmp_path / "onnx"
    real.mkdir()
    (real / "a").write_text("theirs")
    target.symlink_to(real)
    for text in ("first", "second"):  # a link left at the hidden name broke the second
        publish_replacing(_staged_folder(target, {"a": text}))
    assert sorted(os.listdir(tmp_path)) == ["onnx", "real"] and not target.is_symlink()
    assert (target / "a").read_text() == "second" and (real / "a").read_text() == "theirs"


def test_a_failed_write_names_the_file_meant_not_the_hidden_one(tmp_path, monkeypatch):
    # A full disk (or a folder without write permission) was reported at the hidden
    # name: "[Errno 28] No space left on device: '.../.s.png.tmp-f432...'".
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "samples.png"
    with pytest.raises(OSError) as error:
        write_bytes_atomically(target, b"png")
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(target)
    assert os.listdir(tmp_path) == []
