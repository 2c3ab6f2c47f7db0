"""Seconds a whole `keras-vae` command takes: the executable against `main` without the freeze.

The executable (`console_main`) freezes the objects that importing
TensorFlow, Keras and TFP made out of garbage collection; `main` called from
Python does not. Both run the same command in a fresh process, alternating,
`--repeats` times; the record gives the median and the range. The model is
a small MLP VAE trained first (1 epoch on 1,000 images).

    python -m benchmarks.cli_commands --repeats 3
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import record

WITHOUT_FREEZE = "import sys; from keras_vae.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _seconds(argv):
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    executable = os.path.join(os.path.dirname(sys.executable), "keras-vae")
    with tempfile.TemporaryDirectory() as folder:
        model = os.path.join(folder, "run", "model.keras")
        subprocess.run(
            [executable, "train", "--epochs", "1", "--train-split", "train[:1000]",
             "--test-split", "test[:100]", "--quiet", "--output", os.path.dirname(model)],
            capture_output=True, check=True,
        )  # fmt: skip
        commands = {
            "export --saved-model --tflite": lambda i: ["export", model, "--saved-model",
                os.path.join(folder, f"sm{i}"), "--tflite", os.path.join(folder, f"m{i}.tflite")],
            "sample --num-samples 64": lambda i: ["sample", model, "--num-samples", "64",
                "--output", os.path.join(folder, f"s{i}.png")],
            "evaluate --importance-samples 100 (500 images)": lambda i: ["evaluate", model,
                "--split", "test[:500]", "--importance-samples", "100"],
        }  # fmt: skip
        ways = {
            "keras-vae (frozen)": [executable],
            "main() (not frozen)": [sys.executable, "-c", WITHOUT_FREEZE],
        }
        times = {(c, w): [] for c in commands for w in ways}
        run = 0
        for _ in range(args.repeats):
            for name, command in commands.items():
                for way, prefix in ways.items():
                    run += 1
                    times[name, way].append(_seconds([*prefix, *command(run)]))
    lines = [
        f"Each command in a fresh process, {args.repeats} times, alternating.",
        "",
        "| command | run as | median s | min–max s |",
        "| --- | --- | ---: | ---: |",
    ]
    for (name, way), values in times.items():
        lines.append(
            f"| `{name}` | {way} | {statistics.median(values):.2f} "
            f"| {min(values):.2f}–{max(values):.2f} |"
        )
    record("CLI commands: the executable's frozen imports", lines)


if __name__ == "__main__":
    main()
