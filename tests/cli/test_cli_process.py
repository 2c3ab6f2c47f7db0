"""The `keras-vae` executable against `main` called from Python."""

import gc
import sys

import numpy as np
from PIL import Image

from keras_vae.cli.main import console_main, main


def test_only_the_executable_freezes_the_imported_objects(tmp_path, tfds_data_dir, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "--latent-dim", "2", "--epochs", "1", "--train-split", "train[:200]",
            "--test-split", "test[:50]", "--no-jit-compile", "--quiet",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    frozen = gc.get_freeze_count()
    sample = ["sample", str(out / "model.keras"), "--num-samples", "4", "--seed", "3"]
    # A Python caller's objects stay collectable.
    assert main([*sample, "--output", str(tmp_path / "main.png")]) == 0
    assert gc.get_freeze_count() == frozen
    monkeypatch.setattr(sys, "argv", ["keras-vae", *sample, "--output", str(tmp_path / "exe.png")])
    try:
        assert console_main() == 0
        assert gc.get_freeze_count() > frozen
    finally:
        # Frozen again, after collecting what the commands left behind.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    # Freezing changes nothing the command computes.
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "exe.png")), np.asarray(Image.open(tmp_path / "main.png"))
    )
