"""The battery every posterior of `keras_vae.posteriors` is run through, then each one's own checks.

Each posterior is bound to a latent size, built on a feature width, and has
its weights moved away from their initial values (so that biases, the
full-covariance factor's off-diagonal and the IAF's context all matter). The
references never go through the posterior: the Gaussian draws are checked
against numpy (`loc + cholesky(covariance) @ eps`) and sample moments, the
full-covariance density against scipy, the KL against the closed form, and
the IAF's density against a change of variables with the Jacobian from
`tf.GradientTape` and `np.linalg.slogdet`, and the IAF's early-stopping
inverse and its implicit gradient against the plain d-pass loop unrolled in
the test (and float64 finite differences). Where the d-pass loop overflows,
the inverse and log q(z) are checked against a float64 solve, one dimension
at a time, and their gradients against that solve unrolled in float32.
"""

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from scipy import special, stats  # noqa: E402

from keras_vae import VAE  # noqa: E402
from keras_vae import posteriors as posterior_registry  # noqa: E402
from keras_vae.layers import MaskedDense  # noqa: E402
from keras_vae.layers.masked_dense import made_masks  # noqa: E402
from keras_vae.networks import mlp_decoder, mlp_encoder  # noqa: E402
from keras_vae.posteriors import IAF, DiagonalNormal, FullCovarianceNormal  # noqa: E402
from keras_vae.posteriors.iaf import IAFStep  # noqa: E402
from keras_vae.priors import VampPrior  # noqa: E402

tfd = tfp.distributions

LATENT_DIM = 3
FEATURES = 5
BATCH = 4
NUM_DRAWS = 4000

# id -> (posterior class, constructor kwargs).
POSTERIOR_CASES = {
    "diagonal": (DiagonalNormal, {}),
    "full": (FullCovarianceNormal, {}),
    "iaf": (IAF, {"num_steps": 2, "hidden_units": (8, 8), "context_units": 4}),
}


def make_posterior(case, seed=0, latent_dim=LATENT_DIM):
    """A bound, built posterior whose weights are all moved by random amounts."""
    cls, kwargs = POSTERIOR_CASES[case]
    return moved_posterior(cls, kwargs, seed, latent_dim)


def moved_posterior(cls, kwargs, seed=0, latent_dim=LATENT_DIM):
    """`cls(**kwargs)`, bound and built, with every weight moved by random amounts."""
    keras.utils.set_random_seed(seed)
    posterior = cls(**kwargs)
    posterior.bind(latent_dim)
    posterior.build((None, FEATURES))
    rng = np.random.default_rng(seed)
    for weight in posterior.weights:
        weight.assign(weight + rng.normal(scale=0.3, size=weight.shape))
    return posterior


def features(seed=1, batch=BATCH):
    return np.random.default_rng(seed).normal(size=(batch, FEATURES)).astype("float32")


def standard_normal(shape, seed=2):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.fixture(scope="module", params=list(POSTERIOR_CASES))
def posterior(request):
    return make_posterior(request.param)


def gaussian_parameters(dist):
    """(loc [B, d], cholesky factor [B, d, d]) of a Gaussian posterior, in float64."""
    loc = dist.mean().numpy().astype(np.float64)
    if isinstance(dist, tfd.Independent):  # TFP gives no `covariance` for it
        return loc, dist.stddev().numpy().astype(np.float64)[..., None] * np.eye(LATENT_DIM)
    return loc, np.linalg.cholesky(dist.covariance().numpy().astype(np.float64))


# -- The battery ---------------------------------------------------------------


def test_shapes(posterior):
    dist = posterior(features())
    assert dist.batch_shape == (BATCH,)
    assert dist.event_shape == (LATENT_DIM,)
    z = posterior.reparameterize(dist, standard_normal((BATCH, LATENT_DIM)))
    assert z.shape == (BATCH, LATENT_DIM)
    assert dist.log_prob(z).shape == (BATCH,)
    many = posterior.reparameterize(dist, standard_normal((6, BATCH, LATENT_DIM)))
    assert many.shape == (6, BATCH, LATENT_DIM)
    assert dist.log_prob(many).shape == (6, BATCH)
    assert np.all(np.isfinite(dist.log_prob(many)))
    assert posterior.point(dist).shape == (BATCH, LATENT_DIM)
    outputs = posterior.export_outputs(dist)
    assert all(value.shape[0] == BATCH for value in outputs.values())


