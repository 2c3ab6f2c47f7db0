"""The property battery every network builder is run through.

Each test file lists its builders; the checks themselves live here so the MLP
and convolutional networks are held to exactly the same standard.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import types  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)


def random_inputs(model, batch=4):
    """A float32 batch shaped like `model`'s input."""
    shape = (batch,) + tuple(model.input.shape[1:])
    return np.random.default_rng(0).uniform(size=shape).astype("float32")


def random_targets(model, batch=4):
    """A float32 batch shaped like `model`'s output."""
    shape = (batch,) + tuple(model.output.shape[1:])
    return np.random.default_rng(1).normal(size=shape).astype("float32")


def first_weighted_layer(model):
    return next(layer for layer in model.layers if layer.weights)


def config_round_trip(model):
    """`from_config(get_config())` rebuilds the same architecture."""
    x = random_inputs(model)
    clone = keras.Model.from_config(model.get_config())
    assert [type(layer) for layer in clone.layers] == [type(layer) for layer in model.layers]
    assert [layer.get_config() for layer in clone.layers] == [
        layer.get_config() for layer in model.layers
    ]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x), model(x), rtol=1e-6, atol=1e-6)


def save_load(model, tmp_path):
    """A `.keras` file loads back, without custom objects, to the same outputs."""
    x = random_inputs(model)
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == model.name
    np.testing.assert_array_equal(loaded(x), model(x))


def fit_step(model):
    """One SGD step on a fixed batch lowers its MSE and moves every weight."""
    x, y = random_inputs(model, batch=8), random_targets(model, batch=8)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=False)
    before_weights = [w.copy() for w in model.get_weights()]
    before = model.evaluate(x, y, batch_size=8, verbose=0)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = model.evaluate(x, y, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert after < before
    for old, new in zip(before_weights, model.get_weights(), strict=True):
        assert not np.array_equal(old, new)


def gradients_reach_first_layer(model):
    """Every weight, the first layer's kernel included, gets a nonzero gradient."""
    x, y = random_inputs(model), random_targets(model)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    grads = tape.gradient(loss, model.trainable_weights)
    first_kernel = first_weighted_layer(model).kernel
    assert model.trainable_weights[0] is first_kernel
    for weight, grad in zip(model.trainable_weights, grads, strict=True):
        assert grad is not None, weight.path
        assert float(tf.reduce_max(tf.abs(grad))) > 0.0, weight.path


# Activations as numpy functions, the reference the hidden layers are checked against.
ACTIVATIONS = {"relu": lambda a: np.maximum(a, 0.0), "tanh": np.tanh}


def hidden_layers_apply(model, activation):
    """Every weighted layer but a decoder's linear `params` applies `activation`.

    Each hidden layer's output is compared with numpy's `activation` of the
    same layer rebuilt with a linear activation and the same weights, on the
    input it sees; the affine maps take both signs, so a dropped or other
    activation fails.
    """
    x = random_inputs(model)
    hidden = [layer for layer in model.layers if layer.weights and layer.name != "params"]
    assert hidden
    for layer in hidden:
        inputs, outputs = keras.Model(model.input, [layer.input, layer.output])(x)
        linear = type(layer).from_config({**layer.get_config(), "activation": "linear"})
        linear.build(inputs.shape)
        linear.set_weights(layer.get_weights())
        affine = keras.ops.convert_to_numpy(linear(inputs))
        assert affine.min() < 0 < affine.max(), layer.name
        np.testing.assert_allclose(
            outputs, ACTIVATIONS[activation](affine), rtol=1e-5, atol=1e-6, err_msg=layer.name
        )


@pytest.fixture
def battery():
    """The shared property checks, as `battery.config_round_trip(model)` etc."""
    return types.SimpleNamespace(
        config_round_trip=config_round_trip,
        save_load=save_load,
        fit_step=fit_step,
        gradients_reach_first_layer=gradients_reach_first_layer,
        hidden_layers_apply=hidden_layers_apply,
        random_inputs=random_inputs,
    )
