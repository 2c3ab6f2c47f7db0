import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from layer_battery import DistributionLayerBattery

from keras_vae.layers import GaussianLikelihood

tfd = tfp.distributions


class TestGaussianLikelihood(DistributionLayerBattery):
    layer_cls = GaussianLikelihood
    params_per_element = 1
    variants = {
        "default": {},
        "scale_0.3": {"scale": 0.3},
        "trainable": {"scale": 0.3, "trainable_scale": True},
    }

    def reference(self, parts, event_ndims, scale=1.0, trainable_scale=False):
        (loc,) = parts
        scale = np.full_like(loc, scale)
        return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=event_ndims)

    def random_data(self, rng, shape):
        return rng.normal(size=shape).astype("float32")


def test_defaults():
    layer = GaussianLikelihood(3)
    assert layer.scale == 1.0
    assert layer.trainable_scale is False


@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
def test_fixed_scale_is_constant(scale):
    rng = np.random.default_rng(0)
    layer = GaussianLikelihood((2, 3), scale=scale)
    for _ in range(2):
        dist = layer(rng.normal(scale=10.0, size=(4, 6)).astype("float32"))
        np.testing.assert_allclose(dist.stddev(), np.full((4, 2, 3), scale), rtol=1e-6)
    assert layer.weights == []


@pytest.mark.parametrize(
    "scale",
    [
        0.01,
        0.3,
        1.0,
        5.0,
        50.0,
        1000.0,
    ],
)
def test_trainable_scale_starts_at_scale(scale):
    layer = GaussianLikelihood((2, 3), scale=scale, trainable_scale=True)
    dist = layer(np.zeros((4, 6), "float32"))
    assert len(layer.trainable_weights) == 1
    assert len(layer.weights) == 1
    np.testing.assert_allclose(dist.stddev(), np.full((4, 2, 3), scale), rtol=1e-5)


@pytest.mark.parametrize("event_shape", [3, (2, 3)], ids=str)
@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_trainable_scale_gradient(scale, event_shape):
    rng = np.random.default_rng(0)
    layer = GaussianLikelihood(event_shape, scale=scale, trainable_scale=True, dtype="float64")
    shape = (4,) + ((event_shape,) if isinstance(event_shape, int) else event_shape)
    loc = rng.normal(size=shape)
    x = loc + rng.normal(scale=2.0, size=shape)
    params = loc.reshape(4, -1)
    layer.build(params.shape)
    (raw,) = layer.trainable_weights
    with tf.GradientTape() as tape:
        log_prob = tf.reduce_sum(layer(params).log_prob(x))
    grad = float(tape.gradient(log_prob, raw))

    # d/d sigma of sum log N(x; mu, sigma) = sum(-1/sigma + (x - mu)^2 / sigma^3),
    # chained through sigma = softplus(raw) + 1e-5, whose derivative is sigmoid(raw).
    sigma = math.log1p(math.exp(float(raw))) + 1e-5
    d_sigma = np.sum(-1.0 / sigma + (x - loc) ** 2 / sigma**3)
    expected = d_sigma / (1.0 + math.exp(-float(raw)))
    assert abs(grad) > 1e-3
    np.testing.assert_allclose(grad, expected, rtol=1e-8)

    # Central finite difference through the layer itself.
    h, start = 1e-5, float(raw)
    raw.assign(start + h)
    upper = float(tf.reduce_sum(layer(params).log_prob(x)))
    raw.assign(start - h)
    lower = float(tf.reduce_sum(layer(params).log_prob(x)))
    np.testing.assert_allclose(grad, (upper - lower) / (2 * h), rtol=1e-6)


@pytest.mark.parametrize("trainable_scale", [False, True])
@pytest.mark.parametrize(
    "scale",
    [
        0.0,
        -1.0,
        float("nan"),
        float("-inf"),
        "a",
        None,
    ],
)
def test_rejects_bad_scale(scale, trainable_scale):
    with pytest.raises(ValueError, match=r"Expected scale.*Received: scale="):
        GaussianLikelihood(3, scale=scale, trainable_scale=trainable_scale)


def test_trainable_scale_must_exceed_the_floor():
    with pytest.raises(ValueError, match=r"Expected scale > 1e-05.*Received: scale=1e-06"):
        GaussianLikelihood(3, scale=1e-6, trainable_scale=True)
