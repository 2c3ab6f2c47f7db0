"""verify_export and format_report."""

import os
import re
import types

import pytest
import tensorflow as tf
from export_helpers import LATENT_DIM

from keras_vae.export import TOLERANCES, format_report, verify_export
from keras_vae.export.litert_sampler import Sampler
from keras_vae.models.presets import build_vae


def test_verify_reports_small_differences_and_sizes(vae, vae_saved_model, vae_tflite):
    report = verify_export(vae, vae_saved_model, vae_tflite[None], seed=3, num_samples=5)
    assert report["ok"] and (report["seed"], report["num_samples"]) == (3, 5)
    saved, lite = report["saved_model"], report["tflite"]
    for entry in (saved, lite):
        for key in ("decode", "sample", "latent"):
            assert entry[f"{key}_max_abs_diff"] < 1e-5
    assert saved["reconstruct_max_abs_diff"] < 1e-5
    assert lite["size_bytes"] == os.path.getsize(vae_tflite[None])
    files = [os.path.join(r, f) for r, _, names in os.walk(vae_saved_model) for f in names]
    assert saved["size_bytes"] == sum(os.path.getsize(f) for f in files)
    assert lite["quantize"] is None and lite["tolerance"] == TOLERANCES[None]


def test_verify_seeds_past_2_to_the_31_as_the_exports_int32(vae, vae_saved_model, vae_tflite):
    # The signatures take the seed's 32 bits as a negative int32 there.
    report = verify_export(vae, vae_saved_model, vae_tflite[None], seed=2**32 - 5, num_samples=3)
    assert report["ok"] and report["seed"] == 2**32 - 5
    for seed in (-1, 2**32):
        with pytest.raises(ValueError, match=rf"^Expected seed .* Received: seed={seed}$"):
            verify_export(vae, tflite_path=vae_tflite[None], seed=seed)


def test_verify_quantized_and_conditional(cvae, cvae_saved_model, cvae_tflite):
    report = verify_export(cvae, cvae_saved_model, cvae_tflite["int8"])
    assert report["ok"]
    saved = report["saved_model"]
    assert saved["sample_max_abs_diff"] < 1e-5 and saved["reconstruct_max_abs_diff"] < 1e-5
    lite = report["tflite"]
    assert lite["quantize"] == "int8" and lite["latent_max_abs_diff"] < 1e-5
    assert 0 < lite["sample_mean_abs_diff"] < TOLERANCES["int8"]


def test_verify_catches_a_model_that_does_not_match(vae_saved_model, vae_tflite):
    other = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM, seed=5)
    other.build((None, 28, 28, 1))
    report = verify_export(other, vae_saved_model, vae_tflite[None])
    assert not report["ok"]
    assert not report["saved_model"]["ok"] and not report["tflite"]["ok"]
    assert report["tflite"]["decode_max_abs_diff"] > 1e-3
    text = format_report(report)
    assert "MISMATCH" in text and text.splitlines()[-1].endswith("an export does not match")


def test_verify_refuses_a_saved_model_of_another_model_in_one_line(
    vae, cvae, vae_saved_model, cvae_saved_model, vae_tflite
):
    smaller = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM - 1, seed=5)
    smaller.build((None, 28, 28, 1))
    z, both = rf"z \[None, {LATENT_DIM}\]", rf"condition \[None, 10\], z \[None, {LATENT_DIM}\]"
    cases = [
        (cvae, vae_saved_model, rf"decode takes {both}\. Received: .* takes {z}$"),
        (vae, cvae_saved_model, rf"decode takes {z}\. Received: .* takes {both}$"),
        (smaller, vae_saved_model, rf"z \[None, {LATENT_DIM - 1}\]\. Received: .* takes {z}$"),
    ]
    for model, path, detail in cases:
        with pytest.raises(ValueError, match=r"^Expected a SavedModel of this model") as error:
            verify_export(model, saved_model_dir=path, tflite_path=vae_tflite[None])
        assert re.search(detail, str(error.value)) and "\n" not in str(error.value)


