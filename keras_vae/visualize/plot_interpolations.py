"""The `interpolate` picture: walks in latent space between pairs of images."""

import numpy as np

from keras_vae.data import scale_images
from keras_vae.models.validation import check_positive_int
from keras_vae.visualize.decoded_images import decoded_images
from keras_vae.visualize.encoded_points import encoded_points
from keras_vae.visualize.model_inputs import model_inputs
from keras_vae.visualize.picture_grid import picture_grid


def plot_interpolations(
    model, images, labels=None, steps: int = 8, seed: int = 0, zoom: int = 3
) -> np.ndarray:
    """Decoded straight lines in latent space between pairs of images.

    Images `2k` and `2k + 1` make row `k` (an odd last image is left out):
    the first image, the decoded latents `z_a + t (z_b - z_a)` for `steps`
    values of `t` evenly spaced from 0 to 1, then the second image. `z_a` and
    `z_b` are the posteriors' points (their means where they have one), so
    the first and last decoded tiles are the two reconstructions. A
    conditional model walks its condition along the same line (a label CVAE
    from one class's one-hot row to the other's), so both ends decode the
    images' own pairs.

    Args:
        model: a model of the family.
        images: array `[N, H, W(, C)]`, N >= 2, uint8 or float in [0, 1].
        labels: int array `[N]` or `None`. Classes, for a label CVAE.
        steps: int >= 2. Decoded points per row. Defaults to `8`.
        seed: int. Seed of the draws (a completion CVAE's binarized observed
            part, an autoregressive likelihood). Defaults to `0`.
        zoom: int. Pixels per image pixel. Defaults to `3`.

    Returns:
        uint8 array `[height, width, C]`: `N // 2` rows of `steps + 2` tiles.

    Example:

    >>> save_png(plot_interpolations(vae, x_test[:8]), "interpolation.png")  # doctest: +SKIP
    """
    steps = check_positive_int("steps", steps)
    if steps < 2:
        raise ValueError(f"Expected steps to be at least 2 (both ends). Received: steps={steps}")
    num_images = len(images) if hasattr(images, "__len__") else 0
    if num_images < 2:
        raise ValueError(
            "Expected at least two images to interpolate between. "
            f"Received: {num_images} image{'' if num_images == 1 else 's'}"
        )
    num_pairs = num_images // 2
    # All images, so that the labels are checked against them; an odd last one is left out.
    data, condition = model_inputs(model, images, labels, seed)
    images = scale_images(images)[: 2 * num_pairs]
    data = data[: 2 * num_pairs]
    condition = None if condition is None else condition[: 2 * num_pairs]
    z = encoded_points(model, data, condition)
    t = np.linspace(0.0, 1.0, steps, dtype="float32")

    def line(values):  # [2 * pairs, ...] -> [pairs * steps, ...]
        a, b = values[0::2], values[1::2]
        t_axis = t.reshape((1, steps) + (1,) * (a.ndim - 1))
        walk = a[:, None] + t_axis * (b - a)[:, None]
        return walk.reshape((-1, *a.shape[1:])).astype("float32")

    walk_condition = None if condition is None else line(condition)
    decoded = decoded_images(model, line(z), walk_condition, seed)
    decoded = decoded.reshape((num_pairs, steps, *decoded.shape[1:]))
    rows = np.concatenate([images[0::2, None], decoded, images[1::2, None]], axis=1)
    return picture_grid(rows.reshape((-1, *images.shape[1:])), num_rows=num_pairs, zoom=zoom)
