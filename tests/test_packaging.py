"""The built wheel holds every package of the source tree."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

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
