"""The battery every prior of `keras_vae.priors` is run through, then each prior's own checks.

Every prior is bound to a small real model (an MLP `VAE` on 8x8x1 images, or
a `ConditionalVAE` for the conditional prior) whose weights are moved away
from their initial values, so that mixtures have distinct, unequally
weighted components. The references never go through the prior: component
choices are numpy inverse-CDF sampling on the uniform stream of
`tests/rng_reference.py`, densities are scipy's, and the draws' law is
compared with the prior's own TFP distribution (its moments and its TFP
sample).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.special  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from rng_reference import ref_to_unit, ref_word  # noqa: E402
from scipy import special, stats  # noqa: E402

from keras_vae import VAE, ConditionalVAE  # noqa: E402
from keras_vae import priors as prior_registry  # noqa: E402
from keras_vae.layers import IndependentBernoulli  # noqa: E402
from keras_vae.networks import mlp_decoder, mlp_encoder  # noqa: E402
from keras_vae.posteriors import DiagonalNormal  # noqa: E402
from keras_vae.priors import (  # noqa: E402
    ConditionalGaussian,
    MixtureOfGaussians,
    StandardNormal,
    VampPrior,
)
from keras_vae.priors.mixture import (  # noqa: E402
    DiagonalGaussianMixture,
    FullCovarianceGaussianMixture,
    Mixture,
    choose_components,
    mixture,
)

LATENT_DIM = 2
DATA_SHAPE = (8, 8, 1)
CONDITION_SIZE = 3
NUM_CONDITIONS = 3
NUM_DRAWS = 4000

# id -> (prior class, constructor kwargs, posterior of the model it is bound to).
PRIOR_CASES = {
    "standard": (StandardNormal, {}, "diagonal"),
    "mog": (MixtureOfGaussians, {"num_components": 3}, "diagonal"),
    "vamp": (VampPrior, {"num_pseudo_inputs": 4}, "diagonal"),
    "vamp_full": (VampPrior, {"num_pseudo_inputs": 3}, "full"),
    "learned": (ConditionalGaussian, {"hidden_units": (8,)}, "diagonal"),
}


# -- Models and references -----------------------------------------------------


def make_vae(prior, posterior="diagonal"):
    """A built MLP VAE on 8x8x1 images holding `prior`."""
    model = VAE(
        mlp_encoder(DATA_SHAPE, hidden_units=(8,)),
        mlp_decoder(LATENT_DIM, DATA_SHAPE, hidden_units=(8,)),
        LATENT_DIM,
        prior=prior,
        posterior=posterior,
    )
    model.build((None, *DATA_SHAPE))
    return model


def make_cvae(prior, posterior="diagonal"):
    """A built MLP ConditionalVAE of 8x8x1 images given 3 numbers, holding `prior`."""
    model = ConditionalVAE(
        mlp_encoder(DATA_SHAPE, hidden_units=(8,)),
        mlp_decoder(LATENT_DIM + CONDITION_SIZE, DATA_SHAPE, hidden_units=(8,)),
        LATENT_DIM,
        likelihood=IndependentBernoulli(DATA_SHAPE),
        prior=prior,
        posterior=posterior,
        hidden_units=8,
    )
    model.build((None, CONDITION_SIZE))
    return model


def make_model(prior, posterior="diagonal"):
    """The model kind `prior` belongs in, built, holding it."""
    return (make_cvae if prior.conditional else make_vae)(prior, posterior)


def spread_out(prior, rng):
    """Moves the prior's weights so its components are distinct and unequally weighted."""
    if isinstance(prior, MixtureOfGaussians):
        k = prior.num_components
        prior.means.assign(rng.normal(scale=2.0, size=(k, LATENT_DIM)))
        prior.raw_scales.assign(rng.normal(-0.5, 0.5, size=(k, LATENT_DIM)))
        prior.logits.assign(rng.normal(size=k))
    elif isinstance(prior, VampPrior):
        # Outside [0, 1] too, so the clipping matters.
        prior.pseudo_inputs.assign(rng.uniform(-0.3, 1.3, size=prior.pseudo_inputs.shape))
    else:
        for weight in prior.weights:
            weight.assign(rng.normal(scale=0.7, size=weight.shape))


def bound_prior(case, seed=0):
    cls, kwargs, posterior = PRIOR_CASES[case]
    keras.utils.set_random_seed(seed)
    model = make_model(cls(**kwargs), posterior)
    spread_out(model.prior_layer, np.random.default_rng(seed))
    return model, model.prior_layer


@pytest.fixture(scope="module", params=list(PRIOR_CASES))
def bound(request):
    """(case id, model, prior) for every prior, built once per module."""
    model, prior = bound_prior(request.param)
    return request.param, model, prior


