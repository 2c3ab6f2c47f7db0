"""`log_likelihood` against linear-Gaussian models, whose log p(x) is closed form.

With x = W z + b + sigma * eps, z ~ N(0, I), the marginal is
p(x) = N(b, W W^T + sigma^2 I) and the posterior is Gaussian with covariance
S = (I + W^T W / sigma^2)^-1 and mean S W^T (x - b) / sigma^2. W has
orthogonal columns, so S is diagonal and a VAE's diagonal posterior can be
set to the exact one.
"""

import functools
import logging
import math
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from keras_vae import VAE, ConditionalVAE
from keras_vae.evaluation import format_metrics, log_likelihood
from keras_vae.layers import GaussianLikelihood, IndependentBernoulli
from keras_vae.posteriors import IAF
from keras_vae.priors import MixtureOfGaussians

SIGMA = 0.5
# Orthogonal columns: W^T W = diag(1.5, 0.8).
W = np.array([[1.0, 0.4], [-0.5, 0.8], [0.5, 0.0]])
B = np.array([0.3, -0.2, 0.1])
DATA_DIM, LATENT_DIM = W.shape
# Condition weights of the conditional model: y = W z + V c + b + sigma * eps.
V = np.array([[0.7, -0.3], [0.2, 0.5], [-0.4, 0.1]])
CONDITION_DIM = V.shape[1]


def inverse_softplus(y):
    return np.log(np.expm1(y))


def raw_scale(scale):
    """The head's raw parameter giving `scale` after `softplus(raw) + 1e-5`."""
    return inverse_softplus(np.asarray(scale, "float64") - 1e-5)


def exact_posterior(prior_scale=1.0):
    """`(M, s)`: with the prior N(0, s_p^2 I) the posterior is N((x - b) @ M, diag(s^2))."""
    covariance = np.linalg.inv(np.eye(LATENT_DIM) / prior_scale**2 + W.T @ W / SIGMA**2)
    np.testing.assert_allclose(covariance, np.diag(np.diag(covariance)), atol=1e-12)
    return W @ covariance / SIGMA**2, np.sqrt(np.diag(covariance))


def exact_log_likelihood(x, mean=B, latent_covariance=None):
    latent_covariance = np.eye(LATENT_DIM) if latent_covariance is None else latent_covariance
    covariance = W @ latent_covariance @ W.T + SIGMA**2 * np.eye(DATA_DIM)
    return multivariate_normal(mean=mean, cov=covariance).logpdf(x)


def closed_form_elbo(x, loc_matrix, loc_bias, scale):
    """ELBO of the diagonal posterior N(x @ loc_matrix + loc_bias, diag(scale^2)).

    E_q log N(x; W z + b, sigma^2 I) = log N(x; W m + b, sigma^2 I)
    - tr(W S W^T) / (2 sigma^2), and the KL to N(0, I) is the usual sum.
    """
    m = x @ loc_matrix + loc_bias
    log_normal = multivariate_normal(mean=np.zeros(DATA_DIM), cov=SIGMA**2 * np.eye(DATA_DIM))
    trace = np.sum((W * scale) ** 2)
    reconstruction = log_normal.logpdf(x - m @ W.T - B) - 0.5 * trace / SIGMA**2
    kl = 0.5 * np.sum(scale**2 + m**2 - 1.0 - np.log(scale**2), axis=-1)
    return reconstruction - kl, reconstruction, kl


def linear_vae(loc_matrix, loc_bias, scale, decoder_kernel=W.T, decoder_bias=B, prior=None):
    """A VAE with x = z @ decoder_kernel + b and Q(z|x) = N(x @ loc_matrix + loc_bias, S).

    A `scale` vector (or scalar) s gives the diagonal posterior, S = diag(s^2);
    a lower-triangular matrix L gives the full-covariance one, S = L L^T.
    """
    latent_dim = loc_matrix.shape[1]
    full = np.ndim(scale) == 2
    vae = VAE(
        encoder=keras.layers.Identity(),
        decoder=keras.layers.Dense(DATA_DIM),
        latent_dim=latent_dim,
        likelihood=GaussianLikelihood(DATA_DIM, scale=SIGMA),
        prior=prior,
        posterior="full" if full else "diagonal",
    )
    vae.build((None, DATA_DIM))
    vae.decoder.set_weights([decoder_kernel, decoder_bias])
    if full:
        # The head reads a [d, d] matrix row-major: L's strict lower triangle as is, its
        # diagonal through softplus(raw) + 1e-5; the upper triangle is unused.
        raw = np.tril(scale, -1) + np.diag(raw_scale(np.diag(scale)))
        kernel = np.concatenate([loc_matrix, np.zeros((len(loc_matrix), raw.size))], axis=1)
        bias = np.concatenate([loc_bias, raw.ravel()])
    else:
        kernel = np.concatenate([loc_matrix, np.zeros_like(loc_matrix)], axis=1)
        bias = np.concatenate([loc_bias, raw_scale(np.broadcast_to(scale, (latent_dim,)))])
    vae.posterior_layer.params.set_weights([kernel, bias])
    return vae


