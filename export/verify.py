"""Checks that exported files reproduce the Keras model."""

import concurrent.futures
import numbers
import os

import numpy as np
import tensorflow as tf

from keras_vae.export.litert_sampler import Sampler
from keras_vae.export.onnx import run_onnx
from keras_vae.export.serving_module import MAX_NUM_SAMPLES
from keras_vae.ops.random import int32_bits
from keras_vae.utils.checks import check_seed

EXPORT_KINDS = ("saved_model", "tflite", "onnx")
# Largest accepted difference from the Keras model, on the likelihood mean
# (e.g. pixel probabilities): the max for float32, the mean for quantized files.
TOLERANCES = {None: 1e-4, "float16": 1e-3, "dynamic": 0.02, "int8": 0.05, "int8-full": 0.05}


def verify_export(
    model,
    saved_model_dir: str | None = None,
    tflite_path: str | None = None,
    seed: int = 0,
    num_samples: int = 4,
    condition=None,
    onnx_dir: str | None = None,
) -> dict:
    """Loads what an export wrote and compares it with the Keras model.

    The SavedModel is loaded in this process with `tf.saved_model.load` and
    called through its signatures; the TFLite file through
    `litert_sampler.Sampler` (LiteRT's signature runners). For each, with the
    same seed: `decode` of the latents `model.sample_latent` draws against
    `model.decode(z).mean()`, `sample` against `model.sample` and the
    latents it returns against `model.sample_latent`; for the SavedModel
    also `reconstruct` of the sampled images against `model.reconstruct`.

    A file passes (`"ok"`) when its largest image difference is within
    `TOLERANCES[None]` (float32 files, the SavedModel included) or, for a
    quantized TFLite file, its mean difference is within `TOLERANCES[quantize]`.

    Args:
        model: the `VAE` or `ConditionalVAE` that was exported.
        saved_model_dir: str or `None`. A version folder (`base/<version>`).
        tflite_path: str or `None`. A `.tflite` file.
        seed: int in [0, 2**32). Seed of the compared draws (the exports
            take its 32 bits as an int32). Defaults to `0`.
        num_samples: int. Draws (per condition) compared. Defaults to `4`.
        condition: array `[B, *condition_shape]` or `None`. Conditions for a
            ConditionalVAE; defaults to the first (up to 4) one-hot labels for
            label conditions, else uniform noise in [0, 1].
        onnx_dir: str or `None`. A folder of ONNX files (`export_model`'s), run
            under onnxruntime and held to the float32 tolerance.

    Returns:
        A dict with `seed`, `num_samples`, `ok` (all files pass) and, per
        file checked, `"saved_model"` / `"tflite"`: `path`, `size_bytes`,
        `{decode,sample,latent}_max_abs_diff`, `{decode,sample}_mean_abs_diff`,
        `tolerance`, `ok` (and `quantize` for TFLite).

    Example:

    >>> report = verify_export(vae, tflite_path="model.tflite")  # doctest: +SKIP
    >>> report["tflite"]["sample_max_abs_diff"] < 1e-5  # doctest: +SKIP
    True
    """
    if saved_model_dir is None and tflite_path is None and onnx_dir is None:
        raise ValueError(
            "Expected saved_model_dir, tflite_path or onnx_dir to verify. Received: none"
        )
    check_draws(seed, num_samples)
    seed, num_samples = int(seed), int(num_samples)
    reference = _reference(model, seed, num_samples, condition)
    report = {"seed": seed, "num_samples": num_samples}
    if saved_model_dir is not None:
        report["saved_model"] = _outside_strategy_scope(
            _check_saved_model, model, saved_model_dir, reference
        )
    if tflite_path is not None:
        report["tflite"] = _check_tflite(tflite_path, reference)
    if onnx_dir is not None:
        report["onnx"] = _check_onnx(onnx_dir, reference)
    report["ok"] = all(report[key]["ok"] for key in EXPORT_KINDS if key in report)
    return report


