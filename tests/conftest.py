import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TFDS = REPO_ROOT.parent / "shared" / "data" / "tensorflow_datasets"


def _tfds_dir():
    configured = os.environ.get("TFDS_DATA_DIR")
    if configured and (Path(configured) / "mnist").is_dir():
        return str(Path(configured).resolve())
    if (SHARED_TFDS / "mnist").is_dir():
        return str(SHARED_TFDS)
    return None


@pytest.fixture(scope="session")
def tfds_data_dir():
    """A TFDS data folder holding MNIST (the shared offline copy or $TFDS_DATA_DIR)."""
    path = _tfds_dir()
    if path is None:
        pytest.skip("MNIST in TFDS format not found: set TFDS_DATA_DIR")
    os.environ["TFDS_DATA_DIR"] = path
    return path


@pytest.fixture(scope="session")
def mnist_test_images(tfds_data_dir):
    """The first 2,000 MNIST test images, float32 [N, 28, 28, 1] in [0, 1], and labels."""
    import tensorflow_datasets as tfds

    data = tfds.load("mnist", split="test[:2000]", batch_size=-1, data_dir=tfds_data_dir)
    images = data["image"].numpy().astype("float32") / 255.0
    return images, data["label"].numpy()


@pytest.fixture
def binary_images(mnist_test_images):
    """One fixed Bernoulli draw of the MNIST test images."""
    images, _ = mnist_test_images
    rng = np.random.default_rng(0)
    return (rng.random(images.shape) < images).astype("float32")


@pytest.fixture
def mixed_bfloat16():
    """Runs a test under the `mixed_bfloat16` dtype policy."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")
