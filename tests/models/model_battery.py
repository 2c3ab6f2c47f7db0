"""The property battery every model of the VAE family is run through.

A test file subclasses `ModelBattery` and names its cases: how to make each
model (unbuilt) and its tiny data. The checks live here, so a `VAE` with any
prior and posterior and a `ConditionalVAE` with any condition are held to the
same contract, with `condition=None` for an unconditional model:

- `encode(x, condition)` -> Q(z|x[, c]), `decode(z, condition)` -> P(x|z[, c]),
  `prior(condition)` -> P(z[|c]), with their batch and event shapes;
- `sample_latent` and `sample`: seeded, reproducible, following `prior`, and
  at temperature 0 the (chosen component's) mean;
- `reconstruct`, `predict`, `get_config` -> `from_config`, `.keras` files;
- one `fit` step, and the terms `compute_terms` and `evaluate` report.

Every case runs with its weights moved away from their initial values (see
`move_weights`), so a save, a clone or a sampler that only matches the
initial state fails. The references never go through the objective's code:
the ELBO is rebuilt from the contract's distributions at the training step's
own noise (documented in `VAE.sample_posterior`: Philox normals seeded by the
sampler state, mapped by `posterior_layer.reparameterize`), Gaussian KLs and
draws are numpy closed forms, a flow's draws are scored through their base
points, and the importance-weighted bound is scipy's `logsumexp`.
"""

import dataclasses
import json
import os
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.special  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

tfd = tfp.distributions

TERMS = ("loss", "elbo", "reconstruction", "kl")
# (objective, num_samples, beta): the single-sample ELBO, the K-sample ELBO and
# the importance-weighted bound (which takes no KL weight).
OBJECTIVES = {
    "elbo": ("elbo", 1, 0.5),
    "elbo_k3": ("elbo", 3, 0.5),
    "iwae_k3": ("iwae", 3, 1.0),
}


@dataclasses.dataclass(frozen=True)
class ModelCase:
    """One model of the family and its data.

    Attributes:
        make: callable. Returns the model, unbuilt.
        data: callable. Returns numpy `(x, condition)`: the modelled data
            `[B, *event_shape]` and the conditions `[B, *condition_shape]`
            (`None` for an unconditional model).
        kl_estimator: str. `"analytic"` or `"monte_carlo"`: what the built
            model must report, and so which KL the reference computes.
        gaussian_draws: bool. Whether a prior draw at temperature t is
            `mean + t * spread * noise` of a Gaussian (component), which
            holds unless the components are flows.
    """

    make: Callable
    data: Callable
    kl_estimator: str
    gaussian_draws: bool = True


def applies_to(predicate):
    """Runs the decorated battery check only on the cases for which `predicate(case)` holds."""

    def decorate(test):
        test.applies_to = predicate
        return test

    return decorate


# -- Helpers over the contract ---------------------------------------------------


def keras_data(x, condition):
    """What `fit` and `evaluate` take: `(x,)`, or Keras's `(x, y)` = `(condition, target)`."""
    return (x,) if condition is None else (condition, x)


def build(model, x, condition):
    """Builds `model` for its data: a VAE on x's shape, a CVAE on the condition's."""
    data = x if condition is None else condition
    model.build((None, *data.shape[1:]))
    return model


def move_weights(model, seed=0):
    """Moves every weight away from its initial value: noise on the trainable ones, a
    `beta` of 0.5 and a sampler state 5 draws on."""
    rng = np.random.default_rng(seed)
    for weight in model.trainable_weights:
        weight.assign(weight + rng.normal(0.0, 0.3, weight.shape).astype("float32"))
    model.beta = 0.5
    for _ in range(5):
        model.next_seed()


def as_json(config):
    """`config` as a `.keras` file stores it (JSON: tuples become lists)."""
    return json.loads(json.dumps(config))