def test_point_is_the_draw_at_zero_noise(posterior):
    dist = posterior(features())
    point = posterior.point(dist)
    zero = posterior.reparameterize(dist, np.zeros((BATCH, LATENT_DIM), "float32"))
    np.testing.assert_allclose(point, zero, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(posterior.export_outputs(dist)["loc"], point, rtol=1e-6)
    if posterior.closed_form_mean:
        np.testing.assert_allclose(point, dist.mean(), rtol=1e-6, atol=1e-6)


def test_draws_follow_the_distribution(posterior):
    """Moments (Gaussians) or a KS test against TFP's own sample (IAF) of reparameterized draws."""
    dist = posterior(features())
    eps = standard_normal((NUM_DRAWS, BATCH, LATENT_DIM), seed=3)
    z = posterior.reparameterize(dist, eps).numpy().astype(np.float64)
    if posterior.closed_form_mean:
        loc, tril = gaussian_parameters(dist)
        # Exactly the affine map of the noise...
        np.testing.assert_allclose(
            z, loc + np.einsum("bij,nbj->nbi", tril, eps), rtol=1e-4, atol=1e-5
        )
        # ...so the sample mean and covariance match the distribution's.
        covariance = tril @ np.swapaxes(tril, -1, -2)
        for b in range(BATCH):
            np.testing.assert_array_less(
                np.abs(z[:, b].mean(0) - loc[b]),
                5.0 * np.sqrt(np.diag(covariance[b]) / NUM_DRAWS),
            )
            np.testing.assert_allclose(
                np.cov(z[:, b].T), covariance[b], atol=0.1 * np.abs(covariance[b]).max()
            )
        return
    theirs = dist.sample(NUM_DRAWS, seed=4).numpy()
    direction = np.random.default_rng(5).normal(size=LATENT_DIM)
    for b in range(BATCH):
        for weights in (direction, *np.eye(LATENT_DIM)):
            result = stats.ks_2samp(z[:, b] @ weights, theirs[:, b] @ weights)
            assert result.pvalue > 1e-3, (b, weights, result)


def test_reparameterize_is_differentiable_in_the_weights(posterior):
    eps = standard_normal((BATCH, LATENT_DIM))
    with tf.GradientTape() as tape:
        z = posterior.reparameterize(posterior(features()), eps)
        loss = tf.reduce_sum(tf.square(z))
    grads = tape.gradient(loss, posterior.trainable_weights)
    assert all(g is not None for g in grads)
    assert all(np.any(g.numpy() != 0) for g in grads)


def test_config_round_trip(posterior):
    cls, kwargs = next(case for case in POSTERIOR_CASES.values() if case[0] is type(posterior))
    config = posterior.get_config()
    assert config["latent_dim"] == LATENT_DIM
    for key, value in kwargs.items():
        assert config[key] == value
    clone = cls.from_config(config)
    assert clone.get_config() == config
    clone.build((None, FEATURES))
    clone.set_weights(posterior.get_weights())
    x = features(seed=6)
    eps = standard_normal((BATCH, LATENT_DIM), seed=7)
    ours, theirs = posterior(x), clone(x)
    z = posterior.reparameterize(ours, eps)
    np.testing.assert_allclose(clone.reparameterize(theirs, eps), z, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(clone.point(theirs), posterior.point(ours), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        theirs.log_prob(tf.identity(z) + 0.0), ours.log_prob(z), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "case",
    [
        "diagonal",
        "full",
        "iaf",
    ],
)
def test_mixed_bfloat16_keeps_draws_and_densities_float32(mixed_bfloat16, case):
    posterior = make_posterior(case)
    dist = posterior(features())
    z = posterior.reparameterize(dist, standard_normal((BATCH, LATENT_DIM)))
    assert z.dtype == tf.float32
    assert posterior.point(dist).dtype == tf.float32
    log_prob = dist.log_prob(tf.identity(z) + 0.0)
    assert log_prob.dtype == tf.float32
    assert np.all(np.isfinite(log_prob))


# -- DiagonalNormal ------------------------------------------------------------


def test_diagonal_export_outputs_are_its_parameters():
    posterior = make_posterior("diagonal")
    dist = posterior(features())
    outputs = posterior.export_outputs(dist)
    np.testing.assert_array_equal(outputs["loc"], dist.mean())
    np.testing.assert_allclose(outputs["scale"], dist.stddev(), rtol=1e-6)
    assert np.all(outputs["scale"].numpy() > 0)


# -- FullCovarianceNormal ------------------------------------------------------


def test_full_covariance_log_prob_is_scipy_multivariate_normal():
    posterior = make_posterior("full")
    dist = posterior(features())
    z = standard_normal((6, BATCH, LATENT_DIM), seed=8) * 2.0
    loc, tril = gaussian_parameters(dist)
    expected = np.stack(
        [
            stats.multivariate_normal(loc[b], tril[b] @ tril[b].T).logpdf(z[:, b])
            for b in range(BATCH)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(dist.log_prob(z), expected, rtol=1e-5, atol=1e-5)


def test_full_covariance_scale_tril_is_lower_triangular_with_positive_diagonal():
    posterior = make_posterior("full")
    dist = posterior(features())
    tril = dist.scale.to_dense().numpy()
    assert tril.shape == (BATCH, LATENT_DIM, LATENT_DIM)
    np.testing.assert_array_equal(np.triu(tril, 1), 0.0)
    assert np.all(np.diagonal(tril, axis1=-2, axis2=-1) > 0)
    # The off-diagonal is used: the covariance is not diagonal.
    assert np.all(np.abs(np.tril(tril, -1)[:, 1:, :-1].sum((-1, -2))) > 1e-3)
    np.testing.assert_array_equal(posterior.export_outputs(dist)["scale_tril"], tril)


def test_full_covariance_parameter_layout():
    """loc, then a row-major [d, d] matrix: its strict lower triangle, softplus diagonal + 1e-5."""
    posterior = make_posterior("full")
    d = LATENT_DIM
    bias = np.random.default_rng(9).normal(scale=2.0, size=d + d * d).astype("float32")
    bias[d :: d + 1] = np.array([-200.0, 0.0, 3.0])  # the diagonal, one far below the floor
    kernel = np.zeros_like(posterior.params.kernel)
    posterior.params.set_weights([kernel, bias])
    dist = posterior(features())
    raw = bias[d:].reshape(d, d).astype(np.float64)
    expected = np.tril(raw, -1) + np.diag(np.logaddexp(0.0, np.diag(raw)) + 1e-5)
    np.testing.assert_allclose(dist.loc, np.broadcast_to(bias[:d], (BATCH, d)))
    np.testing.assert_allclose(
        dist.scale.to_dense(), np.broadcast_to(expected, (BATCH, d, d)), rtol=1e-6
    )
    assert np.isfinite(dist.log_prob(np.zeros((BATCH, d), "float32"))).all()


def kl_closed_form(loc_q, cov_q, loc_p, var_p):
    """KL(N(loc_q, cov_q) || N(loc_p, diag(var_p))) in float64."""
    d = loc_q.shape[-1]
    diff = loc_p - loc_q
    trace = np.einsum("...ii->...", cov_q / var_p[..., None])
    mahalanobis = np.sum(diff**2 / var_p, -1)
    log_det_ratio = np.sum(np.log(var_p), -1) - np.linalg.slogdet(cov_q)[1]
    return 0.5 * (trace + mahalanobis - d + log_det_ratio)


@pytest.mark.parametrize(
    "loc_shape, scale_shape",
    [
        ((LATENT_DIM,), ()),
        ((), (LATENT_DIM,)),
        ((LATENT_DIM,), (LATENT_DIM,)),
        ((BATCH, LATENT_DIM), (BATCH, LATENT_DIM)),
    ],
    ids=["scalar_scale", "scalar_loc", "shared", "batched"],
)
def test_kl_from_full_covariance_to_diagonal_is_the_closed_form(loc_shape, scale_shape):
    posterior = make_posterior("full")
    dist = posterior(features())
    rng = np.random.default_rng(10)
    loc_p = rng.normal(size=loc_shape).astype(np.float32)
    scale_p = rng.uniform(0.5, 2.0, size=scale_shape).astype(np.float32)
    prior = tfd.Independent(tfd.Normal(loc_p, scale_p), reinterpreted_batch_ndims=1)
    loc_q, tril_q = gaussian_parameters(dist)
    loc_p, var_p = (np.broadcast_to(v, loc_q.shape) for v in (loc_p, np.float64(scale_p) ** 2))
    expected = kl_closed_form(loc_q, tril_q @ np.swapaxes(tril_q, -1, -2), loc_p, var_p)
    actual = tfd.kl_divergence(dist, prior)
    assert actual.shape == (BATCH,)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
    assert np.all(expected > 0.01)


def test_kl_from_full_covariance_to_a_non_gaussian_independent_is_not_registered():
    dist = make_posterior("full")(features())
    prior = tfd.Independent(tfd.Laplace(tf.zeros(LATENT_DIM), 1.0), reinterpreted_batch_ndims=1)
    with pytest.raises(NotImplementedError):
        tfd.kl_divergence(dist, prior)


# -- IAF -----------------------------------------------------------------------


def iaf_steps(dist):
    """The flow's steps in the order they apply to the base draw (step 0 first)."""
    steps = {b.name: b for b in dist.bijector.bijectors}
    return [steps[f"iaf_step_{t}"] for t in range(len(steps))]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "function"])
def test_full_covariance_log_prob_of_own_draw_is_exact_when_l_is_ill_conditioned(compiled):
    # L with a diagonal of 0.04 and 1.4 everywhere below it, which training
    # reached (a mixture prior, KL warm-up): solving L x = z - loc multiplies
    # rounding by about 36 per dimension, so float32 gives -inf. At its own
    # draw, log q(z) = log N(eps) - sum log diag(L), and its gradient is finite.
    d = 50
    posterior = FullCovarianceNormal()
    posterior.bind(d)
    posterior.build((None, FEATURES))
    raw = np.full((d, d), 1.4)
    np.fill_diagonal(raw, np.log(np.expm1(0.04 - 1e-5)))  # softplus(raw) + 1e-5 = 0.04
    bias = np.concatenate([np.zeros(d), raw.ravel()]).astype("float32")
    posterior.params.set_weights([np.zeros_like(posterior.params.kernel), bias])
    eps = standard_normal((2, BATCH, d), seed=12)

    def log_q_and_gradients(x):
        with tf.GradientTape() as tape:
            dist = posterior(x)
            z = posterior.reparameterize(dist, eps)
            log_q = dist.log_prob(z)
            total = tf.reduce_sum(log_q)
        return z, log_q, tape.gradient(total, posterior.trainable_weights)

    run = tf.function(log_q_and_gradients) if compiled else log_q_and_gradients
    z, log_q, gradients = run(features())
    assert np.isfinite(z).all()
    expected = stats.norm.logpdf(eps.astype(np.float64)).sum(-1) - d * np.log(0.04)
    np.testing.assert_allclose(log_q, expected, rtol=1e-5)
    assert all(g is not None and np.isfinite(g).all() for g in gradients), gradients
    # The same z through the solve is not finite: the draw's own path is what holds.
    assert not np.isfinite(posterior(features()).log_prob(tf.identity(z) + 0.0)).all()


def test_iaf_log_prob_of_own_draw_equals_log_prob_through_the_inverse(monkeypatch):
    inversions = []
    invert = IAFStep._inverse

    def counted(self, y):
        inversions.append(y)
        return invert(self, y)

    monkeypatch.setattr(IAFStep, "_inverse", counted)
    posterior = make_posterior("iaf")
    dist = posterior(features())
    z = posterior.reparameterize(dist, standard_normal((2, BATCH, LATENT_DIM), seed=11))
    cached = dist.log_prob(z)
    assert not inversions, "the posterior's own draw should not be inverted"
    inverted = dist.log_prob(tf.identity(z) + 0.0)
    assert len(inversions) == posterior.num_steps
    np.testing.assert_allclose(cached, inverted, rtol=1e-4, atol=1e-4)


def test_iaf_log_prob_is_the_change_of_variables():
    """log q(z) = log N(z0; base) - log|det dz/dz0|, the Jacobian from the tape."""
    posterior = make_posterior("iaf")
    dist = posterior(features())
    base = dist.distribution.distribution  # Independent(Normal) -> Normal
    loc, scale = base.loc.numpy().astype(np.float64), base.scale.numpy().astype(np.float64)
    z0 = loc + scale * standard_normal((BATCH, LATENT_DIM), seed=12)
    z0 = tf.constant(z0, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z0)
        z = dist.bijector.forward(z0)
    jacobian = tape.batch_jacobian(z, z0).numpy().astype(np.float64)
    _, log_det = np.linalg.slogdet(jacobian)
    expected = stats.norm.logpdf(z0.numpy(), loc, scale).sum(-1) - log_det
    # A new tensor, so TFP inverts the flow rather than reading its cache.
    np.testing.assert_allclose(dist.log_prob(tf.identity(z) + 0.0), expected, rtol=1e-4, atol=1e-4)
    # The flow is not the identity: the density differs from the base's at z.
    assert not np.allclose(expected, stats.norm.logpdf(z.numpy(), loc, scale).sum(-1), atol=1e-2)


def test_iaf_inverse_undoes_forward():
    posterior = make_posterior("iaf")
    dist = posterior(features())
    x = standard_normal((3, BATCH, LATENT_DIM), seed=13)
    y = dist.bijector.forward(x)
    np.testing.assert_allclose(dist.bijector.inverse(tf.identity(y) + 0.0), x, atol=1e-4)
    for step in iaf_steps(dist):
        y = step.forward(x)
        assert not np.allclose(y, x, atol=1e-3)
        np.testing.assert_allclose(step.inverse(tf.identity(y) + 0.0), x, atol=1e-4)


# Large enough that the inverse's loop stops before d passes (the first
# dimensions settle, and later ones stop moving once the earlier ones' errors
# fall below float32's resolution).
DEEP_LATENT_DIM = 16
GATE_BIAS = 2.0  # g = sigmoid(s + 2), Kingma et al.'s forget-gate bias


def reference_iterates(step, y):
    """x_0 = 0, ..., x_d of the plain d-pass inverse, unrolled in Python."""
    iterates = [tf.zeros_like(y)]
    for _ in range(step.latent_dim):
        shift, raw = step.network(iterates[-1], step.context)
        gate = tf.sigmoid(raw + GATE_BIAS)
        iterates.append((y - (1.0 - gate) * shift) / gate)
    return iterates


def reference_inverse(step, y):
    return reference_iterates(step, y)[-1]


def reference_log_prob(dist, z):
    """log q(z) through the reference inverse: every gradient through it is exact."""
    x, log_det = z, 0.0
    for step in iaf_steps(dist)[::-1]:
        x = reference_inverse(step, x)
        log_det += step.forward_log_det_jacobian(x, event_ndims=1)
    return dist.distribution.log_prob(x) - log_det


def counting(step):
    """A copy of `step` whose network counts its calls (one per pass of the inverse)."""
    calls = []

    def network(x, context):
        calls.append(None)
        return step.network(x, context)

    return IAFStep(network, step.latent_dim, step.context, step.degrees), calls


def deep_iaf_and_foreign_z(seed=0):
    """A 16-latent IAF and draws of its posterior at other features, as a VampPrior evaluates."""
    posterior = make_posterior("iaf", seed=seed, latent_dim=DEEP_LATENT_DIM)
    dist = posterior(features())
    eps = standard_normal((2, BATCH, DEEP_LATENT_DIM), seed=15)
    z = posterior.reparameterize(posterior(features(seed=16)), eps)
    return posterior, dist, tf.identity(z) + 0.0


@pytest.mark.parametrize("broadcast", [False, True], ids=["per_example", "broadcast"])
def test_iaf_inverse_stops_early_at_the_d_pass_result_bit_for_bit(broadcast):
    _, dist, z = deep_iaf_and_foreign_z()
    if broadcast:  # z [2, 1, d] against each posterior of the batch, as a VampPrior does
        z = z[:, :1]
    for step in iaf_steps(dist):
        iterates = reference_iterates(step, z)
        expected = iterates[-1].numpy()
        assert np.all(np.isfinite(expected))
        # The first pass that changes no bit of x; each later one changes none either.
        fixed = next(
            k
            for k in range(1, DEEP_LATENT_DIM + 1)
            if tf.reduce_all(tf.equal(iterates[k], iterates[k - 1]))
        )
        assert fixed < DEEP_LATENT_DIM
        counted, calls = counting(step)
        np.testing.assert_array_equal(counted.inverse(z), expected)
        assert len(calls) == fixed
        np.testing.assert_array_equal(step.inverse(z), expected)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_iaf_inverse_in_a_tf_function_is_the_d_pass_result(jit_compile):
    _, dist, z = deep_iaf_and_foreign_z()
    steps = iaf_steps(dist)

    # Every step's inverse and reference in one function: one trace and one XLA
    # compile instead of one per function and step.
    @tf.function(jit_compile=jit_compile)
    def inverses(z):
        return [(step.inverse(z), reference_inverse(step, z)) for step in steps]

    for step, (inverse, reference) in zip(steps, inverses(z), strict=True):
        # Compiled kernels round differently from eager ones: compare like with like...
        np.testing.assert_array_equal(inverse, reference)
        # ...and with eager to within that rounding.
        np.testing.assert_allclose(inverse, step.inverse(z), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step.forward(inverse), z, rtol=1e-5, atol=1e-5)


def test_iaf_inverse_with_a_nan_stops_early_and_keeps_the_nan():
    _, dist, z = deep_iaf_and_foreign_z()
    y = tf.tensor_scatter_nd_update(z, [[0, 1, 3]], [np.nan])
    step = iaf_steps(dist)[0]
    iterates = reference_iterates(step, z)
    fixed = next(
        k
        for k in range(1, DEEP_LATENT_DIM + 1)
        if tf.reduce_all(tf.equal(iterates[k], iterates[k - 1]))
    )
    assert fixed < DEEP_LATENT_DIM
    counted, calls = counting(step)
    x = counted.inverse(y).numpy()
    # The NaN row does not hold up the loop (the finite rows settle as without it); it
    # is then solved again, one degree per pass, and stays NaN.
    assert len(calls) == fixed + DEEP_LATENT_DIM
    np.testing.assert_array_equal(x, reference_iterates(step, y)[-1])
    assert np.all(np.isnan(x[0, 1]))
    assert np.all(np.isfinite(np.delete(x.reshape(-1, DEEP_LATENT_DIM), 1, axis=0)))
    # A z holding a NaN has a NaN density, not -inf as an overflow has.
    log_prob = dist.log_prob(y).numpy()
    assert np.isnan(log_prob[0, 1])
    assert np.isfinite(np.delete(log_prob.reshape(-1), 1)).all()


# -- The inverse where the d-pass loop overflows ---------------------------------
#
# Step 0 of GATED_IAF gets a gate that needs its autoregressive input: unit 0 of
# its hidden layer is relu(x_1 + c) (c the context's unit 0, which differs from
# posterior to posterior) and the last dimension's gate logit is
# slope * (relu(x_1 + c) - threshold) + 2. At x = 0, where every inverse starts,
# that gate is 0 in float32, so the d-pass loop's first pass divides by 0 and the
# masked weights spread inf * 0 = NaN over the row, although where x_1 + c is a
# little above the threshold the exact inverse is moderate. Where x_1 + c is well
# below it the gate is 0 at the exact inverse too: no z off the gate's image has a
# float32 inverse.

GATED_IAF = {"num_steps": 2, "hidden_units": (8,), "context_units": 4}
GATE_SLOPE, GATE_THRESHOLD = 10.0, 20.0


def make_gated_iaf(seed=0, slope=GATE_SLOPE, threshold=GATE_THRESHOLD, posterior=None):
    """An IAF (latent 3) with moved weights and the gate above in step 0.

    `posterior`, if given, is an IAF of one hidden layer whose step 0 gets the gate.
    """
    if posterior is None:
        posterior = moved_posterior(IAF, GATED_IAF, seed)
    (hidden,), _, output = posterior.steps[0]
    d = LATENT_DIM
    kernel, bias = hidden.kernel.numpy(), hidden.bias.numpy()
    kernel[:, 0], bias[0] = [1.0, 0.0, 0.0], 0.0
    hidden.set_weights([kernel, bias])
    kernel, bias = output.kernel.numpy(), output.bias.numpy()
    last_gate = d + d - 1  # the raw gate of the last dimension, in the natural order
    kernel[:, last_gate] = 0.0
    kernel[0, last_gate] = slope
    bias[last_gate] = -slope * threshold
    output.set_weights([kernel, bias])
    return posterior


def gate_context(dist):
    """c: step 0's context unit 0, one per posterior of the batch."""
    return iaf_steps(dist)[0].context[..., 0].numpy()


def orders(num_steps, d):
    """Each step's order: natural for even steps, reversed for odd ones."""
    return [list(range(d)) if t % 2 == 0 else list(range(d))[::-1] for t in range(num_steps)]


def float64_network(posterior, t, context):
    """Step t's MADE network in float64 numpy, from the layers' weights."""
    hidden_layers, _, output = posterior.steps[t]

    def network(x):
        h = x
        for i, layer in enumerate(hidden_layers):
            h = h @ (layer.kernel.numpy().astype(np.float64) * layer.mask) + layer.bias.numpy()
            h = np.maximum(h + context if i == 0 else h, 0.0)
        out = h @ (output.kernel.numpy().astype(np.float64) * output.mask) + output.bias.numpy()
        return np.split(out, 2, axis=-1)

    return network


def float64_log_prob(posterior, dist, z):
    """log q(z) and the base point in float64: each step solved one dimension at a time."""
    steps = iaf_steps(dist)
    d = z.shape[-1]
    x, log_det = np.asarray(z, np.float64), 0.0
    with np.errstate(all="ignore"):  # the overflowing rows
        for t in reversed(range(len(steps))):
            context = steps[t].context.numpy().astype(np.float64)
            network = float64_network(posterior, t, context)
            y = x
            x = np.zeros(np.broadcast_shapes(y.shape, context.shape[:-1] + (d,)))
            for i in orders(len(steps), d)[t]:
                shift, raw = network(x)
                gate = 1.0 / (1.0 + np.exp(-(raw[..., i] + GATE_BIAS)))
                x[..., i] = (y[..., i] - (1.0 - gate) * shift[..., i]) / gate
            _, raw = network(x)
            log_det = log_det - np.logaddexp(0.0, -(raw + GATE_BIAS)).sum(-1)
        base = dist.distribution.distribution
        loc, scale = base.loc.numpy().astype(np.float64), base.scale.numpy().astype(np.float64)
        log_prob = stats.norm.logpdf(x, loc, scale).sum(-1) - log_det
    return log_prob, x


def in_float32(x):
    """Whether each row of a float64 array is finite in float32."""
    return np.all(np.abs(x) <= np.finfo(np.float32).max, axis=-1)


def sequential_inverse(step, y, order):
    """The inverse unrolled one dimension per pass in `order` (the rest 0): no overflow.

    Only the dimension being solved is divided by its gate, so backpropagation
    through it meets no inf either: its gradient is exact.
    """
    columns = [None] * step.latent_dim
    x = tf.zeros_like(y)
    for i in order:
        shift, raw = step.network(x, step.context)
        gate = tf.sigmoid(raw[..., i] + GATE_BIAS)
        columns[i] = (y[..., i] - (1.0 - gate) * shift[..., i]) / gate
        zeros = tf.zeros_like(columns[i])
        x = tf.stack([zeros if c is None else c for c in columns], axis=-1)
    return x


def sequential_log_prob(dist, z):
    """log q(z) through `sequential_inverse`, with the log-determinant from the network."""
    steps = iaf_steps(dist)
    x, log_det = z, 0.0
    for t in reversed(range(len(steps))):
        x = sequential_inverse(steps[t], x, orders(len(steps), z.shape[-1])[t])
        _, raw = steps[t].network(x, steps[t].context)
        log_det += tf.reduce_sum(tf.math.log_sigmoid(raw + GATE_BIAS), axis=-1)
    return dist.distribution.log_prob(x) - log_det


def weighted_log_prob_gradients(posterior, log_prob, x, z):
    """sum_b w_b log_prob(posterior(x), z)_b, w = 0.5 ... 1.5, and its gradients.

    The gradients are with respect to z, the features x and the posterior's
    trainable weights, in that order.
    """
    weights = tf.linspace(0.5, 1.5, BATCH)
    with tf.GradientTape() as tape:
        tape.watch([x, z])
        loss = tf.reduce_sum(log_prob(posterior(x), z) * weights)
    return loss, tape.gradient(loss, [z, x, *posterior.trainable_weights])


def compiled(fn, mode):
    return fn if mode == "eager" else tf.function(fn, jit_compile=mode == "xla")


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_iaf_inverse_where_the_d_pass_loop_overflows_is_the_float64_inverse(mode):
    posterior = make_gated_iaf()
    x = tf.constant(features())
    dist = posterior(x)
    c = gate_context(dist)
    # The gate is 0 at x = 0 (its logit below -104, where float32's sigmoid gives 0).
    assert np.all(GATE_SLOPE * (np.maximum(c, 0.0) - GATE_THRESHOLD) + GATE_BIAS < -110.0)
    base = standard_normal((BATCH, LATENT_DIM), seed=18)
    # x_1 + c 0.1 to 0.4 above the threshold: gate logits 3 to 6.
    base[:, 0] = GATE_THRESHOLD - c + np.linspace(0.1, 0.4, BATCH)
    z = tf.identity(dist.bijector.forward(base)) + 0.0
    # The d-pass loop loses every row...
    assert np.all(np.isnan(reference_log_prob(dist, z)))
    # ...whose exact inverse is the base point, a moderate one.
    expected, expected_base = float64_log_prob(posterior, dist, z.numpy())
    np.testing.assert_allclose(expected_base, base, rtol=1e-4, atol=1e-4)

    gradients = functools.partial(weighted_log_prob_gradients, posterior)

    def values(x, z):
        # One function, so one trace and one XLA compile: the values, their
        # gradients, and the gradients through the unrolled one-dimension-per-pass
        # solve (the reference, compiled like them).
        dist = posterior(x)
        ours = gradients(lambda dist, z: dist.log_prob(z), x, z)
        return (
            dist.bijector.inverse(z),
            dist.log_prob(z),
            ours,
            gradients(sequential_log_prob, x, z),
        )

    inverse, log_prob, (loss, grads), (expected_loss, expected_grads) = compiled(values, mode)(x, z)
    np.testing.assert_allclose(inverse, expected_base, rtol=1e-5, atol=1e-5)
    assert np.all(np.isfinite(log_prob))
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5, atol=1e-4)

    # The gradients are the ones through the unrolled one-dimension-per-pass solve.
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    names = ["z", "features"] + [w.path for w in posterior.trainable_weights]
    for name, grad, reference in zip(names, grads, expected_grads, strict=True):
        assert np.all(np.isfinite(reference)), name
        np.testing.assert_allclose(grad, reference, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_iaf_log_prob_is_minus_inf_where_the_inverse_overflows(mode):
    """A z with no float32 inverse has log q(z) = -inf; the other rows are as without it."""
    posterior, dist, z = deep_iaf_and_foreign_z()
    x = tf.constant(features())
    far = tf.tensor_scatter_nd_update(
        z, [[0, 1]], [1e30 * standard_normal(DEEP_LATENT_DIM, seed=19)]
    )
    _, expected_base = float64_log_prob(posterior, dist, far.numpy())
    ordinary = np.ones((2, BATCH), bool)
    ordinary[0, 1] = False
    assert np.all(in_float32(expected_base) == ordinary)  # the premise
    # Each step's inverse keeps the d-pass loop's bits in the ordinary rows.
    y = far
    for step in iaf_steps(dist)[::-1]:
        inverse, expected_inverse = step.inverse(y).numpy(), reference_inverse(step, y).numpy()
        np.testing.assert_array_equal(inverse[ordinary], expected_inverse[ordinary])
        y = inverse
    assert not np.isfinite(y[0, 1]).all()
    weights = tf.reshape(tf.linspace(0.5, 1.5, 2 * BATCH), (2, BATCH))

    def gradients(x, z):
        with tf.GradientTape() as tape:
            tape.watch([x, z])
            log_prob = posterior(x).log_prob(z)
            # The ordinary rows only: the far one's -inf would make the sum -inf.
            loss = tf.reduce_sum(tf.gather_nd(log_prob * weights, np.argwhere(ordinary)))
        return log_prob, tape.gradient(loss, [z, x, *posterior.trainable_weights])

    gradients = compiled(gradients, mode)
    log_prob, grads = gradients(x, far)
    expected, expected_grads = gradients(x, z)
    assert log_prob.numpy()[0, 1] == -np.inf
    assert np.all(np.isfinite(expected))
    np.testing.assert_array_equal(log_prob.numpy()[ordinary], expected.numpy()[ordinary])
    names = ["z", "features"] + [w.path for w in posterior.trainable_weights]
    for name, grad, reference in zip(names, grads, expected_grads, strict=True):
        assert np.all(np.isfinite(grad)), name
        if name == "z":  # the far row's z moves nothing; the others' as without it
            np.testing.assert_array_equal(grad[0, 1], 0.0)
            grad, reference = grad.numpy()[ordinary], reference.numpy()[ordinary]
        np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-6, err_msg=name)


def test_iaf_inverse_of_a_z_off_the_gate_image_is_minus_inf_in_a_batch():
    """Rows of the gated IAF: one whose gate is 0 at its exact inverse and z moved off its image."""
    posterior = make_gated_iaf()
    dist = posterior(features())
    c = gate_context(dist)
    base = standard_normal((BATCH, LATENT_DIM), seed=18)
    base[:, 0] = GATE_THRESHOLD - c + 0.2
    base[1, 0] = GATE_THRESHOLD - c[1] - 15.0  # its gate is 0 at its own base point
    steps = iaf_steps(dist)
    middle = steps[0].forward(base).numpy()
    middle[1, -1] += 1.0  # every x maps to the same last coordinate: this one none
    z = tf.identity(steps[1].forward(middle)) + 0.0
    expected, expected_base = float64_log_prob(posterior, dist, z.numpy())
    assert in_float32(expected_base).tolist() == [True, False, True, True]
    log_prob = dist.log_prob(z).numpy()
    assert log_prob[1] == -np.inf
    np.testing.assert_allclose(np.delete(log_prob, 1), np.delete(expected, 1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode", ["eager", "graph"])
def test_vamp_prior_of_an_iaf_takes_its_value_from_the_components_with_an_inverse(mode):
    """log p(z) = logsumexp over the components whose flow inverts z, minus log K."""
    data_shape, num_components = (8, 8, 1), 6
    keras.utils.set_random_seed(0)
    model = VAE(
        mlp_encoder(data_shape, hidden_units=(8,)),
        mlp_decoder(LATENT_DIM, data_shape, hidden_units=(8,)),
        LATENT_DIM,
        prior=VampPrior(num_pseudo_inputs=num_components),
        posterior=IAF(**{**GATED_IAF, "num_steps": 1}),
    )
    model.build((None, *data_shape))
    rng = np.random.default_rng(0)
    prior = model.prior_layer
    prior.pseudo_inputs.assign(rng.uniform(0.0, 1.0, size=prior.pseudo_inputs.shape))
    posterior = model.posterior_layer
    for weight in posterior.weights:
        weight.assign(weight + rng.normal(scale=0.3, size=weight.shape))
    # One step: x_1 = f(z_1) is the same for every component, which differ in c. A
    # steep gate: with x_1 + c just above the threshold for the components of the
    # two largest c, those invert z; the ones with c 0.1 lower have no inverse; in
    # between, the base point is so far out that the density underflows.
    make_gated_iaf(slope=1000.0, threshold=5.0, posterior=posterior)
    components = prior.prior().components_distribution
    c = gate_context(components)
    second = int(np.argsort(c)[-2])
    base = standard_normal((2, LATENT_DIM), seed=20)
    base[:, 0] = 5.003 - c[second]
    step = iaf_steps(components)[0]
    z = tf.identity(tf.gather(step.forward(base[:, None, :]), second, axis=1)) + 0.0
    per_component, bases = float64_log_prob(posterior, components, z.numpy()[:, None, :])
    # Components whose flow has no float32 inverse at z, and ones whose base point is
    # finite but whose density is below float32's range: neither contributes.
    contributes = np.abs(per_component) <= np.finfo(np.float32).max
    # The premise: components of each kind.
    assert contributes[:, np.argsort(c)[-2:]].all()
    assert not in_float32(bases).all()
    assert np.any(in_float32(bases) & ~contributes)
    assert np.all(contributes == contributes[0])  # the same components for both z
    expected = [
        special.logsumexp(row[keep]) - np.log(num_components)
        for row, keep in zip(per_component, contributes, strict=True)
    ]
    keep = np.flatnonzero(contributes[0])
    variables = [
        prior.pseudo_inputs,
        *model.encoder.trainable_weights,
        *posterior.trainable_weights,
    ]

    def gradients(z):
        with tf.GradientTape() as tape:
            log_prob = prior.prior().log_prob(z)
            loss = tf.reduce_sum(log_prob)
        return log_prob, tape.gradient(
            loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )

    def reference_gradients(z):
        # The components that contribute, and only they, through the unrolled solve.
        with tf.GradientTape() as tape:
            clipped = tf.clip_by_value(tf.convert_to_tensor(prior.pseudo_inputs), 0.0, 1.0)
            kept = model.encode(tf.gather(clipped, keep))
            per_component = sequential_log_prob(kept, z[:, None, :])
            log_prob = tf.reduce_logsumexp(per_component, axis=-1) - np.log(num_components)
            loss = tf.reduce_sum(log_prob)
        return log_prob, tape.gradient(
            loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )

    log_prob, grads = compiled(gradients, mode)(z)
    reference, expected_grads = compiled(reference_gradients, mode)(z)
    assert np.all(np.isfinite(log_prob))
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_prob, reference, rtol=1e-6, atol=1e-6)
    for variable, grad, expected_grad in zip(variables, grads, expected_grads, strict=True):
        assert np.all(np.isfinite(grad)), variable.path
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6, err_msg=variable.path)
    assert np.any(grads[0].numpy() != 0)  # the pseudo-inputs


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_iaf_log_prob_gradients_through_the_inverse_are_exact(mode):
    """d log q(z)/d(z, features, weights) at a foreign z, against the unrolled d-pass loop.

    Per example (z `[2, B, d]`), and broadcast: z `[2, 1, d]` against the batch
    of posteriors, as a VampPrior takes each z against all its components (x
    is then `[2, B, d]`).
    """
    posterior, _, z = deep_iaf_and_foreign_z()
    x = tf.constant(features())
    gradients = functools.partial(weighted_log_prob_gradients, posterior)
    shapes = {"per_example": z, "broadcast": z[:, :1]}

    def log_prob(dist, z):
        return dist.log_prob(z)

    def ours(x, z):
        # Both shapes of z in one function: one trace and one XLA compile.
        return [gradients(log_prob, x, each) for each in (z, z[:, :1])]

    names = ["z", "features"] + [w.path for w in posterior.trainable_weights]
    for (shape, each), (loss, grads) in zip(
        shapes.items(), compiled(ours, mode)(x, z), strict=True
    ):
        # The reference runs eagerly in every mode: it is the same computation, and
        # compiling its unrolled loop took most of the test's time.
        expected_loss, expected = gradients(reference_log_prob, x, each)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-6, err_msg=shape)
        for name, grad, reference in zip(names, grads, expected, strict=True):
            assert np.any(reference.numpy() != 0), (shape, name)
            np.testing.assert_allclose(
                grad, reference, rtol=1e-4, atol=1e-5, err_msg=f"{shape}: {name}"
            )


