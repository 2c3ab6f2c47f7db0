"""Fully connected encoder and decoder networks."""

import math

import keras

from keras_vae.networks.validation import (
    check_activation,
    check_name,
    check_positive_int,
    check_shape,
    check_units,
)


def mlp_encoder(
    input_shape, hidden_units=(512, 256), activation="relu", name="mlp_encoder"
) -> keras.Model:
    """A fully connected encoder: `Flatten`, then a stack of `Dense` layers.

    The defaults give the encoder of the classic 784-512-256-latent MNIST VAE;
    the VAE adds its own `Dense` posterior head on top of the features.

    Args:
        input_shape: int or tuple of 1 to 3 ints. Shape of one example, e.g.
            `(28, 28, 1)`.
        hidden_units: int or sequence of ints. Width of each hidden layer, in
            order. Defaults to `(512, 256)`.
        activation: str or callable. Activation of every hidden layer.
            Defaults to `"relu"`.
        name: str. Name of the model. Defaults to `"mlp_encoder"`.

    Returns:
        A functional `keras.Model` mapping `[batch, *input_shape]` to features
        `[batch, hidden_units[-1]]`.

    Example:

    >>> encoder = mlp_encoder((28, 28, 1))
    >>> encoder.output.shape
    (None, 256)
    """
    input_shape = check_shape("input_shape", input_shape, min_rank=1, max_rank=3)
    hidden_units = check_units("hidden_units", hidden_units)
    activation = check_activation(activation)
    name = check_name(name)

    inputs = keras.Input(shape=input_shape, name="x")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(hidden_units):
        # Named by role: the encoder's and the decoder's weights get distinct paths in
        # one model (TensorBoard tags its weight histograms by path).
        x = keras.layers.Dense(units, activation=activation, name=f"encoder_dense_{i}")(x)
    return keras.Model(inputs, x, name=name)


def mlp_decoder(
    input_dim,
    output_shape,
    hidden_units=(256, 512),
    activation="relu",
    name="mlp_decoder",
) -> keras.Model:
    """A fully connected decoder: `Dense` layers, a linear `Dense`, a `Reshape`.

    The last layer is linear because its outputs are distribution parameters
    (e.g. Bernoulli logits); the likelihood layer applies any squashing.

    Args:
        input_dim: int. Size of the input vector: the latent dimension, or
            the latent dimension plus the condition embedding size.
        output_shape: int or tuple of ints. Shape of the parameter tensor for
            one example, e.g. `(28, 28, 1)` for Bernoulli logits on MNIST.
        hidden_units: int or sequence of ints. Width of each hidden layer, in
            order; empty for a linear decoder. Defaults to `(256, 512)`.
        activation: str or callable. Activation of every hidden layer.
            Defaults to `"relu"`.
        name: str. Name of the model. Defaults to `"mlp_decoder"`.

    Returns:
        A functional `keras.Model` mapping `[batch, input_dim]` to
        `[batch, *output_shape]`.

    Example:

    >>> decoder = mlp_decoder(16, (28, 28, 1))
    >>> decoder.output.shape
    (None, 28, 28, 1)
    """
    input_dim = check_positive_int("input_dim", input_dim)
    output_shape = check_shape("output_shape", output_shape, min_rank=1)
    hidden_units = check_units("hidden_units", hidden_units, allow_empty=True)
    activation = check_activation(activation)
    name = check_name(name)

    inputs = keras.Input(shape=(input_dim,), name="z")
    x = inputs
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation=activation, name=f"decoder_dense_{i}")(x)
    x = keras.layers.Dense(math.prod(output_shape), name="params")(x)
    outputs = keras.layers.Reshape(output_shape, name="reshape")(x)
    return keras.Model(inputs, outputs, name=name)
