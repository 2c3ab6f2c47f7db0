import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from scipy.special import logsumexp  # noqa: E402

from keras_vae.ops.elbo import elbo, importance_terms, iwae, multi_sample_terms  # noqa: E402
from keras_vae.priors.mixture import mixture  # noqa: E402

tfd = tfp.distributions

# A tiny fixed model: 2 latents, 3 binary pixels, logits = z @ W + b; two examples.
LOC = np.array([[0.3, -0.8], [1.2, 0.5]])
SCALE = np.array([[0.6, 1.1], [0.4, 0.9]])
EPS = np.array([[0.5, -1.2], [-0.3, 0.7]])
W = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]])
B = np.array([0.2, 0.1, -0.3])
X = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])

# A mixture prior, which has no closed-form KL to a Gaussian in TFP.
MIX_WEIGHTS = np.array([0.4, 0.6])
MIX_LOCS = np.array([[-1.0, 0.5], [1.5, -0.5]])
MIX_SCALES = np.array([[0.5, 1.0], [1.0, 0.3]])


def diagonal_normal(loc, scale):
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


def posterior(loc=LOC, scale=SCALE):
    return diagonal_normal(loc, scale)


def standard_prior():
    return diagonal_normal(np.zeros(2), np.ones(2))


def mixture_prior():
    return tfd.MixtureSameFamily(
        tfd.Categorical(probs=MIX_WEIGHTS), diagonal_normal(MIX_LOCS, MIX_SCALES)
    )


PRIORS = {"standard": standard_prior, "mixture": mixture_prior}


def make_decode(target_shape=(3,)):
    """P(x|z): Bernoulli pixels with logits z @ W + b, shaped like one target."""

    def decode(z):
        logits = tf.reshape(tf.matmul(z, W) + B, tf.concat([tf.shape(z)[:-1], target_shape], 0))
        return tfd.Independent(tfd.Bernoulli(logits=logits), len(target_shape))

    return decode


# Hand computation in numpy.


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_log_likelihood(z, x=X):
    logits = z @ W + B
    return np.sum(x * log_sigmoid(logits) + (1 - x) * log_sigmoid(-logits), axis=-1)


def np_log_normal(z, loc, scale):
    return np.sum(-0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), -1)


def np_log_prior(z, prior):
    if prior == "standard":
        return np_log_normal(z, 0.0, 1.0)
    z = z[..., np.newaxis, :]
    return logsumexp(np.log(MIX_WEIGHTS) + np_log_normal(z, MIX_LOCS, MIX_SCALES), axis=-1)


def np_kl(prior, z):
    if prior == "standard":  # closed form against N(0, I)
        return 0.5 * np.sum(SCALE**2 + LOC**2 - 1.0 - np.log(SCALE**2), axis=-1)
    return np_log_normal(z, LOC, SCALE) - np_log_prior(z, prior)


# elbo


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("beta", [None, 0.5, 2.0])
def test_elbo_equals_hand_computation(beta, prior):
    z = LOC + SCALE * EPS
    kwargs = {} if beta is None else {"beta": beta}
    terms = elbo(posterior(), make_decode(), PRIORS[prior](), X, z, **kwargs)
    assert set(terms) == {"loss", "elbo", "reconstruction", "kl"}

    reconstruction = np_log_likelihood(z)
    kl = np_kl(prior, z)
    beta = 1.0 if beta is None else beta
    for key, expected in {
        "reconstruction": reconstruction,
        "kl": kl,
        "elbo": reconstruction - kl,
        "loss": beta * kl - reconstruction,
    }.items():
        assert terms[key].shape == (2,), key
        np.testing.assert_allclose(terms[key], expected, rtol=1e-10, err_msg=key)


