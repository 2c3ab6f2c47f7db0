"""The `reconstructions` picture: inputs beside what the model makes of them."""

import numpy as np

from keras_vae.data import scale_images
from keras_vae.models.validation import check_positive_int
from keras_vae.visualize.model_inputs import as_images, model_inputs
from keras_vae.visualize.picture_grid import picture_grid


def plot_reconstructions(
    model, images, labels=None, pairs_per_row: int = 8, seed: int = 0, zoom: int = 3
) -> np.ndarray:
    """Each input image beside its reconstruction, `model.reconstruct`.

    Tiles go in pairs, input then reconstruction, `pairs_per_row` pairs a
    row. A completion CVAE reconstructs the missing part from its own
    latent; the tile shows it joined to the observed part.

    Args:
        model: a model of the family.
        images: array `[N, H, W(, C)]`, uint8 or float in [0, 1].
        labels: int array `[N]` or `None`. Classes, for a label CVAE.
        pairs_per_row: int. Defaults to `8`.
        seed: int. Seed of a completion CVAE's binarized observed part.
            Defaults to `0`.
        zoom: int. Pixels per image pixel. Defaults to `3`.

    Returns:
        uint8 array `[height, width, C]`: `ceil(N / pairs_per_row)` rows of
        `2 * min(N, pairs_per_row)` tiles.

    Example:

    >>> save_png(plot_reconstructions(vae, x_test[:16]), "reconstructions.png")  # doctest: +SKIP
    """
    pairs_per_row = check_positive_int("pairs_per_row", pairs_per_row)
    data, condition = model_inputs(model, images, labels, seed)
    inputs = scale_images(images)
    outputs = as_images(model, model.reconstruct(data, condition), condition)
    tiles = np.stack([inputs, outputs], axis=1).reshape((-1, *inputs.shape[1:]))
    return picture_grid(tiles, num_cols=2 * min(len(inputs), pairs_per_row), zoom=zoom)