def check_draws(seed, num_samples) -> None:
    """Raises unless `seed` is an integer in [0, 2**32) and `num_samples` one in
    `[1, MAX_NUM_SAMPLES]`."""
    check_seed("seed", seed)
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise ValueError(
            f"Expected num_samples to be an integer. Received: num_samples={num_samples!r}"
        )
    if not 1 <= num_samples <= MAX_NUM_SAMPLES:
        raise ValueError(
            f"Expected num_samples in [1, {MAX_NUM_SAMPLES}]. Received: num_samples={num_samples}"
        )


def _reference(model, seed, num_samples, condition):
    """What the Keras model gives: latents, decoded latents, samples and reconstructions."""
    repeated = None
    if model.conditional:
        condition = _default_condition(model) if condition is None else condition
        condition = np.asarray(condition, np.float32)
        repeated = np.repeat(condition, num_samples, axis=0)
    z = model.sample_latent(num_samples, seed, condition=condition)
    z = tf.reshape(z, [-1, model.latent_dim]).numpy()
    samples = model.sample(num_samples, condition, seed=seed)
    samples = samples.reshape((-1, *model.event_shape))
    decode_inputs = {"z": z}
    reconstruct_inputs = {model.data_name: np.clip(samples, 0.0, 1.0).astype(np.float32)}
    if repeated is not None:
        decode_inputs["condition"] = reconstruct_inputs["condition"] = repeated
    return {
        "seed": seed,
        "num_samples": num_samples,
        "condition": condition,
        "z": z,
        "decode_inputs": decode_inputs,
        "decoded": model.decode(z, repeated).mean().numpy(),
        "samples": samples,
        "reconstruct_inputs": reconstruct_inputs,
        "reconstructed": model.reconstruct(
            reconstruct_inputs[model.data_name], reconstruct_inputs.get("condition")
        ),
    }


def _outside_strategy_scope(function, *args):
    """`function(*args)`, run where no `tf.distribute` strategy is in scope.

    Loaded in a strategy's scope, a SavedModel's variables are distributed
    and its signatures fail when called directly ("executing a graph
    generated from the cross-replica context in an in-replica context").
    Scopes belong to a thread: a new thread is outside them.
    """
    if not tf.distribute.has_strategy():
        return function(*args)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def _default_condition(model):
    shape = tuple(model.condition_shape)
    if model.condition_type == "label" and len(shape) == 1:
        return np.eye(shape[0], dtype=np.float32)[: min(4, shape[0])]
    return np.random.default_rng(0).random((2,) + shape).astype(np.float32)


def _differences(decoded, samples, z, reference):
    return {
        "decode_max_abs_diff": _max_diff(decoded, reference["decoded"]),
        "decode_mean_abs_diff": float(np.mean(np.abs(decoded - reference["decoded"]))),
        "sample_max_abs_diff": _max_diff(samples, reference["samples"]),
        "sample_mean_abs_diff": float(np.mean(np.abs(samples - reference["samples"]))),
        "latent_max_abs_diff": _max_diff(z, reference["z"]),
    }


