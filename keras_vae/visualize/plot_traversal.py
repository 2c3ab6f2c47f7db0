"""The `traverse` picture: one latent at a time, the most informative first."""

import numpy as np

from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.validation import check_positive_int
from keras_vae.visualize.decoded_images import decoded_images
from keras_vae.visualize.encoded_points import encoded_points
from keras_vae.visualize.latent_activity import latent_activity
from keras_vae.visualize.model_inputs import model_inputs
from keras_vae.visualize.picture_grid import picture_grid
from keras_vae.visualize.prior_moments import prior_moments
from keras_vae.visualize.row_labels import with_row_labels


def traversal_latents(z, latents, values) -> np.ndarray:
    """The latents of a traversal: `z` with dimension `d` set to each value, per `d`.

    Args:
        z: float array `[latent_dim]`, the point traversed around.
        latents: sequence of int. The dimensions, one row each.
        values: float array `[len(latents), steps]`. Row `r`'s values of
            dimension `latents[r]`.

    Returns:
        float32 array `[len(latents) * steps, latent_dim]`, row-major.

    Example:

    >>> traversal_latents(np.zeros(2), [1], np.array([[-1.0, 1.0]]))
    array([[ 0., -1.],
           [ 0.,  1.]], dtype=float32)
    """
    steps = values.shape[1]
    grid = np.repeat(np.asarray(z, "float32")[None], len(latents) * steps, axis=0)
    for row, d in enumerate(latents):
        grid[row * steps : (row + 1) * steps, d] = values[row]
    return grid


def plot_traversal(
    model,
    images,
    labels=None,
    latents=None,
    num_latents: int = 8,
    steps: int = 9,
    extent: float = 3.0,
    seed: int = 0,
    zoom: int = 3,
) -> np.ndarray:
    """Decodes the first image's latent with one dimension swept at a time.

    Row `r` sweeps dimension `d = latents[r]` across `extent` prior standard
    deviations either side of its prior mean (`steps` values, evenly
    spaced); the other dimensions keep the posterior point of the first
    image (and a conditional model its condition). Without `latents`, the
    rows are the `num_latents` dimensions with the largest
    `latent_activity` over all `images`, the largest first: those the data
    use most (in place of a per-dimension KL, which only a diagonal
    posterior against a factorized prior has). Each row is named `z<d>` on
    the left.

    Args:
        model: a model of the family.
        images: array `[N, H, W(, C)]`, uint8 or float in [0, 1]; N >= 2
            unless `latents` is given.
        labels: int array `[N]` or `None`. Classes, for a label CVAE.
        latents: sequence of int or `None`. Dimensions to sweep, in [0,
            latent_dim). Defaults to the most active ones.
        num_latents: int. Rows without `latents` (at most `latent_dim`).
            Defaults to `8`.
        steps: int >= 2. Values per row. Defaults to `9`.
        extent: float > 0. Prior standard deviations either side of the
            mean. Defaults to `3.0`.
        seed: int. Seed of the draws (a completion CVAE's binarized observed
            part, an autoregressive likelihood). Defaults to `0`.
        zoom: int. Pixels per image pixel. Defaults to `3`.

    Returns:
        uint8 array `[height, width, C]`.

    Example:

    >>> save_png(plot_traversal(vae, x_test[:500]), "traversal.png")  # doctest: +SKIP
    """
    latent_dim = int(model.latent_dim)
    if latents is not None:
        latents = _checked_latents(latents, latent_dim)
    num_latents = check_positive_int("num_latents", num_latents)
    steps = check_positive_int("steps", steps)
    if steps < 2:
        raise ValueError(f"Expected steps to be at least 2. Received: steps={steps}")
    extent = check_positive_float("extent", extent)
    data, condition = model_inputs(model, images, labels, seed)
    if latents is None:
        order = np.argsort(-latent_activity(model, data, condition), kind="stable")
        latents = [int(d) for d in order[: min(num_latents, latent_dim)]]
    base_condition = None if condition is None else condition[:1]
    z = encoded_points(model, data[:1], base_condition)[0]
    mean, variance = prior_moments(model, base_condition, seed)
    sweep = np.linspace(-extent, extent, steps)
    values = np.stack([mean[d] + np.sqrt(variance[d]) * sweep for d in latents])
    grid_z = traversal_latents(z, latents, values)
    repeated = None if condition is None else np.repeat(base_condition, len(grid_z), axis=0)
    tiles = decoded_images(model, grid_z, repeated, seed)
    picture = picture_grid(tiles, num_rows=len(latents), zoom=zoom)
    return with_row_labels(picture, [f"z{d}" for d in latents], zoom * tiles.shape[1])


def _checked_latents(latents, latent_dim):
    """`latents` as a list of ints, or one line naming the indices out of range."""
    values = list(latents) if isinstance(latents, (list, tuple, np.ndarray)) else [latents]
    ok = values and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d < latent_dim
        for d in values
    )
    if not ok:
        shown = [int(d) if isinstance(d, np.integer) else d for d in values]
        raise ValueError(
            f"Expected latent indices in [0, {latent_dim}) (the model has {latent_dim} "
            f"latents). Received: latents={shown}"
        )
    return [int(d) for d in values]