def conditions(seed=1):
    return (
        np.random.default_rng(seed).normal(size=(NUM_CONDITIONS, CONDITION_SIZE)).astype("float32")
    )


def condition_for(prior):
    return conditions() if prior.conditional else None


def ref_uniform(seed, n):
    """The uniform stream of `keras_vae.ops.random`, from the numpy reference."""
    return ref_to_unit(ref_word(seed, np.arange(n), 0)).astype(np.float64)


def ref_normal(seed, n):
    """The normal stream (cosine Box-Muller) of `keras_vae.ops.random`, in float64."""
    u1 = ref_to_unit(ref_word(seed, np.arange(n), 1)).astype(np.float64)
    u2 = ref_to_unit(ref_word(seed, np.arange(n), 2)).astype(np.float64)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def inverse_cdf(weights, uniform):
    """Component indices by inverse-CDF sampling: k with cum[k-1] <= u < cum[k]."""
    cumulative = np.cumsum(np.asarray(weights, np.float64))
    return np.minimum(np.searchsorted(cumulative, uniform, side="right"), len(cumulative) - 1)


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def components(model, prior, condition=None):
    """(weights [K], locs [..., K, d], scale_trils [..., K, d, d]) computed apart from the prior.

    A conditional prior has one component per condition (leading axis [B]).
    """
    d = LATENT_DIM
    if isinstance(prior, StandardNormal):
        return np.ones(1), np.zeros((1, d)), np.eye(d)[None]
    if isinstance(prior, MixtureOfGaussians):
        logits = prior.logits.numpy().astype(np.float64)
        weights = special.softmax(logits)
        scales = softplus(prior.raw_scales.numpy()) + 1e-5
        return weights, prior.means.numpy(), scales[..., None] * np.eye(d)
    if isinstance(prior, VampPrior):
        k = prior.num_pseudo_inputs
        posterior = model.encode(np.clip(prior.pseudo_inputs.numpy(), 0.0, 1.0))
        locs = posterior.mean().numpy()
        if isinstance(model.posterior_layer, DiagonalNormal):
            trils = posterior.stddev().numpy()[..., None] * np.eye(d)
        else:
            trils = np.linalg.cholesky(posterior.covariance().numpy().astype(np.float64))
        return np.full(k, 1.0 / k), locs, trils
    # ConditionalGaussian: its own distribution gives the parameters (its law is
    # checked against that distribution elsewhere in the battery).
    gaussian = prior.prior(condition).distribution
    scales = gaussian.scale.numpy()
    return np.ones(1), gaussian.loc.numpy()[:, None], (scales[..., None] * np.eye(d))[:, None]


def expected_draws(model, prior, num, seed, temperature, condition=None):
    """What `prior.sample` should give: the inverse-CDF component plus its scaled noise."""
    weights, locs, trils = components(model, prior, condition)
    leading = (NUM_CONDITIONS, num) if prior.conditional else (num,)
    count = int(np.prod(leading))
    eps = ref_normal(seed, count * LATENT_DIM).reshape(*leading, LATENT_DIM)
    if prior.conditional:
        loc, tril = locs[:, 0][:, None], trils[:, 0][:, None]
    else:
        k = (
            inverse_cdf(weights, ref_uniform(seed, count))
            if prior.uses_uniform
            else np.zeros(count, int)
        )
        loc, tril = locs[k], trils[k]
    return loc + temperature * np.einsum("...ij,...j->...i", tril, eps)


# -- The battery ---------------------------------------------------------------


def test_shapes(bound):
    _, _, prior = bound
    condition = condition_for(prior)
    dist = prior.prior(condition)
    assert dist.event_shape == (LATENT_DIM,)
    if prior.conditional:
        assert dist.batch_shape == (NUM_CONDITIONS,)
        assert prior.sample(7, seed=0, condition=condition).shape == (
            NUM_CONDITIONS,
            7,
            LATENT_DIM,
        )
        assert prior.sample(tf.constant(1), tf.constant(3), condition=condition[:1]).shape == (
            1,
            1,
            LATENT_DIM,
        )
    else:
        assert dist.batch_shape == ()
        assert prior.sample(7, seed=0).shape == (7, LATENT_DIM)
        assert prior.sample(tf.constant(1), tf.constant(3)).shape == (1, LATENT_DIM)
    z = prior.sample(5, seed=0, condition=condition)
    assert z.dtype == tf.float32
    assert np.all(np.isfinite(dist.log_prob(tf.reshape(z, [5, -1, LATENT_DIM]))))