def _max_diff(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        raise ValueError(
            f"Expected exported outputs shaped {expected.shape}. Received: shape={actual.shape}"
        )
    return float(np.max(np.abs(actual - expected))) if actual.size else 0.0


def _check_saved_model(model, path, reference):
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(
            f"Expected a SavedModel version folder (with saved_model.pb). Received: "
            f"saved_model_dir={path!r}"
        )
    signatures = tf.saved_model.load(path).signatures
    inputs = {k: tf.constant(v) for k, v in reference["decode_inputs"].items()}
    _check_decode_inputs(signatures["serving_default"], inputs, path)
    decoded = signatures["serving_default"](**inputs)["image"].numpy()
    sample_inputs = {
        "seed": tf.constant(int32_bits(reference["seed"]), tf.int32),
        "num_samples": tf.constant(reference["num_samples"], tf.int32),
    }
    if reference["condition"] is not None:
        sample_inputs["condition"] = tf.constant(reference["condition"])
    outputs = signatures["sample"](**sample_inputs)
    result = {"path": path, "size_bytes": _folder_size(path)}
    result.update(_differences(decoded, outputs["image"].numpy(), outputs["z"].numpy(), reference))
    worst = max(result["decode_max_abs_diff"], result["sample_max_abs_diff"])
    inputs = {k: tf.constant(v) for k, v in reference["reconstruct_inputs"].items()}
    reconstructed = signatures["reconstruct"](**inputs)["image"].numpy()
    result["reconstruct_max_abs_diff"] = _max_diff(reconstructed, reference["reconstructed"])
    worst = max(worst, result["reconstruct_max_abs_diff"])
    result["tolerance"] = TOLERANCES[None]
    result["ok"] = worst <= TOLERANCES[None]
    return result


def _check_onnx(folder, reference):
    folder = os.fspath(folder)
    decoded = run_onnx(folder, "serving_default", reference["decode_inputs"])["image"]
    sample_inputs = {
        "seed": np.array(int32_bits(reference["seed"]), np.int32),
        "num_samples": np.array(reference["num_samples"], np.int32),
    }
    if reference["condition"] is not None:
        sample_inputs["condition"] = np.asarray(reference["condition"], np.float32)
    outputs = run_onnx(folder, "sample", sample_inputs)
    result = {"path": folder, "size_bytes": _folder_size(folder)}
    result.update(_differences(decoded, outputs["image"], outputs["z"], reference))
    reconstructed = run_onnx(folder, "reconstruct", reference["reconstruct_inputs"])["image"]
    result["reconstruct_max_abs_diff"] = _max_diff(reconstructed, reference["reconstructed"])
    worst = max(result[f"{k}_max_abs_diff"] for k in ("decode", "sample", "reconstruct"))
    result["tolerance"] = TOLERANCES[None]
    result["ok"] = worst <= TOLERANCES[None]
    return result


def _check_decode_inputs(signature, inputs, path):
    """Raises in one line unless `signature` (`serving_default`) takes `inputs`.

    A SavedModel of another model (a VAE's for a CVAE, or another latent
    size) would otherwise fail inside the call with TensorFlow's multi-line
    binding or graph error.
    """
    specs = getattr(signature, "structured_input_signature", None)
    if specs is None:  # not a concrete function (tests wrap them)
        return
    takes = {name: spec.shape for name, spec in specs[1].items()}
    if set(takes) != set(inputs) or not all(
        takes[name].is_compatible_with(value.shape) for name, value in inputs.items()
    ):

        def shapes(named):
            return ", ".join(f"{k} {list(v)}" for k, v in sorted(named.items()))

        given = {name: [None, *value.shape[1:]] for name, value in inputs.items()}
        raise ValueError(
            f"Expected a SavedModel of this model, whose decode takes {shapes(given)}. "
            f"Received: saved_model_dir={path!r}, whose serving_default takes "
            f"{shapes({k: v.as_list() for k, v in takes.items()})}"
        )


def _check_tflite(path, reference):
    sampler = Sampler(path)
    decoded = sampler.decode(**reference["decode_inputs"])
    samples, z = sampler.sample(
        reference["seed"], reference["num_samples"], reference["condition"], return_latent=True
    )
    result = {"path": os.fspath(path), "size_bytes": os.path.getsize(path)}
    result["quantize"] = sampler.quantize
    result.update(_differences(decoded, samples, z, reference))
    tolerance = TOLERANCES.get(sampler.quantize, TOLERANCES[None])
    if sampler.quantize is None:
        worst = max(result["decode_max_abs_diff"], result["sample_max_abs_diff"])
    else:
        worst = max(result["decode_mean_abs_diff"], result["sample_mean_abs_diff"])
    # Each static signature (batch_sizes), on the reference latents repeated to its batch.
    for batch in sampler.batch_sizes:
        rows = np.arange(batch) % len(reference["z"])
        static = sampler.decode(**{k: v[rows] for k, v in reference["decode_inputs"].items()})
        difference = np.abs(static - reference["decoded"][rows])
        result[f"decode_b{batch}_max_abs_diff"] = float(np.max(difference))
        worst = max(
            worst, float(np.max(difference) if sampler.quantize is None else np.mean(difference))
        )
    result["tolerance"] = tolerance
    result["ok"] = worst <= tolerance
    return result


def _folder_size(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )
