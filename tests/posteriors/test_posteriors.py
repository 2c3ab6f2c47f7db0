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
the test (and float64 finite differences).
"""

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from scipy import stats  # noqa: E402

from keras_vae import posteriors as posterior_registry  # noqa: E402
from keras_vae.layers import MaskedDense  # noqa: E402
from keras_vae.layers.masked_dense import made_masks  # noqa: E402
from keras_vae.posteriors import IAF, DiagonalNormal, FullCovarianceNormal  # noqa: E402
from keras_vae.posteriors.iaf import IAFStep  # noqa: E402

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

    return IAFStep(network, step.latent_dim, step.context), calls


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
    for step in iaf_steps(dist):
        inverse = tf.function(step.inverse, jit_compile=jit_compile)
        reference = tf.function(functools.partial(reference_inverse, step), jit_compile=jit_compile)
        # Compiled kernels round differently from eager ones: compare like with like...
        np.testing.assert_array_equal(inverse(z), reference(z))
        # ...and with eager to within that rounding.
        np.testing.assert_allclose(inverse(z), step.inverse(z), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step.forward(inverse(z)), z, rtol=1e-5, atol=1e-5)


def test_iaf_inverse_with_a_nan_ends_after_d_passes():
    _, dist, z = deep_iaf_and_foreign_z()
    y = tf.tensor_scatter_nd_update(z, [[0, 1, 3]], [np.nan])
    step = iaf_steps(dist)[0]
    counted, calls = counting(step)
    x = counted.inverse(y).numpy()
    assert len(calls) == DEEP_LATENT_DIM  # NaN never equals itself: no early stop
    np.testing.assert_array_equal(x, reference_iterates(step, y)[-1])
    # Masked weights multiply the NaN by 0, which leaves NaN: the whole row is lost, as
    # in the d-pass loop, and the other rows are not.
    assert np.all(np.isnan(x[0, 1]))
    assert np.all(np.isfinite(np.delete(x.reshape(-1, DEEP_LATENT_DIM), 1, axis=0)))


@pytest.mark.parametrize("broadcast", [False, True], ids=["per_example", "broadcast"])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_iaf_log_prob_gradients_through_the_inverse_are_exact(mode, broadcast):
    """d log q(z)/d(z, features, weights) at a foreign z, against the unrolled d-pass loop.

    `broadcast` takes z `[2, 1, d]` against the batch of posteriors, as a
    VampPrior takes each z against all its components: x is `[2, B, d]`.
    """
    posterior, _, z = deep_iaf_and_foreign_z()
    if broadcast:
        z = z[:, :1]
    x = tf.constant(features())
    weights = tf.linspace(0.5, 1.5, BATCH)

    def gradients(log_prob, x, z):
        with tf.GradientTape() as tape:
            tape.watch([x, z])
            loss = tf.reduce_sum(log_prob(posterior(x), z) * weights)
        return loss, tape.gradient(loss, [z, x, *posterior.trainable_weights])

    def ours(dist, z):
        return dist.log_prob(z)

    if mode != "eager":
        gradients = tf.function(gradients, jit_compile=mode == "xla")
    loss, grads = gradients(ours, x, z)
    expected_loss, expected = gradients(reference_log_prob, x, z)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    names = ["z", "features"] + [w.path for w in posterior.trainable_weights]
    for name, grad, reference in zip(names, grads, expected, strict=True):
        assert np.any(reference.numpy() != 0), name
        np.testing.assert_allclose(grad, reference, rtol=1e-4, atol=1e-5, err_msg=name)


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
        return tf.reduce_sum(cotangent * IAFStep(network, d, context).inverse(y))

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
