"""Convolutional networks for completion targets: pixels picked out of an image.

A completion CVAE's target is the flat vector of an image's missing pixels
(`keras_vae.data.split_image`). Convolutions need the image grid, so the
encoder first scatters the target back into an image (zeros where pixels are
observed) and the decoder ends by gathering the missing pixels from the image
of parameters it draws.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_vae.networks.conv import IMAGE_SHAPE, conv_decoder, conv_encoder
from keras_vae.networks.validation import check_positive_int, check_shape


def _check_indices(indices, size):
    """Flat pixel indices: a non-empty 1-D list of distinct ints in [0, size)."""
    array = np.asarray(indices)
    if (
        array.ndim != 1
        or array.size == 0
        or not np.issubdtype(array.dtype, np.integer)
        or array.min() < 0
        or array.max() >= size
        or np.unique(array).size != array.size
    ):
        shown = indices if array.size <= 8 else f"{array.size} values"
        raise ValueError(
            f"Expected indices to be distinct flat pixel indices in [0, {size}) (at least "
            f"one). Received: indices={shown!r}"
        )
    return [int(i) for i in array]


class _PixelIndexLayer(keras.layers.Layer):
    """Base of `GatherPixels` and `ScatterPixels`: flat `indices` into `image_shape`."""

    def __init__(self, indices, image_shape, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = check_shape(
            "image_shape", image_shape, min_rank=3, max_rank=3, description=IMAGE_SHAPE
        )
        self.image_size = int(np.prod(self.image_shape))
        self.indices = _check_indices(indices, self.image_size)

    def get_config(self):
        config = super().get_config()
        config.update({"indices": self.indices, "image_shape": list(self.image_shape)})
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
class GatherPixels(_PixelIndexLayer):
    """Picks pixels out of images: `[batch, H, W, C]` -> `[batch, len(indices)]`.

    `indices` count row-major over one image's `H * W * C` values, as
    `keras_vae.data.pixel_indices` does, so `GatherPixels` with the missing
    indices of a condition returns what `split_image` calls the missing part.

    Args:
        indices: sequence of ints. Flat indices of the pixels to keep, in
            output order.
        image_shape: tuple of 3 ints `(H, W, C)`.

    Example:

    >>> layer = GatherPixels([0, 3], (2, 2, 1))
    >>> layer(np.arange(4, dtype="float32").reshape(1, 2, 2, 1)).numpy().tolist()
    [[0.0, 3.0]]
    """

    def call(self, images):
        return tf.gather(tf.reshape(images, [-1, self.image_size]), self.indices, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.indices))


@keras.saving.register_keras_serializable(package="keras_vae")
class ScatterPixels(_PixelIndexLayer):
    """Puts pixel values into images: `[batch, len(indices)]` -> `[batch, H, W, C]`.

    `GatherPixels` with the same arguments takes the values back out; the
    other pixels are zero.

    Args:
        indices: sequence of ints. Flat index of each input value in the image.
        image_shape: tuple of 3 ints `(H, W, C)`.

    Example:

    >>> layer = ScatterPixels([0, 3], (2, 2, 1))
    >>> layer(np.array([[5.0, 7.0]], "float32")).numpy().reshape(-1).tolist()
    [5.0, 0.0, 0.0, 7.0]
    """

    def __init__(self, indices, image_shape, **kwargs):
        super().__init__(indices, image_shape, **kwargs)
        # Where each image value comes from: its input column, or the zero
        # column appended after the last one.
        source = np.full(self.image_size, len(self.indices), dtype="int32")
        source[self.indices] = np.arange(len(self.indices), dtype="int32")
        self._source = source

    def call(self, values):
        values = tf.convert_to_tensor(values, self.compute_dtype)
        padded = tf.concat([values, tf.zeros_like(values[:, :1])], axis=1)
        images = tf.gather(padded, self._source, axis=1)
        return tf.reshape(images, [-1, *self.image_shape])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.image_shape)


def conv_completion_networks(
    image_shape, missing_indices, input_dim, name="conv_completion"
) -> tuple[keras.Model, keras.Model]:
    """`conv_encoder` and `conv_decoder` for a flat vector of missing pixels.

    The encoder scatters the missing pixels into the image grid (observed
    pixels zero; a CVAE adds the condition after the encoder) and runs
    `conv_encoder`; the decoder runs `conv_decoder` to a full image of
    parameters and gathers the missing pixels.

    Args:
        image_shape: tuple of 3 ints `(H, W, C)`; `H` and `W` divisible by 4
            (the decoder's two upsamplings).
        missing_indices: sequence of ints. Flat indices of the target pixels
            in an image, in target order (`keras_vae.data.pixel_indices`).
        input_dim: int. Size of the decoder's input: latents plus condition.
        name: str. Prefix of the two models' names.

    Returns:
        A tuple `(encoder, decoder)`: `[batch, n] -> [batch, 256]` features
        and `[batch, input_dim] -> [batch, n]` parameters, with
        `n = len(missing_indices)`.

    Example:

    >>> from keras_vae.data import pixel_indices
    >>> missing = pixel_indices("top-half", (28, 28, 1))[1]
    >>> encoder, decoder = conv_completion_networks((28, 28, 1), missing, 4 + 392)
    >>> decoder.output.shape
    (None, 392)
    """
    image_shape = check_shape(
        "image_shape", image_shape, min_rank=3, max_rank=3, description=IMAGE_SHAPE
    )
    input_dim = check_positive_int("input_dim", input_dim)
    missing_indices = _check_indices(missing_indices, int(np.prod(image_shape)))
    size = len(missing_indices)

    target = keras.Input(shape=(size,), name="missing")
    image = ScatterPixels(missing_indices, image_shape, name="scatter")(target)
    features = conv_encoder(image_shape)(image)
    encoder = keras.Model(target, features, name=f"{name}_encoder")

    inputs = keras.Input(shape=(input_dim,), name="z_and_condition")
    params = conv_decoder(input_dim, image_shape)(inputs)
    missing = GatherPixels(missing_indices, image_shape, name="gather")(params)
    decoder = keras.Model(inputs, missing, name=f"{name}_decoder")
    return encoder, decoder
