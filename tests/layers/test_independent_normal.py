import math

import numpy as np
import pytest
import tensorflow_probability as tfp
from layer_battery import DistributionLayerBattery, softplus

from keras_vae.layers import IndependentNormal

tfd = tfp.distributions


class TestIndependentNormal(DistributionLayerBattery):
    layer_cls = IndependentNormal
    params_per_element = 2
    variants = {"default": {}, "floor_0.1": {"scale_floor": 0.1}}

    def reference(self, parts, event_ndims, scale_floor=1e-5):
        loc, raw_scale = parts
        scale = (softplus(raw_scale) + scale_floor).astype("float32")
        return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=event_ndims)

    def random_data(self, rng, shape):
        return rng.normal(size=shape).astype("float32")


def test_default_scale_floor():
    assert IndependentNormal(3).scale_floor == 1e-5


@pytest.mark.parametrize("scale_floor", [None, 1e-3, 0.5])
def test_very_negative_raw_scale_gives_the_floor(scale_floor):
    kwargs = {} if scale_floor is None else {"scale_floor": scale_floor}
    floor = 1e-5 if scale_floor is None else scale_floor
    loc = np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]], "float32")
    params = np.concatenate([loc, np.full_like(loc, -1e4)], axis=-1)
    dist = IndependentNormal(3, **kwargs)(params)
    np.testing.assert_allclose(dist.stddev(), np.full_like(loc, floor), rtol=1e-6)
    # At the mean the density is the Gaussian peak, 1 / (sqrt(2 pi) floor) per element.
    peak = -3 * (math.log(floor) + 0.5 * math.log(2 * math.pi))
    np.testing.assert_allclose(dist.log_prob(loc), [peak, peak], rtol=1e-5)
    x = loc + np.float32(floor)
    off_mean = dist.log_prob(x)
    assert np.all(np.isfinite(off_mean))
    distance = (x.astype("float64") - loc) / floor
    # float32 rounding of x - loc at this scale leaves ~1e-3 nats of error.
    np.testing.assert_allclose(off_mean, peak - 0.5 * np.sum(distance**2, -1), atol=1e-2)


@pytest.mark.parametrize(
    "scale_floor",
    [
        -1e-3,
        -1.0,
        float("nan"),
        "a",
        None,
    ],
)
def test_rejects_bad_scale_floor(scale_floor):
    with pytest.raises(ValueError, match=r"Expected scale_floor.*Received: scale_floor="):
        IndependentNormal(3, scale_floor=scale_floor)
