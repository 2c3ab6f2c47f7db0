"""The whole of `keras-vae export`: export, verify, then publish what passed."""

import hashlib
import json
import os
import re
import shutil
import warnings

from keras_vae.export.integer import INT8_FULL, check_int8_full
from keras_vae.export.onnx import check_onnx_dir, convert_onnx, publish_onnx, write_onnx
from keras_vae.export.precision import float32_model
from keras_vae.export.saved_model import (
    check_saved_model_dir,
    publish_saved_model,
    publish_saved_model_dir,
    saved_model_target,
    write_saved_model,
)
from keras_vae.export.tflite import convert_tflite
from keras_vae.export.validation import (
    check_batch_sizes,
    check_exportable,
    check_min_runtime,
    check_quantize,
    check_representative_conditions,
    check_tflite_path,
    check_version,
)
from keras_vae.export.verify import EXPORT_KINDS, check_draws, verify_export
from keras_vae.utils.staged_path import (
    StagedPath,
    is_running,
    process_namespace,
    write_bytes_atomically,
)


def export_model(
    model_or_path,
    saved_model_base: str | None = None,
    tflite_path: str | None = None,
    quantize: str | None = None,
    version: int | None = None,
    allow_untrained: bool = False,
    seed: int = 0,
    num_samples: int = 4,
    representative_conditions=None,
    onnx_dir: str | None = None,
    batch_sizes=(),
    min_runtime: str | None = None,
    saved_model_dir: str | None = None,
) -> dict:
    """Exports a model as a SavedModel and/or a TFLite file, verified before use.

    Every argument is checked, and the model loaded and checked, before
    anything is written. The SavedModel (for `saved_model_base/<version>/`,
    see `export_saved_model`) and the TFLite file (for `tflite_path`, see
    `export_tflite`) are written under hidden names beside their
    destinations; `verify_export` reloads them and compares them with the
    Keras model; only if every file passes are they renamed into place. If
    a step raises or verification finds a mismatch, nothing new is left
    behind: no version folder for TF Serving to load, and an existing
    `.tflite` file stays as it was. To keep files that fail verification,
    call `export_saved_model`, `export_tflite` and `verify_export` yourself.

    Args:
        model_or_path: a `VAE` / `ConditionalVAE`, or the path of a `.keras`
            file saved by keras-vae.
        saved_model_base: str or `None`. TF Serving model folder.
        tflite_path: str or `None`. Output `.tflite` file.
        quantize: `None`, `"float16"`, `"dynamic"`, `"int8"` or
            `"int8-full"` (int8 inputs and outputs, z drawn on the host; see
            `export_tflite`), for the TFLite file. Defaults to `None`
            (float32).
        version: int or `None`. SavedModel version; defaults to the next one.
        allow_untrained: bool. Export a model whose optimizer never stepped.
        seed: int. Seed of the verification draws. Defaults to `0`.
        num_samples: int. Draws compared in the verification. Defaults to `4`.
        onnx_dir: str or `None`. A folder for the ONNX files of the
            signatures (`decode.onnx`, `sample.onnx`, `encode.onnx`,
            `reconstruct.onnx`; opset 18, tf2onnx), checked under
            onnxruntime like the other files. An earlier export's folder
            is replaced; a folder holding any other file is refused. Needs
            `pip install 'keras-vae[onnx]'`.
        representative_conditions: array `[M, *condition_shape]` or `None`.
            Typical conditions to calibrate the int8 TFLite file of a
            ConditionalVAE with (see `export_tflite`); required for the
            completion conditions (`"top-half"`, `"center-column"`), for
            which `keras-vae export` takes the observed parts of
            `--calibration-split`. The first four are also the conditions of
            the verification.
        batch_sizes: sequence of positive ints, or a string `"1,64"`. The
            fixed batches of the TFLite file's static-shape signatures
            (`decode_b{B}`, `sample_b{B}`; see `export_tflite`). Defaults
            to `()`.
        min_runtime: str or `None`. The oldest TFLite runtime the `.tflite`
            file must run on, such as `"2.14"` (see `export_tflite`).
            Defaults to `None`.
        saved_model_dir: str or `None`. The SavedModel's own folder, instead
            of a version folder under `saved_model_base` (what Keras's
            `Model.export` writes; see `VAE.export`). A new path, an empty
            folder or an earlier SavedModel, which is replaced whole; a
            folder holding anything else is refused. Published after the
            TFLite file.

    Returns:
        The `verify_export` report, with `model` (the class name),
        `saved_model["version"]` and `written` added, and each `path` the
        destination. `report["ok"]` is `False` if an exported file does not
        reproduce the model within tolerance; then `report["written"]` is
        `False` too and nothing was written.

    Raises:
        ValueError: for bad arguments, an unreadable model file, an unbuilt
            or untrained model, or missing int8 calibration conditions.

    Example:

    >>> report = export_model(  # doctest: +SKIP
    ...     "runs/mnist-mlp/model.keras",
    ...     saved_model_base="saved_models/mnist-mlp",
    ...     tflite_path="runs/mnist-mlp/model.tflite",
    ... )
    >>> print(format_report(report))  # doctest: +SKIP
    """
    saved_model_dir, tflite_path, onnx_dir, batch_sizes = check_export_arguments(
        saved_model_base=saved_model_base,
        saved_model_dir=saved_model_dir,
        tflite_path=tflite_path,
        onnx_dir=onnx_dir,
        quantize=quantize,
        version=version,
        seed=seed,
        num_samples=num_samples,
        batch_sizes=batch_sizes,
        min_runtime=min_runtime,
    )
    model = model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        from keras_vae.tasks import load_model

        model = load_model(os.fspath(model_or_path))
    check_exportable(model, allow_untrained)
    conditions = check_representative_conditions(model, quantize, representative_conditions)
    if quantize == INT8_FULL:
        check_int8_full(model, batch_sizes)
    target = saved_model_dir
    if saved_model_base is not None:
        _roll_back_unfinished(os.fspath(saved_model_base))
        target = saved_model_target(saved_model_base, version)
    model_name = type(model).__name__
    model = float32_model(model)  # what the exports hold, for mixed-precision models
    staged = {}
    try:
        if target is not None:
            staged["saved_model"] = StagedPath(target)
            write_saved_model(model, staged["saved_model"].path)
        if tflite_path is not None:
            content = convert_tflite(model, quantize, conditions, batch_sizes, min_runtime)
            staged["tflite"] = StagedPath(tflite_path)
            staged["tflite"].write_bytes(content)
        if onnx_dir is not None:
            files = convert_onnx(model)
            staged["onnx"] = StagedPath(onnx_dir)
            write_onnx(files, staged["onnx"].path)
        try:
            report = verify_export(
                model,
                saved_model_dir=_staged_path(staged, "saved_model"),
                tflite_path=_staged_path(staged, "tflite"),
                onnx_dir=_staged_path(staged, "onnx"),
                seed=seed,
                num_samples=num_samples,
                condition=None if conditions is None else conditions[:4],
            )
        except ValueError as error:  # a file that does not load or run: name it as meant
            message = str(error)
            for entry in staged.values():
                message = message.replace(entry.path, entry.target)
            raise ValueError(message) from None
        if report["ok"]:
            # The folders to replace, again: a file put there since the checks above
            # must stop the export before anything is published.
            if saved_model_dir is not None:
                check_saved_model_dir(saved_model_dir)
            if onnx_dir is not None:
                check_onnx_dir(onnx_dir)
            # Version folders and the TFLite file together; folders replaced in place after.
            replaced = {"onnx"} | ({"saved_model"} if saved_model_dir is not None else set())
            _publish({key: entry for key, entry in staged.items() if key not in replaced})
            if saved_model_dir is not None:
                publish_saved_model_dir(staged["saved_model"])
            if "onnx" in staged:
                publish_onnx(staged["onnx"])
    finally:
        # Newest first: a later path may sit in a folder an earlier one created.
        for entry in reversed(list(staged.values())):
            entry.discard()
    for key, entry in staged.items():
        report[key]["path"] = entry.target
    report["model"] = model_name
    if saved_model_base is not None:
        report["saved_model"]["version"] = int(os.path.basename(target))
    report["written"] = report["ok"]
    return report


