import numpy as np
import pytest
from tiny_image_models import (
    assert_one_line_error,
    assert_tiles_equal,
    cut_tiles,
    images,
    make_vae,
)

from keras_vae.priors import MixtureOfGaussians, VampPrior
from keras_vae.visualize import (
    latent_activity,
    model_inputs,
    plot_traversal,
    prior_moments,
    traversal_latents,
)


def test_rows_sweep_one_latent_of_the_first_image_most_active_first(vae):
    x, _ = images(20)
    picture = plot_traversal(vae, x, num_latents=2, steps=5)
    tiles = cut_tiles(picture, num_rows=2, num_cols=5).reshape(2, 5, 4, 4, 1)
    means = vae.encode(x).mean().numpy()
    # N(0, I): the activity is the variance of the posterior means.
    np.testing.assert_allclose(latent_activity(vae, x), means.var(0), rtol=1e-5)
    order = np.argsort(-means.var(0))[:2]
    for row, d in enumerate(order):
        z = np.repeat(means[:1], 5, axis=0)
        z[:, d] = np.linspace(-3, 3, 5)
        assert_tiles_equal(tiles[row], vae.decode(z).mean().numpy())


def test_chosen_latents_and_only_them_change(vae):
    z = np.array([0.5, -1.0, 2.0], "float32")
    values = np.array([[-1.0, 0.0, 1.0], [3.0, 4.0, 5.0]])
    grid = traversal_latents(z, [2, 0], values)
    np.testing.assert_array_equal(grid[:3, :2], np.tile(z[:2], (3, 1)))
    np.testing.assert_array_equal(grid[:3, 2], values[0])
    np.testing.assert_array_equal(grid[3:, 1:], np.tile(z[1:], (3, 1)))
    np.testing.assert_array_equal(grid[3:, 0], values[1])
    x, _ = images(3)
    picture = plot_traversal(vae, x, latents=[1], steps=3, extent=1.0)
    tiles = cut_tiles(picture, 1, 3)
    z = np.repeat(vae.encode(x[:1]).mean().numpy(), 3, axis=0)
    z[:, 1] = [-1.0, 0.0, 1.0]
    assert_tiles_equal(tiles, vae.decode(z).mean().numpy())


def test_rows_are_named_after_their_latent(vae):
    x, _ = images(3)
    picture = plot_traversal(vae, x, latents=[2, 0], steps=3)
    margin = picture.shape[1] - (3 * 13 - 1)
    assert margin > 0
    assert picture[:, :margin].min() == 0  # black text on the white margin


@pytest.mark.parametrize("latents", [[3], [-1], [0, 7], []])
def test_latents_out_of_range_are_one_line(vae, latents):
    with pytest.raises(ValueError, match=r"\[0, 3\)") as excinfo:
        plot_traversal(vae, images(3)[0], latents=latents)
    assert_one_line_error(excinfo)


@pytest.mark.parametrize(
    "prior,posterior",
    [
        ("standard", "diagonal"),
        (MixtureOfGaussians(3), "full"),
        (VampPrior(4), "iaf"),  # a mixture of flows: moments from draws
    ],
    ids=["standard-diagonal", "mog-full", "vamp-iaf"],
)
def test_activity_is_the_share_of_the_prior_variance(prior, posterior):
    # Any prior and posterior: Var_x of the posterior points over the prior's variance.
    model = make_vae(prior=prior, posterior=posterior)
    x, _ = images(50)
    data, condition = model_inputs(model, x)
    points = model.posterior_layer.point(model.encode(data)).numpy()
    draws = model.sample_latent(20000, seed=1).numpy()
    mean, variance = prior_moments(model)
    np.testing.assert_allclose(mean, draws.mean(0), atol=0.05 * np.sqrt(variance).max())
    np.testing.assert_allclose(variance, draws.var(0), rtol=0.1)
    np.testing.assert_allclose(latent_activity(model, data), points.var(0) / variance, rtol=1e-5)


def test_a_label_cvae_traverses_with_the_first_images_label(label_cvae):
    x, labels = images(4)
    picture = plot_traversal(label_cvae, x, labels, latents=[0], steps=3)
    data, condition = model_inputs(label_cvae, x, labels)
    z = np.repeat(label_cvae.encode(data[:1], condition[:1]).mean().numpy(), 3, axis=0)
    z[:, 0] = [-3.0, 0.0, 3.0]
    expected = label_cvae.decode(z, np.repeat(condition[:1], 3, axis=0)).mean().numpy()
    assert_tiles_equal(cut_tiles(picture, 1, 3), expected)
