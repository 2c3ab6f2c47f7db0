"""Evaluating a trained model on an image dataset: `keras-vae evaluate`."""

import keras
import numpy as np
import tensorflow as tf

from keras_vae import data
from keras_vae.evaluation import log_likelihood
from keras_vae.models.validation import check_positive_int, follows_model_contract
from keras_vae.tasks.training import make_datasets
from keras_vae.utils.checks import check_seed, keras_archive_problem, keras_error_cause


def load_model(path: str, safe_mode: bool = True):
    """Loads a `.keras` file, with one clear error if it is not one.

    A missing file is reported as not found; a file that is not a whole
    `.keras` archive (truncated, another format, a member whose checksum
    fails, a member missing) as "not a valid .keras file" with the reason,
    before Keras reads it (Keras reports most of these as "File not found");
    a network Keras cannot rebuild with the cause Keras gives (a custom layer
    not registered with `keras.saving.register_keras_serializable`, say).

    Args:
        path: str. The `.keras` file.
        safe_mode: bool. Keras's `safe_mode`: `False` loads `Lambda` layers
            of Python lambdas, for files you trust. Defaults to `True`.
    """
    if not str(path).endswith(".keras"):
        raise ValueError(f"Expected a path to a .keras model file. Received: model={path!r}")
    reason = keras_archive_problem(path)
    if reason is not None:
        raise ValueError(f"Expected a readable .keras model saved by keras-vae. Received: {reason}")
    try:
        model = keras.saving.load_model(path, safe_mode=safe_mode)
    except Exception as e:  # a bad archive fails in many ways (KeyError, TypeError, ...)
        raise ValueError(
            f"Expected a readable .keras model saved by keras-vae. Received: model={path!r} "
            f"({keras_error_cause(e)})"
        ) from None
    if not follows_model_contract(model):
        raise ValueError(
            "Expected a .keras file holding a keras_vae VAE or ConditionalVAE. "
            f"Received: model={path!r} holding a {type(model).__name__}"
        )
    return model


def default_binarization(model) -> str | None:
    """How to score a model: one fixed Bernoulli draw (`"static"`) for a binary
    likelihood, so every metric sees the same pixels; grey values otherwise."""
    return "static" if model.likelihood.binary else None


def evaluate_model(
    model,
    dataset: str = "mnist",
    split: str = "test",
    batch_size: int = 500,
    seed: int = 0,
    data_dir: str | None = None,
    importance_samples: int | None = None,
    verbose: int = 0,
) -> dict:
    """Per-example `elbo`, `reconstruction`, `kl` and `loss` on a dataset split.

    Binary-likelihood models are scored on one fixed Bernoulli draw of the
    split's grey values (from `seed`), so every metric sees the same pixels.
    A `ConditionalVAE` is scored on the pairs of its `condition_type`.

    Args:
        model: a `VAE`, or a path to its `.keras` file.
        dataset: str. TFDS image dataset name. Defaults to `"mnist"`.
        split: str. TFDS split. Defaults to `"test"`.
        batch_size: int. Defaults to `500`.
        seed: int in [0, 2**32). Seed of the binarization (and of the
            importance samples). Defaults to `0`.
        data_dir: str or `None`. TFDS data folder.
        importance_samples: int or `None`. When given, also the
            importance-weighted estimate of log p(x) with this many samples
            (`keras_vae.evaluation.log_likelihood`): adds `nll` (positive
            nats), `log_likelihood`, `bits_per_dim` and `active_units`.
            For a continuous likelihood these score the 8-bit images
            (targets): each is dequantized to `(k + u) / 256` with noise
            from `seed` and D ln 256 is subtracted from the density's
            log p (`keras_vae.data.dequantize`), so `nll` is a bound on the
            images' discrete negative log-probability and `bits_per_dim`
            compares with published 8-bit figures. The ELBO metrics stay
            those of the density on the grey values k / 255.
        verbose: int. Progress bar for the importance-weighted estimate.

    Returns:
        A dict of floats in nats per example, and `kl_estimator`: how the
        `kl` term was computed (`"analytic"` or `"monte_carlo"`, see
        `VAE.kl_estimator`).
    """
    if importance_samples is not None:
        check_positive_int("importance_samples", importance_samples)
    seed = check_seed("seed", seed)
    if isinstance(model, str):
        model = load_model(model)
    images, labels = data.load_images(dataset, split, data_dir=data_dir)
    kind = "cvae" if model.conditional else "vae"
    condition = model.condition_type
    if kind == "cvae" and condition not in data.CONDITIONS:
        raise ValueError(
            f"Expected a ConditionalVAE with a condition_type in {data.CONDITIONS} to evaluate "
            f"on an image dataset. Received: condition_type={condition!r}"
        )
    num_classes = model.condition_shape[0] if condition == "label" else 10
    binarize = default_binarization(model)
    # Keyed by an epoch, the draws take the seed as an int64: every 32-bit seed
    # the command line takes is its own (TensorFlow's seeds wrap at 2**31 - 1).
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    ds = make_datasets(
        kind, condition, images, labels, binarize, batch_size, seed, False, num_classes, epoch
    )
    metrics = {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
    metrics["kl_estimator"] = model.kl_estimator
    if importance_samples is not None:
        bins = None
        if binarize is None and np.issubdtype(images.dtype, np.integer):
            # A density's log p(x) is not a probability: score the 8-bit images,
            # dequantized, as `log_likelihood(..., bins=256)` describes.
            bins = 256
            ds = _dequantized_dataset(
                kind, condition, images, labels, batch_size, seed, num_classes
            )
        estimate = log_likelihood(
            model, ds, num_samples=importance_samples, seed=seed, verbose=verbose, bins=bins
        )
        for key in ("log_likelihood", "nll", "bits_per_dim", "active_units", "latent_dim"):
            metrics[key] = estimate[key]
        metrics["importance_samples"] = importance_samples
    return metrics


def _dequantized_dataset(kind, condition, images, labels, batch_size, seed, num_classes):
    """The evaluation pipeline with the 8-bit images (or CVAE targets) dequantized."""
    if kind == "vae":
        return data.make_dataset(
            data.dequantize(images, seed), binarize=None, batch_size=batch_size, shuffle=False
        )
    conditions, targets = data.make_conditional_pairs(images, labels, condition, num_classes)
    levels = np.rint(np.asarray(targets) * 255.0).astype(np.uint8)  # targets are k / 255
    return data.make_conditional_dataset(
        conditions,
        data.dequantize(levels, seed),
        binarize=None,
        batch_size=batch_size,
        shuffle=False,
        binarize_condition=False,
    )
