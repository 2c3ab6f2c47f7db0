"""The built wheel holds every package of the source tree; what importing it sets."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def source_packages():
    """Import names of the folders with an `__init__.py` under keras_vae/ and export/."""
    names = set()
    for folder, prefix in (("keras_vae", "keras_vae"), ("export", "keras_vae.export")):
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            names.add(".".join((prefix, *parts)))
    return names


def test_wheel_contains_every_package(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    for folder in ("keras_vae", "export"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "."]
        + ["-w", str(tmp_path / "dist")],
        cwd=source,
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = {
            name[: -len("/__init__.py")].replace("/", ".")
            for name in archive.namelist()
            if name.endswith("/__init__.py")
        }
    assert len(source_packages()) > 5
    assert source_packages() - packed == set()


@pytest.mark.parametrize("given", [None, "0"])
def test_importing_keras_vae_turns_onednn_on_unless_the_user_chose(given):
    # Read by TensorFlow when it is imported; importing keras_vae loads no TensorFlow.
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    script = (
        "import os, platform, sys, keras_vae\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print(platform.machine(), os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    machine, value = done.stdout.split()
    x86 = machine.lower() in ("x86_64", "amd64")
    assert value == (given or ("1" if x86 else "None"))
