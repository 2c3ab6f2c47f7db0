"""Condition/target pairs for a conditional VAE: a class label or the visible part of an image."""

import numpy as np
import tensorflow as tf

from keras_vae.data.images import (
    _as_pixels,
    _bernoulli,
    _check_pipeline_args,
    _check_positive_int,
    _numeric_array,
    _pipeline,
    _unit_float,
    scale_images,
)

CONDITIONS = ("label", "center-column", "top-half")
_PIXEL_CONDITIONS = ("center-column", "top-half")


def make_conditional_pairs(
    images: np.ndarray, labels: np.ndarray | None, condition: str, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Builds the (condition, target) arrays of a conditional VAE.

    - `"label"`: the condition is the one-hot class label, the target the
      whole image.
    - `"center-column"`: image completion from the middle column of pixels,
      as in Doersch's tutorial; see `split_image`.
    - `"top-half"`: image completion from the top half; see `split_image`.

    Args:
        images: numeric array `[N, H, W]` or `[N, H, W, C]`, uint8 0..255 or
            float in [0, 1] (as in `scale_images`).
        labels: integer array `[N]` of class ids in `[0, num_classes)`, or
            `None`. Only used by the `"label"` condition.
        condition: str. One of `CONDITIONS`.
        num_classes: int. Length of the one-hot labels. Defaults to `10`.

    Returns:
        A tuple `(condition_array, target)`, float32 in [0, 1]: for `"label"`,
        `[N, num_classes]` one-hot vectors and the images `[N, H, W, C]`; for
        the pixel conditions, the flat observed and missing pixels
        `[N, D_observed]` and `[N, D_missing]`.

    Example:

    >>> x, y = make_conditional_pairs(np.zeros((5, 28, 28), "uint8"), None, "top-half")
    >>> x.shape, y.shape
    ((5, 392), (5, 392))

    Reference:
        - [Sohn et al., 2015](https://papers.nips.cc/paper/5775), Learning
          Structured Output Representation using Deep Conditional Generative
          Models.
        - [Doersch, 2016](https://arxiv.org/abs/1606.05908), Tutorial on
          Variational Autoencoders.
    """
    _check_condition(condition, CONDITIONS)
    images = scale_images(images)
    if condition != "label":
        return split_image(images, condition)
    _check_positive_int("num_classes", num_classes)
    labels = _check_labels(labels, len(images), num_classes)
    return np.eye(num_classes, dtype=np.float32)[labels], images


def split_image(images: np.ndarray, condition: str) -> tuple[np.ndarray, np.ndarray]:
    """Splits images into observed and missing pixels, each flattened row-major.

    - `"center-column"`: observed is the single middle column, index
      `(W - 1) // 2` (column 13 of 28, the `Slice` at 13:14 in Doersch's
      MNIST CVAE); missing is the other `W - 1` columns. Needs `W >= 2`.
    - `"top-half"`: observed is rows `[0, H // 2)`, missing is rows
      `[H // 2, H)`. Needs `H >= 2`.

    Values are not rescaled, so `merge_image` inverts this exactly.

    Args:
        images: numeric array `[N, H, W]` or `[N, H, W, C]`.
        condition: str. `"center-column"` or `"top-half"`.

    Returns:
        A tuple `(observed, missing)` of arrays `[N, D_observed]` and
        `[N, D_missing]`, in the input's float dtype (float32 for integer
        input).

    Example:

    >>> observed, missing = split_image(np.zeros((2, 28, 28, 1)), "center-column")
    >>> observed.shape, missing.shape
    ((2, 28), (2, 756))
    """
    _check_condition(condition, _PIXEL_CONDITIONS)
    images = _numeric_array(images, "images")
    if images.ndim not in (3, 4) or 0 in images.shape:
        raise ValueError(
            "Expected images shaped [N, H, W] or [N, H, W, C] with every dimension positive. "
            f"Received: images.shape={images.shape}"
        )
    if not np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32)
    mask = _observed_mask(condition, images.shape[1:])
    flat = images.reshape(len(images), -1)
    return flat[:, mask], flat[:, ~mask]


def pixel_indices(condition: str, image_shape) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the observed and of the missing pixels of one image.

    Index `i` counts row-major over the image's `H * W * C` values, and each
    array is in the order `split_image` returns those pixels, so
    `split_image(images, condition)[1]` equals
    `images.reshape(len(images), -1)[:, pixel_indices(condition, images.shape[1:])[1]]`.

    Args:
        condition: str. `"center-column"` or `"top-half"`.
        image_shape: tuple `(H, W)` or `(H, W, C)` of positive ints.

    Returns:
        A tuple `(observed, missing)` of int64 arrays.

    Example:

    >>> observed, missing = pixel_indices("top-half", (4, 2))
    >>> observed.tolist(), missing.tolist()
    ([0, 1, 2, 3], [4, 5, 6, 7])
    """
    _check_condition(condition, _PIXEL_CONDITIONS)
    mask = _observed_mask(condition, _check_image_shape(image_shape))
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def merge_image(
    observed: np.ndarray, missing: np.ndarray, condition: str, image_shape: tuple[int, ...]
) -> np.ndarray:
    """Puts observed and missing pixels back together; the inverse of `split_image`.

    Args:
        observed: array `[N, D_observed]` from `split_image` (or a model).
        missing: array `[N, D_missing]`, e.g. pixels generated by a CVAE.
        condition: str. `"center-column"` or `"top-half"`.
        image_shape: tuple `(H, W)` or `(H, W, C)` of one image.

    Returns:
        Array `[N, *image_shape]`, float (the common dtype of the inputs).

    Example:

    >>> x = np.random.default_rng(0).random((3, 28, 28, 1))
    >>> bool((merge_image(*split_image(x, "top-half"), "top-half", x.shape[1:]) == x).all())
    True
    """
    _check_condition(condition, _PIXEL_CONDITIONS)
    shape = _check_image_shape(image_shape)
    mask = _observed_mask(condition, shape)
    parts = []
    for name, part, size in (
        ("observed", observed, int(mask.sum())),
        ("missing", missing, int((~mask).sum())),
    ):
        part = np.asarray(part)
        if part.ndim != 2 or part.shape[1] != size or not np.issubdtype(part.dtype, np.number):
            raise ValueError(
                f"Expected {name} to be a numeric array [N, {size}] for condition={condition!r} "
                f"and image_shape={shape}. Received: {name}.shape={part.shape}, "
                f"{name}.dtype={part.dtype}"
            )
        parts.append(part)
    observed, missing = parts
    if len(observed) != len(missing):
        raise ValueError(
            "Expected observed and missing to hold the same number of images. "
            f"Received: len(observed)={len(observed)}, len(missing)={len(missing)}"
        )
    dtype = np.result_type(observed.dtype, missing.dtype)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float32
    flat = np.empty((len(observed), mask.size), dtype=dtype)
    flat[:, mask] = observed
    flat[:, ~mask] = missing
    return flat.reshape((len(observed),) + shape)


def make_conditional_dataset(
    condition_array: np.ndarray,
    target: np.ndarray,
    *,
    binarize: str | None = "dynamic",
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int | None = None,
    cache: bool = True,
    drop_remainder: bool = False,
    binarize_condition: bool = True,
    epoch: tf.Variable | None = None,
) -> tf.data.Dataset:
    """Builds a `tf.data` pipeline of `(condition, target)` batches for a conditional VAE.

    The same pipeline as `make_dataset` (cache, whole-dataset shuffle every
    epoch, batch, per-batch binarization, prefetch), on pairs. Binarization
    draws one Bernoulli sample per pixel per epoch (`"dynamic"`) or once
    (`"static"`) for the target and, with `binarize_condition`, for the
    condition. The observed and missing pixels of `split_image` are disjoint,
    so drawing each part separately is exactly one draw of the whole image,
    then split. A one-hot label is left unchanged by a draw (`u < 1` always
    holds, `u < 0` never does), so only the target changes for `"label"`.

    Args:
        condition_array: numeric array `[N, ...]`, e.g. from
            `make_conditional_pairs`. Used as float32 without rescaling.
        target: numeric array `[N, ...]`: flat pixel vectors or images, uint8
            0..255 or float in [0, 1].
        binarize: str or `None`. `"dynamic"`, `"static"` or `None`, as in
            `make_dataset`. Defaults to `"dynamic"`.
        batch_size: int. Pairs per batch. Defaults to `128`.
        shuffle: bool. Reshuffle the pairs every epoch. Defaults to `True`.
        seed: int or `None`. Seed of the shuffle and the draws, below
            2**31 - 1 (below 2**63 with `epoch`). Defaults to `None`.
        cache: bool. Cache the in-memory pairs ahead of the shuffle.
            Defaults to `True`.
        drop_remainder: bool. Drop the last, smaller batch. Defaults to
            `False`.
        binarize_condition: bool. Binarize the condition with the target
            (its values must then lie in [0, 1]); set `False` for a
            non-pixel condition. Defaults to `True`.
        epoch: scalar integer `tf.Variable` or `None`. Keys each pass's
            order and draws by `seed` and the epoch, as in `make_dataset`.
            Defaults to `None`.

    Returns:
        A `tf.data.Dataset` yielding float32 tuples `(condition, target)`
        with a leading batch axis.

    Example:

    >>> x, y = make_conditional_pairs(np.zeros((10, 28, 28), "uint8"), None, "center-column")
    >>> ds = make_conditional_dataset(x, y, batch_size=4, seed=0)
    >>> [(tuple(c.shape), tuple(t.shape)) for c, t in ds.take(1)]
    [((4, 28), (4, 756))]
    """
    _check_pipeline_args(binarize, batch_size, seed, epoch)
    condition_array = _as_condition(condition_array)
    target = _as_pixels(target, "target")
    if len(condition_array) != len(target):
        raise ValueError(
            "Expected condition_array and target to hold the same number of examples. "
            f"Received: len(condition_array)={len(condition_array)}, len(target)={len(target)}"
        )
    draw_condition = binarize is not None and bool(binarize_condition)
    if draw_condition:
        low, high = condition_array.min(), condition_array.max()
        if not (low >= 0.0 and high <= 1.0):
            raise ValueError(
                "Expected condition_array values in [0, 1] to binarize them with the target "
                "(or binarize_condition=False for a non-pixel condition). "
                f"Received: condition_array with min={low}, max={high}"
            )
    if binarize == "static":
        rng = np.random.default_rng(seed)
        target = _bernoulli(_unit_float(target), rng).astype(np.uint8) * np.uint8(255)
        if draw_condition:
            condition_array = _bernoulli(condition_array, rng).astype(np.float32)
    dynamic = binarize == "dynamic"
    return _pipeline(
        (condition_array, target),
        (dynamic and draw_condition, dynamic),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=cache,
        drop_remainder=drop_remainder,
        epoch=epoch,
    )


def _check_condition(condition, allowed):
    if not isinstance(condition, str) or condition not in allowed:
        hint = (
            " ('label' conditions on classes: see make_conditional_pairs)"
            if condition == "label"
            else ""
        )
        raise ValueError(
            f"Expected condition to be one of {allowed}{hint}. Received: condition={condition!r}"
        )


def _check_image_shape(image_shape):
    """`image_shape` as a tuple, or a one-line error unless it is (H, W) or (H, W, C)."""
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) not in (2, 3)
        or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape)
        or min(shape) <= 0
    ):
        raise ValueError(
            "Expected image_shape to be a tuple (H, W) or (H, W, C) of positive integers. "
            f"Received: image_shape={image_shape!r}"
        )
    return tuple(int(d) for d in shape)


