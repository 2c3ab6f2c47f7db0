import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from keras_vae.layers import PixelCNNBernoulli
from keras_vae.layers.pixelcnn_bernoulli import causal_mask, sample_from_noise


def make_layer(height=3, width=3, channels=2, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    kwargs = {"filters": 8, "num_layers": 2, "first_kernel_size": 3, **kwargs}
    layer = PixelCNNBernoulli((height, width, 1), feature_channels=channels, **kwargs)
    features = tf.random.normal([2, height, width, channels], seed=seed)
    layer(features)  # build
    # Non-zero feature and output weights, so every path is exercised.
    for weight in layer.weights:
        weight.assign(tf.random.normal(weight.shape, stddev=0.7, seed=seed + 1))
    return layer, features


def all_images(height, width):
    grid = np.array(list(itertools.product([0.0, 1.0], repeat=height * width)), "float32")
    return grid.reshape(-1, height, width, 1)


def test_masks_are_van_den_oords_a_and_b():
    a = causal_mask(3, include_center=False)[..., 0, 0]
    b = causal_mask(3, include_center=True)[..., 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_each_logit_depends_only_on_earlier_pixels():
    layer, features = make_layer(4, 5, num_layers=3)
    x = tf.Variable(tf.cast(tf.random.uniform([2, 4, 5, 1], seed=3) < 0.5, tf.float32))
    with tf.GradientTape() as tape:
        logits = layer.logits(features, x)
    jacobian = tape.batch_jacobian(logits, x).numpy().reshape(2, 20, 20)
    later = np.triu(np.ones((20, 20), bool))  # j >= i: pixel j at or after pixel i
    assert np.all(jacobian[:, later] == 0.0)
    # The left neighbour and the pixel above do reach pixel i.
    for i in range(1, 20):
        if i % 5:
            assert np.all(jacobian[:, i, i - 1] != 0.0)
    for i in range(5, 20):
        assert np.all(jacobian[:, i, i - 5] != 0.0)


def test_probabilities_of_all_images_sum_to_one():
    # A mask that let a pixel see itself or a later one would not normalize.
    layer, features = make_layer(3, 3)
    images = all_images(3, 3)
    for b in range(2):
        tiled = tf.repeat(features[b : b + 1], len(images), axis=0)
        log_probs = layer(tiled).log_prob(images).numpy().astype("float64")
        np.testing.assert_allclose(np.exp(log_probs).sum(), 1.0, rtol=1e-5)


# Van den Oord et al.'s 3x3 masks, written out: A hides the centre, B keeps it.
MASK_A = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]], "float64")[..., None, None]
MASK_B = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0]], "float64")[..., None, None]


def numpy_masked_conv(x, kernel, mask):
    """A stride-1 'same' 3x3 cross-correlation of `x` [B, H, W, C] with `kernel * mask`."""
    kernel = kernel * mask
    height, width = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(
        padded[:, u : u + height, v : v + width] @ kernel[u, v]
        for u, v in itertools.product(range(3), range(3))
    )


def numpy_logits(layer, features, x):
    """The documented network in numpy: a mask-A convolution of x plus a projection of
    the features, residual mask-B layers on its ReLU, and a linear read-out of the
    last ReLU plus a second projection of the features."""
    weights = {w.path.split("/")[-1]: w.numpy().astype("float64") for w in layer.weights}
    features = np.asarray(features, "float64")
    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    h = numpy_masked_conv(x, weights["input_kernel"], MASK_A)
    h = h + features @ weights["input_features"] + weights["input_bias"]
    for i in range(layer.num_layers):
        h = h + numpy_masked_conv(relu(h), weights[f"kernel_{i}"], MASK_B) + weights[f"bias_{i}"]
    return (
        relu(h) @ weights["output_kernel"]
        + features @ weights["output_features"]
        + weights["output_bias"]
    )


def test_log_prob_is_the_chain_rule_of_conditionals():
    # The conditionals come from a numpy forward pass, not from the layer itself.
    layer, features = make_layer(2, 3)
    x = np.array([[[1, 0, 1], [0, 1, 1]], [[0, 0, 1], [1, 1, 0]]], "float32")[..., None]
    probs = 1.0 / (1.0 + np.exp(-numpy_logits(layer, features, x.astype("float64"))))
    np.testing.assert_allclose(layer(features).conditional_probs(x), probs, rtol=1e-5, atol=1e-6)
    expected = np.sum(np.where(x == 1, np.log(probs), np.log1p(-probs)), axis=(1, 2, 3))
    np.testing.assert_allclose(layer(features).log_prob(x), expected, rtol=1e-5)


