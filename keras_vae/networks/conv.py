"""Convolutional encoder and decoder networks for images."""

import keras

from keras_vae.networks.validation import (
    check_activation,
    check_name,
    check_positive_int,
    check_shape,
    check_units,
)

IMAGE_SHAPE = "a tuple of 3 positive integers (height, width, channels)"


def conv_encoder(
    input_shape,
    filters=(32, 64),
    hidden_units=256,
    activation="relu",
    name="conv_encoder",
) -> keras.Model:
    """A convolutional encoder: stride-2 3x3 `Conv2D` layers, then one `Dense`.

    Each convolution halves the height and width (rounding up), so any image
    size works. Channels-last, with no normalisation layers, which keeps a
    training step cheap on CPU.

    Args:
        input_shape: tuple of 3 ints. Shape of one image,
            `(height, width, channels)`.
        filters: int or sequence of ints. Channels of each convolution, in
            order. Defaults to `(32, 64)`.
        hidden_units: int. Width of the `Dense` feature layer. Defaults to
            `256`.
        activation: str or callable. Activation of every layer. Defaults to
            `"relu"`.
        name: str. Name of the model. Defaults to `"conv_encoder"`.

    Returns:
        A functional `keras.Model` mapping `[batch, *input_shape]` to features
        `[batch, hidden_units]`.

    Example:

    >>> encoder = conv_encoder((28, 28, 1))
    >>> encoder.output.shape
    (None, 256)
    """
    input_shape = check_shape(
        "input_shape", input_shape, min_rank=3, max_rank=3, description=IMAGE_SHAPE
    )
    filters = check_units("filters", filters)
    hidden_units = check_positive_int("hidden_units", hidden_units)
    activation = check_activation(activation)
    name = check_name(name)

    inputs = keras.Input(shape=input_shape, name="x")
    x = inputs
    for i, channels in enumerate(filters):
        x = keras.layers.Conv2D(
            channels,
            3,
            strides=2,
            padding="same",
            activation=activation,
            data_format="channels_last",
            name=f"conv_{i}",
        )(x)
    x = keras.layers.Flatten(name="flatten")(x)
    # Named by role: the encoder's and the decoder's weights get distinct paths in
    # one model (TensorBoard tags its weight histograms by path).
    x = keras.layers.Dense(hidden_units, activation=activation, name="encoder_dense")(x)
    return keras.Model(inputs, x, name=name)


def conv_decoder(
    input_dim,
    output_shape,
    filters=(64, 32),
    activation="relu",
    name="conv_decoder",
) -> keras.Model:
    """A convolutional decoder: `Dense`, `Reshape`, stride-2 `Conv2DTranspose`s.

    With `k = len(filters)`, a `Dense` layer maps the input to a
    `(height / 2**k, width / 2**k, filters[0])` grid; each 3x3
    `Conv2DTranspose` doubles its height and width, and a final linear 3x3
    `Conv2D` gives `output_shape[-1]` parameter channels (e.g. Bernoulli
    logits). For MNIST with the defaults the grid goes 7 -> 14 -> 28.

    Args:
        input_dim: int. Size of the input vector: the latent dimension, or
            the latent dimension plus the condition embedding size.
        output_shape: tuple of 3 ints. Shape of the parameter tensor for one
            image, `(height, width, param_channels)`; height and width must be
            divisible by `2**len(filters)`.
        filters: int or sequence of ints. Channels of each transposed
            convolution, in order; `filters[0]` is also the channel count of
            the starting grid. Defaults to `(64, 32)`.
        activation: str or callable. Activation of every layer but the last.
            Defaults to `"relu"`.
        name: str. Name of the model. Defaults to `"conv_decoder"`.

    Returns:
        A functional `keras.Model` mapping `[batch, input_dim]` to
        `[batch, *output_shape]`.

    Example:

    >>> decoder = conv_decoder(16, (28, 28, 1))
    >>> decoder.output.shape
    (None, 28, 28, 1)
    """
    input_dim = check_positive_int("input_dim", input_dim)
    output_shape = check_shape(
        "output_shape", output_shape, min_rank=3, max_rank=3, description=IMAGE_SHAPE
    )
    filters = check_units("filters", filters)
    activation = check_activation(activation)
    name = check_name(name)
    height, width, channels = output_shape
    factor = 2 ** len(filters)
    if height % factor or width % factor:
        raise ValueError(
            f"Expected output height and width divisible by {factor} for "
            f"{len(filters)} stride-2 layers (one per entry of filters). "
            f"Received: output_shape={output_shape}"
        )

    grid = (height // factor, width // factor, filters[0])
    inputs = keras.Input(shape=(input_dim,), name="z")
    x = keras.layers.Dense(
        grid[0] * grid[1] * grid[2], activation=activation, name="decoder_dense"
    )(inputs)
    x = keras.layers.Reshape(grid, name="reshape")(x)
    for i, units in enumerate(filters):
        x = keras.layers.Conv2DTranspose(
            units,
            3,
            strides=2,
            padding="same",
            activation=activation,
            data_format="channels_last",
            name=f"deconv_{i}",
        )(x)
    outputs = keras.layers.Conv2D(
        channels, 3, padding="same", data_format="channels_last", name="params"
    )(x)
    return keras.Model(inputs, outputs, name=name)
