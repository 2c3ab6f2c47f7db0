"""`keras-vae train` resumes a stopped run, keeps one writer per folder and never loses a model."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from benchmarks import reliability
from keras_vae.cli.main import main
from keras_vae.models.presets import build_vae
from keras_vae.tasks import run_folder, training
from keras_vae.tasks.run_folder import RunBackup, TrainingDivergedError
from keras_vae.utils.output_folder import FolderInUseError, RunLock
from keras_vae.utils.staged_path import StagedPath, process_namespace

RUN = reliability.TRAIN_RUN
STEPS_PER_EPOCH = 5  # train[:500] in batches of 100


class Stopped(BaseException):
    """Stands for a Ctrl+C: an exception that unwinds (a kill is tested in a child process)."""


def _stop_after_commit(monkeypatch, stop_epoch):
    """Stops training right after epoch `stop_epoch` (0-based) is committed to the backup."""
    original = RunBackup.commit

    def commit(self, model, epoch, logs):
        original(self, model, epoch, logs)
        if epoch == stop_epoch:
            raise Stopped

    monkeypatch.setattr(RunBackup, "commit", commit)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tfds_data_dir):
    """A run never stopped: its folder, write points and outcome.

    Made in this process, its write points counted by the patches the killed
    children use (`reliability.patch_write_points`, with nothing to kill),
    undone afterwards: a child process would only add TensorFlow's start-up.
    """
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    publish = StagedPath.publish
    with pytest.MonkeyPatch.context() as patch:
        for owner, name in (
            (StagedPath, "publish"),
            (run_folder, "remove_folder"),
        ):
            patch.setattr(owner, name, getattr(owner, name))  # put back on leaving
        points = reliability.patch_write_points()
        training.train_model(output=str(out), **RUN)
    assert StagedPath.publish is publish  # later runs write without counting
    return out, points, reliability.train_outcome(out)


def test_a_run_killed_at_a_write_and_again_while_resuming_ends_as_the_uninterrupted_one(
    uninterrupted, tmp_path
):
    # Killed between the epoch's weights and the state that names them (the
    # resumed run must neither skip nor repeat epoch 2); the run resuming it is
    # killed after the model, before its metrics (the next only evaluates
    # again). A child process per kill, then the run that finishes, in this
    # process: one in-process run instead of one after each kill.
    _, points, reference = uninterrupted
    out = tmp_path / "run"
    for point in ("publish epoch-00002.keras", "publish model.keras"):
        assert point in points
        code, _ = reliability.run_child("train", out, point, "after")
        assert code == reliability.KILLED, f"{point}: exit {code}"
    training.train_model(output=str(out), **RUN)
    assert reliability.same_train_outcome(reliability.train_outcome(out), reference)
    assert not (out / "backup").exists()
    assert reliability.hidden_files(out) == []


@pytest.mark.slow
def test_a_run_killed_at_any_write_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path):
    _, points, reference = uninterrupted
    assert sum(p.startswith("publish epoch-") for p in points) == RUN["epochs"]
    for index in range(len(points)):
        for when in ("before", "after"):
            problem = reliability.check_train_kill(
                index, when, str(tmp_path), reference,
                lambda out: training.train_model(output=out, **RUN),
            )  # fmt: skip
            assert problem is None, points[index]


def test_a_resumed_run_restores_the_committed_state(tmp_path, tfds_data_dir, monkeypatch):
    out = tmp_path / "run"
    committed = {}
    original = RunBackup.commit

    def commit(self, model, epoch, logs):
        original(self, model, epoch, logs)
        committed["weights"] = [w.copy() for w in model.get_weights()]
        raise Stopped

    with monkeypatch.context() as patch:
        patch.setattr(RunBackup, "commit", commit)
        with pytest.raises(Stopped):
            training.train_model(output=str(out), **RUN)
    state = json.loads((out / "backup" / "state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]["elbo"]) == 1
    assert sorted(os.listdir(out / "backup")) == ["epoch-00001.keras", "state.json"]

    backup = RunBackup(str(out / "backup"), run_folder.json_safe(state["config"]))
    assert backup.resumed and backup.history == state["history"]
    restored = build_vae(
        architecture="mlp", input_shape=(28, 28, 1), latent_dim=RUN["latent_dim"], seed=0
    )
    restored.compile(optimizer="adam")
    restored.build((None, 28, 28, 1))
    assert backup.restore(restored) == 1
    for before, after in zip(committed["weights"], restored.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    # The optimizer state came back with the weights: its step count goes on.
    assert int(restored.optimizer.iterations) == STEPS_PER_EPOCH


# A process that takes an output folder's lock and holds it until killed.
HOLDER = (
    "import sys, time\n"
    "from keras_vae.utils.output_folder import RunLock\n"
    "RunLock(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


def _locked_by_another_process(folder):
    """A child process (without TensorFlow) that holds `folder`'s lock; kill it to let go."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_folder_in_use_is_refused_before_tensorflow_loads_and_a_stale_lock_is_not(tmp_path):
    out = tmp_path / "run"
    holder = _locked_by_another_process(out)
    try:
        script = (
            "import sys\n"
            "from keras_vae.cli.main import main\n"
            f"code = main(['train', *{reliability.TRAIN_ARGV!r}, '--output', {str(out)!r}])\n"
            "assert 'tensorflow' not in sys.modules\n"
            "sys.exit(code)\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == (
            "keras-vae train: error: Expected an output folder that no other run is writing "
            f"to. Received: output={str(out)!r}, in use by the run of process {holder.pid} "
            "(wait for it to end, or choose another --output)"
        )
        with pytest.raises(FolderInUseError):
            RunLock(str(out)).acquire()
    finally:
        holder.kill()
        holder.wait()
    # The killed holder's lock file is left, holding its PID, but no lock.
    assert (out / RunLock.NAME).read_text() == str(holder.pid)
    with RunLock(str(out)):
        assert (out / RunLock.NAME).read_text() == str(os.getpid())


