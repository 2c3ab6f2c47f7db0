"""Writing generated images: a PNG grid or a `.npy` array."""

import io
import math
import os

import numpy as np
from PIL import Image

from keras_vae.utils.staged_path import write_bytes_atomically


def image_grid(
    images: np.ndarray,
    num_rows: int | None = None,
    padding: int = 2,
    scale: int = 1,
    num_cols: int | None = None,
    background: float = 1.0,
) -> np.ndarray:
    """Tiles images `[N, H, W, C]` with values in [0, 1] into one uint8 image.

    Tile `i` goes to row `i // cols`, column `i % cols`; the cells left after
    the last tile show the background.

    Args:
        images: float array `[N, H, W, C]`, `C` in {1, 3}, values in [0, 1].
        num_rows: int or `None`. Rows of the grid. Defaults to a near-square
            grid (or to as many rows as `num_cols` needs).
        padding: int. Pixels between tiles (the grid lines). Defaults to `2`.
        scale: int. Each tile pixel becomes a `scale` x `scale` block (nearest
            neighbour), so small images stay sharp when shown. Defaults to `1`.
        num_cols: int or `None`. Columns of the grid. Defaults to as many as
            `num_rows` rows need.
        background: float in [0, 1]. Grey value of the padding and the empty
            cells. Defaults to `1.0` (white).

    Returns:
        uint8 array `[rows * (scale * H + padding) - padding, cols * (scale * W
        + padding) - padding]` (grey) or with a trailing 3 (colour).

    Example:

    >>> image_grid(np.zeros((6, 2, 2, 1)), num_rows=2, padding=1, scale=3).shape
    (13, 20)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(
            "Expected images shaped [N, H, W, C] with N > 0 and C in (1, 3). "
            f"Received: images.shape={images.shape}"
        )
    for name, value, low in (("padding", padding, 0), ("scale", scale, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(
                f"Expected {name} to be an integer >= {low}. Received: {name}={value!r}"
            )
    n, h, w, c = images.shape
    if num_cols is not None and num_rows is None:
        rows = int(math.ceil(n / num_cols))
    else:
        rows = num_rows or int(math.floor(math.sqrt(n)))
    cols = num_cols or int(math.ceil(n / rows))
    if rows * cols < n:
        raise ValueError(
            f"Expected a grid with room for the {n} images. "
            f"Received: num_rows={num_rows}, num_cols={num_cols}"
        )
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    grid = np.full(
        (rows * (h + padding) - padding, cols * (w + padding) - padding, c), background, np.float32
    )
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        top, left = r * (h + padding), col * (w + padding)
        grid[top : top + h, left : left + w] = image
    grid = np.round(np.clip(grid, 0.0, 1.0) * 255).astype(np.uint8)
    return grid[..., 0] if c == 1 else grid


def check_image_path(path) -> str:
    """Returns `path` as a str; raises unless it ends in `.png` or `.npy` and can be written.

    Writable here means: not a folder, and no file where one of its missing
    folders would go (`os.makedirs` would fail there with a raw `[Errno 17]`).
    """
    path = os.fspath(path)
    if not path.endswith((".png", ".npy")):
        raise ValueError(f"Expected an output path ending in .png or .npy. Received: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"Expected an output file path. Received: {path!r} (a folder)")
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise ValueError(
            f"Expected an output path in a folder. Received: {path!r} ({blocker} is a file)"
        )
    return path


def file_in_the_way(path) -> str | None:
    """The existing file that stands where one of `path`'s folders should be, if any.

    `os.makedirs` of `path`'s folder would fail on it with a raw `[Errno 17]`.
    """
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return None if os.path.isdir(folder) else folder


def save_images(images: np.ndarray, path, num_rows: int | None = None) -> str:
    """Saves images `[N, H, W, C]` in [0, 1] as a `.npy` array or a PNG grid.

    Args:
        images: float array `[N, H, W, C]`, values in [0, 1].
        path: str or path ending in `.npy` (the raw array) or `.png` (a grid).
            Missing folders are created. The file is replaced in one rename.
        num_rows: int or `None`. Rows of the PNG grid.

    Returns:
        The path written, as a str.
    """
    path = check_image_path(path)
    images = np.asarray(images, dtype=np.float32)
    content = io.BytesIO()
    if path.endswith(".npy"):
        np.save(content, images)
    else:
        Image.fromarray(image_grid(images, num_rows)).save(content, format="PNG")
    # Encoded in memory, written under a hidden name and renamed: a stop or a
    # full disk leaves the previous file (or none), never a cut one.
    return write_bytes_atomically(path, content.getvalue())
