import numpy as np
import pytest
from tiny_image_models import (
    SHAPE,
    assert_one_line_error,
    assert_tiles_equal,
    cut_tiles,
    images,
    make_label_cvae,
)

from keras_vae.tasks import complete_images, completion_grid, sample_images
from keras_vae.visualize import plot_samples


def test_vae_samples_are_seeded_prior_draws(vae):
    tiles = cut_tiles(plot_samples(vae, 6, seed=3), num_rows=2, num_cols=3)
    assert_tiles_equal(tiles, sample_images(vae, 6, 3))
    assert not np.array_equal(plot_samples(vae, 6, seed=3), plot_samples(vae, 6, seed=4))


def test_label_rows_show_the_requested_classes():
    # The decoder reads the class alone (its z weights are zero): each tile of a
    # row is the decoded mean of that row's class.
    cvae = make_label_cvae()
    decoder = cvae.decoder.layers[-2]
    kernel, bias = decoder.get_weights()
    kernel[:3] = 0.0
    decoder.set_weights([kernel, bias])
    picture = plot_samples(cvae, 4, seed=0, classes=[2, 0])
    tiles = cut_tiles(picture, num_rows=2, num_cols=4).reshape(2, 4, *SHAPE)
    z = np.zeros((3, 3), "float32")
    by_class = cvae.decode(z, np.eye(3, dtype="float32")).mean().numpy()
    for row, label in enumerate([2, 0]):
        assert_tiles_equal(tiles[row], np.repeat(by_class[label][None], 4, axis=0))
    assert picture.shape[1] > 4 * 13 - 1  # a margin names the rows
    assert picture[:, : picture.shape[1] - (4 * 13 - 1)].min() == 0


def test_all_classes_by_default_as_sample_images_draws_them(label_cvae):
    tiles = cut_tiles(plot_samples(label_cvae, 2, seed=1), num_rows=3, num_cols=2)
    assert_tiles_equal(tiles, sample_images(label_cvae, 2, 1))


def test_completion_rows(completion_cvae):
    x, _ = images(2)
    tiles = cut_tiles(plot_samples(completion_cvae, 3, seed=0, images=x), 2, 5)
    grid = completion_grid(x, complete_images(completion_cvae, x, 3, 0), "top-half")
    assert_tiles_equal(tiles, grid)


@pytest.mark.parametrize("classes", [[3], [-1], [True], []])
def test_classes_out_of_range_are_one_line(label_cvae, classes):
    with pytest.raises(ValueError, match=r"\[0, 3\)") as excinfo:
        plot_samples(label_cvae, classes=classes)
    assert_one_line_error(excinfo)


def test_bad_requests_are_one_line(vae, completion_cvae):
    for call in (
        lambda: plot_samples(vae, classes=[0]),
        lambda: plot_samples(completion_cvae),
        lambda: plot_samples(vae, 0),
    ):
        with pytest.raises(ValueError) as excinfo:
            call()
        assert_one_line_error(excinfo)
