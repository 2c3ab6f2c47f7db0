"""`keras-vae train` resumes a stopped run from `<output>/backup`."""

import json
import os
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

from keras_vae.cli.main import main
from keras_vae.tasks import training
from keras_vae.utils.staged_path import process_namespace

RUN = dict(
    architecture="mlp", latent_dim=4, batch_size=100, seed=3, train_split="train[:500]",
    test_split="test[:200]", verbose=0,
)  # fmt: skip
STEPS_PER_EPOCH = 5


class Stopped(BaseException):
    """Stands for a Ctrl+C or a killed job."""


def _stop_after_epoch(monkeypatch, stop_epoch, weights_saved):
    """Stops training at the end of epoch `stop_epoch`, before or after its weights are saved."""
    if weights_saved:
        target, method = keras.callbacks.BackupAndRestore, "on_epoch_end"
    else:
        target, method = training._HistoryBackup, "on_epoch_end"
    original = getattr(target, method)

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == stop_epoch:
            raise Stopped

    monkeypatch.setattr(target, method, on_epoch_end)


def _record_epochs(monkeypatch):
    """The list that the epochs run from now on are appended to."""
    epochs_run = []
    original = training._HistoryBackup.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        epochs_run.append(epoch)
        original(self, epoch, logs)

    monkeypatch.setattr(training._HistoryBackup, "on_epoch_end", on_epoch_end)
    return epochs_run


@pytest.mark.slow
@pytest.mark.parametrize("weights_saved", [True, False])
def test_a_stopped_run_resumes_where_it_stopped(
    tmp_path, tfds_data_dir, monkeypatch, weights_saved
):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after_epoch(patch, 1, weights_saved)
        with pytest.raises(Stopped):
            training.train_model(epochs=3, output=str(out), **RUN)
    assert not (out / "model.keras").exists()
    stopped = json.loads((out / "backup" / "history.json").read_text())
    assert len(stopped["elbo"]) == 2  # epochs 0 and 1 were logged

    epochs_run = _record_epochs(monkeypatch)
    vae, metrics = training.train_model(epochs=3, output=str(out), **RUN)
    finished = 2 if weights_saved else 1  # epochs whose weights the backup held
    assert epochs_run == list(range(finished, 3))
    # The optimizer state came back with the weights: its step count goes on.
    assert int(vae.optimizer.iterations) == 3 * STEPS_PER_EPOCH
    history = metrics["history"]
    assert len(history["elbo"]) == 3
    # Epochs kept from the stopped run are its own figures; a re-run epoch is replaced.
    assert history["elbo"][:finished] == stopped["elbo"][:finished]
    assert json.loads((out / "metrics.json").read_text())["history"] == history
    # The backup goes once the run's files are written, and no hidden file is left.
    assert sorted(os.listdir(out)) == ["logs", "metrics.json", "model.keras", "samples.png"]


@pytest.mark.parametrize("weights_saved", [pytest.param(True, marks=pytest.mark.slow), False])
def test_a_resumed_run_trains_the_model_of_an_uninterrupted_one(
    tmp_path, tfds_data_dir, monkeypatch, weights_saved
):
    # Resumed at epoch 2 (or 1, re-run), the pipelines give the shuffles and
    # draws of those epochs, not of a first epoch: everything comes out equal.
    whole, whole_metrics = training.train_model(epochs=3, output=str(tmp_path / "a"), **RUN)
    out = tmp_path / "b"
    with monkeypatch.context() as patch:
        _stop_after_epoch(patch, 1, weights_saved)
        with pytest.raises(Stopped):
            training.train_model(epochs=3, output=str(out), **RUN)
    resumed, metrics = training.train_model(epochs=3, output=str(out), **RUN)
    for expected, actual in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)
    for part in ("history", "train", "test"):
        assert metrics[part] == whole_metrics[part], part


@pytest.mark.slow
def test_resumed_weights_are_the_saved_ones(tmp_path, tfds_data_dir, monkeypatch):
    out = tmp_path / "run"
    saved = {}
    original = keras.callbacks.BackupAndRestore.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        saved["weights"] = [w.copy() for w in self.model.get_weights()]
        raise Stopped

    with monkeypatch.context() as patch:
        patch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", on_epoch_end)
        with pytest.raises(Stopped):
            training.train_model(epochs=2, output=str(out), **RUN)
    restored = {}
    original_begin = keras.callbacks.BackupAndRestore.on_train_begin

    def on_train_begin(self, logs=None):
        original_begin(self, logs)
        restored["weights"] = self.model.get_weights()

    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_train_begin", on_train_begin)
    training.train_model(epochs=2, output=str(out), **RUN)
    for before, after in zip(saved["weights"], restored["weights"], strict=True):
        np.testing.assert_array_equal(before, after)


