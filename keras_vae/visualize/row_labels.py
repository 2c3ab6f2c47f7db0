"""A left margin naming each row of a picture."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_vae.visualize.picture_grid import GRID_LINE

_FONT_SIZE = 12


def with_row_labels(picture: np.ndarray, labels, row_height: int) -> np.ndarray:
    """`picture` with a white margin on its left naming each row in black.

    Args:
        picture: uint8 array `[height, width, C]` from `picture_grid`.
        labels: sequence of str, one per row, from the top.
        row_height: int. Height in pixels of one row's tiles (`zoom * H`).

    Returns:
        uint8 array `[height, margin + width, C]`; the picture itself is
        unchanged at the right.
    """
    try:
        font = ImageFont.load_default(size=_FONT_SIZE)
    except TypeError:  # Pillow before 10.1 has only its small bitmap font
        font = ImageFont.load_default()
    labels = [str(label) for label in labels]
    margin = max(int(font.getbbox(label)[2]) for label in labels) + 6
    height, _, channels = picture.shape
    canvas = Image.new("L", (margin, height), 255)
    draw = ImageDraw.Draw(canvas)
    for row, label in enumerate(labels):
        middle = row * (row_height + GRID_LINE) + row_height // 2
        draw.text((margin - 3, middle), label, fill=0, font=font, anchor="rm")
    left = np.repeat(np.asarray(canvas)[..., None], channels, axis=-1)
    return np.concatenate([left, picture], axis=1)