def _observed_mask(condition, image_shape):
    """Flat boolean mask of the observed pixels of one image, row-major over `image_shape`."""
    height, width = image_shape[0], image_shape[1]
    mask = np.zeros(image_shape, dtype=bool)
    if condition == "top-half":
        if height < 2:
            raise ValueError(
                "Expected images at least 2 pixels high for condition='top-half' (observed rows "
                f"[0, H // 2), missing rows [H // 2, H)). Received: image_shape={image_shape}"
            )
        mask[: height // 2] = True
    else:
        if width < 2:
            raise ValueError(
                "Expected images at least 2 pixels wide for condition='center-column' (observed "
                f"column (W - 1) // 2, missing the others). Received: image_shape={image_shape}"
            )
        mask[:, (width - 1) // 2] = True
    return mask.reshape(-1)


def _check_labels(labels, num_examples, num_classes):
    if labels is None:
        raise ValueError(
            "Expected labels, an integer array [N] of class ids, for condition='label'. "
            "Received: labels=None"
        )
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (num_examples,):
        raise ValueError(
            f"Expected labels to be an integer array of shape ({num_examples},), one class id per "
            f"image. Received: labels.shape={labels.shape}, labels.dtype={labels.dtype}"
        )
    low, high = labels.min(), labels.max()
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"Expected labels in [0, {num_classes}) for num_classes={num_classes}. "
            f"Received: labels with min={low}, max={high}"
        )
    return labels


def _as_condition(condition_array):
    array = _numeric_array(condition_array, "condition_array")
    if array.ndim < 2 or 0 in array.shape:
        raise ValueError(
            "Expected condition_array shaped [N, ...] with rank >= 2 and every dimension "
            f"positive. Received: condition_array.shape={array.shape}"
        )
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(
            "Expected condition_array to hold finite values. Received: condition_array with "
            f"{int((~np.isfinite(array)).sum())} non-finite values"
        )
    return array