def test_same_seed_same_draws_other_seed_other_draws(bound):
    _, _, prior = bound
    condition = condition_for(prior)
    first = prior.sample(50, seed=11, condition=condition).numpy()
    np.testing.assert_array_equal(prior.sample(50, seed=11, condition=condition), first)
    np.testing.assert_array_equal(
        prior.sample(50, seed=tf.constant(11), condition=condition), first
    )
    other = prior.sample(50, seed=12, condition=condition).numpy()
    # Every coordinate changes (they are continuous draws), not just a few.
    assert np.all(other != first)


def test_config_round_trip(bound):
    case, model, prior = bound
    cls, kwargs, posterior = PRIOR_CASES[case]
    config = prior.get_config()
    assert config["latent_dim"] == LATENT_DIM
    for key, value in kwargs.items():
        assert config[key] == value
    clone = cls.from_config(config)
    assert type(clone) is cls
    assert clone.get_config() == config

    # The clone in a model of the same architecture with the same weights is the same prior.
    copy = make_model(clone, posterior)
    copy.set_weights(model.get_weights())
    condition = condition_for(prior)
    z = np.random.default_rng(2).normal(size=(5, 1, LATENT_DIM)).astype("float32")
    np.testing.assert_allclose(
        clone.prior(condition).log_prob(z), prior.prior(condition).log_prob(z), rtol=1e-6
    )
    np.testing.assert_array_equal(
        clone.sample(9, seed=4, condition=condition), prior.sample(9, seed=4, condition=condition)
    )


@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.0])
def test_draws_are_inverse_cdf_component_plus_scaled_noise(bound, temperature):
    """Draw i: component k_i (inverse CDF of uniform i) plus temperature * L_k eps_i."""
    _, model, prior = bound
    condition = condition_for(prior)
    z = prior.sample(200, seed=5, temperature=temperature, condition=condition)
    expected = expected_draws(model, prior, 200, 5, temperature, condition)
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=2e-5)


def test_noise_is_draw_says_whether_a_draw_is_the_noise_itself(bound):
    # A host that draws z with the portable RNG alone (int8-full and micro
    # decode files) relies on this: the draw equals the standard normal noise.
    _, _, prior = bound
    condition = condition_for(prior)
    draws = prior.sample(5, seed=3, condition=condition).numpy()
    noise = ref_normal(3, draws.size).reshape(draws.shape)
    is_noise = np.allclose(draws, noise, atol=1e-5)
    assert prior.noise_is_draw == is_noise


def test_temperature_zero_gives_component_means(bound):
    _, model, prior = bound
    condition = condition_for(prior)
    z = prior.sample(300, seed=6, temperature=0.0, condition=condition).numpy()
    weights, locs, _ = components(model, prior, condition)
    if prior.conditional:
        np.testing.assert_allclose(z, np.broadcast_to(locs, z.shape), atol=1e-6)
        np.testing.assert_allclose(z[:, 0], prior.prior(condition).mean(), atol=1e-6)
        return
    distance = np.abs(z[:, None, :] - locs[None]).max(-1)  # [draws, K]
    assert np.all(distance.min(-1) < 1e-5)
    # With 300 draws every component of a mixture shows up.
    assert set(distance.argmin(-1)) == set(range(len(weights)))


def test_temperature_scales_spread(bound):
    _, _, prior = bound
    condition = condition_for(prior)
    draw = {
        t: prior.sample(300, seed=7, temperature=t, condition=condition).numpy()
        for t in (0.0, 0.3, 1.0, 2.0)
    }
    spread = draw[1.0] - draw[0.0]
    assert np.std(spread) > 0.1
    for t in (0.3, 2.0):
        np.testing.assert_allclose(draw[t] - draw[0.0], t * spread, rtol=1e-4, atol=1e-5)