@pytest.mark.parametrize("prior", PRIORS)
def test_elbo_gradients_reach_the_encoder_through_the_sample(prior):
    def total_elbo(loc, scale):
        z = loc + scale * EPS
        return elbo(posterior(loc, scale), make_decode(), PRIORS[prior](), X, z)["elbo"]

    loc, scale = tf.constant(LOC), tf.constant(SCALE)
    with tf.GradientTape() as tape:
        tape.watch([loc, scale])
        total = tf.reduce_sum(total_elbo(loc, scale))
    d_loc, d_scale = (g.numpy() for g in tape.gradient(total, [loc, scale]))
    assert np.all(np.abs(d_loc) > 1e-3)

    # Central differences with a fixed eps; their step (1e-3) leaves ~1e-6 of error.
    theoretical, numerical = tf.test.compute_gradient(total_elbo, [LOC, SCALE])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(theoretical[1], numerical[1], rtol=1e-4, atol=1e-5)
    if prior == "standard":
        # d log p(x|z)/dz = (x - sigmoid(logits)) W^T; the analytic KL adds -loc and
        # -(scale - 1/scale); z = loc + scale * eps chains the first by 1 and eps.
        z = LOC + SCALE * EPS
        d_z = (X - 1.0 / (1.0 + np.exp(-(z @ W + B)))) @ W.T
        np.testing.assert_allclose(d_loc, d_z - LOC, rtol=1e-10)
        np.testing.assert_allclose(d_scale, d_z * EPS - (SCALE - 1.0 / SCALE), rtol=1e-10)


# importance_terms and iwae


def draw(num_samples, seed=0):
    eps = np.random.default_rng(seed).normal(size=(num_samples,) + LOC.shape)
    return LOC + SCALE * eps


@pytest.mark.parametrize("target_shape", [(3,), (1, 3)], ids=str)
@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("num_samples", [1, 4])
def test_importance_terms_equal_hand_computation(num_samples, prior, target_shape):
    z = draw(num_samples)
    target = X.reshape((2,) + target_shape)
    log_likelihood, log_weights = importance_terms(
        posterior(), make_decode(target_shape), PRIORS[prior](), target, z
    )
    assert log_likelihood.shape == (num_samples, 2)
    assert log_weights.shape == (num_samples, 2)
    expected_ll = np_log_likelihood(z)
    np.testing.assert_allclose(log_likelihood, expected_ll, rtol=1e-10)
    expected_w = expected_ll + np_log_prior(z, prior) - np_log_normal(z, LOC, SCALE)
    np.testing.assert_allclose(log_weights, expected_w, rtol=1e-10)

    bound = iwae(posterior(), make_decode(target_shape), PRIORS[prior](), target, z)
    assert bound.shape == (2,)
    np.testing.assert_allclose(bound, logsumexp(expected_w, 0) - np.log(num_samples), 1e-10)


@pytest.mark.parametrize("prior", PRIORS)
def test_iwae_with_one_sample_is_the_monte_carlo_elbo(prior):
    z = draw(1)
    bound = iwae(posterior(), make_decode(), PRIORS[prior](), X, z)
    single = elbo(posterior(), make_decode(), PRIORS[prior](), X, z[0])
    monte_carlo_kl = posterior().log_prob(z[0]) - PRIORS[prior]().log_prob(z[0])
    np.testing.assert_allclose(bound, single["reconstruction"] - monte_carlo_kl, rtol=1e-10)
    if prior == "mixture":  # the ELBO itself fell back to the same estimate
        np.testing.assert_allclose(bound, single["elbo"], rtol=1e-10)


# A linear-Gaussian model, where log p(x) and the posterior are known exactly:
# z ~ N(0, I_2), x | z ~ N(z @ A + c, s^2 I_3), so x ~ N(c, A^T A + s^2 I).
A = np.array([[1.0, -0.5, 0.8], [0.4, 1.2, -0.3]])
C = np.array([0.5, -1.0, 0.2])
S = 0.7
X_GAUSS = np.array([[0.3, -0.2, 1.1], [2.0, -1.5, 0.0], [-1.0, 0.4, -0.6], [0.0, 0.0, 0.0]])


def gaussian_decode(z):
    return diagonal_normal(tf.matmul(z, A) + C, S * tf.ones(3, tf.float64))


def np_log_evidence(x):
    cov = A.T @ A + S**2 * np.eye(3)
    diff = x - C
    mahalanobis = np.sum(diff @ np.linalg.inv(cov) * diff, axis=-1)
    return -0.5 * (mahalanobis + np.linalg.slogdet(cov)[1] + 3 * np.log(2 * np.pi))


def exact_posterior():
    """N(mu, Sigma) with Sigma = (I + A A^T / s^2)^-1, mu = (x - c) A^T Sigma / s^2."""
    cov = np.linalg.inv(np.eye(2) + A @ A.T / S**2)
    loc = (X_GAUSS - C) @ A.T @ cov / S**2
    return loc, cov


