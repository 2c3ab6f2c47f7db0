import numpy as np
import pytest
from tiny_image_models import (
    assert_one_line_error,
    assert_tiles_equal,
    cut_tiles,
    images,
)

from keras_vae.visualize import as_images, model_inputs, plot_reconstructions


def test_inputs_beside_their_reconstructions(any_model):
    x, labels = images(7)
    picture = plot_reconstructions(any_model, x, labels, pairs_per_row=3)
    tiles = cut_tiles(picture, num_rows=3, num_cols=6)
    data, condition = model_inputs(any_model, x, labels)
    outputs = as_images(any_model, any_model.reconstruct(data, condition), condition)
    assert_tiles_equal(tiles[0:14:2], x)
    assert_tiles_equal(tiles[1:14:2], outputs)
    assert np.all(tiles[14:] == 128)  # the cells after the last pair: grid grey


def test_a_vae_reconstruction_decodes_the_posterior_mean(vae):
    x, _ = images(4)
    tiles = cut_tiles(plot_reconstructions(vae, x), num_rows=1, num_cols=8)
    expected = vae.decode(vae.encode(x).mean()).mean().numpy()
    assert_tiles_equal(tiles[1::2], expected)


def test_a_completion_reconstruction_keeps_the_observed_half(completion_cvae):
    x, _ = images(4)
    data, condition = model_inputs(completion_cvae, x)
    tiles = cut_tiles(plot_reconstructions(completion_cvae, x), num_rows=1, num_cols=8)
    # The observed top half is the (binarized) input, the bottom half the decoded mean.
    observed = condition.reshape(4, 2, 4, 1)
    assert_tiles_equal(tiles[1::2, :2], observed)
    mean = completion_cvae.decode(completion_cvae.encode(data, condition).mean(), condition)
    assert_tiles_equal(tiles[1::2, 2:], mean.mean().numpy().reshape(4, 2, 4, 1))


def test_a_label_cvae_needs_labels(label_cvae):
    with pytest.raises(ValueError) as excinfo:
        plot_reconstructions(label_cvae, images(4)[0])
    assert_one_line_error(excinfo)


def test_images_of_another_shape_are_refused(vae):
    with pytest.raises(ValueError) as excinfo:
        plot_reconstructions(vae, np.zeros((2, 5, 5, 1), "float32"))
    assert_one_line_error(excinfo)
