import keras
import numpy as np
import pytest

from keras_vae.networks import conv_decoder, conv_encoder

# The defaults on MNIST, and smaller networks on a non-square colour image.
NETWORKS = {
    "encoder_mnist": lambda: conv_encoder((28, 28, 1)),
    "encoder_32x16x3": lambda: conv_encoder((32, 16, 3), (8, 16), hidden_units=32),
    "decoder_mnist": lambda: conv_decoder(50, (28, 28, 1)),
    "decoder_32x16x3": lambda: conv_decoder(8, (32, 16, 3), (16, 8)),
}


@pytest.mark.parametrize(
    "input_shape, filters, grid",
    [
        ((28, 28, 1), (32, 64), (7, 7, 64)),
        ((32, 16, 3), (8, 16), (8, 4, 16)),
        # Stride-2 'same' convolutions round up, so odd sizes need no padding.
        ((27, 13, 2), (4, 4, 4), (4, 2, 4)),
        ((5, 5, 1), 6, (3, 3, 6)),
    ],
)
def test_encoder_output_shape(input_shape, filters, grid):
    encoder = conv_encoder(input_shape, filters, hidden_units=12)
    assert encoder.get_layer("flatten").input.shape == (None,) + grid
    assert encoder.output.shape == (None, 12)
    x = np.zeros((3,) + input_shape, "float32")
    assert tuple(encoder(x).shape) == (3, 12)


@pytest.mark.parametrize(
    "output_shape, filters, grids",
    [
        # MNIST: 7 -> 14 -> 28.
        ((28, 28, 1), (64, 32), [(7, 7, 64), (14, 14, 64), (28, 28, 32)]),
        ((32, 16, 3), (16, 8), [(8, 4, 16), (16, 8, 16), (32, 16, 8)]),
        # Two parameter channels per pixel, e.g. a Gaussian's loc and scale.
        ((32, 16, 6), (4, 4, 4), [(4, 2, 4), (8, 4, 4), (16, 8, 4), (32, 16, 4)]),
        ((8, 8, 1), 5, [(4, 4, 5), (8, 8, 5)]),
    ],
)
def test_decoder_output_shape(output_shape, filters, grids):
    decoder = conv_decoder(4, output_shape, filters)
    shapes = [decoder.get_layer("reshape").output.shape] + [
        decoder.get_layer(f"deconv_{i}").output.shape for i in range(len(grids) - 1)
    ]
    assert shapes == [(None,) + grid for grid in grids]
    assert decoder.output.shape == (None,) + output_shape
    z = np.zeros((3, 4), "float32")
    assert tuple(decoder(z).shape) == (3,) + output_shape


def test_decoder_outputs_unconstrained_parameters():
    decoder = conv_decoder(4, (8, 8, 2), (4,))
    assert decoder.get_layer("params").activation is keras.activations.linear
    z = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    params = keras.ops.convert_to_numpy(decoder(z))
    assert params.min() < 0 < params.max()


def test_no_normalisation_layers():
    # Benchmarked on CPU: batch norm would cost time and is not needed here.
    for model in (conv_encoder((28, 28, 1)), conv_decoder(50, (28, 28, 1))):
        kinds = {type(layer).__name__ for layer in model.layers}
        assert kinds <= {
            "InputLayer",
            "Conv2D",
            "Conv2DTranspose",
            "Flatten",
            "Dense",
            "Reshape",
        }


@pytest.mark.parametrize("network", NETWORKS)
def test_config_round_trip(network, battery):
    battery.config_round_trip(NETWORKS[network]())


@pytest.mark.parametrize("network", NETWORKS)
def test_keras_save_and_load(network, battery, tmp_path):
    battery.save_load(NETWORKS[network](), tmp_path)


@pytest.mark.parametrize("network", NETWORKS)
def test_fit_step_lowers_loss(network, battery):
    battery.fit_step(NETWORKS[network]())