def check_export_arguments(
    saved_model_base=None,
    saved_model_dir=None,
    tflite_path=None,
    onnx_dir=None,
    quantize=None,
    version=None,
    seed=0,
    num_samples=4,
    batch_sizes=(),
    min_runtime=None,
):
    """`export_model`'s checks of its arguments, which need no model and write nothing.

    Takes `export_model`'s arguments of the same names; `keras-vae export`
    calls it before loading the model, so that a bad path or option is
    refused at once. An explicit `version` is checked against the folder's
    versions only by `export_model`, after it rolls back an unfinished
    export.

    Returns:
        `(saved_model_dir, tflite_path, onnx_dir, batch_sizes)`, the paths as
        str (or `None`) and the batch sizes as a tuple of ints.

    Raises:
        ValueError: naming the first argument that is refused.
    """
    if all(path is None for path in (saved_model_base, saved_model_dir, tflite_path, onnx_dir)):
        raise ValueError(
            "Expected saved_model_base, saved_model_dir, tflite_path or onnx_dir (or several). "
            "Received: none"
        )
    if saved_model_base is not None and saved_model_dir is not None:
        raise ValueError(
            "Expected saved_model_base (a version folder in it) or saved_model_dir, not both. "
            f"Received: saved_model_base={saved_model_base!r}, "
            f"saved_model_dir={saved_model_dir!r}"
        )
    check_quantize(quantize)
    if quantize is not None and tflite_path is None:
        raise ValueError(
            f"Expected tflite_path with quantize (it applies to the TFLite file). "
            f"Received: quantize={quantize!r} and no tflite_path"
        )
    check_version(version)
    if version is not None and saved_model_base is None:
        raise ValueError(
            f"Expected saved_model_base with version (it numbers the SavedModel folder). "
            f"Received: version={version!r} and no saved_model_base"
        )
    if saved_model_base is not None:
        saved_model_target(saved_model_base)  # a usable folder; its next version is free
    if saved_model_dir is not None:
        saved_model_dir = check_saved_model_dir(saved_model_dir)
    if tflite_path is not None:
        tflite_path = check_tflite_path(tflite_path)
    if onnx_dir is not None:
        onnx_dir = check_onnx_dir(onnx_dir)
    check_draws(seed, num_samples)
    batch_sizes = check_batch_sizes(batch_sizes)
    check_min_runtime(min_runtime)
    if min_runtime is not None and tflite_path is None:
        raise ValueError(
            "Expected tflite_path with min_runtime (it applies to the TFLite file). "
            f"Received: min_runtime={min_runtime!r} and no tflite_path"
        )
    if batch_sizes and tflite_path is None:
        raise ValueError(
            "Expected tflite_path with batch_sizes (they shape the TFLite file's static "
            f"signatures). Received: batch_sizes={batch_sizes!r} and no tflite_path"
        )
    return saved_model_dir, tflite_path, onnx_dir, batch_sizes


