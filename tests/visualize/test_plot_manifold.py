import numpy as np
import pytest
from tiny_image_models import (
    assert_one_line_error,
    assert_tiles_equal,
    cut_tiles,
    make_label_cvae,
    make_vae,
)

from keras_vae.visualize import manifold_latents, plot_manifold


def keras_io_grid(n, scale):
    """The z of each tile as keras.io's `plot_latent_space` lays them out."""
    grid_x = np.linspace(-scale, scale, n)
    grid_y = np.linspace(-scale, scale, n)[::-1]
    z = np.zeros((n, n, 2))
    for i, yi in enumerate(grid_y):
        for j, xi in enumerate(grid_x):
            z[i, j] = [xi, yi]
    return z.reshape(-1, 2)


def test_the_grid_is_in_the_keras_io_order():
    np.testing.assert_allclose(manifold_latents(4, 1.5), keras_io_grid(4, 1.5), atol=1e-7)
    z = manifold_latents(3, 1.0, mean=(1.0, -1.0), std=(2.0, 0.5))
    np.testing.assert_allclose(z[0], [-1.0, -0.5])  # top left: smallest z0, largest z1
    np.testing.assert_allclose(z[-1], [3.0, -1.5])


def test_a_2d_vae_decodes_the_grid():
    vae = make_vae(latent_dim=2)
    tiles = cut_tiles(plot_manifold(vae, num=4, extent=1.0), 4, 4)
    assert_tiles_equal(tiles, vae.decode(keras_io_grid(4, 1.0).astype("float32")).mean().numpy())


def test_a_label_cvae_decodes_the_grid_with_its_condition():
    cvae = make_label_cvae(latent_dim=2)
    condition = np.eye(3, dtype="float32")[[2]]
    tiles = cut_tiles(plot_manifold(cvae, num=3, condition=condition), 3, 3)
    z = keras_io_grid(3, 2.0).astype("float32")
    expected = cvae.decode(z, np.repeat(condition, 9, axis=0)).mean().numpy()
    assert_tiles_equal(tiles, expected)
    with pytest.raises(ValueError, match="Received: condition=None") as excinfo:
        plot_manifold(cvae, num=3)
    assert_one_line_error(excinfo)
    # One condition without its batch axis, and two, are not one [1, 3] condition.
    for wrong in (condition[0], np.eye(3, dtype="float32")[:2]):
        with pytest.raises(ValueError, match=r"shaped \[1, 3\]") as excinfo:
            plot_manifold(cvae, num=3, condition=wrong)
        assert_one_line_error(excinfo)
        assert f"condition.shape={wrong.shape}" in str(excinfo.value)


def test_a_latent_space_that_is_not_2d_is_one_line(vae):
    with pytest.raises(ValueError, match="latent_dim=3") as excinfo:
        plot_manifold(vae)
    assert_one_line_error(excinfo)
