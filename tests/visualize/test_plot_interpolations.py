import numpy as np
import pytest
from tiny_image_models import assert_one_line_error, assert_tiles_equal, cut_tiles, images

from keras_vae.visualize import (
    decoded_images,
    encoded_points,
    model_inputs,
    plot_interpolations,
)


def test_rows_walk_straight_from_one_encoded_mean_to_the_other(vae):
    x, _ = images(5)  # two pairs; the odd fifth image is left out
    tiles = cut_tiles(plot_interpolations(vae, x, steps=5), num_rows=2, num_cols=7)
    tiles = tiles.reshape(2, 7, 4, 4, 1)
    assert_tiles_equal(tiles[:, 0], x[0:4:2])
    assert_tiles_equal(tiles[:, -1], x[1:4:2])
    means = vae.encode(x[:4]).mean().numpy()
    for row, (a, b) in enumerate([(0, 1), (2, 3)]):
        for step, t in enumerate(np.linspace(0, 1, 5)):
            z = (1 - t) * means[a] + t * means[b]
            expected = vae.decode(z[None]).mean().numpy()
            assert_tiles_equal(tiles[row, 1 + step][None], expected)


def test_a_label_cvae_walks_its_condition_too(label_cvae):
    x, labels = images(2)
    labels = np.array([0, 2])
    tiles = cut_tiles(plot_interpolations(label_cvae, x, labels, steps=3), 1, 5)
    data, condition = model_inputs(label_cvae, x, labels)
    z = encoded_points(label_cvae, data, condition)
    ends = decoded_images(label_cvae, z, condition)
    middle = decoded_images(label_cvae, z.mean(0, keepdims=True), condition.mean(0, keepdims=True))
    assert_tiles_equal(tiles[[1, 3]], ends)  # both ends are the reconstructions
    assert_tiles_equal(tiles[2:3], middle)


def test_completion_rows_keep_the_observed_halves_at_the_ends(completion_cvae):
    x, _ = images(2)
    tiles = cut_tiles(plot_interpolations(completion_cvae, x, steps=4), 1, 6)
    _, condition = model_inputs(completion_cvae, x)
    assert_tiles_equal(tiles[[1, 4], :2], condition.reshape(2, 2, 4, 1))


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_images_are_refused(vae, n):
    with pytest.raises(ValueError, match="at least two images") as excinfo:
        plot_interpolations(vae, images(n)[0])
    assert_one_line_error(excinfo)


@pytest.mark.parametrize("num_labels", [2, 4])
def test_labels_not_one_per_image_are_refused(label_cvae, num_labels):
    # Three images make one pair; the labels must still be one per image given.
    x, _ = images(3)
    with pytest.raises(ValueError, match="Expected labels to be 3 integers") as excinfo:
        plot_interpolations(label_cvae, x, np.zeros(num_labels, int))
    assert_one_line_error(excinfo)


def test_fewer_than_two_steps_are_refused(vae):
    with pytest.raises(ValueError) as excinfo:
        plot_interpolations(vae, images(2)[0], steps=1)
    assert_one_line_error(excinfo)