# `Model.export`'s formats that a model of the family writes, each with the
# `export_model` argument it fills.
ARTIFACT_FORMATS = {
    "tf_saved_model": "saved_model_dir",
    "litert": "tflite_path",
    "onnx": "onnx_dir",
}
_ARTIFACT_OPTIONS = ("allow_untrained", "seed", "num_samples")
_LITERT_OPTIONS = ("quantize", "batch_sizes", "min_runtime", "representative_conditions")


def export_artifact(
    model, filepath, format="tf_saved_model", verbose=None, input_signature=None, **options
):
    """One artifact of `model`, verified before it is put in place: `VAE.export`.

    Keras's `Model.export` arguments, mapped onto `export_model`: `format`
    picks the destination (`ARTIFACT_FORMATS`), `options` are `export_model`'s
    (`allow_untrained`, `seed`, `num_samples`; for `"litert"` also
    `quantize`, `batch_sizes`, `min_runtime`, `representative_conditions`).

    Raises:
        ValueError: for a format or option the family does not export with,
            an `input_signature` (the signatures are the model's), the
            errors of `export_model`, or files that do not reproduce the
            model (then nothing was written).
    """
    if not isinstance(format, str) or format not in ARTIFACT_FORMATS:
        raise ValueError(
            f"Expected format to be one of {tuple(ARTIFACT_FORMATS)} (the formats whose files "
            f"hold the seeded sampler). Received: format={format!r}"
        )
    if input_signature is not None:
        raise ValueError(
            "Expected input_signature=None: the exported signatures are the model's own "
            "(decode, sample, encode, reconstruct; see keras_vae.export.ServingModule). "
            f"Received: input_signature={input_signature!r}"
        )
    allowed = _ARTIFACT_OPTIONS + (_LITERT_OPTIONS if format == "litert" else ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Expected options among {allowed} with format={format!r}. "
            f"Received: {unknown[0]}={options[unknown[0]]!r}"
        )
    report = export_model(model, **{ARTIFACT_FORMATS[format]: filepath}, **options)
    if verbose is None or verbose:
        print(format_report(report))
    if not report["ok"]:
        raise ValueError(
            "Expected the exported file to reproduce the Keras model within tolerance; "
            f"nothing was written. Received: {format_report(report).splitlines()[0]}"
        )


def _staged_path(staged, key):
    return staged[key].path if key in staged else None


