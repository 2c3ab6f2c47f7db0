"""Seconds until the command line answers: `--help`, a bad argument, a busy folder, TensorFlow.

Each command runs in a fresh process, `--repeats` times, alternating; the
record gives the median and the range. For scale, the same for a process
that only imports TensorFlow.

    python -m benchmarks.cli_latency --repeats 7
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import record
from keras_vae.utils.output_folder import RunLock

COMMANDS = {
    "keras-vae --help": ["--help"],
    "keras-vae train --epochs -1": ["train", "--epochs", "-1", "--output", "unused"],
    "keras-vae sample --help": ["sample", "--help"],
}
SCALE = "python -c 'import tensorflow' (for scale)"


def _seconds(argv):
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as busy, RunLock(busy):
        commands = {
            **COMMANDS,
            "keras-vae train into a folder another run holds": ["train", "--output", busy],
        }
        runs = {
            **{
                name: [sys.executable, "-m", "keras_vae.cli.main", *a]
                for name, a in commands.items()
            },
            SCALE: [sys.executable, "-c", "import tensorflow"],
        }
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, command in runs.items():
                times[name].append(_seconds(command))
    lines = [
        f"Each command in a fresh process, {args.repeats} times, alternating.",
        "",
        "| command | median s | min–max s |",
        "| --- | ---: | ---: |",
    ]
    for name, values in times.items():
        lines.append(
            f"| `{name}` | {statistics.median(values):.2f} | {min(values):.2f}–{max(values):.2f} |"
        )
    record("CLI latency", lines)


if __name__ == "__main__":
    main()
