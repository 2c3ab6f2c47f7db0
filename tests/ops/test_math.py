import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from scipy.special import logsumexp, softmax  # noqa: E402

from keras_vae.ops.math import (  # noqa: E402
    gaussian_kl,
    kl_divergence,
    log_mean_exp,
    reparameterize,
)

tfd = tfp.distributions


def normal_params(seed, shape, dtype="float32"):
    rng = np.random.default_rng(seed)
    loc = rng.normal(size=shape).astype(dtype)
    scale = rng.uniform(0.2, 2.5, size=shape).astype(dtype)
    return loc, scale


# gaussian_kl


@pytest.mark.parametrize("shape", [(4,), (5, 4), (3, 2, 6)], ids=str)
@pytest.mark.parametrize("prior", ["standard", "scalar", "per_element"])
def test_gaussian_kl_matches_tfp(shape, prior):
    loc_q, scale_q = normal_params(0, shape)
    if prior == "standard":
        p_args, loc_p, scale_p = (), 0.0, 1.0
    elif prior == "scalar":
        loc_p, scale_p = np.float32(0.7), np.float32(1.8)
        p_args = (loc_p, scale_p)
    else:
        loc_p, scale_p = normal_params(1, shape)
        p_args = (loc_p, scale_p)
    expected = tfd.kl_divergence(tfd.Normal(loc_q, scale_q), tfd.Normal(loc_p, scale_p))
    np.testing.assert_allclose(
        gaussian_kl(loc_q, scale_q, *p_args), np.sum(expected, axis=-1), rtol=1e-5
    )
    np.testing.assert_allclose(gaussian_kl(loc_q, scale_q, *p_args, axis=None), expected, 1e-5)
    assert gaussian_kl(loc_q, scale_q, *p_args).shape == shape[:-1]


def test_gaussian_kl_sums_over_a_tuple_of_axes():
    loc_q, scale_q = normal_params(0, (3, 2, 6))
    loc_p, scale_p = normal_params(1, (3, 2, 6))
    expected = tfd.kl_divergence(tfd.Normal(loc_q, scale_q), tfd.Normal(loc_p, scale_p))
    kl = gaussian_kl(loc_q, scale_q, loc_p, scale_p, axis=(1, 2))
    np.testing.assert_allclose(kl, np.sum(expected, axis=(1, 2)), rtol=1e-5)


def test_gaussian_kl_is_zero_for_identical_gaussians():
    loc, scale = normal_params(0, (5, 4))
    np.testing.assert_allclose(gaussian_kl(loc, scale, loc, scale), np.zeros(5), atol=1e-6)
    np.testing.assert_allclose(gaussian_kl(np.zeros(3), np.ones(3)), 0.0, atol=1e-12)


def test_gaussian_kl_gradients():
    loc_q, scale_q = normal_params(0, (3, 4), "float64")
    loc_p, scale_p = normal_params(1, (3, 4), "float64")

    def kl(loc, scale):
        return gaussian_kl(loc, scale, loc_p, scale_p)

    theoretical, numerical = tf.test.compute_gradient(kl, [loc_q, scale_q])
    for analytic, numeric in zip(theoretical, numerical, strict=True):
        # Central differences with compute_gradient's 1e-3 step are good to ~1e-5 here.
        np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-8)
    # Closed form: dKL/dmu_q = (mu_q - mu_p) / s_p^2, dKL/ds_q = s_q / s_p^2 - 1 / s_q.
    loc_q, scale_q = tf.constant(loc_q), tf.constant(scale_q)
    with tf.GradientTape() as tape:
        tape.watch([loc_q, scale_q])
        total = tf.reduce_sum(kl(loc_q, scale_q))
    d_loc, d_scale = tape.gradient(total, [loc_q, scale_q])
    np.testing.assert_allclose(d_loc, (loc_q - loc_p) / scale_p**2, rtol=1e-10)
    np.testing.assert_allclose(d_scale, scale_q / scale_p**2 - 1 / scale_q, rtol=1e-10)


# log_mean_exp


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_log_mean_exp_matches_numpy(axis):
    x = np.random.default_rng(0).normal(scale=3.0, size=(4, 5, 3))
    expected = np.log(np.mean(np.exp(x), axis=axis))
    np.testing.assert_allclose(log_mean_exp(tf.constant(x), axis), expected, rtol=1e-12)
    np.testing.assert_allclose(log_mean_exp(tf.constant(x, tf.float32), axis), expected, 1e-5)


def test_log_mean_exp_defaults_to_axis_0():
    x = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_allclose(log_mean_exp(x), np.log(np.mean(np.exp(x), 0)), rtol=1e-12)


@pytest.mark.parametrize(
    "x, expected",
    [
        ([1000.0, 1000.0], 1000.0),
        ([-1000.0, -1000.0, -1000.0], -1000.0),
        ([1000.0, 1000.0 - np.log(3.0)], 1000.0 + np.log(2.0 / 3.0)),
        ([-1000.0, -1001.0], -1000.0 + np.log((1.0 + np.exp(-1.0)) / 2.0)),
        ([1000.0, -1000.0], 1000.0 - np.log(2.0)),
    ],
)
def test_log_mean_exp_is_stable(x, expected):
    result = log_mean_exp(tf.constant(x, tf.float32))
    assert np.isfinite(result)
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_log_mean_exp_is_stable_along_an_axis():
    x = np.array([[1000.0, 999.0, 998.0], [-1000.0, -1002.0, -1001.0]])
    expected = logsumexp(x, axis=1) - np.log(3.0)
    np.testing.assert_allclose(log_mean_exp(tf.constant(x, tf.float32), 1), expected, rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("scale", [1.0, 500.0])
def test_log_mean_exp_gradient_is_softmax(axis, scale):
    # d/dx_i log((1/n) sum_j exp x_j) = exp(x_i) / sum_j exp(x_j): the 1/n cancels.
    x = tf.constant(np.random.default_rng(0).normal(scale=scale, size=(4, 5)))
    upstream = tf.constant(np.random.default_rng(1).normal(size=5 if axis == 0 else 4))
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(upstream * log_mean_exp(x, axis))
    grad = tape.gradient(total, x).numpy()
    expected = softmax(x.numpy(), axis=axis) * np.expand_dims(upstream.numpy(), axis)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-300)