@pytest.mark.slow
def test_a_run_with_other_arguments_is_refused(tmp_path, tfds_data_dir, monkeypatch, capsys):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after_epoch(patch, 0, weights_saved=True)
        with pytest.raises(Stopped):
            training.train_model(epochs=2, output=str(out), **RUN)
    before = sorted(os.listdir(out / "backup"))
    args = ["train", "--latent-dim", "8", "--epochs", "2", "--batch-size", "100", "--seed", "3",
            "--train-split", "train[:500]", "--test-split", "test[:200]", "--quiet",
            "--output", str(out)]  # fmt: skip
    assert main(args) != 0
    error = capsys.readouterr().err
    assert "Expected the arguments of the stopped run" in error
    assert "Received: latent_dim=8 (the run had 4)" in error
    assert len(error.strip().splitlines()) == 1
    assert sorted(os.listdir(out / "backup")) == before
    # More epochs than the stopped run asked for are fine.
    _, metrics = training.train_model(epochs=3, output=str(out), **RUN)
    assert len(metrics["history"]["elbo"]) == 3 and metrics["config"]["epochs"] == 3


def test_a_run_with_another_prior_or_posterior_is_refused(tmp_path, tfds_data_dir, monkeypatch):
    run = {**RUN, "train_split": "train[:200]", "test_split": "test[:100]", "prior": "mog"}
    run["jit_compile"] = False  # XLA's compilation would take most of the time
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after_epoch(patch, 0, weights_saved=True)
        with pytest.raises(Stopped):
            training.train_model(epochs=2, output=str(out), **run)
    for changed, received in [
        ({"posterior": "iaf"}, "posterior='iaf' (the run had 'diagonal')"),
        ({"prior_components": 4}, "prior_components=4 (the run had 10)"),
        ({"prior": "standard"}, "prior='standard' (the run had 'mog')"),
        ({"prior": "vamp", "prior_components": 10}, "prior='vamp' (the run had 'mog')"),
    ]:
        with pytest.raises(ValueError, match="^Expected the arguments of the stopped run") as error:
            training.train_model(epochs=2, output=str(out), **{**run, **changed})
        assert received in str(error.value)
    # The default number of components, given, is the same run: it resumes (and
    # with the one epoch it finished, has nothing left to train).
    _, metrics = training.train_model(epochs=1, output=str(out), **{**run, "prior_components": 10})
    assert (metrics["config"]["prior"], metrics["config"]["prior_components"]) == ("mog", 10)
    assert not (out / "backup").exists()


@pytest.mark.slow
def test_a_backup_of_the_version_before_kl_warmup_resumes(tmp_path, tfds_data_dir, monkeypatch):
    # Before `kl_warmup_epochs`, the config had no such key and the model's
    # own weights were `sampler_state` alone (`beta` was not a weight).
    whole, _ = training.train_model(epochs=2, output=str(tmp_path / "a"), **RUN)
    out = tmp_path / "b"
    with monkeypatch.context() as patch:
        _stop_after_epoch(patch, 0, weights_saved=True)
        with pytest.raises(Stopped):
            training.train_model(epochs=2, output=str(out), **RUN)
    config = json.loads((out / "backup" / "config.json").read_text())
    del config["kl_warmup_epochs"]
    (out / "backup" / "config.json").write_text(json.dumps(config))
    (weights,) = (out / "backup").glob("**/*.weights.h5")
    with h5py.File(weights, "r+") as f:
        assert sorted(f["vars"]) == ["0", "1"]
        del f["vars/1"]
    resumed, metrics = training.train_model(epochs=2, output=str(out), **RUN)
    assert len(metrics["history"]["elbo"]) == 2 and resumed.beta == 1.0
    for expected, actual in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.slow
def test_fewer_epochs_than_the_stopped_run_finished_are_refused(
    tmp_path, tfds_data_dir, monkeypatch
):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after_epoch(patch, 1, weights_saved=True)
        with pytest.raises(Stopped):
            training.train_model(epochs=3, output=str(out), **RUN)
    message = r"^Expected epochs to be at least 2, .* Received: epochs=1$"
    with pytest.raises(ValueError, match=message):
        training.train_model(epochs=1, output=str(out), **RUN)
    # Exactly the finished epochs: nothing left to train, and the files are written.
    _, metrics = training.train_model(epochs=2, output=str(out), **RUN)
    assert len(metrics["history"]["elbo"]) == 2
    assert not (out / "backup").exists()


