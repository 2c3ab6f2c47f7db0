"""Fixtures for the data tests: the shared offline MNIST copy in TFDS format."""

from pathlib import Path

import pytest

MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared/data/tensorflow_datasets"


@pytest.fixture(scope="session")
def mnist_dir():
    """The TFDS data folder holding MNIST; skips when the shared copy is missing."""
    if not (MNIST_DIR / "mnist").is_dir():
        pytest.skip(f"MNIST in TFDS format not found in {MNIST_DIR}")
    return str(MNIST_DIR)


@pytest.fixture(scope="session")
def mnist_train(mnist_dir):
    """The full MNIST training split: uint8 images [60000, 28, 28, 1] and int64 labels."""
    from keras_vae.data import load_images

    return load_images("mnist", "train", data_dir=mnist_dir)


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    """The full MNIST test split: uint8 images [10000, 28, 28, 1] and int64 labels."""
    from keras_vae.data import load_images

    return load_images("mnist", "test", data_dir=mnist_dir)
