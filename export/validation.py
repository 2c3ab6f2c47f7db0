"""Checks shared by the exporters, so bad input fails with one clear line."""

import numbers
import os

import numpy as np

from keras_vae.export.litert_sampler import written_by_keras_vae
from keras_vae.models.validation import follows_model_contract
from keras_vae.utils.images import file_in_the_way

QUANTIZE_MODES = (None, "float16", "dynamic", "int8", "int8-full")
# The modes calibrated on latents (and, for a ConditionalVAE, conditions).
CALIBRATED_MODES = ("int8", "int8-full")
# The largest fixed batch of a static TFLite signature: the `num_samples` cap.
MAX_BATCH_SIZE = 4096
# TF Serving parses a version folder's name as an int64.
MAX_VERSION = 2**63 - 1


def check_exportable(model, allow_untrained: bool = False) -> None:
    """Raises unless `model` is a built (and, by default, trained) keras-vae model.

    "Trained" means the optimizer has taken at least one step:
    `model.optimizer.iterations > 0`. A model loaded from a `.keras` file with
    its optimizer (the default of `keras.saving.load_model`) keeps that count.

    Args:
        model: the object to check.
        allow_untrained: bool. Accept a built model whose optimizer never
            stepped (or that was never compiled), e.g. weights set by hand.

    Raises:
        ValueError: naming what was expected and what was received.
    """
    if not follows_model_contract(model):
        raise ValueError(
            f"Expected a keras_vae VAE or ConditionalVAE. Received: model={type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "Expected a built model: fit it or call it on data first. "
            f"Received: an unbuilt {type(model).__name__}"
        )
    if not model.likelihood.exportable:
        raise ValueError(
            "Expected an exportable likelihood with a closed-form mean (IndependentBernoulli "
            "or GaussianLikelihood): the exported signatures return it, and an "
            "autoregressive likelihood draws pixel by pixel. Received: "
            f"likelihood={type(model.likelihood).__name__}"
        )
    if allow_untrained:
        return
    optimizer = getattr(model, "optimizer", None)
    steps = 0 if optimizer is None else int(optimizer.iterations.numpy())
    if steps == 0:
        state = "no optimizer" if optimizer is None else "an optimizer that never stepped"
        raise ValueError(
            "Expected a trained model (optimizer.iterations > 0); pass allow_untrained=True "
            "(--allow-untrained on the command line) to export it anyway. Received: a "
            f"{type(model).__name__} with {state}"
        )


def check_batch_sizes(batch_sizes) -> tuple[int, ...]:
    """The fixed batch sizes of the static signatures, sorted and without repeats.

    Args:
        batch_sizes: a sequence of positive integers up to `MAX_BATCH_SIZE`,
            or the same as a comma-separated string (`"1,64"`, as
            `--batch-sizes` takes it). Empty (`()`) for none.

    Returns:
        A tuple of ints.

    Raises:
        ValueError: for anything else, in one line.
    """
    received = batch_sizes
    if isinstance(batch_sizes, str):
        parts = [part.strip() for part in batch_sizes.split(",")]
        batch_sizes = [int(p) if p.isdigit() else p for p in parts]
    try:
        sizes = list(batch_sizes)
    except TypeError:
        sizes = [batch_sizes]
    valid = all(
        isinstance(size, numbers.Integral)
        and not isinstance(size, bool)
        and 1 <= size <= MAX_BATCH_SIZE
        for size in sizes
    )
    if not valid or (isinstance(received, str) and not sizes):
        raise ValueError(
            "Expected batch_sizes to be integers in [1, "
            f"{MAX_BATCH_SIZE}], comma-separated on the command line (e.g. 1,64). "
            f"Received: batch_sizes={received!r}"
        )
    return tuple(sorted({int(size) for size in sizes}))


