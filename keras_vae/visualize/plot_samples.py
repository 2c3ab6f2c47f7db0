"""The `samples` picture: images from the prior, a row per class for a label CVAE."""

import numpy as np

from keras_vae.models.validation import check_positive_int
from keras_vae.visualize.model_inputs import image_shape
from keras_vae.visualize.picture_grid import picture_grid
from keras_vae.visualize.row_labels import with_row_labels


def plot_samples(
    model,
    num_samples: int = 8,
    seed: int = 0,
    classes=None,
    images=None,
    temperature: float = 1.0,
    zoom: int = 3,
) -> np.ndarray:
    """What a model generates, seeded, in one picture.

    - A `VAE`: `num_samples` images from the prior, a near-square grid.
    - A label `ConditionalVAE`: a row per class of `classes` (all classes
      by default), each of `num_samples` images, the class named on the left.
    - A completion `ConditionalVAE`: a row per image of `images`: its
      observed part (missing pixels in grey), `num_samples` completions and
      the original (`completion_grid`).

    Args:
        model: a model of the family.
        num_samples: int. Images (per class or per image). Defaults to `8`.
        seed: int. Same seed, same picture. Defaults to `0`.
        classes: sequence of int or `None`. Rows of a label CVAE.
        images: array `[N, H, W(, C)]` or `None`. Images to complete, for a
            completion CVAE.
        temperature: float. Scale of the prior's spread (see `VAE.sample`).
            Defaults to `1.0`.
        zoom: int. Pixels per image pixel. Defaults to `3`.

    Returns:
        uint8 array `[height, width, C]`.

    Example:

    >>> save_png(plot_samples(cvae, 10, seed=0), "classes.png")  # doctest: +SKIP
    """
    # Imported here: the tasks sit above this package (they train with its callback).
    from keras_vae.data import scale_images
    from keras_vae.tasks.generation import complete_images, completion_grid, sample_images

    num_samples = check_positive_int("num_samples", num_samples)
    shape = image_shape(model)
    kind = model.condition_type
    if kind in ("center-column", "top-half"):
        if images is None:
            raise ValueError(
                "Expected images to complete for a completion ConditionalVAE "
                f"(condition_type={kind!r}). Received: images=None"
            )
        images = scale_images(images)
        completions = complete_images(model, images, num_samples, seed, temperature=temperature)
        grid = completion_grid(images, completions, kind)
        return picture_grid(grid.reshape((-1, *shape)), num_rows=len(images), zoom=zoom)
    if kind is None:
        if classes is not None:
            raise ValueError(
                "Expected classes=None for a model without label conditions. "
                f"Received: classes={classes!r}"
            )
        tiles = sample_images(model, num_samples, seed, temperature=temperature)
        return picture_grid(tiles.reshape((-1, *shape)), zoom=zoom)
    num_classes = int(model.condition_shape[0])
    classes = (
        list(range(num_classes)) if classes is None else _checked_classes(classes, num_classes)
    )
    condition = np.eye(num_classes, dtype="float32")[classes]
    tiles = np.clip(
        model.sample(num_samples, condition=condition, seed=seed, temperature=temperature), 0, 1
    )
    picture = picture_grid(tiles.reshape((-1, *shape)), num_rows=len(classes), zoom=zoom)
    return with_row_labels(picture, classes, zoom * shape[0])


def _checked_classes(classes, num_classes):
    values = list(classes) if isinstance(classes, (list, tuple, np.ndarray)) else [classes]
    ok = values and all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < num_classes
        for c in values
    )
    if not ok:
        shown = [int(c) if isinstance(c, np.integer) else c for c in values]
        raise ValueError(
            f"Expected classes to be integers in [0, {num_classes}). Received: classes={shown}"
        )
    return [int(c) for c in values]
