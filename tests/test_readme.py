"""The README's Python examples run as written (on a slice of MNIST, one epoch)."""

import re
from pathlib import Path

import numpy as np


def test_readme_python_examples_run(tfds_data_dir, tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    assert "keras_vae.VAE(" in code and "build_cvae(" in code
    shrink = {  # in this order: "epochs=3" is part of "epochs=30"
        "epochs=30": "epochs=2",
        'data.load_images("mnist", "train")': 'data.load_images("mnist", "train[:512]")',
        "epochs=3": "epochs=1",
        "epochs=10": "epochs=1",
        "num_samples=1000": "num_samples=20",
    }
    for old, new in shrink.items():
        assert old in code, old
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["digits"].shape == (16, 28, 28, 1)
    assert namespace["sevens"].shape == (1, 8, 28, 28, 1)
    assert np.isfinite(namespace["q"].mean().numpy()).all()
    assert (tmp_path / "vae.keras").exists()
    assert (tmp_path / "saved_models" / "mnist" / "1" / "saved_model.pb").exists()
    metrics = namespace["metrics"]
    assert metrics["num_examples"] == 1000 and metrics["num_samples"] == 20
    assert metrics["nll"] > 0 and metrics["log_likelihood"] >= metrics["elbo"] - 1.0
