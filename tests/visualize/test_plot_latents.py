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
