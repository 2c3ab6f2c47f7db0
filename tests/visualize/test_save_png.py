import numpy as np
import pytest
from PIL import Image
from tiny_image_models import assert_one_line_error

from keras_vae.visualize import picture_grid, save_png


def test_picture_grid_scales_tiles_between_thin_grey_lines():
    tiles = np.random.default_rng(0).random((5, 2, 3, 1)).astype("float32")
    picture = picture_grid(tiles, num_cols=3, zoom=2)
    assert picture.shape == (2 * 5 - 1, 3 * 7 - 1, 1)
    expected = np.round(np.kron(tiles[4, ..., 0], np.ones((2, 2))) * 255)
    np.testing.assert_array_equal(picture[5:9, 7:13, 0], expected)
    assert np.all(picture[4, :, 0] == 128) and np.all(picture[:, 6, 0] == 128)
    assert np.all(picture[5:, 14:] == 128)  # the empty last cell


@pytest.mark.parametrize("channels", [1, 3])
def test_save_png_round_trip(tmp_path, channels):
    picture = np.random.default_rng(0).integers(0, 256, (7, 5, channels), dtype=np.uint8)
    path = save_png(picture, tmp_path / "a" / "picture.png")
    np.testing.assert_array_equal(np.asarray(Image.open(path)).reshape(picture.shape), picture)


@pytest.mark.parametrize("name", ["picture.npy", "picture.jpg"])
def test_save_png_wants_a_png_path(tmp_path, name):
    with pytest.raises(ValueError) as excinfo:
        save_png(np.zeros((2, 2, 1), np.uint8), tmp_path / name)
    assert_one_line_error(excinfo)