def test_draws_follow_the_prior_distribution(bound):
    """Moments of seeded draws against the distribution's, and a KS test against TFP's sample."""
    _, _, prior = bound
    condition = condition_for(prior)
    dist = prior.prior(condition)
    ours = prior.sample(NUM_DRAWS, seed=8, condition=condition).numpy()
    theirs = dist.sample(NUM_DRAWS, seed=9).numpy()
    mean, variance = dist.mean().numpy(), dist.variance().numpy()
    if not prior.conditional:  # one batch member: [N, d] -> [1, N, d]
        ours, theirs, mean, variance = ours[None], theirs[:, None], mean[None], variance[None]
    theirs = np.swapaxes(theirs, 0, 1)  # [B, N, d]
    direction = np.random.default_rng(3).normal(size=LATENT_DIM)
    for b in range(ours.shape[0]):
        sample_mean = ours[b].mean(0)
        centred = ours[b] - sample_mean
        sample_var = (centred**2).mean(0)
        fourth = (centred**4).mean(0)
        # Five standard errors of the sample mean and of the sample variance.
        np.testing.assert_array_less(
            np.abs(sample_mean - mean[b]), 5.0 * np.sqrt(variance[b] / NUM_DRAWS)
        )
        np.testing.assert_array_less(
            np.abs(sample_var - variance[b]), 5.0 * np.sqrt((fourth - sample_var**2) / NUM_DRAWS)
        )
        # Correlations too (the full-covariance posterior's mixtures have them).
        np.testing.assert_allclose(
            np.corrcoef(ours[b].T)[0, 1], np.corrcoef(theirs[b].T)[0, 1], atol=0.1
        )
        for weights in (direction, np.eye(LATENT_DIM)[0], np.eye(LATENT_DIM)[1]):
            result = stats.ks_2samp(ours[b] @ weights, theirs[b] @ weights)
            assert result.pvalue > 1e-3, (weights, result)


@pytest.mark.parametrize("case", list(PRIOR_CASES))
def test_mixed_bfloat16_keeps_draws_and_densities_float32(mixed_bfloat16, case):
    _, prior = bound_prior(case)
    condition = condition_for(prior)
    z = prior.sample(5, seed=0, condition=condition)
    assert z.dtype == tf.float32
    log_prob = prior.prior(condition).log_prob(tf.reshape(z, [5, -1, LATENT_DIM]))
    assert log_prob.dtype == tf.float32
    assert np.all(np.isfinite(log_prob))


def test_sample_without_condition_is_refused_by_the_conditional_prior():
    _, prior = bound_prior("learned")
    with pytest.raises(ValueError, match=r"Expected a condition for .*Received: condition=None"):
        prior.sample(3, seed=0)


# -- choose_components ---------------------------------------------------------


@pytest.mark.parametrize(
    "weights",
    [
        [1.0],
        [0.25, 0.5, 0.125, 0.125],
        [0.05, 0.6, 0.0, 0.3, 0.05],
        np.random.default_rng(0).dirichlet(np.ones(7)),
    ],
    ids=["one", "dyadic", "with_zero", "dirichlet"],
)
def test_choose_components_is_numpy_inverse_cdf(weights):
    weights = np.asarray(weights, np.float32)
    uniform = ref_uniform(3, 2000).astype(np.float32).reshape(40, 50)
    chosen = choose_components(tf.constant(weights), tf.constant(uniform)).numpy()
    assert chosen.shape == (40, 50, len(weights))
    assert set(np.unique(chosen)) <= {0.0, 1.0}
    np.testing.assert_array_equal(chosen.sum(-1), 1.0)
    np.testing.assert_array_equal(
        chosen.argmax(-1), inverse_cdf(weights.astype(np.float64), uniform)
    )


def test_choose_components_at_the_boundaries():
    # Exact binary fractions: the cumulative weights 0.25, 0.75, 0.875, 1 are exact.
    weights = tf.constant([0.25, 0.5, 0.125, 0.125])
    uniform = np.array([2.0**-24, 0.25 - 2.0**-24, 0.25, 0.75, 0.875, 1.0 - 2.0**-24], np.float32)
    chosen = choose_components(weights, tf.constant(uniform)).numpy().argmax(-1)
    np.testing.assert_array_equal(chosen, [0, 0, 1, 2, 3, 3])
    np.testing.assert_array_equal(chosen, inverse_cdf([0.25, 0.5, 0.125, 0.125], uniform))


def test_choose_components_frequencies_match_the_weights():
    weights = np.array([0.1, 0.45, 0.05, 0.3, 0.1], np.float32)
    num = 20000
    uniform = tf.constant(ref_uniform(21, num).astype(np.float32))
    counts = choose_components(tf.constant(weights), uniform).numpy().sum(0)
    assert counts.sum() == num
    result = stats.chisquare(counts, num * weights.astype(np.float64))
    assert result.pvalue > 1e-3, (counts, result)
    # The test can tell: the weights in reverse order are clearly rejected.
    assert stats.chisquare(counts, num * weights[::-1].astype(np.float64)).pvalue < 1e-6


def test_mixture_draws_choose_components_with_the_mixture_weights():
    _, prior = bound_prior("mog")
    num = 6000
    z = prior.sample(num, seed=13, temperature=0.0).numpy()
    chosen = np.abs(z[:, None, :] - prior.means.numpy()[None]).max(-1).argmin(-1)
    counts = np.bincount(chosen, minlength=prior.num_components)
    weights = special.softmax(prior.logits.numpy().astype(np.float64))
    assert stats.chisquare(counts, num * weights).pvalue > 1e-3, (counts, weights)