def _publish(staged):
    """Renames the SavedModel into place, then the TFLite file; all or nothing.

    Between the two renames a journal beside the version folder names the
    TFLite file and its content's hash. An exception removes the version
    again; a process killed between the renames (SIGKILL, power loss) leaves
    the journal, and the next export into the same folder removes the
    version whose TFLite file never came (`_roll_back_unfinished`).
    """
    saved_model, tflite = staged.get("saved_model"), staged.get("tflite")
    journal = None
    if saved_model is not None and tflite is not None:
        journal = _journal_path(saved_model.target)
        with open(tflite.path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        record = {
            "tflite": os.path.abspath(tflite.target),
            "sha256": digest,
            "pid": os.getpid(),
            "namespace": process_namespace(),
        }
        write_bytes_atomically(journal, json.dumps(record).encode(), ".json")
    published = False
    try:
        if saved_model is not None:
            publish_saved_model(saved_model)
            published = True
        if tflite is not None:
            tflite.publish()
    except BaseException:
        if published and tflite is not None:
            # Ours alone: a version another export made first is refused, not removed.
            shutil.rmtree(saved_model.target, ignore_errors=True)
        raise
    finally:
        if journal is not None and os.path.exists(journal):
            os.remove(journal)


def _journal_path(version_folder):
    base, version = os.path.split(os.path.abspath(version_folder))
    return os.path.join(base, f".{version}.publishing.json")


_JOURNAL = re.compile(r"\.(\d+)\.publishing\.json")


def _roll_back_unfinished(base_dir):
    """Removes the versions that a killed export published without their TFLite file.

    Returns the versions removed (a warning names them).
    """
    try:
        names = os.listdir(base_dir)
    except OSError:
        return []
    removed = []
    for name in names:
        match = _JOURNAL.fullmatch(name)
        if match is None:
            continue
        journal = os.path.join(base_dir, name)
        try:
            with open(journal) as f:
                record = json.load(f)
            if record.get("namespace", process_namespace()) != process_namespace():
                continue  # another host or container: its process ids are not ours to check
            if is_running(int(record["pid"])):
                continue  # an export publishing right now
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # gone (its export finished), or not ours to judge
        try:
            with open(record["tflite"], "rb") as f:
                done = hashlib.sha256(f.read()).hexdigest() == record["sha256"]
        except FileNotFoundError:
            done = False
        except (OSError, KeyError, TypeError):
            continue
        version = os.path.join(base_dir, match[1])
        if not done and os.path.isdir(version):
            shutil.rmtree(version)
            removed.append(int(match[1]))
        try:
            os.remove(journal)
        except FileNotFoundError:  # another export cleared it meanwhile
            pass
    if removed:
        warnings.warn(
            f"Removed version(s) {sorted(removed)} of {base_dir}: an export was stopped after "
            "publishing the SavedModel and before its TFLite file",
            stacklevel=3,
        )
    return removed


def format_report(report: dict) -> str:
    """Human-readable lines for an `export_model` / `verify_export` report.

    The last line gives the verdict, and for an `export_model` report that
    failed verification, that nothing was written.

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
    for key in EXPORT_KINDS:
        if key not in report:
            continue
        entry = report[key]
        if key == "tflite":
            label = f"tflite ({entry.get('quantize') or 'float32'})"
        else:
            label = key
        verdict = "ok" if entry["ok"] else f"MISMATCH (tolerance {entry['tolerance']:g})"
        line = (
            f"{label} {entry['path']}: {_size(entry['size_bytes'])}; max |diff| decode "
            f"{entry['decode_max_abs_diff']:.3g}, sample {entry['sample_max_abs_diff']:.3g}, "
            f"z {entry['latent_max_abs_diff']:.3g}"
        )
        if "reconstruct_max_abs_diff" in entry:
            line += f", reconstruct {entry['reconstruct_max_abs_diff']:.3g}"
        for name, value in entry.items():  # the static signatures (batch_sizes)
            if name.startswith("decode_b") and name.endswith("_max_abs_diff"):
                line += f", {name.removesuffix('_max_abs_diff')} {value:.3g}"
        lines.append(f"{line}: {verdict}")
    verdict = "all exports match the Keras model" if report["ok"] else "an export does not match"
    if report.get("written") is False:
        verdict += "; nothing was written"
    lines.append(
        f"verified with seed={report['seed']}, num_samples={report['num_samples']}: {verdict}"
    )
    return "\n".join(lines)


def _size(num_bytes):
    for unit in ("B", "KiB", "MiB"):
        if num_bytes < 1024 or unit == "MiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
