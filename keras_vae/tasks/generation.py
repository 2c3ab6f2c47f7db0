"""Images from trained models: samples, class-conditional rows, completions."""

import numpy as np

from keras_vae.data import merge_image, split_image
from keras_vae.models.validation import check_data, check_positive_int
from keras_vae.utils.checks import check_seed


def _describe(model) -> str:
    """How error messages name a model: its class and what it is conditioned on."""
    kind = model.condition_type
    return type(model).__name__ + (f" with condition_type={kind!r}" if kind else "")


def _num_classes(model) -> int:
    if model.condition_type != "label":
        raise ValueError(
            f"Expected a label-conditioned ConditionalVAE for a label. Received: a "
            f"{_describe(model)}"
        )
    return int(model.condition_shape[0])


def sample_images(
    model, num_samples: int, seed: int, label: int | None = None, temperature: float = 1.0
) -> np.ndarray:
    """Generated images `[N, H, W, C]`, clipped to [0, 1].

    - A `VAE` draws `num_samples` images from the prior.
    - A label-conditioned `ConditionalVAE` draws `num_samples` images of
      class `label`, or, without `label`, `num_samples` of every class in
      class order (a grid with one row per class).

    Args:
        model: a trained `VAE` or `ConditionalVAE`.
        num_samples: int. Images (per class, for a CVAE without `label`).
        seed: int in [0, 2**32). Same seed, same images (also in exported
            models).
        label: int or `None`. Class to generate, for a label CVAE.
        temperature: float. Scale of the prior's spread (see `VAE.sample`).

    Returns:
        float32 array `[N, H, W, C]`.

    Raises:
        ValueError: for a completion `ConditionalVAE` (use `complete_images`),
            a `label` for a model without label conditions, or a bad
            `num_samples` or `label`.
    """
    num_samples = check_positive_int("num_samples", num_samples)
    if not model.conditional:
        if label is not None:
            _num_classes(model)
        return np.clip(model.sample(num_samples, seed=seed, temperature=temperature), 0.0, 1.0)
    if label is None and model.condition_type != "label":
        raise ValueError(
            "Expected a VAE or a label-conditioned ConditionalVAE to sample. Received: a "
            f"{_describe(model)}, which "
            + (
                "completes images: use complete_images (keras-vae complete)"
                if model.condition_type
                else "has no image conditions to sample from"
            )
        )
    num_classes = _num_classes(model)
    if label is None:
        labels = np.arange(num_classes)
    else:
        if (
            isinstance(label, bool)
            or not isinstance(label, (int, np.integer))
            or not (0 <= label < num_classes)
        ):
            raise ValueError(
                f"Expected label to be an integer in [0, {num_classes}). Received: label={label!r}"
            )
        labels = np.array([label])
    condition = np.eye(num_classes, dtype="float32")[labels]
    images = model.generate(condition, num_samples, seed=seed, temperature=temperature)
    return np.clip(images.reshape((-1,) + images.shape[2:]), 0.0, 1.0)


def complete_images(
    model,
    images: np.ndarray,
    num_completions: int,
    seed: int,
    temperature: float = 1.0,
) -> np.ndarray:
    """Several completions of each partly observed image.

    The observed part of each image (per the model's `condition_type`) is
    kept; the missing part is drawn from P(missing | observed), each
    completion with its own latent, so the spread shows the model's
    uncertainty. Observed grey values are binarized with one seeded draw when
    the model was trained on binary pixels.

    Args:
        model: a `ConditionalVAE` trained with a completion condition.
        images: array `[N, H, W, C]` in [0, 1] (the missing part is ignored).
        num_completions: int. Completions per image.
        seed: int in [0, 2**32). Same seed, same completions.
        temperature: float. Scale of the spread of P(z|observed): below 1,
            completions closer to the most typical one; `0`, one completion
            repeated (for a mixture prior, one per component drawn).
            Defaults to `1.0`.

    Returns:
        float32 array `[N, num_completions, H, W, C]` in [0, 1].
    """
    kind = model.condition_type
    if kind in (None, "label"):
        raise ValueError(
            "Expected a ConditionalVAE trained for completion (condition_type "
            f"'center-column' or 'top-half'). Received: {_describe(model)}"
        )
    num_completions = check_positive_int("num_completions", num_completions)
    seed = check_seed("seed", seed)
    image_shape = tuple(model.image_shape)
    images = np.asarray(images, dtype="float32")
    check_data("images", images, image_shape, unit_interval=True)
    if model.likelihood.binary:
        rng = np.random.default_rng(seed)
        images = (rng.random(images.shape) < images).astype("float32")
    observed, _ = split_image(images, kind)
    missing = model.generate(observed, num_completions, seed=seed, temperature=temperature)
    n = len(images)
    repeated = np.repeat(observed, num_completions, axis=0)
    full = merge_image(repeated, missing.reshape(n * num_completions, -1), kind, image_shape)
    return np.clip(full.reshape((n, num_completions) + image_shape), 0.0, 1.0)


def completion_grid(images: np.ndarray, completions: np.ndarray, condition: str) -> np.ndarray:
    """Rows of [observed part, completions..., original] for a PNG grid.

    The observed-part tile shows the missing pixels in mid grey.

    Returns:
        float32 array `[N * (K + 2), H, W, C]`, row-major.
    """
    images = np.asarray(images, dtype="float32")
    observed, missing = split_image(images, condition)
    shown = merge_image(observed, np.full_like(missing, 0.5), condition, images.shape[1:])
    rows = np.concatenate([shown[:, None], completions, images[:, None]], axis=1)
    return rows.reshape((-1,) + images.shape[1:])