# -- Densities -----------------------------------------------------------------


def test_mixture_of_gaussians_log_prob_is_numpy_log_sum_exp():
    model, prior = bound_prior("mog")
    weights, locs, trils = components(model, prior)
    scales = np.diagonal(trils, axis1=-2, axis2=-1)
    z = np.random.default_rng(4).normal(scale=2.0, size=(2, 6, LATENT_DIM))
    per_component = stats.norm.logpdf(z[..., None, :], locs, scales).sum(-1)  # [2, 6, K]
    expected = special.logsumexp(per_component + np.log(weights), axis=-1)
    actual = prior.prior().log_prob(z.astype("float32"))
    assert actual.shape == (2, 6)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("posterior", ["diagonal", "full"])
def test_vamp_prior_log_prob_is_log_mean_exp_of_encoded_pseudo_inputs(posterior):
    keras.utils.set_random_seed(0)
    model = make_model(VampPrior(num_pseudo_inputs=5), posterior)
    prior = model.prior_layer
    spread_out(prior, np.random.default_rng(0))
    clipped = np.clip(prior.pseudo_inputs.numpy(), 0.0, 1.0)
    z = np.random.default_rng(5).normal(size=(7, LATENT_DIM))

    def reference(inputs):
        # The networks themselves: `encode` refuses pseudo-inputs outside [0, 1].
        q = model.posterior_layer(model.encoder_features(inputs, None))
        if posterior == "diagonal":
            loc, scale = q.distribution.loc.numpy(), q.distribution.scale.numpy()
            per_component = stats.norm.logpdf(z[:, None, :], loc, scale).sum(-1)
        else:
            loc, tril = q.loc.numpy(), q.scale.to_dense().numpy().astype(np.float64)
            per_component = np.stack(
                [
                    stats.multivariate_normal(loc[k], tril[k] @ tril[k].T).logpdf(z)
                    for k in range(len(loc))
                ],
                axis=-1,
            )
        return special.logsumexp(per_component, axis=-1) - np.log(len(inputs))

    actual = prior.prior().log_prob(z.astype("float32"))
    np.testing.assert_allclose(actual, reference(clipped), rtol=1e-5, atol=1e-5)
    # The clipping matters here: the unclipped pseudo-inputs give another density.
    assert not np.allclose(actual, reference(prior.pseudo_inputs.numpy()), rtol=1e-3)


def mixture_terms(make, components_of, values, dtype):
    """The log_prob at z of `make(mixing, components_of(*params))`, and its gradients.

    `values` are numpy arrays (logits, the components' parameters, z), taken
    in `dtype`; the gradients are of a weighted sum of the log-densities.
    """
    params = [tf.constant(v.astype(dtype)) for v in values]
    with tf.GradientTape() as tape:
        tape.watch(params)
        logits, *component_params, z = params
        mixing = tfp.distributions.Categorical(logits=logits)
        log_prob = make(mixing, components_of(*component_params)).log_prob(z)
        weights = tf.reshape(
            tf.linspace(tf.constant(0.5, dtype), 1.5, tf.size(log_prob)), tf.shape(log_prob)
        )
        total = tf.reduce_sum(log_prob * weights)
    return log_prob, tape.gradient(total, params)


def assert_float32_mixture_is_tfp_mixture_in_float64(make, components_of, values, names):
    fast, fast_grads = mixture_terms(make, components_of, values, "float32")
    exact, exact_grads = mixture_terms(
        tfp.distributions.MixtureSameFamily, components_of, values, "float64"
    )
    assert fast.dtype == tf.float32 and fast.shape == values[-1].shape[:-1]
    np.testing.assert_allclose(fast, exact, rtol=1e-6)
    for name, grad, reference in zip(names, fast_grads, exact_grads, strict=True):
        np.testing.assert_allclose(
            grad, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max(), err_msg=name
        )


def diagonal_components(loc, scale):
    return tfp.distributions.Independent(
        tfp.distributions.Normal(loc, scale), reinterpreted_batch_ndims=1
    )


