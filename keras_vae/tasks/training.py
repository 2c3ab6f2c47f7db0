"""End-to-end training on an image dataset: what `keras-vae train` runs."""

import json
import os

import keras
import numpy as np

from keras_vae import data
from keras_vae.models.presets import build_vae
from keras_vae.utils.images import save_images

BINARIZATIONS = ("dynamic", "static", "none")


def _history_to_lists(history):
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def _to_float_dict(logs):
    return {k: float(v) for k, v in logs.items()}


def train_model(
    dataset: str = "mnist",
    architecture: str = "mlp",
    latent_dim: int = 50,
    epochs: int = 10,
    batch_size: int = 128,
    beta: float = 1.0,
    seed: int = 0,
    output: str | None = None,
    learning_rate: float = 1e-3,
    binarize: str = "dynamic",
    train_split: str = "train",
    test_split: str = "test",
    data_dir: str | None = None,
    verbose: int | str = "auto",
):
    """Trains a VAE on a TFDS image dataset and writes its artifacts.

    Writes, under `output`: `model.keras`, `metrics.json` (the per-epoch
    history and the final train and test metrics), `samples.png` (a grid of
    64 generated images) and TensorBoard logs in `logs/`.

    Args:
        dataset: str. TFDS image dataset name. Defaults to `"mnist"`.
        architecture: str. `"mlp"` or `"conv"`. Defaults to `"mlp"`.
        latent_dim: int. Number of latents. Defaults to `50`.
        epochs: int. Passes over the training split. Defaults to `10`.
        batch_size: int. Defaults to `128`.
        beta: float. KL weight. Defaults to `1.0`.
        seed: int. Seeds weights, shuffling, binarization and samples.
        output: str or `None`. Output folder; `None` writes nothing.
        learning_rate: float. Adam's learning rate. Defaults to `1e-3`.
        binarize: str. `"dynamic"`, `"static"` or `"none"` (Gaussian
            likelihood on grey values). Defaults to `"dynamic"`.
        train_split: str. TFDS split to train on, e.g. `"train[:1000]"`.
        test_split: str. TFDS split for the final test metrics.
        data_dir: str or `None`. TFDS data folder (else `TFDS_DATA_DIR`).
        verbose: Keras verbosity for `fit`. Defaults to `"auto"`.

    Returns:
        A tuple `(model, metrics)` where `metrics` is what `metrics.json` holds.
    """
    if binarize not in BINARIZATIONS:
        raise ValueError(
            f"Expected binarize to be one of {BINARIZATIONS}. Received: binarize={binarize!r}"
        )
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")
    binarize_mode = None if binarize == "none" else binarize
    train_images, _ = data.load_images(dataset, train_split, data_dir=data_dir)
    test_images, _ = data.load_images(dataset, test_split, data_dir=data_dir)
    train_ds = data.make_dataset(
        train_images, binarize=binarize_mode, batch_size=batch_size, seed=seed
    )
    test_ds = data.make_dataset(
        test_images, binarize=binarize_mode, batch_size=batch_size, shuffle=False, seed=seed + 1
    )

    keras.utils.set_random_seed(seed)
    likelihood = "gaussian" if binarize_mode is None else "bernoulli"
    model = build_vae(
        architecture,
        train_images.shape[1:],
        latent_dim=latent_dim,
        likelihood=likelihood,
        beta=beta,
        seed=seed,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))

    callbacks = []
    if output is not None:
        os.makedirs(output, exist_ok=True)
        callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(output, "logs")))
    history = model.fit(
        train_ds, epochs=epochs, validation_data=test_ds, callbacks=callbacks, verbose=verbose
    )
    metrics = {
        "config": {
            "dataset": dataset,
            "architecture": architecture,
            "latent_dim": latent_dim,
            "epochs": epochs,
            "batch_size": batch_size,
            "beta": beta,
            "seed": seed,
            "learning_rate": learning_rate,
            "binarize": binarize,
            "train_split": train_split,
            "test_split": test_split,
        },
        "history": _history_to_lists(history),
        "train": _to_float_dict(model.evaluate(train_ds, verbose=0, return_dict=True)),
        "test": _to_float_dict(model.evaluate(test_ds, verbose=0, return_dict=True)),
    }
    if output is not None:
        model.save(os.path.join(output, "model.keras"))
        with open(os.path.join(output, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        save_images(sample_images(model, 64, seed), os.path.join(output, "samples.png"))
    return model, metrics


def sample_images(model, num_samples: int, seed: int) -> np.ndarray:
    """`num_samples` generated images `[N, H, W, C]` clipped to [0, 1]."""
    return np.clip(model.sample(num_samples, seed=seed), 0.0, 1.0)
