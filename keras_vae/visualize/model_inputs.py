"""What a model of the family reads for a batch of images, and the images it stands for."""

import numpy as np

from keras_vae.data import merge_image, scale_images, split_image
from keras_vae.models.validation import check_data
from keras_vae.utils.checks import check_seed

# The conditions whose (data, condition) pairs are parts of an image or the image
# and its class: the pictures can show them as images.
IMAGE_CONDITIONS = (None, "label", "center-column", "top-half")


def image_shape(model) -> tuple:
    """The shape `(H, W, C)` of the images that `model` reads and writes.

    Args:
        model: a model of the family (`VAE`, `ConditionalVAE`).

    Returns:
        A tuple `(H, W, C)`.

    Raises:
        ValueError: for a model of other data than images, or whose
            condition is not an image part or a label.
    """
    kind = model.condition_type
    if model.conditional and kind not in IMAGE_CONDITIONS[1:]:
        raise ValueError(
            "Expected a VAE or a ConditionalVAE conditioned on a 'label', 'center-column' or "
            f"'top-half' to draw images. Received: condition_type={kind!r}"
        )
    shape = tuple(model.image_shape if kind in ("center-column", "top-half") else model.event_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise ValueError(
            "Expected a model of images shaped (H, W) or (H, W, C) with C in (1, 3). "
            f"Received: a model of event_shape={tuple(model.event_shape)}"
        )
    return shape


def model_inputs(model, images, labels=None, seed: int = 0) -> tuple:
    """The `(data, condition)` pair that `model.encode` reads for `images`.

    - A `VAE`: the images and `None`.
    - A label `ConditionalVAE`: the images and the one-hot `labels`.
    - A completion `ConditionalVAE`: the missing part (the target) and the
      observed part (the condition), binarized with one seeded draw when the
      model was trained on binary pixels, as `complete_images` does.

    Args:
        model: a model of the family.
        images: array `[N, H, W]` or `[N, H, W, C]`, uint8 or float in [0, 1].
        labels: int array `[N]` or `None`. Classes, needed by a label CVAE.
        seed: int in [0, 2**32). Seed of the binarization of observed parts.
            Defaults to `0`.

    Returns:
        A tuple `(data, condition)` of float32 arrays (`condition` is `None`
        for an unconditional model).

    Example:

    >>> x, c = model_inputs(vae, test_images[:8])  # doctest: +SKIP
    >>> posterior = vae.encode(x, c)  # doctest: +SKIP
    """
    shape = image_shape(model)
    images = scale_images(images)
    check_data("images", images, shape, unit_interval=True)
    kind = model.condition_type
    event = tuple(model.event_shape)
    if not model.conditional:
        return images.reshape((-1, *event)), None
    if kind == "label":
        num_classes = int(model.condition_shape[0])
        if labels is None:
            raise ValueError(
                "Expected labels for a label-conditioned ConditionalVAE. Received: labels=None"
            )
        labels = np.asarray(labels)
        if (
            labels.shape != (len(images),)
            or not np.issubdtype(labels.dtype, np.integer)
            or (labels.size and not (0 <= labels.min() and labels.max() < num_classes))
        ):
            raise ValueError(
                f"Expected labels to be {len(images)} integers in [0, {num_classes}), one per "
                f"image. Received: labels of shape {labels.shape} and dtype {labels.dtype}"
                + (f" in [{labels.min()}, {labels.max()}]" if labels.size else "")
            )
        return images.reshape((-1, *event)), np.eye(num_classes, dtype="float32")[labels]
    if model.likelihood.binary:
        # As in `complete_images`.
        rng = np.random.default_rng(check_seed("seed", seed))
        images = (rng.random(images.shape) < images).astype("float32")
    observed, missing = split_image(images, kind)
    return missing, observed


def as_images(model, data, condition=None) -> np.ndarray:
    """The images `[N, H, W, C]` that `(data, condition)` pairs of `model` stand for.

    The inverse of `model_inputs`: a completion CVAE's missing part is put
    back beside its observed part; other models' data are the images.

    Args:
        model: a model of the family.
        data: array `[N, *event_shape]`, e.g. decoded means.
        condition: array `[N, *condition_shape]` or `None`.

    Returns:
        float32 array `[N, H, W, C]`, clipped to [0, 1].
    """
    shape = image_shape(model)
    data = np.asarray(data, dtype="float32")
    kind = model.condition_type
    if kind in ("center-column", "top-half"):
        data = merge_image(
            np.asarray(condition, "float32"), data.reshape(len(data), -1), kind, shape
        )
    return np.clip(data.reshape((-1, *shape)), 0.0, 1.0)
