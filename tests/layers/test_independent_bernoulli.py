import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from layer_battery import DistributionLayerBattery

from keras_vae.layers import IndependentBernoulli

tfd = tfp.distributions


class TestIndependentBernoulli(DistributionLayerBattery):
    layer_cls = IndependentBernoulli
    params_per_element = 1

    def reference(self, parts, event_ndims):
        (logits,) = parts
        return tfd.Independent(tfd.Bernoulli(logits=logits), reinterpreted_batch_ndims=event_ndims)

    def random_data(self, rng, shape):
        return rng.integers(0, 2, size=shape).astype("float32")


def test_log_prob_is_the_binary_cross_entropy():
    logits = np.array([[2.0, -1.0, 0.0, 30.0], [-3.0, 0.5, 1.0, -30.0]], "float32")
    x = np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], "float32")
    p = 1.0 / (1.0 + np.exp(-logits.astype("float64")))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=-1)
    dist = IndependentBernoulli((2, 2))(logits.reshape(2, 2, 2))
    np.testing.assert_allclose(dist.log_prob(x.reshape(2, 2, 2)), expected, rtol=1e-5)


def test_samples_are_binary_float32():
    dist = IndependentBernoulli((2, 3))(np.zeros((4, 6), "float32"))
    sample = dist.sample(50, seed=0)
    assert sample.dtype == tf.float32
    assert set(np.unique(sample)) == {0.0, 1.0}


def test_a_batch_of_one_keeps_its_batch_axis_when_the_event_starts_with_one():
    # Flat params [1, 4] also have the stacked shape (1, 4) of the event.
    dist = IndependentBernoulli((1, 4))(np.zeros((1, 4), "float32"))
    assert dist.batch_shape == (1,) and dist.event_shape == (1, 4)
    assert dist.log_prob(np.zeros((1, 1, 4), "float32")).shape == (1,)
    assert IndependentBernoulli((1, 4))(np.zeros((1, 1, 4), "float32")).batch_shape == (1,)