def covariance_or_none(distribution):
    """The covariance of a Gaussian as a float64 array `[..., d, d]`, else `None`.

    TFP gives no `covariance` for an `Independent` Normal: its variances make
    the diagonal.
    """
    if isinstance(distribution, tfd.Independent) and isinstance(
        distribution.distribution, tfd.Normal
    ):
        variance = np.asarray(distribution.variance(), np.float64)
        return variance[..., None, :] * np.eye(variance.shape[-1])
    try:
        return np.asarray(distribution.covariance(), np.float64)
    except NotImplementedError:
        return None


def gaussian_kl(mean_q, cov_q, mean_p, cov_p):
    """KL(N(mean_q, cov_q) || N(mean_p, cov_p)) in numpy float64, broadcast over leading axes."""
    mean_q, mean_p = np.asarray(mean_q, np.float64), np.asarray(mean_p, np.float64)
    inverse_p = np.linalg.inv(cov_p)
    diff = mean_p - mean_q
    return 0.5 * (
        np.trace(inverse_p @ cov_q, axis1=-2, axis2=-1)
        + np.einsum("...i,...ij,...j->...", diff, inverse_p, diff)
        - mean_q.shape[-1]
        + np.linalg.slogdet(cov_p)[1]
        - np.linalg.slogdet(cov_q)[1]
    )


