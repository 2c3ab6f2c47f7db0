import math

import keras
import numpy as np
import pytest

from keras_vae.networks import mlp_decoder, mlp_encoder

# The defaults on MNIST, and smaller networks on a non-square colour image.
NETWORKS = {
    "encoder_mnist": lambda: mlp_encoder((28, 28, 1)),
    "encoder_32x16x3": lambda: mlp_encoder((32, 16, 3), hidden_units=(64, 32)),
    "decoder_mnist": lambda: mlp_decoder(50, (28, 28, 1)),
    "decoder_32x16x3": lambda: mlp_decoder(8, (32, 16, 3), hidden_units=(32, 64)),
}


@pytest.mark.parametrize(
    "input_shape, hidden_units, features",
    [
        ((28, 28, 1), (512, 256), 256),
        ((32, 16, 3), (64, 32), 32),
        ((784,), (128,), 128),
        ((12, 5), 7, 7),
        (np.array([6, 4, 2]), (np.int64(9),), 9),
    ],
)
def test_encoder_output_shape(input_shape, hidden_units, features):
    encoder = mlp_encoder(input_shape, hidden_units=hidden_units)
    x = np.zeros((3,) + tuple(int(d) for d in input_shape), "float32")
    assert encoder.output.shape == (None, features)
    assert tuple(encoder(x).shape) == (3, features)


@pytest.mark.parametrize(
    "input_dim, output_shape",
    [(50, (28, 28, 1)), (10, (32, 16, 3)), (1, (7,)), (3, 5)],
)
def test_decoder_output_shape(input_dim, output_shape):
    decoder = mlp_decoder(input_dim, output_shape)
    expected = (output_shape,) if isinstance(output_shape, int) else output_shape
    z = np.zeros((3, input_dim), "float32")
    assert decoder.output.shape == (None,) + expected
    assert tuple(decoder(z).shape) == (3,) + expected


def test_defaults_are_the_classic_784_512_256_vae():
    encoder, decoder = mlp_encoder((28, 28, 1)), mlp_decoder(50, (28, 28, 1))
    dense = [layer.units for layer in encoder.layers if hasattr(layer, "units")]
    assert dense == [512, 256]
    assert encoder.count_params() == (784 * 512 + 512) + (512 * 256 + 256)
    dense = [layer.units for layer in decoder.layers if hasattr(layer, "units")]
    assert dense == [256, 512, 784]
    assert decoder.count_params() == (50 * 256 + 256) + (256 * 512 + 512) + (512 * 784 + 784)


def test_decoder_outputs_unconstrained_parameters():
    decoder = mlp_decoder(4, (6,))
    assert decoder.get_layer("params").activation is keras.activations.linear
    z = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    params = keras.ops.convert_to_numpy(decoder(z))
    # Logits and locations need both signs.
    assert params.min() < 0 < params.max()


def test_decoder_without_hidden_layers_is_affine():
    decoder = mlp_decoder(3, (2, 2), hidden_units=())
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 3)).astype("float32")
    zero = np.zeros_like(a)

    def f(z):
        return keras.ops.convert_to_numpy(decoder(z))

    np.testing.assert_allclose(f(a + b) - f(zero), f(a) + f(b) - 2 * f(zero), atol=1e-5)


def test_flat_size_matches_output_shape():
    decoder = mlp_decoder(2, (32, 16, 3))
    assert decoder.get_layer("params").units == math.prod((32, 16, 3))


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
        lambda **kw: mlp_encoder((6, 5, 2), hidden_units=(16, 8), **kw),
        lambda **kw: mlp_decoder(4, (6, 5, 2), hidden_units=(8, 16), **kw),
    ],
    ids=["encoder", "decoder"],
)
def test_hidden_layers_apply_the_activation_given(network, battery):
    battery.hidden_layers_apply(network(activation="tanh"), "tanh")


@pytest.mark.parametrize(
    "build, kwargs, name",
    [
        (mlp_encoder, {"input_shape": ()}, "input_shape"),
        (mlp_encoder, {"input_shape": (2, 3, 4, 5)}, "input_shape"),
        (mlp_encoder, {"input_shape": (28, 0)}, "input_shape"),
        (mlp_encoder, {"input_shape": (28, None)}, "input_shape"),
        (mlp_encoder, {"input_shape": (28.0, 28)}, "input_shape"),
        (mlp_encoder, {"input_shape": 0}, "input_shape"),
        (mlp_encoder, {"input_shape": (4,), "hidden_units": ()}, "hidden_units"),
        (mlp_encoder, {"input_shape": (4,), "hidden_units": (8, -1)}, "hidden_units"),
        (mlp_encoder, {"input_shape": (4,), "hidden_units": (2.5,)}, "hidden_units"),
        (mlp_encoder, {"input_shape": (4,), "hidden_units": True}, "hidden_units"),
        (mlp_encoder, {"input_shape": (4,), "activation": "nope"}, "activation"),
        (mlp_encoder, {"input_shape": (4,), "name": ""}, "name"),
        (mlp_decoder, {"input_dim": 0, "output_shape": (4,)}, "input_dim"),
        (mlp_decoder, {"input_dim": 2.0, "output_shape": (4,)}, "input_dim"),
        (mlp_decoder, {"input_dim": 2, "output_shape": ()}, "output_shape"),
        (mlp_decoder, {"input_dim": 2, "output_shape": (4, -4)}, "output_shape"),
        (
            mlp_decoder,
            {"input_dim": 2, "output_shape": (4,), "hidden_units": (0,)},
            "hidden_units",
        ),
        (
            mlp_decoder,
            {"input_dim": 2, "output_shape": (4,), "activation": 3},
            "activation",
        ),
    ],
)
def test_bad_arguments_raise_one_line(build, kwargs, name):
    with pytest.raises(ValueError, match=f"^Expected .*Received: {name}=") as error:
        build(**kwargs)
    assert "\n" not in str(error.value)
