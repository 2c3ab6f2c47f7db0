"""Shared helpers for the benchmark scripts: data, timing, recording results."""

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from keras_vae.utils.cpu import BFLOAT16_FLAGS, first_processor

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
SHARED_TFDS = REPO_ROOT.parent / "shared" / "data" / "tensorflow_datasets"


def setup_tfds_dir():
    """Points TFDS at the shared offline MNIST when it exists."""
    if "TFDS_DATA_DIR" not in os.environ and SHARED_TFDS.is_dir():
        os.environ["TFDS_DATA_DIR"] = str(SHARED_TFDS)


def add_split_args(parser):
    """`--train-split` and `--test-split`, as `keras-vae train` takes them."""
    parser.add_argument(
        "--train-split", default="train", help="TFDS split to train on, e.g. 'train[:1000]'."
    )
    parser.add_argument(
        "--test-split", default="test", help="TFDS split for the test ELBO, e.g. 'test[:500]'."
    )


def splits_note(args):
    """A sentence naming the splits for the record, or "" for the whole of MNIST."""
    if (args.train_split, args.test_split) == ("train", "test"):
        return ""
    return f" Splits: MNIST {args.train_split} and {args.test_split}."


def mnist_arrays(split="train"):
    """MNIST images float32 [N, 28, 28, 1] in [0, 1] and labels."""
    setup_tfds_dir()
    from keras_vae import data

    images, labels = data.load_images("mnist", split)
    return data.scale_images(images), labels


def mnist_data(split="train"):
    """MNIST pixels uint8 [N, 28, 28, 1] as TFDS stores them, and labels."""
    setup_tfds_dir()
    from keras_vae import data

    return data.load_images("mnist", split)


def binarize(images, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape) < images).astype("float32")


def machine(cpuinfo=None):
    """The CPU, its vector extensions that matter here, cores and Python.

    CPUs sold under one name ("AMD EPYC") differ a lot: `mixed_bfloat16` is
    fast only where the CPU computes in bfloat16 (AVX-512 BF16 or AMX), so the
    record gives the family, model and those flags of the first processor.
    """
    info = first_processor(cpuinfo)
    cpu = info.get("model name") or platform.processor() or platform.machine()
    details = []
    if "cpu family" in info and "model" in info:
        details.append(f"family {info['cpu family']} model {info['model']}")
    if "flags" in info:
        flags = set(info["flags"].split())
        extensions = [flag for flag in ("avx2", "avx512f", *BFLOAT16_FLAGS) if flag in flags]
        details.append(" ".join(extensions) or "no AVX2")
    cpu = f"{cpu} ({'; '.join(details)})" if details else cpu
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def record(title, lines):
    """Prints the figures and appends them to benchmarks/RESULTS.md."""
    module = os.path.splitext(os.path.relpath(sys.argv[0], REPO_ROOT))[0].replace(os.sep, ".")
    command = " ".join(["python -m", module] + sys.argv[1:])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT
        ).stdout.strip()
    except OSError:
        commit = "unknown"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = [
        f"## {title}",
        "",
        f"- command: `{command}`",
        f"- date: {stamp}; commit: {commit}",
        f"- machine: {machine()}",
        "",
        *lines,
        "",
    ]
    text = "\n".join(block)
    print(text)
    with open(RESULTS, "a") as f:
        f.write(text + "\n")