def test_iaf_inverse_gradient_matches_float64_finite_differences():
    """Directional derivatives in y, the context and the weights of a float64 MADE step."""
    d, units = 6, 12
    rng = np.random.default_rng(17)
    hidden_mask, output_mask = made_masks(d, (units,), 2)
    hidden = MaskedDense(units, hidden_mask, dtype="float64")
    output = MaskedDense(2 * d, output_mask, dtype="float64")
    hidden.build((None, d))
    output.build((None, units))
    for weight in hidden.weights + output.weights:
        weight.assign(rng.normal(scale=0.5, size=weight.shape))
    variables = hidden.trainable_variables + output.trainable_variables

    def network(x, context):
        return tf.split(output(tf.nn.relu(hidden(x) + context)), 2, axis=-1)

    y = tf.constant(rng.normal(size=(BATCH, d)))
    context = tf.constant(rng.normal(size=(BATCH, units)))
    cotangent = tf.constant(rng.normal(size=(BATCH, d)))

    def loss(y, context):
        return tf.reduce_sum(cotangent * IAFStep(network, d, context, range(1, d + 1)).inverse(y))

    with tf.GradientTape() as tape:
        tape.watch([y, context])
        value = loss(y, context)
    grads = tape.gradient(value, [y, context, *variables])
    directions = [rng.normal(size=g.shape) for g in grads]
    analytic = sum(np.sum(g.numpy() * u) for g, u in zip(grads, directions, strict=True))

    def moved(h):
        for variable, u in zip(variables, directions[2:], strict=True):
            variable.assign_add(h * u)
        result = loss(y + h * directions[0], context + h * directions[1]).numpy()
        for variable, u in zip(variables, directions[2:], strict=True):
            variable.assign_sub(h * u)
        return result

    h = 1e-6
    numeric = (moved(h) - moved(-h)) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)
    # The context and the weights each contribute: none of them is dropped.
    assert all(np.abs(g.numpy()).max() > 1e-3 for g in grads)


