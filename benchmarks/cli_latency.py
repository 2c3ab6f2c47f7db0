"""Seconds until the command line answers: `--help`, a bad argument, and TensorFlow's import.

Each command runs in a fresh process, `--repeats` times, alternating; the
record gives the median and the range. For scale, the same for a process
that only imports TensorFlow.

    python -m benchmarks.cli_latency --repeats 7
"""

import argparse
import statistics
import subprocess
import sys
import time

from benchmarks.common import record

COMMANDS = {
    "keras-vae --help": ["--help"],
    "keras-vae train --epochs -1": ["train", "--epochs", "-1", "--output", "unused"],
    "keras-vae sample --help": ["sample", "--help"],
}


def _seconds(argv):
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    runs = {
        **{name: [sys.executable, "-m", "keras_vae.cli.main", *a] for name, a in COMMANDS.items()},
        "python -c 'import tensorflow' (for scale)": [sys.executable, "-c", "import tensorflow"],
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
