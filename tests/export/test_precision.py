import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from export_helpers import LATENT_DIM, binary_images, one_hot

from keras_vae.export import export_model
from keras_vae.export.precision import computes_in_float32, float32_model
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