def test_samples_follow_the_distribution():
    layer, features = make_layer(2, 2, filters=4)
    dist = layer(features[:1])
    draws = dist.sample(20000, seed=[4, 5]).numpy().reshape(20000, 4)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    codes = draws @ (2.0 ** np.arange(3, -1, -1))
    observed = np.bincount(codes.astype(int), minlength=16)
    images = all_images(2, 2)
    log_probs = layer(tf.repeat(features[:1], 16, axis=0)).log_prob(images)
    expected = 20000 * np.exp(log_probs.numpy().astype("float64"))
    _, p_value = stats.chisquare(observed, expected / expected.sum() * 20000)
    assert p_value > 1e-3


def test_fixed_point_draw_equals_pixel_by_pixel_ancestral_sampling():
    layer, features = make_layer(4, 5, num_layers=3)
    noise = tf.random.uniform([2, 4, 5, 1], seed=11)
    logits_fn = lambda x: layer.logits(features, x)  # noqa: E731
    x = np.zeros((2, 4, 5, 1), "float32")
    for row, col in itertools.product(range(4), range(5)):
        p = tf.sigmoid(logits_fn(x)).numpy()[:, row, col, 0]
        x[:, row, col, 0] = noise.numpy()[:, row, col, 0] < p
    np.testing.assert_array_equal(sample_from_noise(logits_fn, noise), x)
    compiled = tf.function(sample_from_noise, reduce_retracing=True)
    np.testing.assert_array_equal(compiled(logits_fn, noise), x)


def test_same_seed_same_draw_other_seed_other_draw():
    layer, features = make_layer(6, 6)
    dist = layer(features)
    first = dist.sample(4, seed=[7, 8]).numpy()
    np.testing.assert_array_equal(first, dist.sample(4, seed=[7, 8]).numpy())
    assert np.any(first != dist.sample(4, seed=[7, 9]).numpy())


def test_shapes_are_known_statically_as_for_other_likelihoods():
    layer, features = make_layer(4, 5)
    dist = layer(features)
    assert dist.event_shape == (4, 5, 1) and dist.batch_shape == (2,)
    assert dist.sample(3, seed=[1, 2]).shape == (3, 2, 4, 5, 1)

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 5, 2])])
    def static_shapes(features):
        dist = layer(features)
        assert dist.event_shape == (4, 5, 1) and dist.batch_shape.as_list() == [None]
        return dist.sample(seed=[1, 2])

    assert static_shapes.get_concrete_function().output_shapes.as_list() == [None, 4, 5, 1]


def test_config_round_trip_keeps_the_distribution():
    layer, features = make_layer(3, 4, num_layers=1, first_kernel_size=5)
    clone = PixelCNNBernoulli.from_config(layer.get_config())
    clone(features)
    clone.set_weights(layer.get_weights())
    x = np.ones((2, 3, 4, 1), "float32")
    np.testing.assert_allclose(clone(features).log_prob(x), layer(features).log_prob(x))
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"event_shape": (28, 28, 3)}, "event_shape=(28, 28, 3)"),
        ({"event_shape": (28, 28)}, "event_shape=(28, 28)"),
        ({"first_kernel_size": 4}, "first_kernel_size=4"),
        ({"filters": 0}, "filters=0"),
        ({"num_layers": -1}, "num_layers=-1"),
        ({"feature_channels": 2.5}, "feature_channels=2.5"),
    ],
)
def test_bad_arguments_name_what_came(kwargs, message):
    kwargs = {"event_shape": (28, 28, 1), **kwargs}
    with pytest.raises(ValueError, match="Expected") as error:
        PixelCNNBernoulli(**kwargs)
    assert message in str(error.value)


def test_features_of_the_wrong_shape_are_refused():
    layer = PixelCNNBernoulli((4, 4, 1), feature_channels=3)
    with pytest.raises(ValueError, match=r"Expected .* \[batch, 4, 4, 3\].*Received: params.shape"):
        layer(tf.zeros([2, 4, 4, 2]))


def test_sample_n_pairs_each_draw_with_its_own_features():
    # Feature channel 0 drives every logit to -1000 for the first example and
    # to +1000 for the second: all their draws must be 0s and 1s respectively.
    layer, features = make_layer(3, 3)
    layer.output_features.assign([[1000.0], [0.0]])
    sign = tf.constant([-1.0, 1.0])[:, None, None, None]
    features = tf.concat([sign * tf.ones([2, 3, 3, 1]), features[..., 1:]], axis=-1)
    draws = layer(features).sample(4, seed=[1, 2]).numpy()
    assert draws.shape == (4, 2, 3, 3, 1)
    np.testing.assert_array_equal(draws[:, 0], 0.0)
    np.testing.assert_array_equal(draws[:, 1], 1.0)


def test_log_prob_of_n_draws_pairs_each_with_its_own_features():
    layer, features = make_layer(3, 3)
    dist = layer(features)
    draws = dist.sample(3, seed=[3, 4])
    expected = np.stack([dist.log_prob(draw).numpy() for draw in draws])
    np.testing.assert_allclose(dist.log_prob(draws), expected, rtol=1e-6)