def reference_terms(model, x, condition, state, objective="elbo", num_samples=1, beta=1.0):
    """The terms `compute_terms` must report, rebuilt from the contract's distributions.

    The noise is what the training step draws from the sampler state
    `state`: Philox normals `[B, d]` (or `[K, B, d]` for K samples) mapped by
    `posterior_layer.reparameterize`. For a Gaussian posterior those z are
    first checked against numpy's `mean + cholesky(cov) @ eps`. Each z is
    decoded on its own with the batch's conditions; the KL is the numpy
    closed form for an analytic model and the mean of log q(z) - log p(z)
    otherwise.

    Returns:
        A dict of per-example numpy arrays: `loss`, `elbo`, `reconstruction`, `kl`.
    """
    q, p = model.encode(x, condition), model.prior(condition)
    batch, d = len(x), model.latent_dim
    shape = [batch, d] if (objective, num_samples) == ("elbo", 1) else [num_samples, batch, d]
    eps = tf.random.stateless_normal(shape, state, alg="philox")
    z = np.reshape(model.posterior_layer.reparameterize(q, eps), (num_samples, batch, d))
    eps = np.reshape(eps, (num_samples, batch, d))
    cov_q = covariance_or_none(q)
    if cov_q is not None:
        chol = np.linalg.cholesky(cov_q)
        expected = np.asarray(q.mean()) + np.einsum("bij,kbj->kbi", chol, eps.astype(np.float64))
        np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)
        log_q = np.stack([q.log_prob(z_k) for z_k in z]).astype(np.float64)
    else:
        # A flow: its draws are the flow's images of base draws, scored through
        # them (inverting the flow at z is the ill-conditioned way round).
        base, flow = q.distribution, q.bijector
        z0 = [base.mean() + base.stddev() * eps_k for eps_k in eps]
        np.testing.assert_allclose(z, np.stack([flow.forward(z0_k) for z0_k in z0]), atol=1e-5)
        log_q = np.stack(
            [base.log_prob(z0_k) - flow.forward_log_det_jacobian(z0_k, 1) for z0_k in z0]
        ).astype(np.float64)
    log_likelihood = np.stack([model.decode(z_k, condition).log_prob(x) for z_k in z])
    log_p = np.stack([p.log_prob(z_k) for z_k in z]).astype(np.float64)
    if model.kl_estimator == "analytic":
        kl = gaussian_kl(q.mean(), cov_q, p.mean(), covariance_or_none(p))
    else:
        kl = np.mean(log_q - log_p, axis=0)
    reconstruction = np.mean(log_likelihood, axis=0)
    if objective == "iwae":
        log_weights = log_likelihood + log_p - log_q
        loss = -(scipy.special.logsumexp(log_weights, axis=0) - np.log(num_samples))
    else:
        loss = beta * kl - reconstruction
    return {"loss": loss, "elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}


def component_centres(model, prior):
    """The points a temperature-0 draw of `prior` may take, `[..., K, d]` (K = 1 if no mixture).

    A Gaussian (component) gives its mean; a flow component (a VampPrior over
    IAF posteriors) gives the posterior layer's `point`, the flow's image of
    its base mean.
    """
    # TFP's MixtureSameFamily is a different class over flows (not composite tensors).
    if hasattr(prior, "components_distribution"):
        components = prior.components_distribution
        try:
            return np.asarray(components.mean())
        except NotImplementedError:
            return np.asarray(model.posterior_layer.point(components))
    return np.asarray(prior.mean())[..., None, :]


def decoded_values(model, z, condition, draws):
    """What `sample` shows for latents `z` `[n, d]` (or `[B, n, d]` given `B` conditions):
    the likelihood's mean, or for a likelihood without one (autoregressive) its
    expected values along the data drawn with the same seed, `draws`."""
    z = np.asarray(z)
    flat = np.reshape(z, (-1, model.latent_dim))
    repeated = None if condition is None else np.repeat(condition, z.shape[-2], axis=0)
    likelihood = model.decode(flat, repeated)
    if model.likelihood.closed_form_mean:
        values = likelihood.mean()
    else:
        flat_draws = np.reshape(draws, (-1, *model.event_shape))
        values = model.likelihood.expected_value(likelihood, flat_draws)
    return np.reshape(values, (*z.shape[:-1], *model.event_shape))


def assert_same_model_outputs(model, other, x, condition):
    """`other` encodes, decodes, reconstructs, scores and samples as `model` does."""
    point = model.posterior_layer.point(model.encode(x, condition))
    np.testing.assert_allclose(
        other.posterior_layer.point(other.encode(x, condition)), point, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        other.reconstruct(x, condition), model.reconstruct(x, condition), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        other.prior(condition).log_prob(point),
        model.prior(condition).log_prob(point),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        other.sample(3, condition, seed=1), model.sample(3, condition, seed=1), atol=1e-6
    )
    np.testing.assert_array_equal(other.sampler_state.numpy(), model.sampler_state.numpy())
    assert other.beta == model.beta


class ModelBattery:
    """Checks shared by every model of the family; subclass and set `cases`.

    `cases` maps an id to a `ModelCase`. A check decorated with `applies_to`
    runs on the cases its predicate selects. Checks that only read a model
    share one per case (`model`), which they may compile, and change settings
    of only if they restore them; the one that trains gets its own
    (`fresh_model`).
    """

    cases = {}

    def pytest_generate_tests(self, metafunc):
        if "case" in metafunc.fixturenames:
            predicate = getattr(metafunc.function, "applies_to", lambda case: True)
            chosen = {name: case for name, case in self.cases.items() if predicate(case)}
            metafunc.parametrize("case", list(chosen.values()), ids=list(chosen), scope="class")

    @pytest.fixture(scope="class")
    def data(self, case):
        return case.data()

    def make_model(self, case, data):
        keras.utils.set_random_seed(0)
        model = build(case.make(), *data)
        move_weights(model)
        return model

    @pytest.fixture(scope="class")
    def model(self, case, data):
        return self.make_model(case, data)

    @pytest.fixture
    def fresh_model(self, case, data):
        return self.make_model(case, data)

    # -- The contract's shapes -------------------------------------------------

    def test_contract_shapes(self, case, model, data):
        x, condition = data
        batch, d = len(x), model.latent_dim
        assert model.conditional is (condition is not None)
        assert model.event_shape == x.shape[1:]
        assert model.condition_shape == (None if condition is None else condition.shape[1:])
        assert model.kl_estimator == case.kl_estimator

        posterior = model.encode(x, condition)
        assert (posterior.batch_shape, posterior.event_shape) == ([batch], [d])
        point = model.posterior_layer.point(posterior)
        assert point.shape == (batch, d)
        likelihood = model.decode(point, condition)
        assert (likelihood.batch_shape, likelihood.event_shape) == ([batch], x.shape[1:])
        prior = model.prior(condition)
        assert prior.event_shape == [d]
        assert prior.batch_shape == ([batch] if model.prior_layer.conditional else [])

        leading = (5,) if condition is None else (batch, 5)
        assert model.sample_latent(5, seed=0, condition=condition).shape == (*leading, d)
        assert model.sample(5, condition, seed=0).shape == (*leading, *x.shape[1:])
        assert model.reconstruct(x, condition).shape == x.shape

    @applies_to(lambda case: case.data()[1] is not None)
    def test_conditional_prior_and_decoder_read_the_condition(self, model, data):
        x, condition = data
        other = condition[::-1]  # the same conditions, each paired with another example
        assert not np.allclose(condition, other)
        z = model.posterior_layer.point(model.encode(x, condition))
        assert not np.allclose(model.decode(z, condition).mean(), model.decode(z, other).mean())
        if model.prior_layer.conditional:
            assert not np.allclose(model.prior(condition).mean(), model.prior(other).mean())

    def test_reconstruct_and_predict(self, model, data):
        x, condition = data
        posterior = model.encode(x, condition)
        point = model.posterior_layer.point(posterior)
        if model.posterior_layer.closed_form_mean:
            np.testing.assert_allclose(point, posterior.mean(), rtol=1e-6, atol=1e-6)
        likelihood = model.decode(point, condition)
        if model.likelihood.closed_form_mean:
            expected = likelihood.mean()
        else:  # an autoregressive likelihood: its conditionals at the input's own pixels
            expected = model.likelihood.expected_value(likelihood, x)
        np.testing.assert_allclose(model.reconstruct(x, condition), expected, rtol=1e-5, atol=1e-6)
        model.compile(steps_per_execution=1, jit_compile=False)
        if condition is None:
            # The reconstruction, also through Keras.
            np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
        else:
            # A CVAE's typical output: the decoded mean of P(z|c).
            z = np.broadcast_to(model.prior(condition).mean(), (len(x), model.latent_dim))
            typical = model.decode(z, condition).mean()
            np.testing.assert_allclose(
                model.predict(condition, verbose=0), typical, rtol=1e-5, atol=1e-6
            )

    # -- Serialization ---------------------------------------------------------

    def test_config_round_trip(self, model, data):
        config = model.get_config()
        clone = type(model).from_config(config)
        build(clone, *data)
        assert clone.get_config() == config
        assert type(clone.prior_layer) is type(model.prior_layer)
        assert type(clone.posterior_layer) is type(model.posterior_layer)
        clone.set_weights(model.get_weights())
        assert_same_model_outputs(model, clone, *data)

    # Keras warns when the shared model, compiled by other checks but never trained,
    # is loaded: its saved optimizer was never built.
    @pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
    def test_save_load(self, model, data, tmp_path):
        path = tmp_path / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded) is type(model)
        assert as_json(loaded.get_config()) == as_json(model.get_config())
        assert loaded.kl_estimator == model.kl_estimator
        assert_same_model_outputs(model, loaded, *data)

    # -- Training --------------------------------------------------------------

    def test_fit_step_changes_every_weight(self, fresh_model, data):
        # Eagerly: `evaluate` below traces every case's objective in a graph, and
        # test_vae.py runs the compiled training step.
        model = fresh_model
        model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
        x, condition = data
        before = [weight.numpy().copy() for weight in model.trainable_weights]
        history = model.fit(*keras_data(x, condition), batch_size=len(x), verbose=0).history
        assert sorted(history) == sorted(TERMS)
        assert all(np.isfinite(values).all() for values in history.values()), history
        for old, new in zip(before, model.trainable_weights, strict=True):
            assert not np.array_equal(old, new.numpy()), new.path

    @pytest.mark.parametrize("objective", list(OBJECTIVES))
    def test_compute_terms_match_the_contract(self, model, data, objective):
        objective, num_samples, beta = OBJECTIVES[objective]
        x, condition = data
        state = model.sampler_state.numpy().copy()
        settings = model.beta, model.objective, model.num_samples
        model.beta, model.objective, model.num_samples = beta, objective, num_samples
        try:
            terms = model.compute_terms(*keras_data(x, condition), training=True)
        finally:
            model.objective, model.num_samples = settings[1:]
            model.beta = settings[0]
        # One draw of the training noise per call.
        np.testing.assert_array_equal(model.sampler_state.numpy(), state + [0, 1])
        expected = reference_terms(model, x, condition, state, objective, num_samples, beta)
        for name in TERMS:
            assert terms[name].shape == (len(x),), name
            np.testing.assert_allclose(terms[name], expected[name], rtol=1e-4, atol=2e-4)

    def test_evaluate_reports_the_contract_elbo(self, model, data):
        # In a compiled test step, over one batch.
        model.compile(steps_per_execution=1, jit_compile=False)
        x, condition = data
        state = model.sampler_state.numpy().copy()
        logs = model.evaluate(
            *keras_data(x, condition), batch_size=len(x), verbose=0, return_dict=True
        )
        # The first draw of the evaluation stream, which leaves the training one alone.
        np.testing.assert_array_equal(model.sampler_state.numpy(), state)
        expected = reference_terms(model, x, condition, [state[0], -1], beta=model.beta)
        for name in TERMS:
            np.testing.assert_allclose(logs[name], expected[name].mean(), rtol=1e-4, atol=2e-4)

    @applies_to(lambda case: case.kl_estimator == "analytic")
    def test_analytic_kl_matches_a_monte_carlo_estimate(self, model, data):
        x, condition = data
        kl = model.compute_terms(*keras_data(x, condition))["kl"].numpy()
        posterior, prior = model.encode(x, condition), model.prior(condition)
        z = posterior.sample(20000, seed=3)
        log_ratio = (posterior.log_prob(z) - prior.log_prob(z)).numpy().astype(np.float64)
        error = log_ratio.std(axis=0) / np.sqrt(len(log_ratio))
        assert np.all(np.abs(log_ratio.mean(axis=0) - kl) < 5 * error + 1e-4), (kl, log_ratio)

    # -- Sampling --------------------------------------------------------------

    def test_sampling_is_seeded_and_decodes_the_prior_draws(self, model, data):
        x, condition = data
        event_axes = x.ndim - 1
        a = model.sample(4, condition, seed=7)
        np.testing.assert_array_equal(model.sample(4, condition, seed=7), a)
        assert np.abs(model.sample(4, condition, seed=8) - a).max() > 1e-4
        z = model.sample_latent(4, seed=7, condition=condition)
        np.testing.assert_array_equal(model.sample_latent(4, seed=7, condition=condition), z)
        drawn = model.sample(4, condition, seed=7, use_mean=False)
        np.testing.assert_allclose(
            a, decoded_values(model, z, condition, drawn), rtol=1e-5, atol=1e-6
        )
        # Decoding in chunks bounds memory and changes nothing, draws included
        # (up to rounding: a CPU's matrix kernels may sum a batch of 3 rows in
        # another order than one of 4, as AVX2-only EPYCs do).
        np.testing.assert_allclose(model.sample(4, condition, seed=7, batch_size=3), a, atol=1e-6)
        np.testing.assert_allclose(
            model.sample(4, condition, seed=7, use_mean=False, batch_size=3), drawn, atol=1e-6
        )
        if model.likelihood.binary:
            assert set(np.unique(drawn)) <= {0.0, 1.0}
            assert a.min() >= 0 and a.max() <= 1
        # Seeds are the exports' 32 bits: one outside them is refused, not wrapped
        # onto another's draws; the largest draws its own.
        for seed in (7 + 2**32, -1):
            with pytest.raises(ValueError, match=rf"\[0, 2\*\*32\)\. Received: seed={seed}$"):
                model.sample(4, condition, seed=seed)
            with pytest.raises(ValueError, match=rf"Received: seed={seed}$"):
                model.sample_latent(4, seed, condition=condition)
        largest = model.sample_latent(4, 2**32 - 1, condition=condition)
        assert not np.allclose(largest, model.sample_latent(4, 0, condition=condition))
        if condition is not None:
            # The k-th draw for a condition does not depend on the conditions beside it.
            alone = model.sample(4, condition[:1], seed=7)
            np.testing.assert_allclose(alone[0], a[0], atol=1e-6)
        assert a.shape[-event_axes:] == x.shape[1:]

    def test_prior_draws_follow_the_prior(self, model, data):
        _, condition = data
        n = 4000
        z = np.asarray(model.sample_latent(n, seed=11, condition=condition), np.float64)
        reference = np.asarray(model.prior(condition).sample(n, seed=12), np.float64)
        if condition is not None and model.prior_layer.conditional:
            reference = np.swapaxes(reference, 0, 1)  # [B, n, d], as sample_latent gives
        elif condition is not None:
            reference = np.broadcast_to(reference, z.shape[:1] + reference.shape)
        scale = reference.std(axis=-2)
        np.testing.assert_array_less(np.abs(z.mean(-2) - reference.mean(-2)), 0.1 * scale)
        np.testing.assert_array_less(np.abs(z.std(-2) - scale), 0.1 * scale)

    def test_zero_temperature_draws_the_prior_component_means(self, case, model, data):
        x, condition = data
        prior = model.prior(condition)
        centres = component_centres(model, prior)  # [..., K, d]
        cold = np.asarray(model.sample_latent(50, seed=5, temperature=0.0, condition=condition))
        if condition is not None and not model.prior_layer.conditional:
            centres = np.broadcast_to(centres, (len(condition), *centres.shape))
        # Every draw is one of the centres (the one its component choice picks).
        distance = np.linalg.norm(cold[..., :, None, :] - centres[..., None, :, :], axis=-1)
        np.testing.assert_array_less(distance.min(axis=-1), 1e-5)
        if hasattr(prior, "mixture_distribution"):
            # Components are chosen with the mixture's weights.
            n = 20000
            many = np.asarray(model.sample_latent(n, seed=6, temperature=0.0, condition=condition))
            distance = np.linalg.norm(many[..., :, None, :] - centres[..., None, :, :], axis=-1)
            counts = np.eye(centres.shape[-2])[distance.argmin(-1)].mean(-2)
            weights = np.asarray(prior.mixture_distribution.probs_parameter())
            error = np.sqrt(weights * (1 - weights) / n)
            np.testing.assert_array_less(
                np.abs(counts - weights), np.broadcast_to(5 * error + 1e-6, counts.shape)
            )
        if case.gaussian_draws:
            # Lower temperatures pull the draws towards their centres linearly.
            warm = model.sample_latent(50, seed=5, condition=condition)
            scaled = model.sample_latent(50, seed=5, temperature=0.3, condition=condition)
            np.testing.assert_allclose(scaled, cold + 0.3 * (warm - cold), rtol=1e-5, atol=1e-5)
        # `sample` decodes those draws.
        cold_draws = model.sample(50, condition, seed=5, temperature=0, use_mean=False)
        np.testing.assert_allclose(
            model.sample(50, condition, seed=5, temperature=0),
            decoded_values(model, cold, condition, cold_draws),
            rtol=1e-5,
            atol=1e-6,
        )
        # The data draws follow the seed too, and average to the decoded means.
        draws = model.sample(200, condition, seed=5, use_mean=False, temperature=0)
        np.testing.assert_array_equal(
            draws, model.sample(200, condition, seed=5, use_mean=False, temperature=0)
        )
        assert np.any(draws != model.sample(200, condition, seed=6, use_mean=False, temperature=0))
        means = model.sample(200, condition, seed=5, temperature=0)
        axis = 0 if condition is None else 1
        np.testing.assert_allclose(draws.mean(axis), means.mean(axis), atol=0.15)
