"""A picture of a saved model: what `keras-vae plot` runs."""

import numpy as np

from keras_vae import data
from keras_vae.models.validation import check_choice, check_positive_int
from keras_vae.tasks.evaluation import load_model
from keras_vae.visualize import (
    check_png_path,
    model_inputs,
    plot_interpolations,
    plot_latents,
    plot_manifold,
    plot_reconstructions,
    plot_samples,
    plot_traversal,
    save_png,
)

PLOT_KINDS = ("reconstructions", "interpolate", "traverse", "manifold", "latents", "samples")
# Images each kind reads by default (interpolate: pairs; traverse: to rank the latents).
_DEFAULT_IMAGES = {"reconstructions": 16, "interpolate": 4, "traverse": 1000, "latents": 2000}
# The kinds that read each option.
_OPTION_KINDS = {
    "steps": ("interpolate", "traverse"),
    "latents": ("traverse",),
    "extent": ("traverse", "manifold"),
    "classes": ("samples",),
    "temperature": ("samples",),
}


def plot_model(
    kind: str,
    model,
    output,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    dataset: str = "mnist",
    split: str = "test",
    data_dir: str | None = None,
    num: int | None = None,
    steps: int | None = None,
    latents: list | None = None,
    extent: float | None = None,
    classes: list | None = None,
    seed: int = 0,
    temperature: float | None = None,
    zoom: int = 3,
) -> str:
    """Draws one picture of `keras_vae.visualize` of a model and saves it as a PNG.

    The images come from `images` (and `labels`) or else from the TFDS
    `dataset`'s `split`, its first images as many as the picture needs.

    Args:
        kind: str. One of `PLOT_KINDS`: `"reconstructions"` (`num` images,
            default 16), `"interpolate"` (`num` pairs, default 4, `steps`
            tiles between), `"traverse"` (`num` latents, default 8, ranked on
            up to 1000 images, or the `latents` given; `steps` values
            within `extent` prior standard deviations), `"manifold"` (`num`
            tiles per side, default 15, within `extent`), `"latents"` (`num`
            images, default 2000, coloured by label) or `"samples"` (`num`
            samples, default 64, or 8 per class of `classes`, or 6
            completions of 8 images).
        model: a model of the family, or the path of its `.keras` file.
        output: str or path ending in `.png`.
        images: array `[N, H, W(, C)]` or `None`. Images instead of the dataset's.
        labels: int array `[N]` or `None`. Their classes.
        dataset: str. TFDS dataset name. Defaults to `"mnist"`.
        split: str. TFDS split. Defaults to `"test"`.
        data_dir: str or `None`. TFDS data folder.
        num: int or `None`. See `kind`.
        steps: int or `None`. Tiles per row of `"interpolate"` (8) and
            `"traverse"` (9).
        latents: list of int or `None`. Latents of `"traverse"`.
        extent: float or `None`. Prior standard deviations either side of
            the mean: `"traverse"` (3) and `"manifold"` (2).
        classes: list of int or `None`. Rows of `"samples"` of a label CVAE.
        seed: int. Seed of every draw. Defaults to `0`.
        temperature: float or `None`. Prior spread of `"samples"`; `None`
            is `1.0`. Defaults to `None`.
        zoom: int. Pixels per image pixel. Defaults to `3`.

    Returns:
        The path written, as a str.

    Example:

    >>> plot_model("traverse", "runs/mnist-mlp/model.keras", "traversal.png")  # doctest: +SKIP
    'traversal.png'
    """
    check_choice("kind", kind, PLOT_KINDS)
    output = check_png_path(output)
    given = {
        "steps": steps,
        "latents": latents,
        "extent": extent,
        "classes": classes,
        "temperature": temperature,
    }
    for name, kinds in _OPTION_KINDS.items():
        if given[name] is not None and kind not in kinds:
            raise ValueError(
                f"Expected {name} only for kind in {kinds}. Received: {name}={given[name]!r} "
                f"with kind={kind!r}"
            )
    if num is not None:
        num = check_positive_int("num", num)
    if isinstance(model, str):
        model = load_model(model)
    completion = model.condition_type not in (None, "label")
    wanted = _DEFAULT_IMAGES.get(kind, 0)
    if kind == "interpolate":
        wanted = 2 * (num or wanted)
    elif kind in ("reconstructions", "latents"):
        wanted = num or wanted
    elif kind == "samples" and completion:
        wanted = 8
    elif kind == "manifold" and model.conditional:
        wanted = 1
    if wanted and images is None:
        images, labels = data.load_images(dataset, split, data_dir=data_dir)
    if wanted:
        images = images[:wanted]
        labels = None if labels is None else np.asarray(labels)[:wanted]
    options = {"seed": seed, "zoom": zoom}
    if steps is not None:
        options["steps"] = steps
    if extent is not None:
        options["extent"] = extent
    if kind == "reconstructions":
        picture = plot_reconstructions(model, images, labels, **options)
    elif kind == "interpolate":
        picture = plot_interpolations(model, images, labels, **options)
    elif kind == "traverse":
        picture = plot_traversal(
            model, images, labels, latents=latents, num_latents=num or 8, **options
        )
    elif kind == "manifold":
        condition = None
        if model.conditional:
            condition = model_inputs(model, images, labels, seed)[1][:1]
        picture = plot_manifold(model, num or 15, condition=condition, **options)
    elif kind == "latents":
        picture = plot_latents(model, images, labels, seed=seed)
    else:
        default = 6 if completion else (8 if model.conditional else 64)
        picture = plot_samples(
            model,
            num or default,
            seed,
            classes=classes,
            images=images if completion else None,
            temperature=1.0 if temperature is None else temperature,
            zoom=zoom,
        )
    return save_png(picture, output)
