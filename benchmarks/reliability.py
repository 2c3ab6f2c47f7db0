"""Fault injection: `train` and `export` killed at each of their writes, then run again.

Every file `keras-vae train` and `keras-vae export` write goes through one
rename (`StagedPath.publish`) and every folder they remove through
`remove_folder`; those are the write points. A child process runs the
command with the k-th write point patched to end the process at once
(`os._exit`, as SIGKILL or a power cut would: no clean-up runs), before or
after the rename. The command is then run again, uninterrupted, and its
result compared with that of a run that was never stopped:

- train: `metrics.json` (history, train and test figures) and the weights of
  `model.keras` are equal, and no hidden file is left in the folder.
- export: every published SavedModel version has its `.tflite` file (the one
  whose hash the export recorded), and no hidden file is left.

Besides, `train` and `export` are run onto a full disk and into a read-only
folder (tmpfs mounts; needs root, else skipped): each must end with one line
on stderr, a non-zero exit, no traceback and the previous files intact.

Run: `python -m benchmarks.reliability` (add `--record` to append the counts
to `benchmarks/RESULTS.md`).
"""

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

KILLED = 137
# A tiny run: what is checked is which files exist and agree, not the model.
TRAIN_RUN = dict(
    architecture="mlp", latent_dim=4, batch_size=100, seed=3, epochs=2,
    train_split="train[:500]", test_split="test[:200]", verbose=0, jit_compile=False,
)  # fmt: skip
TRAIN_ARGV = [
    "--architecture", "mlp", "--latent-dim", "4", "--batch-size", "100", "--seed", "3",
    "--epochs", "2", "--train-split", "train[:500]", "--test-split", "test[:200]",
    "--no-jit-compile", "--quiet",
]  # fmt: skip


def patch_write_points(kill_at=None, when="after", seen=None):
    """Counts the write points from now on; ends the process at point `kill_at`.

    Args:
        kill_at: int, str or `None`. The 0-based write point to end the
            process at, or the description of the first such point
            (`"publish model.keras"`).
        when: `"before"` or `"after"` the rename (or the removal).
        seen: list or `None`. Each point's description is appended to it.
    """
    from keras_vae.tasks import run_folder
    from keras_vae.utils import staged_path

    counter = itertools.count()
    seen = [] if seen is None else seen

    def wrap(original, describe):
        def patched(*args, **kwargs):
            k, description = next(counter), describe(*args)
            seen.append(description)
            kill = k == kill_at or (description == kill_at and description not in seen[:-1])
            if kill and when == "before":
                os._exit(KILLED)
            result = original(*args, **kwargs)
            if kill and when == "after":
                os._exit(KILLED)
            return result

        return patched

    staged_path.StagedPath.publish = wrap(
        staged_path.StagedPath.publish, lambda self: f"publish {os.path.basename(self.target)}"
    )
    remove = wrap(run_folder.remove_folder, lambda folder: f"remove {os.path.basename(folder)}")
    run_folder.remove_folder = remove  # remove_backup's too
    return seen


def _child(args):
    """What a child process runs: the command, killed at a write point or not."""
    from keras_vae.cli.main import start_up_as_the_executable

    # As `keras-vae` starts: scikit-learn and matplotlib kept out, the imports frozen out of
    # garbage collection (2 CPU s less per child).
    start_up_as_the_executable()
    kill_at = int(args.kill_at) if args.kill_at and args.kill_at.isdigit() else args.kill_at
    seen = patch_write_points(kill_at, args.when)
    if args.command == "train":
        from keras_vae.tasks import train_model

        train_model(output=args.output, **TRAIN_RUN)
    else:
        from keras_vae.export import export_model

        report = export_model(args.model, saved_model_base=args.output, tflite_path=args.tflite)
        assert report["ok"], report
    with open(args.points_file, "w") as f:
        json.dump(seen, f)


def run_child(command, output, kill_at=None, when="after", model=None, tflite=None):
    """Runs `command` in a child process killed at write point `kill_at`.

    Returns `(returncode, points)`: the descriptions of the write points the
    child passed (`None` if it was killed before listing them).
    """
    with tempfile.NamedTemporaryFile("r", suffix=".json") as points:
        argv = [
            sys.executable, "-m", "benchmarks.reliability", "--child", command,
            "--output", str(output), "--when", when, "--points-file", points.name,
        ]  # fmt: skip
        if kill_at is not None:
            argv += ["--kill-at", str(kill_at)]
        if model is not None:
            argv += ["--model", str(model), "--tflite", str(tflite)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=_repo_root())
        if done.returncode not in (0, KILLED):
            raise RuntimeError(f"{command} child failed:\n{done.stderr[-3000:]}")
        text = points.read()
        return done.returncode, (json.loads(text) if text else None)


