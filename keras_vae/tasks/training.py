"""End-to-end training on an image dataset: what `keras-vae train` runs."""

import json
import math
import numbers
import os

import keras

from keras_vae import data
from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.presets import LIKELIHOODS, build_cvae, build_vae
from keras_vae.models.validation import check_choice, check_positive_int
from keras_vae.tasks.generation import complete_images, completion_grid, sample_images
from keras_vae.utils.images import save_images

BINARIZATIONS = ("dynamic", "static", "none")
MODELS = ("vae", "cvae")
DEFAULT_LATENT_DIMS = {"vae": 50, "cvae": 8}


def make_datasets(
    model_kind, condition, images, labels, binarize, batch_size, seed, shuffle, num_classes=10
):
    """The tf.data pipeline of x batches (VAE) or (condition, target) pairs (CVAE)."""
    if model_kind == "vae":
        return data.make_dataset(
            images, binarize=binarize, batch_size=batch_size, shuffle=shuffle, seed=seed
        )
    conditions, targets = data.make_conditional_pairs(images, labels, condition, num_classes)
    return data.make_conditional_dataset(
        conditions,
        targets,
        binarize=binarize,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        binarize_condition=condition != "label",
    )


def train_model(
    dataset: str = "mnist",
    architecture: str = "mlp",
    latent_dim: int | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    beta: float = 1.0,
    seed: int = 0,
    output: str | None = None,
    learning_rate: float = 1e-3,
    binarize: str = "dynamic",
    model: str = "vae",
    condition: str | None = None,
    prior: str = "standard",
    train_split: str = "train",
    test_split: str = "test",
    data_dir: str | None = None,
    verbose: int | str = "auto",
    jit_compile: bool | str = "auto",
    gsnn_weight: float = 0.0,
    likelihood: str | None = None,
):
    """Trains a VAE or a CVAE on a TFDS image dataset and writes its artifacts.

    Writes, under `output`: `model.keras`, `metrics.json` (the per-epoch
    history and the final train and test metrics), `samples.png` (generated
    images: a grid from the prior, one row per class for a label CVAE, or
    rows of [observed part, completions, original] for a completion CVAE) and
    TensorBoard logs in `logs/`.

    Args:
        dataset: str. TFDS image dataset name. Defaults to `"mnist"`.
        architecture: str. `"mlp"` or `"conv"`. Defaults to `"mlp"`.
        latent_dim: int or `None`. Number of latents. Defaults to `50` for a
            VAE and `8` for a CVAE, whose condition carries the class and
            whose few latents then hold the style, which keeps samples true to
            the requested class.
        epochs: int. Passes over the training split. Defaults to `10`.
        batch_size: int. Defaults to `128`.
        beta: float. KL weight. Defaults to `1.0`.
        seed: int. Seeds weights, shuffling, binarization and samples.
        output: str or `None`. Output folder; `None` writes nothing.
        learning_rate: float. Adam's learning rate. Defaults to `1e-3`.
        binarize: str. `"dynamic"`, `"static"` or `"none"` (Gaussian
            likelihood on grey values). Defaults to `"dynamic"`.
        model: str. `"vae"` or `"cvae"`. Defaults to `"vae"`.
        condition: str or `None`. For a CVAE: `"label"`, `"center-column"`
            or `"top-half"`.
        prior: str. CVAE prior P(z|X): `"standard"` or `"learned"`.
        train_split: str. TFDS split to train on, e.g. `"train[:1000]"`.
        test_split: str. TFDS split for the final test metrics.
        data_dir: str or `None`. TFDS data folder (else `TFDS_DATA_DIR`).
        verbose: Keras verbosity for `fit`. Defaults to `"auto"`.
        jit_compile: `"auto"`, `True` or `False`. Compile the training step
            with XLA. `"auto"` uses XLA on CPU unless the model has
            convolutions, which ran slower under XLA on our CPU (see
            `ELBOModel.compile`). Defaults to `"auto"`.
        gsnn_weight: float in [0, 1). For a CVAE, the weight of the
            reconstruction from prior draws in the loss (Sohn et al.'s hybrid
            objective). Defaults to `0.0`.
        likelihood: str or `None`. P(x|z): `"bernoulli"` (binarized data),
            `"pixelcnn"` (binarized data, VAE only: an autoregressive
            `PixelCNNBernoulli` on the decoder, for better log-likelihoods;
            such a model is not exportable) or `"gaussian"` (`binarize="none"`).
            Defaults to `None`: Bernoulli for binarized data, Gaussian otherwise.

    Returns:
        A tuple `(model, metrics)` where `metrics` is what `metrics.json` holds.
    """
    check_choice("binarize", binarize, BINARIZATIONS)
    check_choice("model", model, MODELS)
    if model == "cvae":
        check_choice("condition", condition, data.CONDITIONS)
    elif condition is not None:
        raise ValueError(
            f"Expected condition=None for model='vae' (use model='cvae'). "
            f"Received: condition={condition!r}"
        )
    elif gsnn_weight != 0.0:
        raise ValueError(
            f"Expected gsnn_weight=0.0 for model='vae' (it weights a CVAE loss term). "
            f"Received: gsnn_weight={gsnn_weight!r}"
        )
    elif prior != "standard":
        raise ValueError(
            f"Expected prior='standard' for model='vae' (a learned prior P(z|X) needs a "
            f"condition X; use model='cvae'). Received: prior={prior!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"Expected seed to be an integer in [0, 2**32). Received: seed={seed!r}")
    seed = int(seed)  # numpy integers too: metrics.json holds it
    check_positive_float("learning_rate", learning_rate)
    if latent_dim is None:
        latent_dim = DEFAULT_LATENT_DIMS[model]
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    binarize_mode = None if binarize == "none" else binarize
    if likelihood is None:
        likelihood = "gaussian" if binarize_mode is None else "bernoulli"
    check_choice("likelihood", likelihood, LIKELIHOODS)
    if (likelihood == "gaussian") != (binarize_mode is None):
        expected = "binarize='none'" if likelihood == "gaussian" else "binarized data"
        raise ValueError(
            f"Expected {expected} for likelihood={likelihood!r}. Received: binarize={binarize!r}"
        )
    if likelihood == "pixelcnn" and model != "vae":
        raise ValueError(
            "Expected model='vae' for likelihood='pixelcnn' (CVAEs take factorized "
            f"likelihoods). Received: model={model!r}"
        )
    train_images, train_labels = data.load_images(dataset, train_split, data_dir=data_dir)
    test_images, test_labels = data.load_images(dataset, test_split, data_dir=data_dir)
    image_shape = train_images.shape[1:]
    # From the dataset's metadata: a slice need not hold every class.
    num_classes = data.num_classes(dataset, data_dir=data_dir)
    pipeline = (model, condition)
    train_ds = make_datasets(
        *pipeline, train_images, train_labels, binarize_mode, batch_size, seed, True, num_classes
    )
    test_ds = make_datasets(
        *pipeline, test_images, test_labels, binarize_mode, batch_size, seed + 1, False, num_classes
    )

    keras.utils.set_random_seed(seed)
    if model == "vae":
        vae = build_vae(architecture, image_shape, latent_dim, likelihood, beta, seed)
    else:
        vae = build_cvae(
            architecture,
            condition,
            image_shape,
            latent_dim,
            num_classes,
            prior,
            likelihood,
            beta,
            seed,
            gsnn_weight,
        )
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=jit_compile)

    callbacks = []
    if output is not None:
        os.makedirs(output, exist_ok=True)
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(output, "logs")))
    history = vae.fit(
        train_ds,
        epochs=epochs,
        validation_data=test_ds,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles
    )
    metrics = {
        "config": {
            "dataset": dataset,
            "model": model,
            "condition": condition,
            "prior": prior if model == "cvae" else None,
            "gsnn_weight": gsnn_weight if model == "cvae" else None,
            "architecture": architecture,
            "latent_dim": latent_dim,
            "epochs": epochs,
            "batch_size": batch_size,
            "beta": beta,
            "seed": seed,
            "learning_rate": learning_rate,
            "binarize": binarize,
            "likelihood": likelihood,
            "train_split": train_split,
            "test_split": test_split,
            "jit_compile": vae.jit_compile,
        },
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "train": _evaluate(vae, train_ds),
        "test": _evaluate(vae, test_ds),
    }
    if output is not None:
        vae.save(os.path.join(output, "model.keras"))
        with open(os.path.join(output, "metrics.json"), "w") as f:
            json.dump(json_safe(metrics), f, indent=2, allow_nan=False)
        _save_preview(vae, condition, test_images, seed, os.path.join(output, "samples.png"))
    return vae, metrics


def json_safe(value):
    """`value` with every non-finite float replaced by `None`, as strict JSON requires."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _evaluate(model, dataset):
    logs = model.evaluate(dataset, verbose=0, return_dict=True)
    return {k: float(v) for k, v in logs.items()}


def _save_preview(model, condition, test_images, seed, path):
    if condition in (None, "label"):
        images = sample_images(model, 8 if condition else 64, seed)
        save_images(images, path, num_rows=model.condition_shape[0] if condition else None)
        return
    originals = data.scale_images(test_images[:8])
    completions = complete_images(model, originals, 6, seed)
    save_images(completion_grid(originals, completions, condition), path, num_rows=8)
