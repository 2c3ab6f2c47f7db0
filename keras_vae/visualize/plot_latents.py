"""The `latents` picture: the encoded test set coloured by label."""

import numpy as np

from keras_vae.visualize.encoded_points import encoded_points
from keras_vae.visualize.model_inputs import model_inputs
from keras_vae.visualize.pca_projection import pca_projection


def _pyplot_free_figure():
    """matplotlib's `Figure` and Agg canvas (no pyplot state), or one line saying how to get it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError(
            "Expected matplotlib to draw plots with axes: pip install 'keras-vae[plot]'. "
            "Received: no module named matplotlib"
        ) from None
    return Figure, FigureCanvasAgg


def latent_coordinates(points: np.ndarray) -> tuple:
    """What the `latents` picture plots of latent points `[N, D]`: `(xy, axis_names)`.

    The points themselves for `D = 2`, their projection on the first two
    principal components above (`pca_projection`).
    """
    if points.shape[1] == 2:
        return points.astype("float64"), ("z0", "z1")
    return pca_projection(points, 2), ("principal component 1", "principal component 2")


def class_colours(labels) -> tuple:
    """`(classes, colours)`: the distinct labels, sorted, and the colour value of each point.

    Up to 10 classes, a point's colour is its label's rank among the classes
    (one of tab10's 10 colours each, whatever the labels: 1..10, 20 and 35,
    strings); above, numeric labels are their own values on a colour scale,
    and others their rank.
    """
    classes, rank = np.unique(labels, return_inverse=True)
    if len(classes) > 10 and np.issubdtype(classes.dtype, np.number):
        return classes, labels
    return classes, rank


def plot_latents(
    model, images, labels=None, seed: int = 0, size: tuple = (6.0, 5.0), dpi: int = 100
) -> np.ndarray:
    """A scatter plot of the images' latents (posterior points), coloured by label.

    A 2-D latent space is shown as it is; a larger one through the first two
    principal components of the points. A label CVAE encodes each image with
    its own label, so the plot shows what z holds besides the class. Needs
    matplotlib (`pip install 'keras-vae[plot]'`).

    Args:
        model: a model of the family with `latent_dim >= 2`.
        images: array `[N, H, W(, C)]`, N >= 2, uint8 or float in [0, 1].
        labels: array `[N]` of numbers or strings. The colours: one a class
            up to 10 classes (`class_colours`), a colour scale above.
        seed: int. Seed of a completion CVAE's binarized observed part.
            Defaults to `0`.
        size: pair of floats. Figure size in inches. Defaults to `(6, 5)`.
        dpi: int. Pixels per inch. Defaults to `100`.

    Returns:
        uint8 array `[size[1] * dpi, size[0] * dpi, 3]`.

    Example:

    >>> save_png(plot_latents(vae, x_test, y_test), "latents.png")  # doctest: +SKIP
    """
    if labels is None:
        raise ValueError("Expected labels to colour the latents by. Received: labels=None")
    if model.latent_dim < 2:
        raise ValueError(
            "Expected a model with at least 2 latent dimensions to plot latents. "
            f"Received: latent_dim={model.latent_dim}"
        )
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(
            f"Expected one label per image, [{len(images)}]. Received: labels.shape={labels.shape}"
        )
    data, condition = model_inputs(model, images, labels, seed)
    xy, (x_name, y_name) = latent_coordinates(encoded_points(model, data, condition))
    Figure, FigureCanvasAgg = _pyplot_free_figure()
    figure = Figure(figsize=size, dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    classes, colours = class_colours(labels)
    few = len(classes) <= 10
    cmap = "tab10" if few else "viridis"
    limits = dict(vmin=-0.5, vmax=9.5) if few else {}
    scatter = axes.scatter(xy[:, 0], xy[:, 1], c=colours, cmap=cmap, s=4, alpha=0.8, **limits)
    if few:
        handles, _ = scatter.legend_elements()
        axes.legend(
            handles, [str(name) for name in classes], title="label", loc="center left",
            bbox_to_anchor=(1, 0.5),
        )  # fmt: skip
    else:
        figure.colorbar(scatter, ax=axes, label="label")
    axes.set_xlabel(x_name)
    axes.set_ylabel(y_name)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