@pytest.mark.parametrize("z_shape", [(5,), (4, 5), (2, 3, 5)])
def test_diagonal_gaussian_mixture_is_tfp_mixture_in_float64(z_shape):
    # Two matrix products instead of the [N, K, d] differences, in float64:
    # values and gradients as TFP's direct form computed in float64, for
    # scales down to 1e-3, z by a narrow component and z far from all.
    rng = np.random.default_rng(6)
    logits = rng.normal(size=7).astype("float32")
    loc = rng.normal(scale=3.0, size=(7, 5)).astype("float32")
    scale = np.exp(rng.uniform(np.log(1e-3), np.log(3.0), size=(7, 5))).astype("float32")
    z = rng.normal(scale=10.0, size=z_shape).astype("float32")
    # The first z sits by a narrow component, where the expansion cancels most.
    z.reshape(-1, 5)[0] = loc[0] + 1e-3 * scale[0]
    assert_float32_mixture_is_tfp_mixture_in_float64(
        DiagonalGaussianMixture,
        diagonal_components,
        (logits, loc, scale, z),
        ["logits", "loc", "scale", "z"],
    )


@pytest.mark.parametrize("z_shape", [(5,), (4, 5), (2, 3, 5)])
def test_full_covariance_gaussian_mixture_is_tfp_mixture_in_float64(z_shape, monkeypatch):
    # Two rows per solve, so the larger z are solved in several chunks (and
    # padded): values and gradients as TFP's mixture computed in float64.
    monkeypatch.setattr(FullCovarianceGaussianMixture, "SOLVE_ELEMENTS", 2 * 7 * 5)
    rng = np.random.default_rng(7)
    logits = rng.normal(size=7).astype("float32")
    loc = rng.normal(scale=3.0, size=(7, 5)).astype("float32")
    tril = np.tril(rng.normal(scale=0.5, size=(7, 5, 5)))
    tril[:, range(5), range(5)] = np.exp(rng.uniform(np.log(0.05), np.log(3.0), size=(7, 5)))
    z = rng.normal(scale=5.0, size=z_shape).astype("float32")
    assert_float32_mixture_is_tfp_mixture_in_float64(
        FullCovarianceGaussianMixture,
        tfp.distributions.MultivariateNormalTriL,
        (logits, loc, tril.astype("float32"), z),
        ["logits", "loc", "scale_tril", "z"],
    )


def test_full_covariance_gaussian_mixture_holds_ill_conditioned_components():
    # Two components with L of diagonal 0.04 and 1.4 below it (condition
    # number past 1e20, as trained full-covariance posteriors reach) and a
    # standard one: in float32 the solve overflows and TFP's mixture gives
    # NaN; in float64 the log-density is the scipy reference and the
    # gradients are finite.
    d = 50
    bad = np.tril(np.full((d, d), 1.4))
    np.fill_diagonal(bad, 0.04)
    tril = np.stack([bad, bad, np.eye(d)]).astype("float32")
    loc = np.zeros((3, d), "float32")
    logits = np.zeros(3, "float32")
    z = np.random.default_rng(8).normal(size=(4, d)).astype("float32")
    values, full = (logits, loc, tril, z), tfp.distributions.MultivariateNormalTriL
    fast, grads = mixture_terms(FullCovarianceGaussianMixture, full, values, "float32")
    tfp_log_prob, _ = mixture_terms(tfp.distributions.MixtureSameFamily, full, values, "float32")
    assert np.isnan(tfp_log_prob).all()
    components = []
    for k in range(3):
        solved = scipy.linalg.solve_triangular(tril[k].astype(np.float64), z.T, lower=True)
        log_det = np.log(np.diag(tril[k]).astype(np.float64)).sum()
        components.append(-0.5 * (solved**2).sum(0) - log_det - 0.5 * d * np.log(2 * np.pi))
    expected = scipy.special.logsumexp(np.stack(components), axis=0) - np.log(3)
    np.testing.assert_allclose(fast, expected, rtol=1e-6)
    assert all(np.isfinite(grad).all() for grad in grads)


def student_components(loc, scale):
    return tfp.distributions.Independent(
        tfp.distributions.StudentT(3.0, loc, scale), reinterpreted_batch_ndims=1
    )


@pytest.mark.parametrize("z_shape", [(5,), (4, 5), (2, 3, 5)])
def test_mixture_of_other_components_is_tfp_mixture(z_shape):
    rng = np.random.default_rng(9)
    values = (
        rng.normal(size=7),
        rng.normal(scale=3.0, size=(7, 5)),
        np.exp(rng.uniform(np.log(0.1), np.log(3.0), size=(7, 5))),
        rng.normal(scale=5.0, size=z_shape),
    )
    ours, our_grads = mixture_terms(Mixture, student_components, values, "float32")
    tfps, tfp_grads = mixture_terms(
        tfp.distributions.MixtureSameFamily, student_components, values, "float32"
    )
    assert ours.shape == z_shape[:-1]
    np.testing.assert_allclose(ours, tfps, rtol=1e-6)
    for name, grad, reference in zip(
        ["logits", "loc", "scale", "z"], our_grads, tfp_grads, strict=True
    ):
        np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-7, err_msg=name)


