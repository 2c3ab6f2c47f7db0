"""MaskedDense and the MADE masks: the autoregressive property, numpy outputs, config, errors.

The MADE property is checked on the Jacobian of a whole masked network (from
`tf.GradientTape`), against the order written down directly ("output i reads
inputs before i"), not against the masks or degrees that built it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_vae.layers import MaskedDense  # noqa: E402
from keras_vae.layers.masked_dense import made_masks  # noqa: E402


def made_network(num_inputs, hidden_units, num_outputs_per_input, reverse, seed=0):
    """A MADE of MaskedDense layers with ReLU hidden layers and random biases."""
    masks = made_masks(num_inputs, hidden_units, num_outputs_per_input, reverse=reverse)
    widths = (*hidden_units, num_outputs_per_input * num_inputs)
    layers = [
        MaskedDense(
            units,
            mask,
            activation="relu" if i < len(hidden_units) else None,
            bias_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=seed + i),
        )
        for i, (units, mask) in enumerate(zip(widths, masks, strict=True))
    ]
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((num_inputs,)), *layers])


def allowed_dependencies(num_inputs, num_outputs_per_input, reverse):
    """[outputs, inputs] booleans: output block position i may read input j iff j precedes i."""
    position = np.arange(num_inputs)
    if reverse:
        precedes = position[None, :] > position[:, None]
    else:
        precedes = position[None, :] < position[:, None]
    return np.tile(precedes, (num_outputs_per_input, 1))


@pytest.mark.parametrize("reverse", [False, True], ids=["natural", "reversed"])
@pytest.mark.parametrize(
    "num_inputs, hidden_units, num_outputs_per_input",
    [(1, (4,), 2), (3, (6,), 2), (5, (12, 12), 2), (4, (9,), 1)],
    ids=["d1", "d3", "d5_two_hidden", "d4_one_output"],
)
def test_made_output_depends_only_on_earlier_inputs(
    num_inputs, hidden_units, num_outputs_per_input, reverse
):
    network = made_network(num_inputs, hidden_units, num_outputs_per_input, reverse)
    x = tf.constant(np.random.default_rng(0).normal(size=(64, num_inputs)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = network(x)
    jacobian = tape.batch_jacobian(y, x).numpy()  # [B, outputs, inputs]
    assert jacobian.shape == (64, num_outputs_per_input * num_inputs, num_inputs)
    allowed = allowed_dependencies(num_inputs, num_outputs_per_input, reverse)
    # No output reads a later input (or itself): exact zeros.
    np.testing.assert_array_equal(jacobian[:, ~allowed], 0.0)
    # And every allowed connection is used for some input: the masks are not too strict.
    used = np.any(jacobian != 0.0, axis=0)
    np.testing.assert_array_equal(used, allowed)


def test_masked_dense_is_numpy_matmul_with_the_masked_kernel():
    rng = np.random.default_rng(1)
    mask = (rng.random((4, 3)) < 0.5).astype("float32")
    layer = MaskedDense(3, mask, activation="tanh")
    x = rng.normal(size=(2, 5, 4)).astype("float32")
    layer.build(x.shape)
    kernel = rng.normal(size=(4, 3)).astype("float32")
    bias = rng.normal(size=3).astype("float32")
    layer.set_weights([kernel, bias])
    y = layer(x)
    assert y.shape == (2, 5, 3) == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, np.tanh(x @ (kernel * mask) + bias), rtol=1e-5, atol=1e-6)
    # The masked entries of the kernel get no gradient.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    np.testing.assert_array_equal(tape.gradient(loss, layer.kernel).numpy()[mask == 0], 0.0)


def test_config_round_trip():
    mask = made_masks(3, (5,), 2)[0]
    layer = MaskedDense(
        5, mask, activation="relu", bias_initializer=keras.initializers.Constant(0.3), name="made"
    )
    x = np.random.default_rng(2).normal(size=(4, 3)).astype("float32")
    layer(x)
    config = layer.get_config()
    assert config["units"] == 5
    assert config["name"] == "made"
    np.testing.assert_array_equal(config["mask"], mask)
    clone = MaskedDense.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_array_equal(clone.mask, mask)
    assert clone.mask.dtype == np.float32
    clone.build(x.shape)
    np.testing.assert_allclose(clone.bias, np.full(5, 0.3), rtol=1e-6)  # the initializer came along
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x), layer(x))


def test_save_load(tmp_path):
    mask = made_masks(3, (4,), 2)[-1]
    model = keras.Sequential([keras.Input((4,)), MaskedDense(6, mask, activation="sigmoid")])
    for weight in model.weights:
        weight.assign(weight + 0.37)
    path = tmp_path / "made.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[0]) is MaskedDense
    np.testing.assert_array_equal(loaded.layers[0].mask, mask)
    x = np.random.default_rng(3).normal(size=(5, 4)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize(
    "units, mask, received",
    [
        (3, np.ones((2, 4)), r"\(2, 4\)"),
        (3, np.ones(3), r"\(3,\)"),
        (3, np.ones((2, 3, 1)), r"\(2, 3, 1\)"),
        (2, [[1, 0, 1]], r"\(1, 3\)"),
    ],
    ids=["wrong_units", "one_dim", "three_dim", "nested_list"],
)
def test_rejects_bad_mask_shape(units, mask, received):
    with pytest.raises(
        ValueError,
        match=rf"Expected mask shaped \[fan_in, {units}\]. Received: mask.shape=" + received,
    ):
        MaskedDense(units, mask)


def test_rejects_inputs_that_do_not_match_the_mask_fan_in():
    layer = MaskedDense(3, np.ones((2, 3)))
    with pytest.raises(
        ValueError,
        match=r"Expected inputs with 2 features \(the mask's fan-in\). "
        r"Received: input_shape=\(4, 5\)",
    ):
        layer(np.zeros((4, 5), "float32"))


@pytest.mark.parametrize("units", [0, -1, 2.0])
def test_rejects_bad_units(units):
    with pytest.raises(
        ValueError, match=rf"Expected units to be a positive integer. Received: units={units}"
    ):
        MaskedDense(units, np.ones((2, 1)))