def test_the_lock_is_re_entrant_in_its_process_and_leaves_no_folder_it_made_empty(tmp_path):
    import fcntl

    out = tmp_path / "new" / "run"

    def locked_elsewhere():
        with open(out / RunLock.NAME) as f:  # another open file: as another process would
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False

    with RunLock(str(out)):
        with RunLock(str(out)):  # as train_model does inside keras-vae train
            assert locked_elsewhere()
        assert locked_elsewhere()  # the outer holder still has it
    assert not (tmp_path / "new").exists()  # nothing was written: both folders go
    with RunLock(str(out)):
        (out / "metrics.json").write_text("{}")
    assert sorted(os.listdir(out)) == [RunLock.NAME, "metrics.json"]
    assert not locked_elsewhere()


def test_two_runs_started_together_leave_one_run_which_a_signal_stops_with_one_line(
    tmp_path, tfds_data_dir
):
    # Two processes of the same command line but the seed, on one folder: one
    # is refused; the other runs until SIGINT stops it after an epoch, then the
    # same arguments resume it to the end. One child process stands for both
    # the winner of the race and the run stopped by a signal, which each took
    # a child of their own (TensorFlow's start-up, 4-5 CPU s, each time).
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "keras_vae.cli.main", "train", *reliability.TRAIN_ARGV,
            "--epochs", "50", "--output", str(out)]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = {
        seed: subprocess.Popen(
            argv + ["--seed", str(seed)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=reliability.default_sigint,
        )
        for seed in (1, 2)
    }
    try:
        # The refused run ends first: the winner holds the folder until it is stopped.
        deadline = time.monotonic() + 120
        while all(run.poll() is None for run in runs.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(run.poll() is not None for run in runs.values()), "neither run ended"
        loser = next(seed for seed, run in runs.items() if run.poll() is not None)
        winner = 3 - loser
        code, refused = runs[loser].wait(), runs[loser].stderr.read()
        assert code == 1, refused
        assert "in use by the run of process" in refused
        assert reliability.one_line_failure(1, refused) is None
        while not (out / "backup" / "state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        run = runs[winner]
        assert run.poll() is None, run.stderr.read()
        run.send_signal(signal.SIGINT)
        code, stderr = run.wait(timeout=60), run.stderr.read()
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    assert code == 128 + signal.SIGINT
    done = run_folder.finished_epochs(str(out))
    assert 1 <= done < 50
    lines = [line for line in stderr.splitlines() if not reliability.start_up_noise(line)]
    assert lines == [f"keras-vae train: stopped after epoch {done}; run the same command to resume"]
    # The folder holds the winner's run alone, which its arguments finish (here
    # with the epochs it had done: nothing is left to train).
    state = json.loads((out / "backup" / "state.json").read_text())
    assert (state["config"]["seed"], state["epoch"]) == (winner, done)
    resume = ["train", *reliability.TRAIN_ARGV, "--epochs", str(done), "--seed", str(winner)]
    assert main([*resume, "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["seed"] == winner and len(metrics["history"]["elbo"]) == done
    assert metrics["history"] == state["history"] and not (out / "backup").exists()


def test_a_finished_run_is_kept_from_other_arguments_and_from_divergence(
    uninterrupted, tmp_path, capsys
):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted[0], out)
    files = {name: (out / name).read_bytes() for name in ("model.keras", "metrics.json")}
    argv = ["train", *reliability.TRAIN_ARGV, "--learning-rate", "1e30", "--output", str(out)]
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        f"keras-vae train: error: Expected the arguments of the finished run in {out} (epochs "
        "may be raised to train it on), or --overwrite to replace it. Received: "
        "learning_rate=1e+30 (the run had 0.001)"
    )
    # With --overwrite the run goes ahead, diverges, and stops before writing anything.
    assert main([*argv, "--overwrite"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("keras-vae train: error: Expected training to stay finite. Received: ")
    assert "in epoch 1; try a lower --learning-rate (this run had 1e+30) or --clipnorm" in error
    assert {name: (out / name).read_bytes() for name in files} == files
    assert not (out / "backup").exists()  # epoch 1 diverged: nothing was committed


def test_a_finished_run_trains_on_to_the_uninterrupted_result(uninterrupted, tmp_path, capsys):
    # A run of 1 epoch, then the same command with --epochs 2: it used to be refused
    # (fewer epochs in its config), and the same command again retrained it from scratch.
    _, _, reference = uninterrupted
    out = tmp_path / "run"
    argv = ["train", *reliability.TRAIN_ARGV, "--output", str(out)]
    epochs = argv.index("--epochs") + 1
    assert argv[epochs] == str(RUN["epochs"]) == "2"
    argv[epochs] = "1"
    assert main(argv) == 0
    argv[epochs] = "2"
    assert main([a for a in argv if a != "--quiet"]) == 0
    assert f"Resuming the finished run in {out} after epoch 1" in capsys.readouterr().out
    assert reliability.same_train_outcome(reliability.train_outcome(out), reference)
    assert not (out / "backup").exists() and reliability.hidden_files(out) == []
    # The same command again has nothing to train: the files stay as they are.
    files = {name: (out / name).read_bytes() for name in ("model.keras", "metrics.json")}
    assert main([a for a in argv if a != "--quiet"]) == 0
    assert "finished its 2 epochs: nothing to train" in capsys.readouterr().out
    assert {name: (out / name).read_bytes() for name in files} == files
    argv[epochs] = "1"
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        "keras-vae train: error: Expected epochs to be at least 2, the epochs the finished run "
        f"in {out} trained (or --overwrite to replace it). Received: epochs=1"
    )


def test_a_finished_run_with_a_damaged_model_is_not_trained_on(uninterrupted, tmp_path, capsys):
    # Its model.keras was copied into the backup unread: the run then failed with a
    # BadZipFile traceback, also with --overwrite, until the backup was removed by hand.
    out = tmp_path / "run"
    shutil.copytree(uninterrupted[0], out)
    model = out / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    argv = ["train", *reliability.TRAIN_ARGV, "--output", str(out)]
    argv[argv.index("--epochs") + 1] = "3"
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        f"keras-vae train: error: Expected a readable model.keras in the finished run in {out} "
        f"to train it on (or --overwrite to start over). Received: model={str(model)!r}, not a "
        "valid .keras file (not a zip archive: truncated, or another format)"
    )
    assert not (out / "backup").exists()
    # A backup whose weights are damaged is refused in one line too (--overwrite starts over).
    shutil.copytree(uninterrupted[0], out, dirs_exist_ok=True)
    (out / "backup").mkdir()
    (out / "backup" / "epoch-00002.keras").write_bytes(b"PK")
    state = {"config": {}, "epoch": 2, "weights": "epoch-00002.keras", "history": {}}
    (out / "backup" / "state.json").write_text(json.dumps(state))
    assert main(argv) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(
        f"keras-vae train: error: Expected a readable backup in {out / 'backup'}"
    )
    assert error.endswith(
        "not a valid .keras file (not a zip archive: truncated, or another format)"
    )


def test_a_finished_run_stopped_while_training_on_resumes(uninterrupted, tmp_path, monkeypatch):
    # Stopped after its second epoch, the run resumes from the backup, not from the
    # finished run's model; the finished run's files stay until the new ones replace them.
    _, _, reference = uninterrupted
    out = tmp_path / "run"
    training.train_model(output=str(out), **{**RUN, "epochs": 1})
    finished = (out / "metrics.json").read_bytes()
    with monkeypatch.context() as patch:
        _stop_after_commit(patch, 1)
        with pytest.raises(Stopped):
            training.train_model(output=str(out), **RUN)
    assert json.loads((out / "backup" / "state.json").read_text())["epoch"] == 2
    assert (out / "metrics.json").read_bytes() == finished
    training.train_model(output=str(out), **RUN)
    assert reliability.same_train_outcome(reliability.train_outcome(out), reference)


def test_divergence_keeps_the_last_finite_epoch(tmp_path, tfds_data_dir, monkeypatch):
    # The learning rate jumps after the first epoch: epoch 1 is finite, epoch 2 is not.
    out = tmp_path / "run"
    original = RunBackup.commit

    def commit(self, model, epoch, logs):
        original(self, model, epoch, logs)
        model.optimizer.learning_rate.assign(1e30)

    monkeypatch.setattr(RunBackup, "commit", commit)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 2; try a lower"):
        training.train_model(output=str(out), **RUN)
    state = json.loads((out / "backup" / "state.json").read_text())
    assert state["epoch"] == 1
    assert all(np.isfinite(v).all() for v in state["history"].values())
    kept = keras.saving.load_model(out / "backup" / state["weights"])
    assert all(np.isfinite(w).all() for w in kept.get_weights())
    assert not (out / "model.keras").exists()


def test_a_run_with_another_prior_or_posterior_is_refused(tmp_path, tfds_data_dir, monkeypatch):
    run = {**RUN, "train_split": "train[:200]", "test_split": "test[:100]", "prior": "mog"}
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after_commit(patch, 0)
        with pytest.raises(Stopped):
            training.train_model(output=str(out), **run)
    for changed, received in [
        ({"posterior": "iaf"}, "posterior='iaf' (the run had 'diagonal')"),
        ({"prior_components": 4}, "prior_components=4 (the run had 10)"),
        ({"prior": "standard"}, "prior='standard' (the run had 'mog')"),
        ({"prior": "vamp", "prior_components": 10}, "prior='vamp' (the run had 'mog')"),
    ]:
        with pytest.raises(ValueError, match="^Expected the arguments of the stopped run") as error:
            training.train_model(output=str(out), **{**run, **changed})
        assert received in str(error.value)
    # The default number of components, given, is the same run: it resumes (and
    # with the one epoch it finished, has nothing left to train).
    _, metrics = training.train_model(
        output=str(out), **{**run, "epochs": 1, "prior_components": 10}
    )
    assert (metrics["config"]["prior"], metrics["config"]["prior_components"]) == ("mog", 10)
    assert not (out / "backup").exists()


def test_a_stopped_overwrite_resumes_when_the_same_command_runs_again(
    tmp_path, tfds_data_dir, monkeypatch
):
    # The stop line says "run the same command to resume"; with --overwrite the
    # backup was removed, and the run started over.
    run = {**RUN, "train_split": "train[:200]", "test_split": "test[:100]"}
    out = tmp_path / "run"
    training.train_model(output=str(out), **run)  # a finished run
    changed = {**run, "beta": 0.5}
    with monkeypatch.context() as patch:
        _stop_after_commit(patch, 0)
        with pytest.raises(Stopped):
            training.train_model(output=str(out), overwrite=True, **changed)
    committed = []
    original = RunBackup.commit

    def commit(self, model, epoch, logs):
        committed.append(epoch)
        original(self, model, epoch, logs)

    with monkeypatch.context() as patch:
        patch.setattr(RunBackup, "commit", commit)
        _, metrics = training.train_model(output=str(out), overwrite=True, **changed)
    assert committed == [1] and metrics["config"]["beta"] == 0.5
    assert len(metrics["history"]["elbo"]) == 2 and not (out / "backup").exists()
    # A stopped run whose backup cannot be read starts over, as --overwrite's refusal says.
    with monkeypatch.context() as patch:
        _stop_after_commit(patch, 0)
        with pytest.raises(Stopped):
            training.train_model(output=str(out), overwrite=True, **run)
    (out / "backup" / "epoch-00001.keras").unlink()
    committed.clear()
    with monkeypatch.context() as patch:
        patch.setattr(RunBackup, "commit", commit)
        training.train_model(output=str(out), overwrite=True, **run)
    assert committed == [0, 1]


def test_a_backup_that_cannot_be_read_is_one_line(tmp_path, tfds_data_dir, capsys):
    out = tmp_path / "run"
    (out / "backup").mkdir(parents=True)
    (out / "backup" / "state.json").write_text('{"epoch": 1, "weights": "epoch-00001.keras"')
    assert main(["train", *reliability.TRAIN_ARGV, "--output", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(
        f"keras-vae train: error: Expected a readable backup in {out / 'backup'} to resume the "
        "stopped run (or --overwrite to start over). Received: JSONDecodeError"
    )
    assert "\n" not in error


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_backup_folder_of_the_users_own_is_never_removed(
    tmp_path, tfds_data_dir, capsys, overwrite
):
    out = tmp_path / "project"
    (out / "backup" / "photos").mkdir(parents=True)
    (out / "backup" / "notes.txt").write_text("kept")
    (out / "backup" / "epoch-00001.keras").write_text("")  # a backup's name does not make it one
    argv = ["train", *reliability.TRAIN_ARGV, "--output", str(out)]
    assert main(argv + ["--overwrite"] * overwrite) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        f"keras-vae train: error: Expected {out / 'backup'} to hold only a run's backup "
        "(state.json, epoch-*.keras), which train removes when a run starts over or ends. "
        "Received: it holds 'notes.txt', 'photos'"
    )
    assert sorted(os.listdir(out / "backup")) == ["epoch-00001.keras", "notes.txt", "photos"]
    assert sorted(os.listdir(out)) == [".keras-vae.lock", "backup"]


@pytest.mark.parametrize("name", ["model.keras", "samples.png"])
def test_a_model_or_picture_of_the_users_own_is_not_replaced(tmp_path, tfds_data_dir, name):
    out = tmp_path / "project"
    out.mkdir()
    (out / name).write_text("mine")
    with pytest.raises(ValueError) as e:
        training.train_model(output=str(out), **RUN)
    assert str(e.value) == (
        f"Expected {out} to hold a keras-vae run or none: train writes {name} there (or "
        f"--overwrite to replace it). Received: a {name} and no run's metrics.json or backup"
    )
    assert (out / name).read_text() == "mine"
    assert sorted(os.listdir(out)) == sorted([".keras-vae.lock", name])


def test_a_backup_that_is_a_link_loses_the_link_only(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "state.json").write_text("{}")
    link = tmp_path / "run" / "backup"
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    run_folder.remove_backup(str(link))
    assert os.listdir(tmp_path / "run") == []  # no link left at a hidden name
    assert os.listdir(elsewhere) == ["state.json"]


@pytest.mark.slow
def test_fewer_epochs_than_the_stopped_run_finished_are_refused(
    tmp_path, tfds_data_dir, monkeypatch
):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after_commit(patch, 1)
        with pytest.raises(Stopped):
            training.train_model(output=str(out), **{**RUN, "epochs": 3})
    message = r"^Expected epochs to be at least 2, .* Received: epochs=1$"
    with pytest.raises(ValueError, match=message):
        training.train_model(output=str(out), **{**RUN, "epochs": 1})
    # Exactly the finished epochs: nothing left to train, and the files are written.
    vae, metrics = training.train_model(output=str(out), **RUN)
    assert len(metrics["history"]["elbo"]) == 2
    assert int(vae.optimizer.iterations) == 2 * STEPS_PER_EPOCH
    assert not (out / "backup").exists()


@pytest.mark.slow
def test_leftovers_of_a_killed_run_are_cleared(tmp_path, tfds_data_dir, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        _stop_after_commit(patch, 0)
        with pytest.raises(Stopped):
            training.train_model(output=str(out), **RUN)
    # Killed while removing a backup (renamed, not yet deleted), and while
    # writing model.keras and metrics.json.
    shutil.copytree(out / "backup", out / ".backup.removed")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])  # stands for the killed run
    ended.wait()
    tag = f"{ended.pid}-{process_namespace()}"
    stale = [f".model.keras.tmp-{'a' * 32}-{tag}.keras", f".metrics.json.tmp-{'b' * 32}-{tag}.json"]
    for name in [*stale, ".kept-by-the-user"]:
        (out / name).write_bytes(b"partial")
    _, metrics = training.train_model(output=str(out), **RUN)
    assert len(metrics["history"]["elbo"]) == 2
    assert sorted(os.listdir(out)) == [
        ".kept-by-the-user", ".keras-vae.lock", "logs", "metrics.json", "model.keras",
        "samples.png",
    ]  # fmt: skip


# SIGINT: test_two_runs_started_together_leave_one_run_which_a_signal_stops_with_one_line.
@pytest.mark.parametrize("signum", [pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_signal_stops_train_with_one_line(tmp_path, tfds_data_dir, signum):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "keras_vae.cli.main", "train", *reliability.TRAIN_ARGV,
            "--epochs", "50", "--output", str(out)]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=reliability.default_sigint
    )
    deadline = time.monotonic() + 120
    while not (out / "backup" / "state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    run.send_signal(signum)
    code, stderr = run.wait(timeout=60), run.stderr.read()
    assert code == 128 + signum
    done = run_folder.finished_epochs(str(out))
    assert 1 <= done < 50
    lines = [line for line in stderr.splitlines() if not reliability.start_up_noise(line)]
    assert lines == [f"keras-vae train: stopped after epoch {done}; run the same command to resume"]


# A start-up whose code swallows every exception, as native import code may (pybind11
# turned one into an ImportError; another time the stop was lost and training ran).
SWALLOWING_START_UP = (
    "import sys, time\n"
    "from keras_vae.cli import main as cli\n"
    "def import_tensorflow_quietly():\n"
    "    print('importing', flush=True)\n"
    "    end = time.monotonic() + 20\n"
    "    while time.monotonic() < end:\n"
    "        try:\n"
    "            time.sleep(0.01)\n"
    "        except BaseException:\n"
    "            pass\n"
    "cli.import_tensorflow_quietly = import_tensorflow_quietly\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_during_start_up_ends_the_process_whatever_the_code_catches(tmp_path, signum):
    out = tmp_path / "run"
    argv = [sys.executable, "-c", SWALLOWING_START_UP, "train", "--output", str(out)]
    run = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=reliability.default_sigint,
    )  # fmt: skip
    assert run.stdout.readline() == "importing\n"
    run.send_signal(signum)
    code, stderr = run.wait(timeout=10), run.stderr.read()
    assert code == 128 + signum
    assert stderr.splitlines() == [
        "keras-vae train: stopped before training began; run the same command to start again"
    ]
    assert not out.exists()


@pytest.mark.parametrize("delay", [0.0, 0.8])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_while_tensorflow_loads_is_one_line_and_leaves_no_folder(tmp_path, signum, delay):
    # SIGTERM killed the process without a word, leaving the folder its lock made;
    # Ctrl+C imported TensorFlow again to word its line, printing its start-up log. An
    # exception raised inside the import came out as an ImportError, or was swallowed.
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "keras_vae.cli.main", "train", *reliability.TRAIN_ARGV,
            "--output", str(out)]  # fmt: skip
    run = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, preexec_fn=reliability.default_sigint
    )
    deadline = time.monotonic() + 60
    while not (out / ".keras-vae.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)  # into TensorFlow's import, which takes seconds
    run.send_signal(signum)
    signalled = time.monotonic()
    code, stderr = run.wait(timeout=60), run.stderr.read()
    assert code == 128 + signum and time.monotonic() - signalled < 5
    assert stderr.splitlines() == [
        "keras-vae train: stopped before training began; run the same command to start again"
    ]
    assert not out.exists()


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, tfds_data_dir):
    with reliability.tmpfs("2m") as folder:
        if folder is None:
            pytest.skip("a tmpfs cannot be mounted here (needs root)")
        out = os.path.join(folder, "run")
        code, stderr = reliability.cli(["train", *reliability.TRAIN_ARGV, "--output", out])
        assert reliability.one_line_failure(code, stderr) is None and code == 1
        assert "No space left on device" in stderr
        assert reliability.hidden_files(folder) == []
        assert not os.path.exists(os.path.join(out, "model.keras"))
