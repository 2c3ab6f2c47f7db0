"""The whole of `keras-vae export`: export, then verify what was written."""

import os

from keras_vae.export.precision import float32_model
from keras_vae.export.saved_model import export_saved_model
from keras_vae.export.tflite import export_tflite
from keras_vae.export.validation import check_quantize, check_version
from keras_vae.export.verify import verify_export


def export_model(
    model_or_path,
    saved_model_base: str | None = None,
    tflite_path: str | None = None,
    quantize: str | None = None,
    version: int | None = None,
    allow_untrained: bool = False,
    seed: int = 0,
    num_samples: int = 4,
) -> dict:
    """Exports a model as a SavedModel and/or a TFLite file, then verifies both.

    Arguments are checked before anything is written. The SavedModel goes to
    `saved_model_base/<version>/` (see `export_saved_model`), the TFLite file
    to `tflite_path` (see `export_tflite`); then `verify_export` reloads them
    and compares them with the Keras model.

    Args:
        model_or_path: a `VAE` / `ConditionalVAE`, or the path of a `.keras`
            file saved by keras-vae.
        saved_model_base: str or `None`. TF Serving model folder.
        tflite_path: str or `None`. Output `.tflite` file.
        quantize: `None`, `"float16"`, `"dynamic"` or `"int8"`, for the
            TFLite file. Defaults to `None` (float32).
        version: int or `None`. SavedModel version; defaults to the next one.
        allow_untrained: bool. Export a model whose optimizer never stepped.
        seed: int. Seed of the verification draws. Defaults to `0`.
        num_samples: int. Draws compared in the verification. Defaults to `4`.

    Returns:
        The `verify_export` report, with `model` (the class name) and
        `saved_model["version"]` added. `report["ok"]` is `False` if an
        exported file does not reproduce the model within tolerance.

    Raises:
        ValueError: for bad arguments, an unreadable model file, or an
            unbuilt or untrained model.

    Example:

    >>> report = export_model(  # doctest: +SKIP
    ...     "runs/mnist-mlp/model.keras",
    ...     saved_model_base="saved_models/mnist-mlp",
    ...     tflite_path="runs/mnist-mlp/model.tflite",
    ... )
    >>> print(format_report(report))  # doctest: +SKIP
    """
    if saved_model_base is None and tflite_path is None:
        raise ValueError("Expected saved_model_base or tflite_path (or both). Received: neither")
    check_quantize(quantize)
    if quantize is not None and tflite_path is None:
        raise ValueError(
            f"Expected tflite_path with quantize (it applies to the TFLite file). "
            f"Received: quantize={quantize!r} and no tflite_path"
        )
    check_version(version)
    if tflite_path is not None and not os.fspath(tflite_path).endswith(".tflite"):
        raise ValueError(f"Expected path to a .tflite file. Received: path={tflite_path!r}")
    model = model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        from keras_vae.tasks import load_model

        model = load_model(os.fspath(model_or_path))
    saved_model_dir = None
    if saved_model_base is not None:
        saved_model_dir = export_saved_model(
            model, saved_model_base, version=version, allow_untrained=allow_untrained
        )
    if tflite_path is not None:
        export_tflite(model, tflite_path, quantize=quantize, allow_untrained=allow_untrained)
    report = verify_export(
        float32_model(model),  # what the exports hold, for mixed-precision models
        saved_model_dir=saved_model_dir,
        tflite_path=tflite_path,
        seed=seed,
        num_samples=num_samples,
    )
    report["model"] = type(model).__name__
    if saved_model_dir is not None:
        report["saved_model"]["version"] = int(os.path.basename(saved_model_dir))
    return report


def format_report(report: dict) -> str:
    """Human-readable lines for an `export_model` / `verify_export` report.

    Args:
        report: dict returned by `export_model` or `verify_export`.

    Returns:
        Lines to print (joined with newlines): one per file, then a verdict.

    Example:

    >>> text = format_report(
    ...     {"seed": 0, "num_samples": 4, "ok": True, "tflite": {
    ...         "path": "m.tflite", "size_bytes": 2048, "quantize": None,
    ...         "decode_max_abs_diff": 1e-7, "sample_max_abs_diff": 2e-7,
    ...         "latent_max_abs_diff": 5e-7, "ok": True, "tolerance": 1e-4}})
    >>> text.splitlines()[0]
    'tflite (float32) m.tflite: 2.0 KiB; max |diff| decode 1e-07, sample 2e-07, z 5e-07: ok'
    """
    lines = []
    for key in ("saved_model", "tflite"):
        if key not in report:
            continue
        entry = report[key]
        if key == "tflite":
            label = f"tflite ({entry.get('quantize') or 'float32'})"
        else:
            label = "saved_model"
        verdict = "ok" if entry["ok"] else f"MISMATCH (tolerance {entry['tolerance']:g})"
        line = (
            f"{label} {entry['path']}: {_size(entry['size_bytes'])}; max |diff| decode "
            f"{entry['decode_max_abs_diff']:.3g}, sample {entry['sample_max_abs_diff']:.3g}, "
            f"z {entry['latent_max_abs_diff']:.3g}"
        )
        if "reconstruct_max_abs_diff" in entry:
            line += f", reconstruct {entry['reconstruct_max_abs_diff']:.3g}"
        lines.append(f"{line}: {verdict}")
    lines.append(
        f"verified with seed={report['seed']}, num_samples={report['num_samples']}: "
        + ("all exports match the Keras model" if report["ok"] else "an export does not match")
    )
    return "\n".join(lines)


def _size(num_bytes):
    for unit in ("B", "KiB", "MiB"):
        if num_bytes < 1024 or unit == "MiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
