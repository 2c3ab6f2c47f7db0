"""The output folder of `keras-vae train`: atomic files and a resumable state.

Its lock (one writer) is `keras_vae.utils.output_folder.RunLock`.
"""

import json
import math
import os
import re
import shutil

import keras
import numpy as np

from keras_vae.utils.checks import keras_archive_problem
from keras_vae.utils.output_folder import STATE_FILE, finished_epochs  # noqa: F401 (re-exported)
from keras_vae.utils.staged_path import (
    StagedPath,
    folder_entries,
    is_staged_name,
    listed,
    remove_path,
)

_EPOCH_WEIGHTS = re.compile(r"epoch-\d+\.keras")


def write_atomically(path, write, suffix=None):
    """Calls `write(tmp)` for a hidden file beside `path`, then renames it to `path`.

    A run stopped while writing, or a full disk, leaves the previous file (or
    none), never a partial one; a killed run's hidden file goes with the next
    write into the folder (`StagedPath`). The hidden name ends with `suffix`,
    by default `path`'s (Keras saves only to `.keras` names).
    """
    try:
        with StagedPath(path, os.path.splitext(path)[1] if suffix is None else suffix) as staged:
            write(staged.path)
            staged.publish()
    except OSError as e:  # name the file meant, not the hidden one (or none)
        raise OSError(e.errno, e.strerror or str(e), path) from None


def write_json(path, value):
    """Writes `value` as strict JSON (non-finite floats as `null`) to `path`, atomically."""

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(json_safe(value), f, indent=2, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())

    write_atomically(path, write)


def json_safe(value):
    """`value` with every non-finite float replaced by `None`, as strict JSON requires."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def changed_arguments(saved, config, ignore=()):
    """`"key=new (the run had old)"` for each key whose value differs, or `""`."""
    keys = sorted(k for k in set(saved) | set(config) if k not in ignore)
    return ", ".join(
        f"{k}={config.get(k)!r} (the run had {saved.get(k)!r})"
        for k in keys
        if saved.get(k) != config.get(k)
    )


class RunBackup:
    """`<output>/backup`: what lets a stopped `keras-vae train` resume exactly.

    After every epoch it holds the weights with the optimizer state (a
    `.keras` file named after the epoch) and `state.json`, which names that
    file and holds the run's arguments and per-epoch history. `state.json`
    is renamed into place last, so it commits the epoch as one unit: a run
    stopped at any point resumes from the last committed epoch, whose
    weights, history and epoch count agree. A run started with other
    arguments, or with fewer epochs than were finished, is refused instead of
    loading weights of another shape.

    Args:
        folder: str. The backup folder (`<output>/backup`).
        config: dict. The run's arguments, JSON-safe. A backup made with
            other values (the number of epochs aside) is refused.
    """

    def __init__(self, folder, config):
        self.folder = folder
        self.config = config
        self.history = {}
        self.epoch = 0  # epochs committed
        state = _read_state(folder)
        if state is None:
            self.remove()  # nothing to resume: clear what a stopped first epoch left
            return
        refusal = _refusal(state, config, os.path.dirname(folder))
        if refusal:
            raise ValueError(refusal)
        self.epoch = state["epoch"]
        self.history = state["history"]
        self._weights = os.path.join(folder, state["weights"])

    @property
    def resumed(self):
        """Whether a stopped run's state was found (training goes on from `epoch`)."""
        return self.epoch > 0

    def restore(self, model):
        """Loads the committed weights and optimizer state into a built `model`; returns the epoch.

        The callback does this when training begins (`fit` has built the
        model then); pass `initial_epoch=backup.epoch` to `fit`.
        """
        if self.resumed:
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(self._weights)
        return self.epoch

    def callback(self):
        """The callback that restores the state, then commits each finished epoch.

        Put it after the divergence check, so a diverged epoch is never committed.
        """
        return _CommitEpoch(self)

    def commit(self, model, epoch, logs):
        """Writes the weights after epoch `epoch` (0-based), then `state.json` naming them."""
        history = {key: values[:epoch] for key, values in self.history.items()}
        for key, value in (logs or {}).items():
            history.setdefault(key, []).append(float(value))
        name = f"epoch-{epoch + 1:05d}.keras"
        # A whole `.keras` archive rather than Keras's `.weights.h5`: it is built
        # in memory and written with plain file calls, so a full disk is one
        # OSError, where h5py writing in place crashed the process.
        write_atomically(os.path.join(self.folder, name), model.save)
        write_json(
            os.path.join(self.folder, STATE_FILE),
            {"config": self.config, "epoch": epoch + 1, "weights": name, "history": history},
        )
        self.history, self.epoch = history, epoch + 1
        for old in os.listdir(self.folder):
            if _EPOCH_WEIGHTS.fullmatch(old) and old != name:
                os.remove(os.path.join(self.folder, old))

    def remove(self):
        """Removes the backup (see `remove_backup`)."""
        remove_backup(self.folder)