@pytest.mark.slow
def test_a_run_stopped_in_its_first_epoch_starts_over(tmp_path, tfds_data_dir, monkeypatch):
    class StopAtFirstBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise Stopped

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        original = training._TrainingBackup.callbacks
        patch.setattr(
            training._TrainingBackup,
            "callbacks",
            lambda self: [*original(self), StopAtFirstBatch()],
        )
        with pytest.raises(Stopped):
            training.train_model(epochs=2, output=str(out), **RUN)
    # Nothing was kept, so other arguments are fine.
    _, metrics = training.train_model(epochs=2, output=str(out), **{**RUN, "latent_dim": 3})
    assert metrics["config"]["latent_dim"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("stop_in", ["weights", "metadata"])
def test_a_run_stopped_while_its_backup_is_written_resumes(
    tmp_path, tfds_data_dir, monkeypatch, stop_in
):
    # A job killed while epoch 1's backup is being rewritten: the file being
    # written is cut short. Epoch 0's backup must still be there to resume from.
    out = tmp_path / "run"
    original_save_weights = keras.Model.save_weights
    original_dump, original_dumps = json.dump, json.dumps
    stop = {}

    def cut_short(path):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        raise Stopped

    def save_weights(self, filepath, *args, **kwargs):
        original_save_weights(self, filepath, *args, **kwargs)
        if stop.get("epoch") == 1 and stop_in == "weights":
            cut_short(filepath)

    def stop_at_metadata(value):
        if stop.get("epoch") == 1 and stop_in == "metadata" and set(value) == {"epoch", "batch"}:
            raise Stopped  # after the file was opened for writing, before it was written

    def dump(value, *args, **kwargs):
        stop_at_metadata(value)
        return original_dump(value, *args, **kwargs)

    def dumps(value, *args, **kwargs):
        stop_at_metadata(value)
        return original_dumps(value, *args, **kwargs)

    class Epoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            stop["epoch"] = epoch

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save_weights", save_weights)
        patch.setattr(json, "dump", dump)
        patch.setattr(json, "dumps", dumps)
        original = training._TrainingBackup.callbacks
        patch.setattr(
            training._TrainingBackup, "callbacks", lambda self: [Epoch(), *original(self)]
        )
        with pytest.raises(Stopped):
            training.train_model(epochs=3, output=str(out), **RUN)
    vae, metrics = training.train_model(epochs=3, output=str(out), **RUN)
    # Cut weights: epoch 1 runs again from epoch 0's backup. Cut metadata: the
    # weights of epoch 1 were already in place, and epoch 1 runs once more.
    epochs_trained = 3 if stop_in == "weights" else 4
    assert int(vae.optimizer.iterations) == epochs_trained * STEPS_PER_EPOCH
    assert len(metrics["history"]["elbo"]) == 3
    assert not (out / "backup").exists()


@pytest.mark.slow
def test_leftovers_of_a_killed_run_are_cleared(tmp_path, tfds_data_dir, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after_epoch(patch, 0, weights_saved=True)
        with pytest.raises(Stopped):
            training.train_model(epochs=2, output=str(out), **RUN)
    # Killed while removing the backup (renamed, not yet deleted) or after it
    # was gone but for its weights, and while writing model.keras and metrics.json.
    os.replace(out / "backup", out / ".backup.removed")
    (out / "backup").mkdir()
    for name in ("latest.weights.h5", "training_metadata.json"):  # all but config.json
        (out / ".backup.removed" / name).replace(out / "backup" / name)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])  # stands for the killed run
    ended.wait()
    tag = f"{ended.pid}-{process_namespace()}"
    stale = [f".model.keras.tmp-{'a' * 32}-{tag}.keras", f".metrics.json.tmp-{'b' * 32}-{tag}.json"]
    for name in [*stale, ".kept-by-the-user"]:
        (out / name).write_bytes(b"partial")
    epochs_run = _record_epochs(monkeypatch)
    training.train_model(epochs=2, output=str(out), **RUN)
    # Weights without the run's config are not resumed from: the run starts over.
    assert epochs_run == [0, 1]
    assert sorted(os.listdir(out)) == [
        ".kept-by-the-user", "logs", "metrics.json", "model.keras", "samples.png"
    ]  # fmt: skip
