import sys

import numpy as np
import pytest
from tiny_image_models import assert_one_line_error, images, make_vae

from keras_vae.visualize import (
    encoded_points,
    latent_coordinates,
    model_inputs,
    pca_projection,
    plot_latents,
)
from keras_vae.visualize.plot_latents import class_colours


def test_pca_projection_matches_numpys_svd():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + 3.0
    projected = pca_projection(points, 2)
    centred = points - points.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    reference = u[:, :2] * s[:2]
    signs = np.sign(np.sum(projected * reference, axis=0))  # a direction's sign is free
    np.testing.assert_allclose(projected, reference * signs, atol=1e-8)
    assert projected[:, 0].var() >= projected[:, 1].var()


def test_2d_latents_are_plotted_as_they_are_larger_ones_projected(vae):
    points = np.arange(12, dtype="float32").reshape(6, 2) ** 1.5
    xy, names = latent_coordinates(points)
    np.testing.assert_array_equal(xy, points)
    assert names == ("z0", "z1")
    x, _ = images(30)
    points = encoded_points(vae, *model_inputs(vae, x))
    xy, names = latent_coordinates(points)
    np.testing.assert_allclose(xy, pca_projection(points))
    assert names[0].startswith("principal component")


def test_the_picture_is_an_rgb_plot(any_model):
    x, labels = images(30)
    picture = plot_latents(any_model, x, labels, size=(4, 3), dpi=50)
    assert picture.shape == (150, 200, 3) and picture.dtype == np.uint8
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 3  # axes, points, legend


@pytest.mark.parametrize(
    "labels",
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [20, 35], ["cat", "dog", "ant"], [0.5, -1.0]],
    ids=["1-10", "20-35", "strings", "floats"],
)
def test_each_of_up_to_ten_classes_gets_its_own_colour(labels):
    # Before, tab10 coloured labels by value between -0.5 and 9.5: 9, 10, 20 and 35 all
    # came out as 9's colour, and strings failed inside matplotlib.
    points = np.repeat(np.array(labels, dtype=object if isinstance(labels[0], str) else None), 3)
    classes, colours = class_colours(points)
    assert list(classes) == sorted(labels)
    assert len(set(colours.tolist())) == len(labels) and set(colours.tolist()) <= set(range(10))
    for name, colour in zip(points, colours, strict=True):
        assert classes[colour] == name


def test_many_numeric_classes_keep_their_values_on_a_colour_scale():
    labels = np.arange(12) * 10
    classes, colours = class_colours(labels)
    np.testing.assert_array_equal(colours, labels)


def test_string_labels_are_plotted(vae):
    x, labels = images(12)
    words = np.array(["even", "odd"])[np.asarray(labels) % 2]
    picture = plot_latents(vae, x, words, size=(4, 3), dpi=50)
    assert picture.shape == (150, 200, 3)


def test_latents_without_labels_are_one_line(vae):
    with pytest.raises(ValueError, match="labels=None") as excinfo:
        plot_latents(vae, images(4)[0])
    assert_one_line_error(excinfo)


def test_a_1d_latent_space_is_one_line():
    with pytest.raises(ValueError, match="latent_dim=1") as excinfo:
        plot_latents(make_vae(latent_dim=1), *images(4))
    assert_one_line_error(excinfo)


def test_without_matplotlib_one_line_says_how_to_get_it(vae, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    with pytest.raises(ValueError, match=r"keras-vae\[plot\]") as excinfo:
        plot_latents(vae, *images(4))
    assert_one_line_error(excinfo)