@pytest.mark.parametrize("network", NETWORKS)
def test_gradients_reach_first_layer(network, battery):
    battery.gradients_reach_first_layer(NETWORKS[network]())


@pytest.mark.parametrize("network", NETWORKS)
def test_hidden_layers_apply_the_default_relu(network, battery):
    battery.hidden_layers_apply(NETWORKS[network](), "relu")


@pytest.mark.parametrize(
    "network",
    [
        lambda **kw: conv_encoder((8, 6, 2), (4, 8), hidden_units=16, **kw),
        lambda **kw: conv_decoder(4, (8, 4, 2), (8, 4), **kw),
    ],
    ids=["encoder", "decoder"],
)
def test_hidden_layers_apply_the_activation_given(network, battery):
    battery.hidden_layers_apply(network(activation="tanh"), "tanh")


@pytest.mark.parametrize(
    "output_shape, filters, message",
    [
        ((30, 30, 1), (64, 32), "divisible by 4 for 2 stride-2 layers"),
        ((28, 30, 1), (64, 32), "divisible by 4 for 2 stride-2 layers"),
        ((28, 28, 1), (64, 32, 16), "divisible by 8 for 3 stride-2 layers"),
        ((2, 2, 1), (8, 8), "divisible by 4 for 2 stride-2 layers"),
    ],
)
def test_decoder_rejects_sizes_the_upsampling_cannot_reach(output_shape, filters, message):
    with pytest.raises(ValueError, match=message) as error:
        conv_decoder(4, output_shape, filters)
    text = str(error.value)
    assert text.startswith("Expected ")
    assert text.endswith(f"Received: output_shape={output_shape}")


@pytest.mark.parametrize(
    "build, kwargs, name",
    [
        (conv_encoder, {"input_shape": (28, 28)}, "input_shape"),
        (conv_encoder, {"input_shape": 784}, "input_shape"),
        (conv_encoder, {"input_shape": (28, 28, 1, 1)}, "input_shape"),
        (conv_encoder, {"input_shape": (28, 0, 1)}, "input_shape"),
        (conv_encoder, {"input_shape": (None, 28, 1)}, "input_shape"),
        (conv_encoder, {"input_shape": (8, 8, 1), "filters": ()}, "filters"),
        (conv_encoder, {"input_shape": (8, 8, 1), "filters": (32, 0)}, "filters"),
        (conv_encoder, {"input_shape": (8, 8, 1), "filters": "32"}, "filters"),
        (conv_encoder, {"input_shape": (8, 8, 1), "hidden_units": 0}, "hidden_units"),
        (
            conv_encoder,
            {"input_shape": (8, 8, 1), "hidden_units": (256,)},
            "hidden_units",
        ),
        (conv_encoder, {"input_shape": (8, 8, 1), "activation": "nope"}, "activation"),
        (conv_encoder, {"input_shape": (8, 8, 1), "name": None}, "name"),
        (conv_decoder, {"input_dim": 0, "output_shape": (8, 8, 1)}, "input_dim"),
        (conv_decoder, {"input_dim": -3, "output_shape": (8, 8, 1)}, "input_dim"),
        (conv_decoder, {"input_dim": 4, "output_shape": (8, 8)}, "output_shape"),
        (conv_decoder, {"input_dim": 4, "output_shape": (8, 8, 0)}, "output_shape"),
        (
            conv_decoder,
            {"input_dim": 4, "output_shape": (8, 8, 1), "filters": ()},
            "filters",
        ),
        (
            conv_decoder,
            {"input_dim": 4, "output_shape": (8, 8, 1), "filters": (4, -4)},
            "filters",
        ),
    ],
)
def test_bad_arguments_raise_one_line(build, kwargs, name):
    with pytest.raises(ValueError, match=f"^Expected .*Received: {name}=") as error:
        build(**kwargs)
    assert "\n" not in str(error.value)