@pytest.mark.parametrize("num_samples", [1, 3, 50])
def test_iwae_with_the_exact_posterior_is_the_log_evidence(num_samples):
    loc, cov = exact_posterior()
    q = tfd.MultivariateNormalTriL(loc, np.linalg.cholesky(cov))
    z = q.sample(num_samples, seed=0)
    expected = np_log_evidence(X_GAUSS)
    bound = iwae(q, gaussian_decode, standard_prior(), X_GAUSS, z)
    np.testing.assert_allclose(bound, expected, rtol=1e-10)
    # Every weight is exactly p(x): the estimator has zero variance.
    _, log_weights = importance_terms(q, gaussian_decode, standard_prior(), X_GAUSS, z)
    np.testing.assert_allclose(log_weights, np.broadcast_to(expected, (num_samples, 4)), 1e-10)


def test_iwae_with_an_approximate_posterior_is_a_bound_that_tightens():
    loc, cov = exact_posterior()
    # A mean-field proposal, shifted and widened: KL(q || posterior) > 0.
    q_loc, q_scale = loc + 0.3, 1.5 * np.sqrt(np.diag(cov)) * np.ones_like(loc)
    q = diagonal_normal(q_loc, q_scale)
    log_evidence = np_log_evidence(X_GAUSS)
    # A stateless seed: an int seed draws from TensorFlow's global RNG, so the
    # draws (and the Monte Carlo error below) changed with the tests run before.
    z = q.sample(20000, seed=tf.constant([0, 0]))

    # With K = 1, E[iwae] = log p(x) - KL(q || exact posterior), a Gaussian closed form.
    single = importance_terms(q, gaussian_decode, standard_prior(), X_GAUSS, z)[1].numpy()
    inv = np.linalg.inv(cov)
    q_cov = np.einsum("bi,ij->bij", q_scale**2, np.eye(2))
    diff = loc - q_loc
    kl = 0.5 * (
        np.einsum("ij,bji->b", inv, q_cov)
        + np.einsum("bi,ij,bj->b", diff, inv, diff)
        - 2
        + np.linalg.slogdet(cov)[1]
        - np.sum(np.log(q_scale**2), axis=-1)
    )
    assert np.all(kl > 0.05)
    tolerance = 5 * single.std(0) / np.sqrt(len(single))
    np.testing.assert_array_less(np.abs(single.mean(0) - (log_evidence - kl)), tolerance)
    # With K = 20000 the bound (a bound in expectation only) is within a few
    # hundredths of a nat of log p(x): its Monte Carlo error has a standard
    # deviation of about 0.007 nats per example (0.02 failed 1.3% of seeds),
    # while a bound that did not tighten would stay KL (0.85 nats) below.
    bound = iwae(q, gaussian_decode, standard_prior(), X_GAUSS, z)
    np.testing.assert_allclose(bound, log_evidence, atol=0.04)


@pytest.mark.parametrize("prior", PRIORS)
def test_iwae_gradients_are_the_total_derivative_through_the_samples(prior):
    # z = loc + scale * eps enters log q(z) through loc and scale and through z; for
    # IWAE training both paths must reach the encoder (central differences, fixed eps).
    eps = np.random.default_rng(3).normal(size=(4,) + LOC.shape)

    def bound(loc, scale):
        z = loc + scale * eps
        return iwae(posterior(loc, scale), make_decode(), PRIORS[prior](), X, z)

    theoretical, numerical = tf.test.compute_gradient(bound, [LOC, SCALE])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(theoretical[1], numerical[1], rtol=1e-4, atol=1e-5)


# multi_sample_terms


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("num_samples", [1, 5])
def test_multi_sample_terms_average_the_samples(num_samples, prior):
    z = draw(num_samples)
    terms = multi_sample_terms(posterior(), make_decode(), PRIORS[prior](), X, z, beta=0.5)
    reconstruction = np.mean(np_log_likelihood(z), axis=0)
    kl = np_kl(prior, LOC) if prior == "standard" else np.mean(np_kl(prior, z), axis=0)
    np.testing.assert_allclose(terms["reconstruction"], reconstruction, rtol=1e-10)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-10)
    np.testing.assert_allclose(terms["elbo"], reconstruction - kl, rtol=1e-10)
    np.testing.assert_allclose(terms["loss"], 0.5 * kl - reconstruction, rtol=1e-10)
    if num_samples == 1:
        single = elbo(posterior(), make_decode(), PRIORS[prior](), X, z[0], beta=0.5)
        for key in single:
            np.testing.assert_allclose(terms[key], single[key], rtol=1e-10, err_msg=key)


