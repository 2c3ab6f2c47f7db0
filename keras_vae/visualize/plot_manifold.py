"""The `manifold` picture: the decoded grid of a 2-D latent space."""

import numpy as np

from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.validation import check_positive_int
from keras_vae.visualize.decoded_images import decoded_images
from keras_vae.visualize.picture_grid import picture_grid
from keras_vae.visualize.prior_moments import prior_moments


def manifold_latents(num: int, extent: float, mean=(0.0, 0.0), std=(1.0, 1.0)) -> np.ndarray:
    """The `num` x `num` latents of the manifold, in the keras.io example's order.

    Row `i`, column `j` (tile `i * num + j`) holds `z = mean + std * (x_j,
    y_i)` with `x = linspace(-extent, extent, num)` left to right and `y` the
    same values top to bottom in decreasing order, as in the keras.io VAE
    example's `plot_latent_space`, so `z[1]` grows upwards as on a plot.

    Args:
        num: int. Tiles per side.
        extent: float. Half the side of the square, in prior standard deviations.
        mean: pair of floats. The grid's centre. Defaults to `(0, 0)`.
        std: pair of floats. Scale of each axis. Defaults to `(1, 1)`.

    Returns:
        float32 array `[num * num, 2]`.

    Example:

    >>> manifold_latents(2, 1.0)
    array([[-1.,  1.],
           [ 1.,  1.],
           [-1., -1.],
           [ 1., -1.]], dtype=float32)
    """
    grid_x = np.linspace(-extent, extent, num)
    grid_y = grid_x[::-1]
    z = np.stack(np.meshgrid(grid_x, grid_y), axis=-1).reshape(-1, 2)
    return (np.asarray(mean) + np.asarray(std) * z).astype("float32")


def plot_manifold(
    model, num: int = 15, extent: float = 2.0, condition=None, seed: int = 0, zoom: int = 3
) -> np.ndarray:
    """Decodes a square grid of a 2-D latent space (Kingma & Welling's figure 4).

    The grid spans `extent` prior standard deviations either side of the
    prior's mean in each dimension (the keras.io example's `scale` of 1.0
    over N(0, I) is `extent=1.0`); see `manifold_latents` for the order.

    Args:
        model: a model of the family with `latent_dim=2`.
        num: int. Tiles per side. Defaults to `15`.
        extent: float > 0. Defaults to `2.0`.
        condition: array `[1, *condition_shape]` or `None`. The condition every
            tile is decoded with, required by a conditional model.
        seed: int. Seed of an autoregressive likelihood's draws. Defaults to `0`.
        zoom: int. Pixels per image pixel. Defaults to `3`.

    Returns:
        uint8 array `[height, width, C]` of `num` x `num` tiles.

    Example:

    >>> save_png(plot_manifold(vae_2d), "manifold.png")  # doctest: +SKIP

    Reference:
        Kingma & Welling, *Auto-Encoding Variational Bayes*, arXiv:1312.6114,
        figure 4; https://keras.io/examples/generative/vae/.
    """
    if model.latent_dim != 2:
        raise ValueError(
            "Expected a model with a 2-D latent space for a manifold (plot latents or "
            f"traverse suit others). Received: latent_dim={model.latent_dim}"
        )
    num = check_positive_int("num", num)
    extent = check_positive_float("extent", extent)
    if model.conditional:
        expected = (1, *model.condition_shape)
        shape = None if condition is None else np.shape(condition)
        if shape != expected:
            raise ValueError(
                f"Expected one condition shaped {list(expected)} for a conditional model's "
                "manifold. Received: "
                + ("condition=None" if condition is None else f"condition.shape={shape}")
            )
        condition = np.asarray(condition, "float32")
    mean, variance = prior_moments(model, condition, seed)
    z = manifold_latents(num, extent, mean, np.sqrt(variance))
    repeated = None if condition is None else np.repeat(condition, len(z), axis=0)
    return picture_grid(decoded_images(model, z, repeated, seed), num_rows=num, zoom=zoom)