def test_mixture_where_no_component_has_density_is_minus_inf_with_zero_gradients():
    # Components out of float32's reach of z: every log-density is -inf.
    # TFP's log-sum-exp then has NaN gradients, which a zero weight on the
    # log-density (the KL's under beta = 0) would spread to every weight.
    loc = np.stack([np.full(5, 1e30), np.full(5, -1e30)])
    values = (np.zeros(2), loc, np.ones((2, 5)), np.zeros((3, 5)))
    ours, grads = mixture_terms(Mixture, diagonal_components, values, "float32")
    _, tfp_grads = mixture_terms(
        tfp.distributions.MixtureSameFamily, diagonal_components, values, "float32"
    )
    assert np.all(np.isneginf(ours))
    assert all(np.all(grad == 0) for grad in grads)
    assert any(np.isnan(grad).any() for grad in tfp_grads)


def test_mixture_takes_the_matrix_forms_for_gaussians_only():
    tfd = tfp.distributions
    logits, loc = tf.zeros([3]), tf.zeros([3, 2])
    diagonal = tfd.Independent(tfd.Normal(loc, 1.0), reinterpreted_batch_ndims=1)
    assert type(mixture(logits, diagonal)) is DiagonalGaussianMixture
    full = tfd.MultivariateNormalTriL(loc, tf.eye(2, batch_shape=[3]))
    assert type(mixture(logits, full)) is FullCovarianceGaussianMixture
    student = tfd.Independent(tfd.StudentT(3.0, loc, 1.0), reinterpreted_batch_ndims=1)
    assert type(mixture(logits, student)) is Mixture
    for case, expected in [
        ("mog", DiagonalGaussianMixture),
        ("vamp", DiagonalGaussianMixture),
        ("vamp_full", FullCovarianceGaussianMixture),
    ]:
        assert type(bound_prior(case)[1].prior()) is expected, case


@pytest.mark.xla  # the real "auto", which the suite otherwise resolves to graph mode
@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a CPU-only rule")
def test_auto_jit_compile_leaves_xla_off_for_a_vampprior_of_full_covariance_posteriors():
    # Its float64 mixture density made the step about 2x slower under XLA;
    # the full-covariance posterior under other priors and the VampPrior over
    # other posteriors keep XLA.
    chosen = {}
    for prior, posterior in [("vamp", "full"), ("vamp", "diagonal"), ("standard", "full")]:
        model = make_vae(VampPrior(3) if prior == "vamp" else prior, posterior)
        model.compile()
        chosen[prior, posterior] = model.jit_compile
    assert chosen == {
        ("vamp", "full"): False,
        ("vamp", "diagonal"): True,
        ("standard", "full"): True,
    }
    model = make_vae(VampPrior(3), "full")
    model.compile(jit_compile=True)
    assert model.jit_compile is True


# -- The registry and bad input --------------------------------------------------


def test_get():
    assert type(prior_registry.get(None)) is StandardNormal
    for name, cls in [
        ("standard", StandardNormal),
        ("mog", MixtureOfGaussians),
        ("vamp", VampPrior),
        ("learned", ConditionalGaussian),
    ]:
        assert type(prior_registry.get(name)) is cls
    prior = MixtureOfGaussians(2)
    assert prior_registry.get(prior) is prior


@pytest.mark.parametrize("name", ["gaussian", "", 3, StandardNormal], ids=repr)
def test_get_refuses_unknown_names(name):
    with pytest.raises(
        ValueError,
        match=r"Expected prior to be one of \('standard', 'mog', 'vamp', 'learned'\) or a "
        r"keras_vae.priors.Prior. Received: prior=",
    ):
        prior_registry.get(name)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: MixtureOfGaussians(num_components=0),
            r"Expected num_components to be a positive integer. Received: num_components=0",
        ),
        (
            lambda: MixtureOfGaussians(num_components=2.0),
            r"Expected num_components to be a positive integer. Received: num_components=2.0",
        ),
        (
            lambda: VampPrior(num_pseudo_inputs=0),
            r"Expected num_pseudo_inputs to be a positive integer. "
            r"Received: num_pseudo_inputs=0",
        ),
        (
            lambda: ConditionalGaussian(hidden_units=0),
            r"Expected hidden_units to be a positive integer or a sequence of positive "
            r"integers. Received: hidden_units=0",
        ),
        (
            lambda: StandardNormal(latent_dim=-1),
            r"Expected latent_dim to be a positive integer. Received: latent_dim=-1",
        ),
    ],
    ids=["mog_zero", "mog_float", "vamp_zero", "learned_zero_units", "latent_dim_negative"],
)
def test_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("case", ["standard", "mog", "vamp", "learned"])
def test_rejects_latent_dim_that_differs_from_the_model(case):
    cls, kwargs, _ = PRIOR_CASES[case]
    with pytest.raises(
        ValueError,
        match=rf"Expected a prior over the model's latent_dim={LATENT_DIM} latents. "
        rf"Received: {cls.__name__} with latent_dim=3",
    ):
        make_model(cls(latent_dim=3, **kwargs))