@pytest.mark.parametrize("prior", PRIORS)
def test_multi_sample_terms_iwae_loss_is_the_negated_bound(prior):
    z = draw(5)
    terms = multi_sample_terms(posterior(), make_decode(), PRIORS[prior](), X, z, "iwae")
    bound = iwae(posterior(), make_decode(), PRIORS[prior](), X, z)
    np.testing.assert_allclose(terms["loss"], -bound.numpy(), rtol=1e-10)
    weights = np_log_likelihood(z) + np_log_prior(z, prior) - np_log_normal(z, LOC, SCALE)
    np.testing.assert_allclose(terms["loss"], np.log(5) - logsumexp(weights, 0), rtol=1e-10)


# A KL weight of 0 with an infinite KL


def far_mixture_prior():
    """A float32 mixture so far from the posterior that log p(z) is -inf.

    Built by the priors' `mixture`, whose log-density has zero gradients
    where every component's is -inf (TFP's log-sum-exp has NaN ones there).
    """
    locs = np.array([[1e30, 1e30], [-1e30, -1e30]], "float32")
    return mixture(
        tf.math.log(MIX_WEIGHTS.astype("float32")),
        tfd.MultivariateNormalDiag(locs, np.ones_like(locs)),
    )


def single_sample_terms(loc, scale, beta):
    z = loc + scale * EPS.astype("float32")
    return elbo(posterior(loc, scale), make_decode(), far_mixture_prior(), X, z, beta=beta)


def three_sample_terms(loc, scale, beta):
    z = loc + scale * np.stack([EPS, -EPS, 0.5 * EPS]).astype("float32")
    return multi_sample_terms(
        posterior(loc, scale), make_decode(), far_mixture_prior(), X, z, beta=beta
    )


@pytest.mark.parametrize("terms", [single_sample_terms, three_sample_terms])
@pytest.mark.parametrize("beta_kind", ["float", "tensor", "traced tensor"])
def test_a_zero_kl_weight_keeps_an_infinite_kl_out_of_the_loss_and_its_gradient(terms, beta_kind):
    # A KL-free warm-up epoch (beta = 0) can leave posteriors far from every
    # component of a learned prior: the KL is +inf, which must not turn the
    # loss into 0 * inf = NaN nor the gradients into NaN (eager, and traced
    # as the training step is).
    loc, scale = tf.constant(LOC, tf.float32), tf.constant(SCALE, tf.float32)

    def loss_and_terms(beta):
        with tf.GradientTape() as tape:
            tape.watch([loc, scale])
            result = terms(loc, scale, beta)
            total = tf.reduce_sum(result["loss"])
        return total, result, tape.gradient(total, [loc, scale])

    if beta_kind == "float":
        total, result, gradients = loss_and_terms(0.0)
    elif beta_kind == "tensor":
        total, result, gradients = loss_and_terms(tf.constant(0.0))
    else:  # as in a compiled training step, where beta is a weight
        beta = tf.Variable(0.0)
        total, result, gradients = tf.function(lambda: loss_and_terms(beta.read_value()))()
    assert np.all(np.isposinf(result["kl"]))  # reported as it is
    np.testing.assert_array_equal(result["loss"], -result["reconstruction"].numpy())
    assert np.isfinite(total)
    assert all(np.all(np.isfinite(g)) for g in gradients)
    # The gradient is the reconstruction's alone.
    with tf.GradientTape() as tape:
        tape.watch([loc, scale])
        reconstruction = tf.reduce_sum(terms(loc, scale, 0.0)["reconstruction"])
    for got, expected in zip(gradients, tape.gradient(reconstruction, [loc, scale]), strict=True):
        np.testing.assert_allclose(got, -expected, rtol=1e-6)
    # A positive weight keeps the infinite KL: the loss says the truth.
    assert np.all(np.isposinf(terms(loc, scale, tf.constant(0.5))["loss"]))