def check_quantize(quantize) -> None:
    """Raises unless `quantize` is one of `QUANTIZE_MODES`."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"Expected quantize to be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}"
        )


def check_min_runtime(min_runtime):
    """The oldest TFLite runtime a file must run on, as a `(major, minor, patch)` tuple.

    Args:
        min_runtime: a version string such as `"2.14"` or `"2.14.0"` (as
            `--min-runtime` takes it), or `None` for no constraint.

    Returns:
        A tuple of three ints, or `None`.

    Raises:
        ValueError: for anything else, in one line.
    """
    if min_runtime is None:
        return None
    parts = min_runtime.split(".") if isinstance(min_runtime, str) else []
    if not 2 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        raise ValueError(
            "Expected min_runtime to be a TFLite version such as '2.14' or '2.14.0', or None. "
            f"Received: min_runtime={min_runtime!r}"
        )
    return tuple(int(part) for part in parts) + (0,) * (3 - len(parts))


def check_version(version):
    """Returns `version` as an int; raises unless it is `None` or in `[1, MAX_VERSION]`.

    TF Serving reads version folder names as int64, so a larger number would
    name a folder it never serves.
    """
    if version is None:
        return None
    if (
        isinstance(version, bool)
        or not isinstance(version, numbers.Integral)
        or not 1 <= version <= MAX_VERSION
    ):
        raise ValueError(
            "Expected version to be a positive integer at most 2**63 - 1 (TF Serving reads "
            f"it as an int64) or None. Received: version={version!r}"
        )
    return int(version)


def check_tflite_path(path) -> str:
    """Returns `path` as a str; raises unless it names a `.tflite` file, not a folder.

    An existing file there is replaced only if keras-vae exported it: another
    exporter's file (or any other) is the user's, and is refused.
    """
    path = os.fspath(path)
    if not path.endswith(".tflite") or os.path.isdir(path):
        raise ValueError(f"Expected path to a .tflite file. Received: path={path!r}")
    if os.path.lexists(path) and not written_by_keras_vae(path):
        raise ValueError(
            "Expected path to a new .tflite file or to one keras-vae exported, which is "
            f"replaced. Received: path={path!r}, a file keras-vae did not write"
        )
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise ValueError(
            f"Expected path to a .tflite file in a folder. Received: path={path!r} "
            f"({blocker} is a file)"
        )
    return path


def check_folder_path(argument, path, inside) -> str:
    """Returns `path` as a str; raises unless it is a folder or a new path.

    `inside` names a file the export would write in it: a file at `path`, or
    above it, stands in the way of that file's folders.
    """
    path = os.fspath(path)
    blocker = file_in_the_way(os.path.join(path, inside))
    if not path or blocker is not None:
        raise ValueError(
            f"Expected {argument} to be a folder or a new path. Received: {argument}={path!r}"
            + (f" ({blocker} is a file)" if blocker else "")
        )
    return path


def check_representative_conditions(model, quantize, conditions):
    """The conditions to calibrate `model`'s int8 TFLite decoder with, or `None`.

    Args:
        model: a `VAE` or built `ConditionalVAE`.
        quantize: one of `QUANTIZE_MODES`.
        conditions: array `[M, *condition_shape]` or `None`. Defaults, for
            label conditions, to every one-hot label.

    Returns:
        A float32 array `[M, *condition_shape]` for the int8 export of a
        ConditionalVAE, else `None`.

    Raises:
        ValueError: for conditions that calibrate nothing (no int8, or a
            VAE), or that are missing (conditions other than labels) or
            misshapen.
    """
    conditional = model.conditional
    if conditions is not None and quantize not in CALIBRATED_MODES:
        raise ValueError(
            "Expected quantize='int8' or 'int8-full' with representative_conditions (they "
            f"calibrate the int8 quantization). Received: quantize={quantize!r}"
        )
    if conditions is not None and not conditional:
        raise ValueError(
            "Expected representative_conditions=None for a model without conditions. "
            f"Received: representative_conditions for a {type(model).__name__}"
        )
    if quantize not in CALIBRATED_MODES or not conditional:
        return None
    shape = tuple(model.condition_shape)
    expected = f"[M, {', '.join(map(str, shape))}]"
    if conditions is None:
        if model.condition_type == "label" and len(shape) == 1:
            return np.eye(shape[0], dtype=np.float32)
        raise ValueError(
            f"Expected representative_conditions, an array {expected} of typical conditions, "
            "to calibrate the int8 export of a ConditionalVAE whose conditions are not "
            "labels, e.g. keras_vae.export.export_model(..., quantize='int8', "
            "representative_conditions=...) with observed parts of training images. Received: "
            f"condition_type={model.condition_type!r}, representative_conditions=None"
        )
    try:
        conditions = np.asarray(conditions, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected representative_conditions to be an array {expected} of numbers. "
            f"Received: representative_conditions of type {type(conditions).__name__}"
        ) from None
    if conditions.shape[1:] != shape or len(conditions) == 0:
        raise ValueError(
            f"Expected representative_conditions shaped {expected} with M > 0. "
            f"Received: representative_conditions.shape={conditions.shape}"
        )
    return conditions


def converted(converter, name=None) -> bytes:
    """`converter.convert()` of a `tf.lite.TFLiteConverter`, its refusals in one line.

    A network with an op that TFLite's builtins lack (a matrix inverse, say)
    fails in the converter with a report of up to hundreds of lines (the
    whole MLIR function); the line that names the ops is kept.

    Args:
        converter: a `tf.lite.TFLiteConverter`.
        name: str or `None`. The function converted, for a converter of one
            concrete function (which the converter calls `'main'`).

    Raises:
        ValueError: naming the signature and the ops, when the converter
            refuses the model.
    """
    try:
        return converter.convert()
    except Exception as error:  # tf.lite's ConverterError, not exported by tf.lite
        if type(error).__name__ != "ConverterError":
            raise
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        named = [line for line in lines if line.startswith(("TF Select ops:", "Custom ops:"))]
        where = [line for line in lines if "failed while converting:" in line]
        reason = ", ".join(named or lines[:1])
        if name is not None:
            reason = f"{name!r}: {reason}"
        elif where:
            reason = f"{where[0].split('failed while converting:')[1].strip(' :')}: {reason}"
        raise ValueError(
            "Expected networks of ops that TFLite's builtins hold (a SavedModel export "
            f"takes any TensorFlow op). Received: the converter refused {reason}"
        ) from None