# reparameterize


def test_reparameterize_value_and_gradients():
    loc, scale = normal_params(0, (3, 4), "float64")
    eps = np.random.default_rng(2).normal(size=(3, 4))
    np.testing.assert_allclose(reparameterize(loc, scale, eps), loc + scale * eps, rtol=1e-12)

    theoretical, numerical = tf.test.compute_gradient(
        lambda m, s: reparameterize(m, s, eps), [loc, scale]
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-8)
    np.testing.assert_allclose(theoretical[1], numerical[1], atol=1e-8)
    loc, scale = tf.constant(loc), tf.constant(scale)
    with tf.GradientTape() as tape:
        tape.watch([loc, scale])
        z = tf.reduce_sum(reparameterize(loc, scale, eps))
    d_loc, d_scale = tape.gradient(z, [loc, scale])
    np.testing.assert_array_equal(d_loc, np.ones((3, 4)))
    np.testing.assert_allclose(d_scale, eps, rtol=1e-12)


def test_reparameterize_broadcasts_samples_over_the_batch():
    loc, scale = normal_params(0, (3, 4), "float64")
    eps = np.random.default_rng(2).normal(size=(5, 3, 4))
    loc, scale = tf.constant(loc), tf.constant(scale)
    with tf.GradientTape() as tape:
        tape.watch([loc, scale])
        z = reparameterize(loc, scale, eps)
        total = tf.reduce_sum(z)
    assert z.shape == (5, 3, 4)
    d_loc, d_scale = tape.gradient(total, [loc, scale])
    np.testing.assert_allclose(d_loc, np.full((3, 4), 5.0))
    np.testing.assert_allclose(d_scale, eps.sum(0), rtol=1e-12)


# kl_divergence


def diagonal_normal(loc, scale):
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


@pytest.mark.parametrize("prior", ["standard", "non_standard"])
def test_kl_divergence_is_analytic_for_normals(prior):
    loc_q, scale_q = normal_params(0, (5, 3))
    loc_p, scale_p = (np.zeros(3), np.ones(3)) if prior == "standard" else normal_params(1, (3,))
    q = diagonal_normal(loc_q, scale_q)
    p = diagonal_normal(loc_p.astype("float32"), scale_p.astype("float32"))
    z = q.sample(seed=0)
    kl, analytic = kl_divergence(q, p, z)
    assert analytic is True
    expected = 0.5 * np.sum(
        (scale_q / scale_p) ** 2
        + ((loc_q - loc_p) / scale_p) ** 2
        - 1
        - 2 * np.log(scale_q / scale_p),
        axis=-1,
    )
    np.testing.assert_allclose(kl, expected, rtol=1e-5)
    # The closed form does not need samples.
    kl_no_z, analytic = kl_divergence(q, p)
    assert analytic is True
    np.testing.assert_allclose(kl_no_z, kl, rtol=1e-6)


# A two-component diagonal-Gaussian mixture: TFP has no closed-form KL to it.
MIX_WEIGHTS = np.array([0.3, 0.7])
MIX_LOCS = np.array([[-1.0, 0.5, 0.0], [1.5, -0.5, 2.0]])
MIX_SCALES = np.array([[0.5, 1.0, 2.0], [1.0, 0.3, 0.8]])


def mixture_prior():
    return tfd.MixtureSameFamily(
        tfd.Categorical(probs=MIX_WEIGHTS.astype("float32")),
        diagonal_normal(MIX_LOCS.astype("float32"), MIX_SCALES.astype("float32")),
    )


def numpy_log_normal(z, loc, scale):
    return np.sum(-0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), -1)


def numpy_mixture_log_prob(z):
    z = np.asarray(z, np.float64)[..., np.newaxis, :]  # [..., 1, d] against [2, d]
    return logsumexp(np.log(MIX_WEIGHTS) + numpy_log_normal(z, MIX_LOCS, MIX_SCALES), axis=-1)


@pytest.mark.parametrize("sample_shape", [(), (7,)], ids=str)
def test_kl_divergence_falls_back_to_monte_carlo(sample_shape):
    loc_q, scale_q = normal_params(0, (5, 3))
    q = diagonal_normal(loc_q, scale_q)
    z = q.sample(sample_shape, seed=0)
    kl, analytic = kl_divergence(q, mixture_prior(), z)
    assert analytic is False
    assert kl.shape == sample_shape + (5,)
    expected = numpy_log_normal(z.numpy(), loc_q, scale_q) - numpy_mixture_log_prob(z.numpy())
    np.testing.assert_allclose(kl, expected, rtol=1e-5, atol=1e-5)


def test_kl_divergence_without_samples_and_closed_form_raises():
    q = diagonal_normal(*normal_params(0, (5, 3)))
    with pytest.raises(ValueError, match=r"Expected samples .*Received: .*z=None"):
        kl_divergence(q, mixture_prior())