def hidden_files(folder):
    """The hidden files and folders below `folder`, the run lock aside."""
    found = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if name.startswith(".") and name != ".keras-vae.lock":
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)


def train_outcome(output):
    """What a finished train run left: `(metrics without config, weights)`."""
    from keras_vae.tasks import load_model

    with open(os.path.join(output, "metrics.json")) as f:
        metrics = json.load(f)
    model = load_model(os.path.join(output, "model.keras"))
    return {k: metrics[k] for k in ("history", "train", "test")}, model.get_weights()


def same_train_outcome(a, b):
    import numpy as np

    (metrics_a, weights_a), (metrics_b, weights_b) = a, b
    return metrics_a == metrics_b and all(
        np.array_equal(x, y) for x, y in zip(weights_a, weights_b, strict=True)
    )


def check_train_kill(point, when, workdir, reference, rerun):
    """Kills train at `point`, runs it again with `rerun(output)`; returns what went wrong."""
    output = os.path.join(workdir, f"train-{point}-{when}")
    code, _ = run_child("train", output, point, when)
    if code != KILLED:
        return f"point {point} {when}: the run was not killed (exit {code})"
    rerun(output)
    problems = []
    if not same_train_outcome(train_outcome(output), reference):
        problems.append("the resumed run's metrics or weights differ from an uninterrupted run's")
    if os.path.exists(os.path.join(output, "backup")):
        problems.append("the backup was left")
    if hidden_files(output):
        problems.append(f"hidden files left: {hidden_files(output)}")
    return f"point {point} {when}: " + "; ".join(problems) if problems else None


def export_state(base, tflite):
    """Problems with what an export left: a version without its `.tflite`, hidden files."""
    problems = []
    versions = [n for n in os.listdir(base) if n.isdigit()] if os.path.isdir(base) else []
    if versions and not os.path.exists(tflite):
        problems.append(f"version(s) {versions} published without {os.path.basename(tflite)}")
    if os.path.isdir(base) and hidden_files(base):
        problems.append(f"hidden files left: {hidden_files(base)}")
    return problems


def check_export_kill(point, when, workdir, model, rerun):
    """Kills export at `point`, runs it again with `rerun(base, tflite)`; returns the problems."""
    base = os.path.join(workdir, f"export-{point}-{when}", "saved_models")
    tflite = os.path.join(workdir, f"export-{point}-{when}", "model.tflite")
    code, _ = run_child("export", base, point, when, model=model, tflite=tflite)
    if code != KILLED:
        return f"point {point} {when}: the export was not killed (exit {code})"
    rerun(base, tflite)
    problems = export_state(base, tflite)
    if not os.path.exists(tflite):
        problems.append("the export run again wrote no .tflite")
    return f"point {point} {when}: " + "; ".join(problems) if problems else None


def _in_process_train(output):
    from keras_vae.tasks import train_model

    train_model(output=output, **TRAIN_RUN)


def _in_process_export(model):
    def rerun(base, tflite):
        from keras_vae.export import export_model

        assert export_model(model, saved_model_base=base, tflite_path=tflite)["ok"]

    return rerun


def kill_sweep(workdir):
    """Every write point of train and export, killed before and after: counts and failures."""
    _, train_points = run_child("train", os.path.join(workdir, "train-points"))
    reference = train_outcome(os.path.join(workdir, "train-points"))
    failures, tried = [], 0
    for point, when in itertools.product(range(len(train_points)), ("before", "after")):
        tried += 1
        problem = check_train_kill(point, when, workdir, reference, _in_process_train)
        if problem:
            failures.append(f"train {train_points[point]}: {problem}")
    model = os.path.join(workdir, "train-points", "model.keras")
    base = os.path.join(workdir, "export-points", "saved_models")
    _, export_points = run_child(
        "export", base, model=model, tflite=os.path.join(workdir, "export-points", "m.tflite")
    )
    for point, when in itertools.product(range(len(export_points)), ("before", "after")):
        tried += 1
        problem = check_export_kill(point, when, workdir, model, _in_process_export(model))
        if problem:
            failures.append(f"export {export_points[point]}: {problem}")
    return {
        "train_points": train_points,
        "export_points": export_points,
        "kills": tried,
        "failures": failures,
    }