def _shift_saved_model_signature(monkeypatch, name, shift):
    """Makes `tf.saved_model.load` return signatures with `name`'s image off by `shift`."""
    load = tf.saved_model.load

    def load_with_one_wrong_signature(path):
        loaded = load(path)
        right = loaded.signatures[name]

        def wrong(**inputs):
            outputs = dict(right(**inputs))
            outputs["image"] = outputs["image"] + shift
            return outputs

        # `loaded` is kept so the signature functions' variables stay alive.
        return types.SimpleNamespace(loaded=loaded, signatures={**loaded.signatures, name: wrong})

    monkeypatch.setattr(tf.saved_model, "load", load_with_one_wrong_signature)


@pytest.mark.parametrize(
    "kind, signature, key",
    [
        ("vae", "serving_default", "decode"),
        ("vae", "sample", "sample"),
        ("vae", "reconstruct", "reconstruct"),
        ("cvae", "reconstruct", "reconstruct"),
    ],
)
def test_verify_catches_one_wrong_saved_model_signature(request, monkeypatch, kind, signature, key):
    # Only one signature is off, by twice the tolerance: the others still match, and
    # so does the TFLite file, but one file that fails fails the report.
    model, saved_model, tflite_paths = (
        request.getfixturevalue(f"{kind}{suffix}") for suffix in ("", "_saved_model", "_tflite")
    )
    _shift_saved_model_signature(monkeypatch, signature, 2 * TOLERANCES[None])
    report = verify_export(model, saved_model, tflite_paths[None], seed=3, num_samples=5)
    saved = report["saved_model"]
    assert not report["ok"] and not saved["ok"] and report["tflite"]["ok"]
    assert saved[f"{key}_max_abs_diff"] > TOLERANCES[None]
    others = {"decode", "sample", "reconstruct"} - {key}
    assert all(saved[f"{other}_max_abs_diff"] < 1e-5 for other in others)
    assert saved["latent_max_abs_diff"] < 1e-5
    assert "MISMATCH" in format_report(report)


@pytest.mark.parametrize("method", ["decode", "sample"])
@pytest.mark.parametrize("quantize", [None, "int8"], ids=["float32", "int8"])
def test_verify_catches_one_wrong_tflite_signature(vae, vae_tflite, monkeypatch, method, quantize):
    # Float32 files are held to the max difference, quantized ones to the mean: a shift
    # of twice the tolerance fails either, whatever the quantization error.
    shift = 2 * TOLERANCES[quantize]
    right = getattr(Sampler, method)

    def wrong(self, *args, **kwargs):
        outputs = right(self, *args, **kwargs)
        if method == "sample":  # verify_export asks for (images, z)
            return outputs[0] + shift, outputs[1]
        return outputs + shift

    monkeypatch.setattr(Sampler, method, wrong)
    report = verify_export(vae, tflite_path=vae_tflite[quantize], seed=3, num_samples=5)
    lite = report["tflite"]
    assert not report["ok"] and not lite["ok"] and lite["quantize"] == quantize
    other = {"decode", "sample"} - {method}
    statistic = "max" if quantize is None else "mean"
    assert lite[f"{method}_{statistic}_abs_diff"] > TOLERANCES[quantize]
    assert lite[f"{other.pop()}_{statistic}_abs_diff"] <= TOLERANCES[quantize]
    assert lite["latent_max_abs_diff"] < 1e-5


def test_verify_bad_arguments(vae, vae_tflite, tmp_path):
    with pytest.raises(ValueError, match=r"^Expected saved_model_dir, tflite_path or onnx_dir"):
        verify_export(vae)
    with pytest.raises(ValueError, match=r"^Expected num_samples in \[1, 4096\]"):
        verify_export(vae, tflite_path=vae_tflite[None], num_samples=0)
    with pytest.raises(ValueError, match=r"^Expected a SavedModel version folder"):
        verify_export(vae, saved_model_dir=str(tmp_path))


def test_int8_file_decodes_close_to_float(vae, vae_tflite):
    # The acceptance figure of the issue: int8 probabilities within 0.05 on average.
    report = verify_export(vae, tflite_path=vae_tflite["int8"], num_samples=32)
    assert report["tflite"]["decode_mean_abs_diff"] < 0.05
    assert report["tflite"]["latent_max_abs_diff"] < 1e-5
