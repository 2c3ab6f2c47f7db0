"""The tile grid that every picture of `keras_vae.visualize` is drawn on."""

import numpy as np

from keras_vae.utils.images import image_grid

# Thin mid-grey lines between the tiles: visible beside white and black pixels.
GRID_LINE = 1
GRID_GREY = 0.5


def picture_grid(
    tiles: np.ndarray, num_rows: int | None = None, num_cols: int | None = None, zoom: int = 3
) -> np.ndarray:
    """Tiles images `[N, H, W, C]` in [0, 1] into a picture with a thin grey grid.

    Args:
        tiles: float array `[N, H, W, C]`, `C` in {1, 3}, values in [0, 1].
        num_rows: int or `None`. Rows; defaults to a near-square grid, or to
            what `num_cols` needs.
        num_cols: int or `None`. Columns; defaults to what `num_rows` needs.
        zoom: int. Each pixel becomes a `zoom` x `zoom` block. Defaults to `3`.

    Returns:
        uint8 array `[height, width, C]`. Tile `i` sits in row `i // cols` and
        column `i % cols`, its top left corner at `(row * (zoom * H + 1),
        col * (zoom * W + 1))`.

    Example:

    >>> picture_grid(np.zeros((4, 28, 28, 1))).shape
    (169, 169, 1)
    """
    grid = image_grid(
        tiles,
        num_rows=num_rows,
        num_cols=num_cols,
        padding=GRID_LINE,
        scale=zoom,
        background=GRID_GREY,
    )
    return grid[..., None] if grid.ndim == 2 else grid