def test_iaf_step_jacobian_is_triangular_in_its_order():
    """Step t is autoregressive in the natural order (t even) or the reversed one (t odd)."""
    posterior = make_posterior("iaf")
    dist = posterior(features())
    x = tf.constant(standard_normal((BATCH, LATENT_DIM), seed=14))
    for t, step in enumerate(iaf_steps(dist)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = step.forward(x)
        jacobian = tape.batch_jacobian(y, x).numpy()  # [B, out, in]
        if t % 2 == 0:  # y_i depends on x_j, j <= i: lower triangular
            zero, used = np.triu(jacobian, 1), np.tril(jacobian, -1)
        else:
            zero, used = np.tril(jacobian, -1), np.triu(jacobian, 1)
        np.testing.assert_array_equal(zero, 0.0)
        assert np.all(np.abs(used).sum((-1, -2)) > 1e-4), "no autoregressive dependence"
        # The degrees its inverse solves by say the same: y_i sees the x_j of lower degree.
        degrees = np.asarray(step.degrees)
        unseen = (degrees[None, :] >= degrees[:, None]) & ~np.eye(LATENT_DIM, dtype=bool)
        np.testing.assert_array_equal(jacobian[:, unseen], 0.0)
        assert np.all(np.abs(jacobian[:, degrees[None, :] < degrees[:, None]]).sum(0) > 0)
        diagonal = np.diagonal(jacobian, axis1=-2, axis2=-1)
        assert np.all((diagonal > 0) & (diagonal < 1))  # the gates
        np.testing.assert_allclose(
            np.log(np.abs(diagonal)).sum(-1),
            step.forward_log_det_jacobian(x, event_ndims=1),
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_allclose(
            np.linalg.slogdet(jacobian.astype(np.float64))[1],
            step.forward_log_det_jacobian(x, event_ndims=1),
            rtol=1e-5,
            atol=1e-5,
        )


def test_iaf_point_is_the_flow_of_the_base_mean():
    posterior = make_posterior("iaf")
    dist = posterior(features())
    base_mean = dist.distribution.mean()
    expected = base_mean
    for step in iaf_steps(dist):
        expected = step.forward(tf.identity(expected))
    np.testing.assert_allclose(posterior.point(dist), expected, rtol=1e-6, atol=1e-6)
    assert not np.allclose(posterior.point(dist), base_mean, atol=1e-3)


# -- The registry and bad input ------------------------------------------------


def test_get():
    assert type(posterior_registry.get(None)) is DiagonalNormal
    for name, cls in [("diagonal", DiagonalNormal), ("full", FullCovarianceNormal), ("iaf", IAF)]:
        assert type(posterior_registry.get(name)) is cls
    posterior = IAF(num_steps=1)
    assert posterior_registry.get(posterior) is posterior


@pytest.mark.parametrize("name", ["flow", "", 2, DiagonalNormal], ids=repr)
def test_get_refuses_unknown_names(name):
    with pytest.raises(
        ValueError,
        match=r"Expected posterior to be one of \('diagonal', 'full', 'iaf'\) or a "
        r"keras_vae.posteriors.Posterior. Received: posterior=",
    ):
        posterior_registry.get(name)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"num_steps": 0},
            r"Expected num_steps to be a positive integer. Received: num_steps=0",
        ),
        (
            {"num_steps": 1.5},
            r"Expected num_steps to be a positive integer. Received: num_steps=1.5",
        ),
        (
            {"context_units": 0},
            r"Expected context_units to be a positive integer. Received: context_units=0",
        ),
        (
            {"hidden_units": ()},
            r"Expected hidden_units to hold at least one positive integer. "
            r"Received: hidden_units=\(\)",
        ),
        (
            {"latent_dim": 0},
            r"Expected latent_dim to be a positive integer. Received: latent_dim=0",
        ),
    ],
    ids=["num_steps_zero", "num_steps_float", "context_zero", "hidden_empty", "latent_dim_zero"],
)
def test_iaf_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IAF(**kwargs)


@pytest.mark.parametrize("degrees", [[1, 2, 2], [0, 1, 2], [1, 2]], ids=repr)
def test_iaf_step_rejects_degrees_that_are_not_an_order(degrees):
    with pytest.raises(
        ValueError,
        match=r"Expected degrees to be a permutation of 1 to latent_dim=3. "
        rf"Received: degrees=\[{', '.join(map(str, degrees))}\]",
    ):
        IAFStep(lambda x, context: (x, x), 3, tf.zeros([4]), degrees)


@pytest.mark.parametrize("case", list(POSTERIOR_CASES))
def test_bind_rejects_a_different_latent_dim(case):
    cls, kwargs = POSTERIOR_CASES[case]
    posterior = cls(latent_dim=2, **kwargs)
    with pytest.raises(
        ValueError,
        match=rf"Expected a posterior over the model's latent_dim=3 latents. "
        rf"Received: {cls.__name__} with latent_dim=2",
    ):
        posterior.bind(3)
    posterior.bind(2)  # its own size is accepted
    assert posterior.latent_dim == 2
