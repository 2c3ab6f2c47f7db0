import keras
import numpy as np
import pytest

from keras_vae.networks import (
    ARCHITECTURES,
    build_networks,
    conv_decoder,
    conv_encoder,
    mlp_decoder,
    mlp_encoder,
)


@pytest.mark.parametrize(
    "architecture, make_encoder, make_decoder",
    [("mlp", mlp_encoder, mlp_decoder), ("conv", conv_encoder, conv_decoder)],
)
def test_builds_the_default_pair(architecture, make_encoder, make_decoder):
    encoder, decoder = build_networks(architecture, (28, 28, 1), 50, (28, 28, 1))
    assert encoder.name == make_encoder((28, 28, 1)).name
    assert encoder.count_params() == make_encoder((28, 28, 1)).count_params()
    assert decoder.count_params() == make_decoder(50, (28, 28, 1)).count_params()
    assert isinstance(encoder, keras.Model) and isinstance(decoder, keras.Model)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_pair_chains_through_a_posterior_head(architecture):
    # A conditional decoder reads z (16) concatenated with an embedding (10).
    encoder, decoder = build_networks(architecture, (32, 16, 3), 26, (32, 16, 6))
    x = np.zeros((2, 32, 16, 3), "float32")
    features = encoder(x)
    z = keras.layers.Dense(26)(features)
    assert tuple(decoder(z).shape) == (2, 32, 16, 6)


@pytest.mark.parametrize("architecture", ["resnet", "MLP", None])
def test_unknown_architecture_lists_the_choices(architecture):
    with pytest.raises(ValueError) as error:
        build_networks(architecture, (28, 28, 1), 8, (28, 28, 1))
    assert str(error.value) == (
        "Expected architecture to be one of ('mlp', 'conv'). "
        f"Received: architecture={architecture!r}"
    )
