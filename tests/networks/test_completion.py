import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_vae.data import merge_image, pixel_indices, split_image
from keras_vae.networks import GatherPixels, ScatterPixels, conv_completion_networks


@pytest.mark.parametrize("condition", ["top-half", "center-column"])
@pytest.mark.parametrize("image_shape", [(28, 28, 1), (6, 5, 3)])
def test_gather_and_scatter_agree_with_split_and_merge(condition, image_shape):
    images = np.random.default_rng(0).random((4,) + image_shape).astype("float32")
    observed_idx, missing_idx = pixel_indices(condition, image_shape)
    observed, missing = split_image(images, condition)
    np.testing.assert_array_equal(GatherPixels(missing_idx, image_shape)(images), missing)
    np.testing.assert_array_equal(GatherPixels(observed_idx, image_shape)(images), observed)
    # Scattering both parts and adding them rebuilds the image (zeros elsewhere).
    rebuilt = ScatterPixels(missing_idx, image_shape)(missing) + ScatterPixels(
        observed_idx, image_shape
    )(observed)
    np.testing.assert_array_equal(rebuilt, merge_image(observed, missing, condition, image_shape))
    only_missing = ScatterPixels(missing_idx, image_shape)(missing).numpy()
    np.testing.assert_array_equal(GatherPixels(observed_idx, image_shape)(only_missing), 0.0)


def test_scatter_gradient_is_the_gather_of_the_upstream_gradient():
    indices, shape = [5, 0, 7], (3, 3, 1)
    values = tf.constant([[1.0, 2.0, 3.0]])
    weights = tf.random.normal((1,) + shape, seed=1)
    with tf.GradientTape() as tape:
        tape.watch(values)
        loss = tf.reduce_sum(weights * ScatterPixels(indices, shape)(values))
    np.testing.assert_allclose(
        tape.gradient(loss, values), GatherPixels(indices, shape)(weights), rtol=1e-6
    )


def test_layers_config_round_trip():
    for layer in (GatherPixels([3, 1], (2, 2, 1)), ScatterPixels([3, 1], (2, 2, 1))):
        clone = type(layer).from_config(layer.get_config())
        x = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
        x = x if isinstance(layer, GatherPixels) else x.reshape(1, 4)[:, :2]
        np.testing.assert_array_equal(clone(x), layer(x))


@pytest.mark.parametrize(
    "indices, message",
    [
        ([], "Received: indices=[]"),
        ([0, 0], "Received: indices=[0, 0]"),
        ([4], "Received: indices=[4]"),
        ([-1], "Received: indices=[-1]"),
        ([0.5], "Received: indices=[0.5]"),
    ],
)
def test_bad_indices_name_what_came(indices, message):
    for layer in (GatherPixels, ScatterPixels):
        with pytest.raises(ValueError, match="Expected indices to be distinct") as info:
            layer(indices, (2, 2, 1))
        assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_image_shape_is_refused():
    with pytest.raises(ValueError, match=r"Received: image_shape=\(28, 28\)"):
        conv_completion_networks((28, 28), [0], 4)


@pytest.mark.parametrize("condition", ["top-half", "center-column"])
def test_networks_see_and_produce_the_missing_pixels_only(condition, tmp_path):
    keras.utils.set_random_seed(0)
    _, missing_idx = pixel_indices(condition, (28, 28, 1))
    encoder, decoder = conv_completion_networks((28, 28, 1), missing_idx, 10)
    assert encoder.input.shape == (None, len(missing_idx))
    assert decoder.output.shape == (None, len(missing_idx))
    # The decoder's output is its inner conv decoder's image, at the missing pixels.
    z = np.random.default_rng(0).normal(size=(3, 10)).astype("float32")
    inner = decoder.get_layer("conv_decoder")(z)
    np.testing.assert_allclose(decoder(z), split_image(inner.numpy(), condition)[1], rtol=1e-6)
    # The encoder reads the target through the image grid: every target pixel matters.
    target = tf.constant(np.random.default_rng(1).random((2, len(missing_idx))), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(target)
        features = encoder(target)
    jacobian = tape.batch_jacobian(features, target)
    assert np.all(np.abs(jacobian.numpy()).sum(axis=1) > 0)
    # Both round-trip through .keras without custom objects.
    for model in (encoder, decoder):
        model.save(tmp_path / f"{model.name}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{model.name}.keras")
        x = z if model is decoder else target
        np.testing.assert_array_equal(loaded(x), model(x))
