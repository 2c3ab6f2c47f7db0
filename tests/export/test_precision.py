import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from export_helpers import LATENT_DIM, binary_images, one_hot

from keras_vae import VAE
from keras_vae.export import export_model
from keras_vae.export.precision import computes_in_float32, float32_model
from keras_vae.layers import IndependentBernoulli
from keras_vae.models.presets import build_cvae, build_vae


@pytest.fixture
def mixed_vae(mixed_bfloat16):
    keras.utils.set_random_seed(0)
    model = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM, seed=3)
    model.compile(optimizer="adam")
    model.fit(binary_images(32), batch_size=16, epochs=1, verbose=0)
    return model


@pytest.mark.slow
def test_float32_copy_has_the_same_weights_and_close_outputs(mixed_vae):
    assert not computes_in_float32(mixed_vae)
    copy = float32_model(mixed_vae)
    assert computes_in_float32(copy) and type(copy) is type(mixed_vae)
    for a, b in zip(mixed_vae.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    z = mixed_vae.sample_latent(8, seed=1)
    np.testing.assert_array_equal(z, copy.sample_latent(8, seed=1))
    # bfloat16 keeps 8 bits of mantissa: probabilities agree to about 1e-2.
    np.testing.assert_allclose(mixed_vae.decode(z).mean(), copy.decode(z).mean(), atol=3e-2)
    assert float32_model(copy) is copy


@pytest.mark.slow
def test_mixed_precision_cvae_copy(mixed_bfloat16):
    model = build_cvae("mlp", "label", latent_dim=LATENT_DIM, prior="learned", seed=0)
    model.compile(optimizer="adam")
    model.fit(one_hot(np.arange(16) % 10), binary_images(16), batch_size=16, verbose=0)
    copy = float32_model(model)
    assert computes_in_float32(copy)
    conditions = tf.constant(one_hot(np.arange(3)))
    np.testing.assert_allclose(
        model.prior(conditions).mean(), copy.prior(conditions).mean(), atol=5e-2
    )


@pytest.mark.slow
def test_mixed_precision_model_exports_to_builtin_tflite_and_saved_model(mixed_vae, tmp_path):
    path = tmp_path / "m.tflite"
    report = export_model(mixed_vae, saved_model_base=str(tmp_path / "sm"), tflite_path=str(path))
    assert report["ok"], report
    runner = Interpreter(model_path=str(path)).get_signature_runner("decode")
    z = np.random.default_rng(0).normal(size=(2, LATENT_DIM)).astype("float32")
    image = next(iter(runner(z=z).values()))
    expected = float32_model(mixed_vae).decode(z).mean().numpy()
    np.testing.assert_allclose(image, expected, atol=1e-5)


def test_the_float32_copy_of_a_network_built_by_its_first_call_reads_float32(mixed_bfloat16):
    # Keras gives such a network an InputLayer of dtype "bfloat16": the copy kept it,
    # rounding z to 8 bits of mantissa, and its exports matched that rounded copy.
    keras.utils.set_random_seed(0)
    decoder = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    encoder = keras.Sequential([keras.layers.Dense(2 * LATENT_DIM)])
    model = VAE(encoder, decoder, LATENT_DIM, likelihood=IndependentBernoulli(3))
    model.build((None, 3))
    keras.mixed_precision.set_global_policy("float32")
    copy = float32_model(model)
    z = np.random.default_rng(0).normal(size=(5, LATENT_DIM)) * 1.2345678
    kernel, bias, out_kernel, out_bias = (w.numpy().astype("float64") for w in decoder.weights)
    logits = np.maximum(z @ kernel + bias, 0.0) @ out_kernel + out_bias
    np.testing.assert_allclose(
        copy.decode(z.astype("float32")).mean(), 1 / (1 + np.exp(-logits)), rtol=0, atol=1e-6
    )


class Unregistered(keras.layers.Layer):
    def call(self, inputs):
        return inputs


def test_a_network_that_cannot_rebuild_is_named_in_one_line(mixed_bfloat16):
    # The float32 copy is made from the config: Keras's error came in 5 to 21 lines.
    encoder = keras.Sequential([keras.Input((3,)), Unregistered(), keras.layers.Dense(4)])
    decoder = keras.Sequential([keras.Input((LATENT_DIM,)), keras.layers.Dense(3)])
    model = VAE(encoder, decoder, LATENT_DIM, likelihood=IndependentBernoulli(3))
    model.build((None, 3))
    with pytest.raises(ValueError) as error:
        float32_model(model)
    assert len(str(error.value).splitlines()) == 1
    assert str(error.value).startswith("Expected networks that rebuild from their configs")
    assert "Received: Could not locate class 'Unregistered'" in str(error.value)


def test_a_network_with_a_lambda_has_a_float32_copy(mixed_bfloat16):
    # The copy's rebuild ran in Keras's safe mode, which refuses Lambda layers: the
    # model is the caller's own, in memory, so its config is rebuilt without it.
    decoder = keras.Sequential([keras.Input((LATENT_DIM,)), keras.layers.Lambda(lambda z: 2 * z),
                                keras.layers.Dense(3)])  # fmt: skip
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2 * LATENT_DIM)])
    model = VAE(encoder, decoder, LATENT_DIM, likelihood=IndependentBernoulli(3))
    model.build((None, 3))
    keras.mixed_precision.set_global_policy("float32")
    copy = float32_model(model)
    assert computes_in_float32(copy)
    z = np.ones((2, LATENT_DIM), "float32")
    np.testing.assert_allclose(copy.decode(z).mean(), model.decode(z).mean(), atol=1e-2)