@contextlib.contextmanager
def tmpfs(size, read_only=False, fill_from=None):
    """A tmpfs of `size` mounted at a new folder (root only); yields it, or `None`."""
    folder = tempfile.mkdtemp(prefix="keras-vae-tmpfs-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder],
                             capture_output=True).returncode == 0  # fmt: skip
    try:
        if not mounted:
            yield None
            return
        if fill_from is not None:
            shutil.copytree(fill_from, os.path.join(folder, "run"))
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", folder], check=True)
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", folder], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def cli(argv):
    """Runs `keras-vae ...` in a child; returns `(exit code, stderr)`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "keras_vae.cli.main", *argv],
        capture_output=True, text=True, env=env, cwd=_repo_root(),
    )  # fmt: skip
    return done.returncode, done.stderr


def default_sigint():
    """A `preexec_fn` that gives a child the default SIGINT, as a terminal's command has.

    A shell starts background jobs (`make test &`, nohup) with SIGINT
    ignored, and a child keeps that: Python then installs no Ctrl+C handler,
    so a test that sends SIGINT would see the command finish instead.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_up_noise(line):
    # TensorFlow's C++ start-up lines, printed before the CLI runs.
    return line.startswith(("WARNING: All log messages", "I0000", "W0000", "E0000"))


def one_line_failure(code, stderr):
    """What is wrong with a failure's exit and stderr, or `None` (one line, no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip() and not start_up_noise(line)]
    if code in (0, -11, 139) or code < 0:
        return f"exit {code}"
    if len(lines) != 1 or "Traceback" in stderr:
        return f"{len(lines)} lines on stderr: {lines[:3]}"
    return None


def disk_sweep(workdir):
    """train and export onto a full disk and into a read-only folder: counts and failures."""
    finished = os.path.join(workdir, "disk-finished")
    if not os.path.exists(os.path.join(finished, "model.keras")):
        _in_process_train(finished)
    model = os.path.join(finished, "model.keras")
    cases = []
    for size in ("2m", "20m"):
        with tmpfs(size) as folder:
            if folder is None:
                return {"runs": 0, "failures": ["tmpfs cannot be mounted here (not root)"]}
            run = os.path.join(folder, "run")
            cases.append((f"train onto a full {size} disk", folder,
                          ["train", *TRAIN_ARGV, "--output", run]))  # fmt: skip
            _run_case(cases[-1], cases)
            cases.append((f"export onto a full {size} disk", folder,
                          ["export", model, "--saved-model", os.path.join(folder, "sm"),
                           "--tflite", os.path.join(folder, "m.tflite")]))  # fmt: skip
            _run_case(cases[-1], cases)
    with tmpfs("64m", read_only=True, fill_from=finished) as folder:
        run = os.path.join(folder, "run")
        cases.append(("train into a read-only folder holding a run", folder,
                      ["train", *TRAIN_ARGV, "--overwrite", "--output", run]))  # fmt: skip
        _run_case(cases[-1], cases)
        cases.append(("export into a read-only folder", folder,
                      ["export", model, "--tflite", os.path.join(run, "m.tflite")]))  # fmt: skip
        _run_case(cases[-1], cases)
    failures = [problem for case in cases if len(case) == 4 and (problem := case[3])]
    return {"runs": len(cases), "failures": failures}


def _run_case(case, cases):
    name, folder, argv = case
    before = _snapshot(folder)
    code, stderr = cli(argv)
    # Enough room after all: a finished command is a correct result too.
    problem = None if code == 0 and not stderr.strip() else one_line_failure(code, stderr)
    after = {k: v for k, v in _snapshot(folder).items() if k in before}
    if problem is None and code != 0 and after != before:
        problem = "files that were there changed"
    leftovers = [p for p in _snapshot(folder) if os.path.basename(p).startswith(".")]
    leftovers = [p for p in leftovers if not p.endswith(".keras-vae.lock")]
    if problem is None and leftovers:
        problem = f"hidden files left: {leftovers}"
    cases[-1] = (name, folder, argv, f"{name}: {problem}" if problem else None)


def _snapshot(folder):
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hash(f.read())
    return found


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("train", "export"), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--kill-at", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--when", default="after", help=argparse.SUPPRESS)
    parser.add_argument("--points-file", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--tflite", help=argparse.SUPPRESS)
    parser.add_argument("--record", action="store_true", help="Append to RESULTS.md.")
    args = parser.parse_args(argv)
    from benchmarks.common import setup_tfds_dir

    setup_tfds_dir()
    if args.child:
        args.command = args.child
        _child(args)
        return 0
    with tempfile.TemporaryDirectory() as workdir:
        kills = kill_sweep(workdir)
        disks = disk_sweep(workdir)
    lines = [
        f"- kill points: train {len(kills['train_points'])} "
        f"({', '.join(kills['train_points'])}), export {len(kills['export_points'])} "
        f"({', '.join(kills['export_points'])}); each killed before and after: "
        f"{kills['kills']} kills, {len(kills['failures'])} failures",
        f"- full-disk and read-only runs: {disks['runs']}, {len(disks['failures'])} failures",
        *[f"  - {problem}" for problem in kills["failures"] + disks["failures"]],
    ]
    print("\n".join(lines))
    if args.record:
        from benchmarks.common import record

        record("Reliability: kills at every write, full and read-only disks", lines)
    return 1 if kills["failures"] or disks["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
