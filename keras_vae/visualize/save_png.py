"""Writing a picture of `keras_vae.visualize` to a PNG file."""

import io
import os

import numpy as np
from PIL import Image

from keras_vae.utils.images import check_image_path
from keras_vae.utils.staged_path import write_bytes_atomically


def check_png_path(path) -> str:
    """Returns `path` as a str; raises unless it ends in `.png` and can be written."""
    path = os.fspath(path)
    if not path.endswith(".png"):
        raise ValueError(f"Expected an output path ending in .png. Received: {path!r}")
    return check_image_path(path)


def save_png(picture: np.ndarray, path) -> str:
    """Saves a picture `[H, W, C]` (uint8, or float in [0, 1]) as a PNG file.

    The file is encoded in memory and renamed into place: a stop or a full
    disk leaves the previous file (or none), never a cut one. Missing
    folders are created.

    Args:
        picture: array `[H, W]` or `[H, W, C]`, `C` in {1, 3, 4}.
        path: str or path ending in `.png`.

    Returns:
        The path written, as a str.

    Example:

    >>> save_png(plot_samples(vae, seed=0), "samples.png")  # doctest: +SKIP
    'samples.png'
    """
    path = check_png_path(path)
    picture = np.asarray(picture)
    if picture.ndim == 3 and picture.shape[-1] == 1:
        picture = picture[..., 0]
    if picture.ndim not in (2, 3) or (picture.ndim == 3 and picture.shape[-1] not in (3, 4)):
        raise ValueError(
            "Expected a picture shaped [H, W] or [H, W, C] with C in (1, 3, 4). "
            f"Received: picture.shape={np.shape(picture)}"
        )
    if picture.dtype != np.uint8:
        picture = np.round(np.clip(picture, 0.0, 1.0) * 255).astype(np.uint8)
    content = io.BytesIO()
    Image.fromarray(picture).save(content, format="PNG")
    return write_bytes_atomically(path, content.getvalue())