def seed_backup(folder, config, output, finished):
    """Makes `folder` the backup of the finished run in `output`, to train it on.

    A backup that `RunBackup` resumes from the run's last epoch: its weights
    and optimizer state are the run's `model.keras` (saved by the same
    `Model.save` as a backup's epochs), its history that of `finished` (the
    run's `metrics.json`). The run then ends as one trained for all the
    epochs without a stop.

    Args:
        folder: str. The backup folder (`<output>/backup`), empty or absent.
        config: dict. The arguments of the run that trains on, JSON-safe.
        output: str. The finished run's folder.
        finished: dict. Its `metrics.json`.
    """
    source = os.path.join(output, "model.keras")
    problem = keras_archive_problem(source)
    if problem is not None:
        raise ValueError(
            f"Expected a readable model.keras in the finished run in {output} to train it "
            f"on (or --overwrite to start over). Received: {problem}"
        )
    remove_backup(folder)  # what a stop before the first commit left
    epoch = finished["config"]["epochs"]
    name = f"epoch-{epoch:05d}.keras"
    write_atomically(os.path.join(folder, name), lambda tmp: shutil.copyfile(source, tmp))
    write_json(
        os.path.join(folder, STATE_FILE),
        {"config": config, "epoch": epoch, "weights": name, "history": finished["history"]},
    )


def _read_state(folder):
    """The backup's `state.json`, or `None` without one; raises if it cannot be read."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            state = json.load(f)
        missing = {"config", "epoch", "history", "weights"} - set(state)
        if missing:
            raise KeyError(sorted(missing)[0])
        problem = keras_archive_problem(os.path.join(folder, state["weights"]))
        if problem is not None:
            raise ValueError(problem)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"Expected a readable backup in {folder} to resume the stopped run "
            f"(or --overwrite to start over). Received: {type(e).__name__}: {e}"
        ) from None
    return state


def _refusal(state, config, output):
    """Why a run of `config` cannot resume the stopped run `state` in `output`, or `None`."""
    changed = changed_arguments(state["config"], config, ignore=("epochs",))
    if changed:
        return (
            f"Expected the arguments of the stopped run in {output} to resume it "
            f"(or --overwrite to start over). Received: {changed}"
        )
    if config["epochs"] < state["epoch"]:
        return (
            f"Expected epochs to be at least {state['epoch']}, the epochs the stopped run "
            f"in {output} finished. Received: epochs={config['epochs']}"
        )
    return None


def remove_backup(folder):
    """Removes a run's backup folder (see `remove_folder`), if it holds only a backup's files.

    Raises:
        ValueError: if `folder` is a file, or holds anything `RunBackup` does
            not write (a user's own `backup` folder in the output folder).
    """
    if os.path.exists(folder) and not os.path.isdir(folder):
        held = "it is a file"
    else:
        _, others = folder_entries(folder, _is_backup_file)
        if not others:
            remove_folder(folder)
            return
        held = f"it holds {listed(others)}"
    raise ValueError(
        f"Expected {folder} to hold only a run's backup (state.json, epoch-*.keras), which "
        f"train removes when a run starts over or ends. Received: {held}"
    )


def _is_backup_file(name):
    return name == STATE_FILE or bool(_EPOCH_WEIGHTS.fullmatch(name)) or is_staged_name(name)


def remove_folder(folder):
    """Removes `folder`, renamed away first: a stop meanwhile leaves it whole or gone."""
    parent, name = os.path.split(os.path.abspath(folder))
    trash = os.path.join(parent, f".{name}.removed")
    remove_path(trash)
    if os.path.isdir(folder):
        os.replace(folder, trash)  # a symbolic link is moved, not what it points to
    remove_path(trash)


def resumable(folder, config):
    """Whether the backup `folder` holds a stopped run that `config` resumes.

    That is, a readable `state.json` whose arguments are `config`'s (the
    number of epochs aside, which may be raised).
    """
    try:
        state = _read_state(folder)
    except ValueError:
        return False  # unreadable: --overwrite starts over
    return state is not None and _refusal(state, config, os.path.dirname(folder)) is None


class _CommitEpoch(keras.callbacks.Callback):
    def __init__(self, backup):
        super().__init__()
        self.backup = backup

    def on_train_begin(self, logs=None):
        self.backup.restore(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.backup.commit(self.model, epoch, logs)


class TrainingDivergedError(ValueError):
    """Raised when a training epoch ends with a non-finite loss or non-finite weights."""


class StopIfDiverged(keras.callbacks.Callback):
    """Stops `fit` when an epoch ends with a non-finite figure or weight.

    It raises at the end of the epoch, before the callbacks after it (the
    backup) see the epoch, so no non-finite weights are ever written: the
    backup keeps the last finite epoch and a finished model stays as it was.

    Args:
        advice: str. What to try, appended to the error.
    """

    def __init__(self, advice=""):
        super().__init__()
        self.advice = advice

    def on_epoch_end(self, epoch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not np.isfinite(float(v))}
        weights = (w.numpy() for w in self.model.weights)
        if not bad and all(np.isfinite(w).all() for w in weights):
            return
        self.model.stop_training = True
        key = "loss" if "loss" in bad else min(bad, default=None)
        received = f"{key}={float(bad[key])}" if key else ""
        raise TrainingDivergedError(
            f"Expected training to stay finite. Received: "
            f"{received or 'non-finite weights'} in epoch {epoch + 1}{self.advice}"
        )
