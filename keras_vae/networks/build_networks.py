"""Encoder and decoder pairs by architecture name."""

import keras

from keras_vae.networks.conv import conv_decoder, conv_encoder
from keras_vae.networks.mlp import mlp_decoder, mlp_encoder

ARCHITECTURES = ("mlp", "conv")

_BUILDERS = {
    "mlp": (mlp_encoder, mlp_decoder),
    "conv": (conv_encoder, conv_decoder),
}


def build_networks(
    architecture: str, input_shape, input_dim: int, output_shape
) -> tuple[keras.Model, keras.Model]:
    """The default encoder and decoder of an architecture.

    Args:
        architecture: str. One of `ARCHITECTURES`: `"mlp"` (fully connected,
            784-512-256 style) or `"conv"` (stride-2 convolutions).
        input_shape: tuple of ints. Shape of one example fed to the encoder.
        input_dim: int. Size of the decoder's input vector: the latent
            dimension, or the latent dimension plus the condition embedding
            size for a conditional VAE.
        output_shape: tuple of ints. Shape of the likelihood's parameter
            tensor for one example, produced by the decoder.

    Returns:
        A tuple `(encoder, decoder)` of functional `keras.Model`s.

    Example:

    >>> encoder, decoder = build_networks("conv", (28, 28, 1), 16, (28, 28, 1))
    >>> decoder.output.shape
    (None, 28, 28, 1)
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Expected architecture to be one of {ARCHITECTURES}. "
            f"Received: architecture={architecture!r}"
        )
    make_encoder, make_decoder = _BUILDERS[architecture]
    return make_encoder(input_shape), make_decoder(input_dim, output_shape)