def test_vamp_prior_refuses_a_conditional_model():
    with pytest.raises(
        ValueError,
        match=r"Expected an unconditional model \(a VAE\) for VampPrior.*"
        r"Received: model=ConditionalVAE",
    ):
        make_cvae(VampPrior(num_pseudo_inputs=2))


def test_conditional_gaussian_refuses_an_unconditional_model():
    with pytest.raises(
        ValueError,
        match=r"Expected a conditional model \(a ConditionalVAE\) for ConditionalGaussian.*"
        r"Received: model=VAE",
    ):
        make_vae(ConditionalGaussian(hidden_units=(8,)))


def test_vamp_prior_on_its_own_cannot_be_built():
    with pytest.raises(ValueError, match=r"Expected a VampPrior inside a model.*Received:"):
        VampPrior(num_pseudo_inputs=2, latent_dim=LATENT_DIM).build()


def test_conditional_gaussian_needs_a_condition_shape():
    prior = ConditionalGaussian(hidden_units=(4,), latent_dim=LATENT_DIM)
    with pytest.raises(ValueError, match=r"Expected a condition shape.*condition_shape=None"):
        prior.build()


@pytest.mark.parametrize(
    "use",
    [
        lambda: StandardNormal().sample(2, seed=0),
        lambda: MixtureOfGaussians(3).build(),
        lambda: ConditionalGaussian(hidden_units=(4,)).build((5,)),
    ],
    ids=["standard", "mog", "conditional"],
)
def test_a_prior_used_before_it_knows_its_latent_dim_says_so(use):
    with pytest.raises(ValueError, match=r"Expected \w+ to know its number of latents.*"
                       r"Received: latent_dim=None"):  # fmt: skip
        use()


def test_a_conditional_gaussian_given_its_latent_dim_builds_and_samples_on_its_own():
    prior = ConditionalGaussian(hidden_units=(4,), latent_dim=LATENT_DIM)
    prior.build((5,))
    condition = tf.random.normal([2, 5])
    draws = prior.sample(3, seed=0, condition=condition)
    assert draws.shape == (2, 3, LATENT_DIM)
    # Temperature 0 draws the mean P(z|c) gives.
    np.testing.assert_allclose(
        prior.sample(3, seed=0, temperature=0.0, condition=condition),
        np.broadcast_to(prior.prior(condition).mean()[:, None], (2, 3, LATENT_DIM)),
    )


@pytest.mark.parametrize("first", ["prior", "sample"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: MixtureOfGaussians(3, latent_dim=LATENT_DIM),
        lambda: ConditionalGaussian(hidden_units=(4,), latent_dim=LATENT_DIM),
    ],
    ids=["mog", "conditional"],
)
def test_a_prior_on_its_own_builds_on_its_first_use(make, first):
    # As Keras builds a layer on its first call; the build is the explicit one.
    condition = tf.random.normal([2, 5]) if make().conditional else None
    lazy = make()
    if first == "prior":
        lazy.prior(condition)
    else:
        lazy.sample(3, seed=0, condition=condition)
    assert lazy.built
    built = make()
    built.build(None if condition is None else (5,))
    built.set_weights(lazy.get_weights())
    np.testing.assert_array_equal(
        lazy.sample(3, seed=1, condition=condition), built.sample(3, seed=1, condition=condition)
    )


def test_a_vamp_prior_of_a_model_that_does_not_know_its_data_shape_says_so():
    model = VAE(
        mlp_encoder(DATA_SHAPE, hidden_units=(8,)),
        mlp_decoder(LATENT_DIM, DATA_SHAPE, hidden_units=(8,)),
        LATENT_DIM,
        prior="vamp",
    )  # no likelihood: the data's shape comes with the first data
    with pytest.raises(ValueError, match=r"^Expected a model that knows its data's shape.*"
                       r"Received: a model without a likelihood yet$"):  # fmt: skip
        model.prior()
    model(np.zeros((2, *DATA_SHAPE), "float32"))
    assert model.prior().event_shape == [LATENT_DIM]
