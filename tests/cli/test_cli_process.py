"""The `keras-vae` executable against `main` called from Python."""

import gc
import importlib
import sys
import types

import numpy as np
import pytest
from PIL import Image

from keras_vae.cli.main import console_main, main
from keras_vae.models.presets import build_vae


def test_only_the_executable_freezes_the_imported_objects(tmp_path, monkeypatch):
    # An untrained model: what is compared is the command with and without freezing.
    vae = build_vae("mlp", (28, 28, 1), latent_dim=2, seed=0)
    vae.build((None, 28, 28, 1))
    vae.save(tmp_path / "model.keras")
    sample = ["sample", str(tmp_path / "model.keras"), "--num-samples", "4", "--seed", "3"]
    # A first command: the one-time work of the first (imports, caches) frees a few frozen objects.
    assert main([*sample, "--output", str(tmp_path / "first.png")]) == 0
    frozen = gc.get_freeze_count()
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


@pytest.mark.parametrize("name", ["sklearn", "matplotlib"])
def test_the_executable_imports_tensorflow_without_optional_packages(monkeypatch, name):
    # Keras imports scikit-learn and matplotlib, when installed, for features no command uses.
    from keras_vae.cli import main as cli

    seen = []

    def import_tensorflow():
        try:
            importlib.import_module(name)
        except ImportError:
            seen.append("refused")
        else:
            seen.append("imported")

    monkeypatch.setattr(cli, "import_tensorflow_quietly", import_tensorflow)
    monkeypatch.delitem(sys.modules, name, raising=False)
    cli._import_tensorflow_without_unused_extras()
    assert seen == ["refused"] and name not in sys.modules  # importable again afterwards
    # A package the process already imported is left alone.
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    cli._import_tensorflow_without_unused_extras()
    assert seen == ["refused", "imported"] and sys.modules[name] is not None
