"""Evaluating a trained model on an image dataset: `keras-vae evaluate`."""

import keras

from keras_vae import data
from keras_vae.layers import IndependentBernoulli


def load_model(path: str):
    """Loads a `.keras` file, with one clear error if it is not one."""
    if not str(path).endswith(".keras"):
        raise ValueError(f"Expected a path to a .keras model file. Received: model={path!r}")
    try:
        return keras.saving.load_model(path)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"Expected a readable .keras model saved by keras-vae. Received: model={path!r} "
            f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None


def default_binarization(model) -> str | None:
    """`"dynamic"` for a Bernoulli likelihood, `None` (grey values) otherwise."""
    return "dynamic" if isinstance(model.likelihood, IndependentBernoulli) else None


def evaluate_model(
    model,
    dataset: str = "mnist",
    split: str = "test",
    batch_size: int = 500,
    seed: int = 0,
    data_dir: str | None = None,
) -> dict:
    """Per-example `elbo`, `reconstruction`, `kl` and `loss` on a dataset split.

    Binary-likelihood models are scored on a dynamically binarized copy of
    the split (one fixed draw per pixel, from `seed`), as they were trained.

    Args:
        model: a `VAE`, or a path to its `.keras` file.
        dataset: str. TFDS image dataset name. Defaults to `"mnist"`.
        split: str. TFDS split. Defaults to `"test"`.
        batch_size: int. Defaults to `500`.
        seed: int. Seed of the binarization. Defaults to `0`.
        data_dir: str or `None`. TFDS data folder.

    Returns:
        A dict of floats in nats per example.
    """
    if isinstance(model, str):
        model = load_model(model)
    images, _ = data.load_images(dataset, split, data_dir=data_dir)
    ds = data.make_dataset(
        images,
        binarize=default_binarization(model),
        batch_size=batch_size,
        shuffle=False,
        seed=seed,
    )
    return {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