# Shared across tests (they only read the models), so their traced estimators are reused.
@functools.cache
def exact_vae():
    matrix, scale = exact_posterior()
    return linear_vae(matrix, -B @ matrix, scale), (matrix, -B @ matrix, scale)


@functools.cache
def approximate_vae():
    """A posterior with a shrunken, shifted mean and a wider scale than the exact one."""
    matrix, scale = exact_posterior()
    params = (0.9 * matrix, -0.9 * B @ matrix + 0.05, 1.2 * scale)
    return linear_vae(*params), params


def sample_data(num, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((num, LATENT_DIM))
    return (z @ W.T + B + SIGMA * rng.standard_normal((num, DATA_DIM))).astype("float32")


def replicate_estimates(vae, x, num_samples, copies):
    """`[len(x), copies]` independent estimates: each row of x repeated `copies` times."""
    data = np.repeat(x, copies, axis=0)
    metrics = log_likelihood(vae, data, num_samples, batch_size=len(data), verbose=0)
    return metrics["per_example"].reshape(len(x), copies)


def test_exact_posterior_gives_exact_log_likelihood_for_any_k():
    vae, _ = exact_vae()
    x = sample_data(20)
    expected = exact_log_likelihood(x)
    for num_samples in (1, 7, 100):
        metrics = log_likelihood(vae, x, num_samples, batch_size=8, verbose=0)
        np.testing.assert_allclose(metrics["per_example"], expected, atol=2e-4)
        assert metrics["log_likelihood"] == pytest.approx(np.mean(expected), abs=1e-4)


def test_exact_log_likelihood_thousands_of_nats_below_zero():
    # Far from the data, log p(x) is below -1000 nats, as the log-likelihoods of
    # high-dimensional data are (3 bits/dim is -6400 nats on a 32x32x3 image): the
    # running log-sum-exp over chunks must start from -inf, not a finite floor.
    vae, _ = exact_vae()
    x = sample_data(6) + 40.0
    expected = exact_log_likelihood(x)
    assert np.all(expected < -3000)
    metrics = log_likelihood(vae, x, 10, batch_size=4, chunk_size=3, verbose=0)
    np.testing.assert_allclose(metrics["per_example"], expected, rtol=1e-5)


def test_estimate_converges_to_exact_log_likelihood():
    vae, _ = approximate_vae()
    x = sample_data(50)
    expected = exact_log_likelihood(x)
    error_1 = np.abs(log_likelihood(vae, x, 1, verbose=0)["per_example"] - expected)
    error_1000 = np.abs(log_likelihood(vae, x, 1000, verbose=0)["per_example"] - expected)
    # Importance-sampling error shrinks like 1/sqrt(K): about 0.35 nats at K = 1.
    assert np.mean(error_1000) < 0.02
    assert np.max(error_1000) < 0.08
    assert np.mean(error_1000) < 0.1 * np.mean(error_1)


@pytest.mark.parametrize("num_samples", [1, 10])
def test_estimate_is_a_lower_bound_in_expectation(num_samples):
    vae, _ = approximate_vae()
    x = sample_data(4)
    estimates = replicate_estimates(vae, x, num_samples, copies=500)
    gap = np.mean(estimates, axis=1) - exact_log_likelihood(x)
    standard_error = np.std(estimates, axis=1) / math.sqrt(estimates.shape[1])
    assert np.all(gap <= 3 * standard_error)
    assert np.mean(gap) < 0


def test_single_sample_estimate_is_the_elbo_in_expectation():
    vae, params = approximate_vae()
    x = sample_data(4)
    estimates = replicate_estimates(vae, x, 1, copies=1000)
    elbo, _, _ = closed_form_elbo(x.astype("float64"), *params)
    standard_error = np.std(estimates, axis=1) / math.sqrt(estimates.shape[1])
    assert np.all(np.abs(np.mean(estimates, axis=1) - elbo) < 4 * standard_error)


def test_estimate_does_not_decrease_with_k():
    vae, _ = approximate_vae()
    x = sample_data(4)
    estimates = [replicate_estimates(vae, x, k, copies=300) for k in (1, 10, 100)]
    means = [np.mean(e) for e in estimates]
    # Standard errors of the means over copies of the same examples.
    errors = [math.sqrt(np.sum(np.var(e, axis=1) / e.shape[1])) / len(e) for e in estimates]
    # The bias shrinks like 1/K: about 0.11 nats from K = 1 to 10, but only
    # 0.007 from K = 10 to 100 and 0.001 from K = 100 to log p(x), within the
    # Monte Carlo noise (strict inequalities failed for 13% of seeds). So the
    # first step must be a clear rise and the others no fall beyond 3 standard errors.
    assert means[1] - means[0] > 3 * math.hypot(errors[0], errors[1])
    assert means[2] > means[1] - 3 * math.hypot(errors[1], errors[2])
    assert means[2] < np.mean(exact_log_likelihood(x)) + 3 * errors[2]


def test_elbo_terms_match_the_closed_form():
    vae, params = approximate_vae()
    x = sample_data(40)
    metrics = log_likelihood(vae, x, 2000, batch_size=16, verbose=0)
    elbo, reconstruction, kl = closed_form_elbo(x.astype("float64"), *params)
    assert metrics["kl"] == pytest.approx(np.mean(kl), rel=1e-5)
    assert metrics["reconstruction"] == pytest.approx(np.mean(reconstruction), abs=0.02)
    assert metrics["elbo"] == pytest.approx(np.mean(elbo), abs=0.02)
    assert metrics["elbo"] < metrics["log_likelihood"]
    assert metrics["nll"] == -metrics["log_likelihood"]
    assert metrics["bits_per_dim"] is None  # a density's log p(x) depends on the units of x
    assert (metrics["num_samples"], metrics["num_examples"]) == (2000, 40)
    assert (metrics["kl_estimator"], metrics["latent_dim"]) == ("analytic", LATENT_DIM)


# A decoder whose columns are not orthogonal: the exact posterior has a full covariance.
W_FULL = np.array([[1.0, 0.6], [-0.5, 0.8], [0.5, 0.3]])


def test_full_covariance_posterior_set_to_the_exact_one():
    covariance = np.linalg.inv(np.eye(LATENT_DIM) + W_FULL.T @ W_FULL / SIGMA**2)
    assert abs(covariance[0, 1]) > 0.01  # not a diagonal posterior in disguise
    loc_matrix = W_FULL @ covariance / SIGMA**2
    loc_bias = -B @ loc_matrix
    vae = linear_vae(loc_matrix, loc_bias, np.linalg.cholesky(covariance), decoder_kernel=W_FULL.T)
    x = sample_data(40).astype("float64")
    metrics = log_likelihood(vae, x.astype("float32"), 2000, batch_size=16, verbose=0)
    # Every importance weight is p(x) itself, whatever the draw.
    marginal = multivariate_normal(mean=B, cov=W_FULL @ W_FULL.T + SIGMA**2 * np.eye(DATA_DIM))
    np.testing.assert_allclose(metrics["per_example"], marginal.logpdf(x), atol=2e-4)
    # Between Gaussians the KL is closed form, and the estimator reports that it used it:
    # KL(N(m, S) || N(0, I)) = (tr S + m^T m - d - log det S) / 2.
    m = x @ loc_matrix + loc_bias
    kl = 0.5 * (
        np.trace(covariance) + np.sum(m**2, -1) - LATENT_DIM - np.log(np.linalg.det(covariance))
    )
    assert metrics["kl_estimator"] == "analytic"
    assert metrics["kl"] == pytest.approx(np.mean(kl), rel=1e-5)
    # E_q log N(x; W z + b, sigma^2 I) = log N(x; W m + b, sigma^2 I) - tr(W S W^T) / (2 sigma^2).
    residual = multivariate_normal(mean=np.zeros(DATA_DIM), cov=SIGMA**2 * np.eye(DATA_DIM))
    trace = np.trace(W_FULL @ covariance @ W_FULL.T)
    reconstruction = residual.logpdf(x - m @ W_FULL.T - B) - 0.5 * trace / SIGMA**2
    assert metrics["reconstruction"] == pytest.approx(np.mean(reconstruction), abs=0.02)
    assert metrics["elbo"] == pytest.approx(np.mean(marginal.logpdf(x)), abs=0.02)


# A learned mixture prior sum_k w_k N(mu_k, diag(s_k^2)), set by hand. With the
# linear decoder, p(x) = sum_k w_k N(x; W mu_k + b, W diag(s_k^2) W^T + sigma^2 I);
# KL(Q || P) has no closed form.
MIXTURE_MEANS = np.array([[1.0, -0.5], [-0.8, 0.6], [0.2, 1.2]])
MIXTURE_SCALES = np.array([[0.6, 0.9], [1.1, 0.5], [0.7, 0.7]])
MIXTURE_LOGITS = np.array([0.3, -0.2, 0.0])
MIXTURE_WEIGHTS = np.exp(MIXTURE_LOGITS - logsumexp(MIXTURE_LOGITS))


def mixture_log_density(z):
    """log p(z) `[...]` of the mixture prior at z `[..., d]`, in float64."""
    components = -0.5 * np.sum(
        ((z[..., None, :] - MIXTURE_MEANS) / MIXTURE_SCALES) ** 2
        + np.log(2 * np.pi * MIXTURE_SCALES**2),
        axis=-1,
    )
    return logsumexp(components + np.log(MIXTURE_WEIGHTS), axis=-1)


def exact_mixture_log_likelihood(x):
    terms = [
        np.log(weight)
        + multivariate_normal(
            mean=W @ mean + B, cov=W @ np.diag(scale**2) @ W.T + SIGMA**2 * np.eye(DATA_DIM)
        ).logpdf(x)
        for weight, mean, scale in zip(MIXTURE_WEIGHTS, MIXTURE_MEANS, MIXTURE_SCALES, strict=True)
    ]
    return logsumexp(terms, axis=0)


@pytest.mark.parametrize("posterior", ["diagonal", "full"])
def test_mixture_prior_gives_a_monte_carlo_kl(posterior):
    matrix, scale = exact_posterior()
    # The full posterior's factor adds a correlation to the diagonal one.
    scale_tril = np.diag(scale) if posterior == "diagonal" else np.diag(scale) + [[0, 0], [0.2, 0]]
    prior = MixtureOfGaussians(num_components=len(MIXTURE_MEANS))
    vae = linear_vae(
        matrix, -B @ matrix, scale if posterior == "diagonal" else scale_tril, prior=prior
    )
    prior.means.assign(MIXTURE_MEANS)
    prior.raw_scales.assign(raw_scale(MIXTURE_SCALES))
    prior.logits.assign(MIXTURE_LOGITS)
    assert vae.kl_estimator == "monte_carlo"
    x = sample_data(40).astype("float64")
    num_samples = 2000
    metrics = log_likelihood(vae, x.astype("float32"), num_samples, batch_size=20, verbose=0)
    assert metrics["kl_estimator"] == "monte_carlo"
    assert ", Monte Carlo KL " in format_metrics(metrics)

    # An independent estimate of the KL, log q(z) - log p(z) at numpy's own draws of Q.
    loc = x @ matrix - B @ matrix
    rng = np.random.default_rng(7)
    eps = rng.standard_normal((len(x), 20000, LATENT_DIM))
    z = loc[:, None, :] + eps @ scale_tril.T
    log_q = -0.5 * np.sum(eps**2 + np.log(2 * np.pi), -1) - np.sum(np.log(np.diag(scale_tril)))
    ratios = log_q - mixture_log_density(z)
    # Both are means of the same per-draw ratio: within 4 standard errors of each other.
    error = np.std(ratios) * math.hypot(
        1 / math.sqrt(ratios.size), 1 / math.sqrt(len(x) * num_samples)
    )
    assert metrics["kl"] == pytest.approx(np.mean(ratios), abs=4 * error)
    assert metrics["elbo"] == pytest.approx(metrics["reconstruction"] - metrics["kl"])
    # The importance-weighted estimate uses the mixture's own density.
    expected = exact_mixture_log_likelihood(x)
    assert metrics["log_likelihood"] == pytest.approx(np.mean(expected), abs=0.02)
    np.testing.assert_allclose(metrics["per_example"], expected, atol=0.25)
    assert metrics["elbo"] < metrics["log_likelihood"]


def test_iaf_posterior_whose_flow_only_scales():
    # With its output layers zeroed, every IAF step is z <- sigmoid(0 + 2) z: Q is its base
    # Gaussian scaled, which can be set to the exact posterior. log q must then include the
    # flow's log-determinant for every importance weight to be p(x).
    num_steps, context_units = 2, 4
    vae = VAE(
        encoder=keras.layers.Identity(),
        decoder=keras.layers.Dense(DATA_DIM),
        latent_dim=LATENT_DIM,
        likelihood=GaussianLikelihood(DATA_DIM, scale=SIGMA),
        posterior=IAF(num_steps=num_steps, hidden_units=(8,), context_units=context_units),
    )
    vae.build((None, DATA_DIM))
    vae.decoder.set_weights([W.T, B])
    shrink = (1.0 / (1.0 + math.exp(-2.0))) ** num_steps
    matrix, scale = exact_posterior()
    kernel = np.zeros((DATA_DIM, 2 * LATENT_DIM + context_units))
    kernel[:, :LATENT_DIM] = matrix / shrink
    bias = np.zeros(2 * LATENT_DIM + context_units)
    bias[:LATENT_DIM] = -B @ matrix / shrink
    bias[LATENT_DIM : 2 * LATENT_DIM] = raw_scale(scale / shrink)
    vae.posterior_layer.params.set_weights([kernel, bias])
    for _, _, output in vae.posterior_layer.steps:
        output.set_weights([np.zeros_like(w) for w in output.get_weights()])
    assert vae.kl_estimator == "monte_carlo"
    x = sample_data(20).astype("float64")
    num_samples = 500
    metrics = log_likelihood(vae, x.astype("float32"), num_samples, batch_size=10, verbose=0)
    np.testing.assert_allclose(metrics["per_example"], exact_log_likelihood(x), atol=2e-4)
    assert metrics["kl_estimator"] == "monte_carlo"
    # The Monte Carlo KL against the closed form of KL(N(m, diag(s^2)) || N(0, I)), within
    # 4 standard errors of the per-draw ratio (its spread from numpy's own draws).
    loc = x @ matrix - B @ matrix
    kl = 0.5 * np.sum(scale**2 + loc**2 - 1.0 - np.log(scale**2), axis=-1)
    eps = np.random.default_rng(3).standard_normal((len(x), 10000, LATENT_DIM))
    z = loc[:, None, :] + scale * eps
    ratios = np.sum(0.5 * (z**2 - eps**2) - np.log(scale), axis=-1)
    np.testing.assert_allclose(np.mean(ratios, axis=1), kl, atol=0.05)  # the reference itself
    error = np.std(ratios) / math.sqrt(len(x) * num_samples)
    assert metrics["kl"] == pytest.approx(np.mean(kl), abs=4 * error)


def test_bins_bound_the_log_probability_of_discrete_data():
    # Values k / 4 + [0, 1/4)^3 cells: the exact log P(k) integrates the marginal over each cell.
    vae, _ = exact_vae()
    bins = 4
    levels = np.array([[0, 1, 2], [1, 1, 0], [2, 0, 1], [3, 1, 0]])
    marginal = multivariate_normal(mean=B, cov=W @ W.T + SIGMA**2 * np.eye(DATA_DIM))
    exact = np.log([marginal.cdf((k + 1) / bins, lower_limit=k / bins, rng=0) for k in levels])
    rng = np.random.default_rng(5)
    copies = 2000
    noise = rng.random((len(levels), copies, DATA_DIM))
    dequantized = ((levels[:, None, :] + noise) / bins).reshape(-1, DATA_DIM).astype("float32")
    metrics = log_likelihood(vae, dequantized, 1, batch_size=1000, verbose=0, bins=bins)
    # The exact posterior makes every estimate the density at that point, less D ln bins.
    np.testing.assert_allclose(
        metrics["per_example"],
        marginal.logpdf(dequantized.astype("float64")) - DATA_DIM * math.log(bins),
        atol=2e-4,
    )
    # Its mean over u is a Jensen lower bound on log P(k), close for cells narrow against
    # the marginal's scale (the gap, about 2e-3 nats here, is within the Monte Carlo noise).
    estimate = metrics["per_example"].reshape(len(levels), copies).mean(axis=1)
    np.testing.assert_allclose(estimate, exact, atol=0.02)
    assert metrics["nll"] == -metrics["log_likelihood"]
    assert metrics["bits_per_dim"] == pytest.approx(metrics["nll"] / (DATA_DIM * math.log(2)))
    assert metrics["elbo"] == pytest.approx(metrics["reconstruction"] - metrics["kl"])
    # With the exact posterior the ELBO is log p(x) too (in expectation), shifted alike.
    assert metrics["elbo"] == pytest.approx(metrics["log_likelihood"], abs=0.05)


def test_chunking_and_input_type_do_not_change_the_result():
    vae, _ = approximate_vae()
    x = sample_data(45)
    reference = log_likelihood(vae, x, 50, batch_size=20, seed=3, verbose=0)
    for result in (
        log_likelihood(vae, x, 50, batch_size=20, chunk_size=7, seed=3, verbose=0),
        log_likelihood(vae, x, 50, batch_size=20, chunk_size=50, seed=3, verbose=0),
        log_likelihood(
            vae, tf.data.Dataset.from_tensor_slices(x).batch(13), 50, 20, seed=3, verbose=0
        ),
        log_likelihood(
            vae,
            tf.data.Dataset.from_tensor_slices((x, np.arange(45))).batch(9),
            50,
            20,
            seed=3,
            verbose=0,
        ),
    ):
        np.testing.assert_allclose(result["per_example"], reference["per_example"], rtol=1e-6)
        assert result["elbo"] == pytest.approx(reference["elbo"], rel=1e-6)


def test_xla_compiled_noise_gives_the_same_result():
    # Evaluations of num_samples * batch_size * latent_dim >= 2**20 draws per batch
    # compile the noise generator with XLA. A batch_size far above the data's size
    # asks for that on the same single batch, whose noise is the same by definition.
    vae, _ = approximate_vae()
    x = sample_data(40)
    plain = log_likelihood(vae, x, 30, batch_size=40, chunk_size=10, seed=3, verbose=0)
    compiled = log_likelihood(vae, x, 30, batch_size=2**30, chunk_size=10, seed=3, verbose=0)
    np.testing.assert_allclose(compiled["per_example"], plain["per_example"], rtol=1e-6)


def test_same_seed_same_result_and_other_seed_other_result():
    vae, _ = approximate_vae()
    x = sample_data(10)
    first = log_likelihood(vae, x, 20, seed=5, verbose=0)["per_example"]
    again = log_likelihood(vae, x, 20, seed=5, verbose=0)["per_example"]
    other = log_likelihood(vae, x, 20, seed=6, verbose=0)["per_example"]
    np.testing.assert_array_equal(first, again)
    assert np.all(first != other)
    # Every example and every batch draws its own noise, even for identical data.
    repeated = log_likelihood(vae, np.repeat(x[:1], 40, axis=0), 1, batch_size=20, verbose=0)
    assert len(np.unique(repeated["per_example"])) == 40


def test_active_units_and_kl():
    # Latent 0 follows x, latent 1 barely (Var_x E[z_1] about 1e-4), latent 2 ignores x
    # (and, as N(0, 1), adds nothing to the KL).
    loc_matrix = np.zeros((DATA_DIM, 3))
    loc_matrix[0, 0], loc_matrix[0, 1] = 1.0, 0.01
    loc_bias = np.array([0.0, 0.2, 0.0])
    scale = np.array([0.5, 0.5, 1.0])
    decoder_kernel = np.concatenate([W.T, np.ones((1, DATA_DIM))])
    vae = linear_vae(loc_matrix, loc_bias, scale, decoder_kernel=decoder_kernel)
    x = sample_data(200)
    metrics = log_likelihood(vae, x, 5, batch_size=64, verbose=0)

    loc = x.astype("float64") @ loc_matrix + loc_bias
    kl = 0.5 * np.sum(scale**2 + loc**2 - 1.0 - np.log(scale**2), axis=-1)
    assert metrics["kl"] == pytest.approx(np.mean(kl), rel=1e-5)
    assert metrics["kl_estimator"] == "analytic"
    assert (metrics["active_units"], metrics["latent_dim"]) == (1, 3)
    assert "kl_per_dim" not in metrics
    text = format_metrics(metrics)
    assert "Active units: 1 of 3" in text and ", analytic KL " in text
    # A variance across examples says nothing about one example.
    single = log_likelihood(vae, x[:1], 5, verbose=0)
    assert single["active_units"] is None and single["num_examples"] == 1
    assert "Active units" not in format_metrics(single)


def test_progress_bar(capsys):
    vae, _ = exact_vae()
    log_likelihood(vae, sample_data(10), 5, batch_size=4, verbose=1)
    assert "log_likelihood" in capsys.readouterr().out


# The conditional model y = W z + V c + b + sigma * eps with the prior
# N(c @ P + p0, s_p^2 I) (P = 0, p0 = 0, s_p = 1 for the standard prior). Its
# hidden ReLU layers pass their inputs u through as relu(u) and relu(-u), so the
# heads are linear in u and Q(z|y, c) can be set to the exact posterior.

PRIOR_MATRIX = np.array([[0.5, -0.3], [0.2, 0.4]])
PRIOR_BIAS = np.array([0.1, -0.2])
PRIOR_SCALE = 0.8
HIDDEN_UNITS = 2 * (DATA_DIM + CONDITION_DIM)


def prior_params(prior):
    if prior == "standard":
        return np.zeros((CONDITION_DIM, LATENT_DIM)), np.zeros(LATENT_DIM), 1.0
    return PRIOR_MATRIX, PRIOR_BIAS, PRIOR_SCALE


def relu_pass_through(num_inputs):
    """Weights of a ReLU Dense layer whose units are relu(u), relu(-u), then zeros."""
    kernel = np.zeros((num_inputs, HIDDEN_UNITS))
    kernel[:, :num_inputs] = np.eye(num_inputs)
    kernel[:, num_inputs : 2 * num_inputs] = -np.eye(num_inputs)
    return [kernel, np.zeros(HIDDEN_UNITS)]


def linear_head(matrix, bias, scale):
    """Weights of a head after `relu_pass_through`: loc = u @ matrix + bias, fixed scale."""
    num_inputs = len(matrix)
    kernel = np.zeros((HIDDEN_UNITS, 2 * LATENT_DIM))
    kernel[:num_inputs, :LATENT_DIM] = matrix
    kernel[num_inputs : 2 * num_inputs, :LATENT_DIM] = -matrix
    return [kernel, np.concatenate([bias, raw_scale(np.broadcast_to(scale, (LATENT_DIM,)))])]


def linear_cvae(prior, scale_factor=1.0):
    cvae = ConditionalVAE(
        encoder=keras.layers.Identity(),
        decoder=keras.layers.Dense(DATA_DIM),
        latent_dim=LATENT_DIM,
        likelihood=GaussianLikelihood(DATA_DIM, scale=SIGMA),
        prior=prior,
        hidden_units=HIDDEN_UNITS,
    )
    cvae.build((None, CONDITION_DIM))
    cvae.decoder.set_weights([np.concatenate([W.T, V.T]), B])
    prior_matrix, prior_bias, prior_scale = prior_params(prior)
    if prior == "learned":
        (hidden,) = cvae.prior_layer.hidden
        hidden.set_weights(relu_pass_through(CONDITION_DIM))
        cvae.prior_layer.params.set_weights(linear_head(prior_matrix, prior_bias, prior_scale))
    # Exact posterior mean: (y - c V^T - b) @ M + (c @ P + p0) @ S / s_p^2.
    matrix, scale = exact_posterior(prior_scale)
    shrink = scale**2 / prior_scale**2
    loc_matrix = np.concatenate([matrix, -V.T @ matrix + prior_matrix * shrink])
    loc_bias = -B @ matrix + prior_bias * shrink
    cvae.posterior_hidden.set_weights(relu_pass_through(DATA_DIM + CONDITION_DIM))
    cvae.posterior_layer.params.set_weights(linear_head(loc_matrix, loc_bias, scale_factor * scale))
    return cvae


def conditional_data(num, seed=0):
    rng = np.random.default_rng(seed)
    conditions = rng.standard_normal((num, CONDITION_DIM)).astype("float32")
    targets = sample_data(num, seed + 1) + conditions @ V.T
    return conditions, targets.astype("float32")


def exact_conditional_log_likelihood(conditions, targets, prior):
    prior_matrix, prior_bias, prior_scale = prior_params(prior)
    conditions, targets = conditions.astype("float64"), targets.astype("float64")
    means = (conditions @ prior_matrix + prior_bias) @ W.T + conditions @ V.T + B
    latent_covariance = prior_scale**2 * np.eye(LATENT_DIM)
    return np.array(
        [
            exact_log_likelihood(y, mean, latent_covariance)
            for y, mean in zip(targets, means, strict=True)
        ]
    )


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_conditional_exact_posterior_gives_exact_log_likelihood(prior):
    cvae = linear_cvae(prior)
    conditions, targets = conditional_data(30)
    expected = exact_conditional_log_likelihood(conditions, targets, prior)
    metrics = log_likelihood(cvae, (conditions, targets), 1, batch_size=8, verbose=0)
    np.testing.assert_allclose(metrics["per_example"], expected, atol=2e-4)
    # KL(Q(z|y, c) || P(z|c)) between diagonal Gaussians has a closed form.
    assert metrics["kl_estimator"] == "analytic"
    dataset = tf.data.Dataset.from_tensor_slices((conditions, targets)).batch(7)
    metrics = log_likelihood(cvae, dataset, 10, batch_size=8, verbose=0)
    np.testing.assert_allclose(metrics["per_example"], expected, atol=2e-4)


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_conditional_estimate_lies_between_elbo_and_log_likelihood(prior):
    cvae = linear_cvae(prior, scale_factor=1.5)
    conditions, targets = conditional_data(40)
    expected = exact_conditional_log_likelihood(conditions, targets, prior)
    metrics = log_likelihood(cvae, (conditions, targets), 500, batch_size=16, verbose=0)
    assert metrics["per_example"].shape == (40,)
    assert np.all(np.isfinite(metrics["per_example"]))
    assert metrics["elbo"] + 0.05 < metrics["log_likelihood"]
    assert metrics["log_likelihood"] == pytest.approx(np.mean(expected), abs=0.01)


# Bad input.


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"num_samples": 0},
            "Expected num_samples to be a positive integer. Received: num_samples=0",
        ),
        ({"num_samples": 2.5}, "Received: num_samples=2.5"),
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"chunk_size": -1}, "Received: chunk_size=-1"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"verbose": 3}, "Received: verbose=3"),
        ({"bins": 1}, "Expected bins to be an integer >= 2. Received: bins=1"),
        ({"bins": 256.0}, "Received: bins=256.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    vae, _ = exact_vae()
    with pytest.raises(ValueError, match=re.escape(message)):
        log_likelihood(vae, sample_data(4), **kwargs)


class Sampled(Exception):
    pass


class UnreadRows(np.ndarray):
    """An array whose rows raise `Sampled` when a batch of them is read for sampling."""

    def __getitem__(self, key):
        if isinstance(key, slice):
            raise Sampled
        return super().__getitem__(key)


def test_too_many_noise_counters_are_refused_before_sampling():
    # The noise counters of a batch are int32, so K * B * latent_dim must stay below
    # 2**31 (the counter offsets are int32 tensors), with B the examples of the
    # largest batch: 4 here, not batch_size. The estimator would take minutes, so
    # the data stop it when their first batch is read.
    vae, _ = exact_vae()
    x = sample_data(4).view(UnreadRows)
    message = (
        "Expected num_samples * batch_size * latent_dim below 2**31. Received: "
        "num_samples=268435456, batch_size=100, latent_dim=2"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        log_likelihood(vae, x, 2**28, verbose=0)  # 2**28 * 4 * 2 = 2**31
    with pytest.raises(Sampled):
        log_likelihood(vae, x, 2**28 - 1, verbose=0)


def test_bins_are_for_continuous_likelihoods():
    vae = VAE(
        keras.layers.Identity(),
        keras.layers.Dense(DATA_DIM),
        LATENT_DIM,
        likelihood=IndependentBernoulli(DATA_DIM),
    )
    with pytest.raises(ValueError, match=r"Expected bins=None for a binary likelihood"):
        log_likelihood(vae, np.zeros((2, DATA_DIM), "float32"), 2, bins=256, verbose=0)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_sweep_over_sample_counts_does_not_warn_of_retracing():
    # One trace serves every K and chunk size; TensorFlow warns after 5 traces in 10 calls.
    vae, _ = approximate_vae()
    x = sample_data(6)
    records = _Records()
    tf.get_logger().addHandler(records)
    try:
        estimates = [
            log_likelihood(vae, x, k, batch_size=4, chunk_size=chunk, verbose=0)["per_example"]
            for k, chunk in [(1, None), (2, None), (3, 2), (5, 2), (8, 3), (13, 5), (21, None)]
        ]
    finally:
        tf.get_logger().removeHandler(records)
    assert not [m for m in records.messages if "retracing" in m]
    # The chunks still cover exactly the K samples: the same figures as in one chunk.
    one_chunk = log_likelihood(vae, x, 8, batch_size=4, verbose=0)["per_example"]
    np.testing.assert_allclose(estimates[4], one_chunk, rtol=1e-6)


def test_bins_refuse_data_that_are_not_dequantized():
    # 8-bit levels given as they are would score a density at 0..255, less D ln 256.
    vae, _ = exact_vae()
    levels = np.array([[0.0, 128.0, 255.0]], "float32")
    with pytest.raises(ValueError) as error:
        log_likelihood(vae, levels, 2, bins=256, verbose=0)
    assert str(error.value) == (
        "Expected data values in [0, 1] for dequantized data (bins=256). "
        "Received: data values in [0, 255]"
    )
    # Without bins the data are any real vectors of the density.
    assert np.isfinite(log_likelihood(vae, levels, 2, verbose=0)["log_likelihood"])
    assert np.isfinite(log_likelihood(vae, levels / 256, 2, bins=256, verbose=0)["nll"])


def test_model_without_encoder():
    model = keras.Sequential([keras.Input((DATA_DIM,)), keras.layers.Dense(DATA_DIM)])
    with pytest.raises(ValueError, match="Expected model to be a keras_vae VAE"):
        log_likelihood(model, sample_data(4))


@pytest.mark.parametrize(
    "data, message",
    [
        (
            np.zeros((5, 4), "float32"),
            "Expected data shaped [batch, 3]. Received: data.shape=(5, 4)",
        ),
        (
            tf.data.Dataset.from_tensor_slices(np.zeros((5, 4), "float32")).batch(2),
            "Expected data.element_spec shaped [batch, 3]. "
            "Received: data.element_spec.shape=(None, 4)",
        ),
        (
            tf.data.Dataset.from_tensor_slices(np.zeros((5, 3), "float32")),
            "Received: data.element_spec.shape=(3,)",
        ),
        (np.zeros((0, 3), "float32"), "Expected data to hold at least one example"),
    ],
)
def test_data_of_the_wrong_shape(data, message):
    vae, _ = exact_vae()
    with pytest.raises(ValueError, match=re.escape(message)):
        log_likelihood(vae, data, 2)


def test_conditional_data_of_the_wrong_form():
    cvae = linear_cvae("standard")
    conditions, targets = conditional_data(4)
    with pytest.raises(ValueError, match=r"Expected data to be a \(conditions, targets\) pair"):
        log_likelihood(cvae, targets, 2)
    with pytest.raises(ValueError, match=re.escape("Received: targets.shape=(4, 2)")):
        log_likelihood(cvae, (conditions, conditions), 2)
    with pytest.raises(ValueError, match="Expected as many conditions as targets"):
        log_likelihood(cvae, (conditions[:3], targets), 2)
    with pytest.raises(ValueError, match="Expected a dataset of \\(condition, target\\) pairs"):
        log_likelihood(cvae, tf.data.Dataset.from_tensor_slices(targets).batch(2), 2)


def test_bernoulli_data_outside_the_unit_interval_and_grey_values():
    vae = VAE(
        encoder=keras.layers.Identity(),
        decoder=keras.layers.Dense(DATA_DIM),
        latent_dim=LATENT_DIM,
        likelihood=IndependentBernoulli(DATA_DIM),
    )
    with pytest.raises(ValueError, match=re.escape("Received: data values in [0, 2]")):
        log_likelihood(vae, np.array([[0.0, 1.0, 2.0]], "float32"), 2, verbose=0)
    with pytest.warns(UserWarning, match="not binary"):
        log_likelihood(vae, np.array([[0.0, 1.0, 0.5]], "float32"), 2, verbose=0)
    # A grey value in any batch warns, not only in the last one; binary data never do.
    data = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 1.0]], "float32")
    with pytest.warns(UserWarning, match="not binary"):
        log_likelihood(vae, data, 2, batch_size=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_likelihood(vae, data[1:], 2, verbose=0)
