"""Tiny untrained models of 4x4 grey images, one per kind the pictures draw.

The encoders pass the pixels through; the decoders are one Dense layer. Each
model is built and seeded, so its pictures are the same in every run.
"""

import keras
import numpy as np

from keras_vae import VAE, ConditionalVAE
from keras_vae.layers import IndependentBernoulli

SHAPE = (4, 4, 1)
CLASSES = 3


def _encoder(shape):
    return keras.Sequential([keras.Input(shape), keras.layers.Flatten()])


def _decoder(inputs, shape):
    size = int(np.prod(shape))
    return keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(size), keras.layers.Reshape(shape)]
    )


def make_vae(latent_dim=3, seed=0, **kwargs):
    """A built `VAE` of 4x4x1 images."""
    keras.utils.set_random_seed(seed)
    model = VAE(
        _encoder(SHAPE),
        _decoder(latent_dim, SHAPE),
        latent_dim,
        likelihood=IndependentBernoulli(SHAPE),
        **kwargs,
    )
    model.build((None, *SHAPE))
    return model


def make_label_cvae(latent_dim=3, seed=0, **kwargs):
    """A built label `ConditionalVAE` of 4x4x1 images and 3 classes."""
    keras.utils.set_random_seed(seed)
    model = ConditionalVAE(
        _encoder(SHAPE),
        _decoder(latent_dim + CLASSES, SHAPE),
        latent_dim,
        likelihood=IndependentBernoulli(SHAPE),
        hidden_units=4,
        condition_type="label",
        **kwargs,
    )
    model.build((None, CLASSES))
    return model


def make_completion_cvae(latent_dim=3, seed=0, **kwargs):
    """A built `ConditionalVAE` completing the bottom half of 4x4x1 images from the top."""
    keras.utils.set_random_seed(seed)
    half = (8,)
    model = ConditionalVAE(
        _encoder(half),
        _decoder(latent_dim + 8, half),
        latent_dim,
        likelihood=IndependentBernoulli(half),
        hidden_units=4,
        condition_type="top-half",
        image_shape=SHAPE,
        **kwargs,
    )
    model.build((None, 8))
    return model


def images(n, seed=0):
    """`(images, labels)`: grey images `[n, 4, 4, 1]` in [0, 1] and classes `[n]` in [0, 3)."""
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE)).astype("float32"), rng.integers(0, CLASSES, n)


def as_uint8(images):
    """Images in [0, 1] as the pictures store them."""
    return np.round(np.clip(np.asarray(images, "float32"), 0.0, 1.0) * 255).astype(np.uint8)


def cut_tiles(picture, num_rows, num_cols, zoom=3, shape=SHAPE):
    """The tiles of a `picture_grid` picture `[rows * cols, H, W, C]` (one pixel per block).

    The grid sits at the picture's right (a row-label margin, if any, is at
    its left).
    """
    h, w = shape[0] * zoom, shape[1] * zoom
    width = num_cols * (w + 1) - 1
    assert picture.shape[0] == num_rows * (h + 1) - 1
    grid = picture[:, picture.shape[1] - width :]
    tiles = [
        grid[r * (h + 1) : r * (h + 1) + h : zoom, c * (w + 1) : c * (w + 1) + w : zoom]
        for r in range(num_rows)
        for c in range(num_cols)
    ]
    return np.stack(tiles)


def assert_tiles_equal(actual, expected):
    """Tiles equal to expected images in [0, 1], up to one grey level (float rounding)."""
    expected = as_uint8(expected)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual.astype(int), expected.astype(int), atol=1)


def assert_one_line_error(excinfo):
    """The error says what was expected, then what came, in one line."""
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("Expected ") and "Received: " in message, message
