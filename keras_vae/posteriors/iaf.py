"""The inverse autoregressive flow posterior."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.layers import IndependentNormal, MaskedDense
from keras_vae.layers.masked_dense import made_degrees, made_masks
from keras_vae.networks.validation import check_positive_int, check_units
from keras_vae.ops.math import reparameterize
from keras_vae.posteriors.posterior import Posterior

tfb = tfp.bijectors
tfd = tfp.distributions

# Added to the gate's pre-activation so that each step starts close to the
# identity (sigmoid(2) = 0.88), as Kingma et al.'s "forget gate bias" does.
_GATE_BIAS = 2.0


def _finite_rows(x):
    """Whether each row (the last axis) of x is all finite, keeping that axis as 1."""
    return tf.reduce_all(tf.math.is_finite(x), axis=-1, keepdims=True)


def _fixed_point(update, start, max_passes, ignore_nan=False):
    """Iterates `x <- update(x)` from `start` until a pass leaves x unchanged.

    Stopping at the first fixed point gives, bit for bit, what all
    `max_passes` passes would: `update` is deterministic (the same ops on
    tensors of the same shapes every pass), so once `update(x)` equals x
    every later pass returns x again. `tf.equal` takes -0 for +0; the passes
    here only add, multiply, divide by a positive gate and apply relu and
    sigmoid, so a zero's sign changes no other value. NaN never equals
    itself, so a NaN would hold the loop up to the bound, which always ends
    it; with `ignore_nan` the test skips NaN entries, for a caller that
    solves their rows another way.

    Args:
        update: callable. One pass, from a tensor to one of the same shape.
        start: float tensor. The first x.
        max_passes: int. The most passes to run.
        ignore_nan: bool. Whether a NaN entry counts as unchanged. Defaults
            to `False`.

    Returns:
        The last x.
    """

    def unchanged_yet(passes, x, unchanged):
        return tf.logical_and(passes < max_passes, tf.logical_not(unchanged))

    def one_pass(passes, x, unchanged):
        new = update(x)
        settled = tf.equal(new, x)
        if ignore_nan:
            settled = tf.logical_or(settled, tf.math.is_nan(new))
        return passes + 1, new, tf.reduce_all(settled)

    _, x, _ = tf.while_loop(unchanged_yet, one_pass, (tf.constant(0), start, tf.constant(False)))
    return x


def _sequential_solve(update, start, degrees):
    """Solves `x = update(x)` one degree of the autoregressive order per pass.

    Pass k keeps `update(x)` in the dimensions of degree at most k and sets
    the others to 0. `update`'s output of degree k depends only on inputs of
    lower degree, so after pass k those dimensions hold the exact solution
    and every value the network sees is one of the solution's (or 0): no
    pass can overflow unless the solution itself does. `len(degrees)` passes.

    Args:
        update: callable. One pass, from a tensor to one of the same shape.
        start: float tensor. Zeros of the shape of x.
        degrees: int tensor `[d]`. Each dimension's MADE degree, 1 to d.

    Returns:
        The solution x.
    """

    def one_pass(k, x):
        return k + 1, tf.where(degrees <= k, update(x), tf.zeros_like(x))

    _, x = tf.while_loop(lambda k, x: k <= tf.size(degrees), one_pass, (tf.constant(1), start))
    return x


class IAFStep(tfb.Bijector):
    """One IAF step y = g * x + (1 - g) * m, with (m, g) autoregressive in x.

    `network(x, context)` returns `(m, s)` `[..., d]` where `m_i` and `s_i`
    depend on the context and the `x_j` of lower MADE degree only
    (`degrees[j] < degrees[i]`), and g = sigmoid(s + 2). Forward is one pass
    of the network; the Jacobian is triangular with diagonal g. TFP caches
    the forward pass, so the log-density of the posterior's own draws never
    inverts.

    Inverse iterates x <- (y - (1 - g(x)) * m(x)) / g(x) from x = 0: after
    pass i, x is exact in the dimensions of degree at most i, so `d` passes
    always suffice; the loop stops earlier at the first pass that changes no
    bit of x (the rest of the d passes would change none either). Each pass
    updates every dimension, and one not yet settled can overflow (a tiny
    gate divides it) although the exact inverse is finite; the masked
    weights then make its whole row NaN. Such rows, if any, are solved again
    one degree per pass, the others keeping a 0 until their turn, so every
    value the network sees is one of the exact inverse's. A row that is
    still not finite has no float32 inverse: the IAF's log-density calls
    that 0. The gradient is the implicit one of F(x) = y, solved by the same
    kind of iteration, so it is exact however early the loop stopped; rows
    without a finite inverse get a zero gradient and leave the others'
    unchanged.

    Args:
        network: callable. Maps `(x, context)` to `(m, s)`.
        latent_dim: int. d.
        context: float tensor. The network's second input, broadcastable
            against its hidden layer; it receives its gradient through the
            inverse too.
        degrees: sequence of d ints. The network's MADE input degrees, a
            permutation of 1 to d (`made_degrees(d, ...)[0]`).
        name: str.
    """

    def __init__(self, network, latent_dim, context, degrees, name="iaf_step"):
        parameters = dict(locals())
        degrees = np.asarray(degrees)
        if degrees.shape != (latent_dim,) or sorted(degrees.tolist()) != list(
            range(1, latent_dim + 1)
        ):
            raise ValueError(
                f"Expected degrees to be a permutation of 1 to latent_dim={latent_dim}. "
                f"Received: degrees={degrees.tolist()}"
            )
        self._network = network
        self._latent_dim = latent_dim
        self._context = context
        self._degrees = degrees
        super().__init__(
            forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name
        )

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    @property
    def network(self):
        return self._network

    @property
    def latent_dim(self):
        return self._latent_dim

    @property
    def context(self):
        return self._context

    @property
    def degrees(self):
        return self._degrees

    def _gate_terms(self, x, context):
        shift, raw = self._network(x, context)
        return shift, raw + _GATE_BIAS

    def _forward(self, x):
        shift, logit = self._gate_terms(x, self._context)
        gate = tf.sigmoid(logit)
        return gate * x + (1.0 - gate) * shift

    def _inverse(self, y):
        d = self._latent_dim
        degrees = tf.constant(self._degrees, tf.int32)

        @tf.custom_gradient
        def inverse(y, context):
            def solve_pass(x):
                shift, logit = self._gate_terms(x, context)
                gate = tf.sigmoid(logit)
                return (y - (1.0 - gate) * shift) / gate

            # Why a fixed point comes by pass d: the masked weights add
            # x_j * 0 = 0 exactly for every j that output i cannot see, so
            # once the lower degrees are settled each pass gives x_i the same
            # bits. It often comes much sooner, once the errors left in the
            # first dimensions no longer move the later ones' bits. This
            # needs x finite: an inf in a dimension not yet settled gives
            # inf * 0 = NaN everywhere in its row (by the next pass, so
            # skipping NaN entries lets the loop stop once the other rows
            # settle). Such rows are rare: they are solved again by passes
            # that cannot overflow, only when there are any. The first pass
            # runs outside the loop because it broadcasts y against the
            # context (a VampPrior's [B, 1, d] against its K components).
            x = _fixed_point(solve_pass, solve_pass(tf.zeros_like(y)), d - 1, ignore_nan=True)
            finite = _finite_rows(x)
            x = tf.cond(
                tf.reduce_all(finite),
                lambda: x,
                lambda: tf.where(
                    finite, x, _sequential_solve(solve_pass, tf.zeros_like(x), degrees)
                ),
            )

            def gradient(upstream, variables=None):
                # F(x*) = y: for a cotangent v on x*, u = J^{-T} v gives
                # dL/dy = u and dL/d(context, weights) = -u^T dF/d(context, weights).
                # J = diag(g) + N with N the network's part, strictly
                # triangular, so u = (v - N^T u) / g is again exact after d
                # passes and may stop at a bitwise fixed point. A row without
                # a finite x* takes u = 0: it is evaluated at x = 0 with
                # v = 0 and g = 1, so that no inf * 0 reaches the other rows'
                # sums.
                finite = _finite_rows(x)
                safe_x = tf.where(finite, x, 0.0)
                upstream = tf.where(finite, upstream, 0.0)
                with tf.GradientTape(persistent=True) as tape:
                    tape.watch([safe_x, y, context])
                    # dL/dy sums u over the axes along which y was broadcast.
                    broadcast_y = tf.broadcast_to(y, tf.shape(x))
                    shift, logit = self._gate_terms(safe_x, context)
                    gate = tf.sigmoid(logit)
                    # Holding x in g * x leaves its x-derivative N, not J.
                    off_diagonal = gate * tf.stop_gradient(safe_x) + (1.0 - gate) * shift
                gate = tf.where(finite, gate, 1.0)

                def adjoint_pass(u):
                    vjp = tape.gradient(
                        off_diagonal,
                        safe_x,
                        output_gradients=u,
                        unconnected_gradients=tf.UnconnectedGradients.ZERO,
                    )
                    return (upstream - vjp) / gate

                u = _fixed_point(adjoint_pass, upstream / gate, d - 1)
                grad_y = tape.gradient(broadcast_y, y, output_gradients=u)
                grads = tape.gradient(
                    off_diagonal,
                    [context, *(variables or [])],
                    output_gradients=u,
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                return [grad_y, -grads[0]], [-g for g in grads[1:]]

            return x, gradient

        return inverse(y, self._context)

    def _forward_log_det_jacobian(self, x):
        # A row that is not finite (an inverse that overflowed) gives NaN,
        # but from the network at 0: `IAFDistribution` replaces its log q(z)
        # with -inf by a where, whose zero gradient must not meet an inf on
        # the way to the weights (0 * inf = NaN).
        finite = _finite_rows(x)
        _, logit = self._gate_terms(tf.where(finite, x, 0.0), self._context)
        log_det = tf.reduce_sum(tf.math.log_sigmoid(logit), axis=-1)
        return tf.where(finite[..., 0], log_det, tf.constant(float("nan"), log_det.dtype))


class IAFDistribution(tfd.TransformedDistribution):
    """The IAF's Q(z|x): its base Gaussian through its chain of `IAFStep`s.

    A `tfd.TransformedDistribution` whose log-density is -inf, not NaN, at a
    z (free of NaN) whose inverse overflows float32: such a z lies far from
    anything the flow maps there, and its density is 0 in float32. So is
    the density of a z whose base point is finite but so far out that the
    base Gaussian's density underflows. In both cases those rows' gradients
    are 0 and the other rows' are as without them, so that a mixture of such
    posteriors (a VampPrior) takes its value and gradient from its other
    components. A z that holds a NaN still gives NaN.
    """

    def _log_prob(self, z):
        # For TFP's cache to give the posterior's own draws' base points, the
        # bijector must be the first to see z.
        x = self.bijector.inverse(z)
        log_det = self.bijector.forward_log_det_jacobian(x, event_ndims=1)
        finite = _finite_rows(x)
        underflows = tf.equal(
            self.distribution.log_prob(tf.stop_gradient(tf.where(finite, x, 0.0))),
            -float("inf"),
        )
        has_nan = tf.reduce_any(tf.math.is_nan(z), axis=-1)
        vanishes = tf.logical_or(
            tf.logical_and(tf.logical_not(finite[..., 0]), tf.logical_not(has_nan)), underflows
        )
        # The base density sees 0 in place of those rows (and each step's
        # log-determinant in place of a row that is not finite), so that the
        # gradient of the where below is 0 there, not 0 * inf = NaN in the
        # parameters that the rows share.
        keep = tf.logical_and(finite, tf.logical_not(vanishes[..., None]))
        log_prob = self.distribution.log_prob(tf.where(keep, x, 0.0)) - log_det
        return tf.where(vanishes, tf.constant(-float("inf"), log_prob.dtype), log_prob)


@keras.saving.register_keras_serializable(package="keras_vae")
class IAF(Posterior):
    """Q(z|x): a diagonal Gaussian followed by `num_steps` inverse autoregressive flows.

    The features give the base Gaussian's mean and scale and a context h.
    Each step draws on a MADE network (masked dense layers, ReLU, with h
    added to the first hidden layer) to form z <- g * z + (1 - g) * m,
    where `m_i` and the gate `g_i` depend on `z_<i` only; consecutive steps
    reverse the order of the dimensions. log q(z) = log N(z_0) - sum_t
    sum_i log g_t,i. The distribution is an `IAFDistribution` (a
    `tfd.TransformedDistribution`): `log_prob` of the posterior's own draws
    is one pass per step (TFP caches the draws' base points); of any other z
    it inverts the flow, which costs up to `latent_dim` passes per step (the
    inverse stops at the first pass that changes no bit, with the same
    result; the rare rows where those passes overflow are solved again one
    dimension per pass) and gives exact gradients. A z whose inverse
    overflows float32 even so has log q(z) = -inf, with a zero gradient.
    The KL has no closed form: the model uses the Monte Carlo estimate at
    its draws. The `point` that reconstructions decode is the flow's image
    of the base mean (not the mean of Q).

    Args:
        num_steps: int. Number of flow steps. Defaults to `2`.
        hidden_units: int or sequence of ints. Widths of each step's MADE
            hidden layers. Defaults to `(256,)`.
        context_units: int. Size of the context h. Defaults to `64`.
        latent_dim: int or `None`. Number of latents; `None` takes the
            model's. Defaults to `None`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> posterior = IAF(num_steps=2, latent_dim=2)
    >>> posterior.bind(2)
    >>> q = posterior(tf.zeros([3, 8]))
    >>> q.log_prob(posterior.point(q)).shape
    TensorShape([3])

    Reference:
        Kingma et al., *Improved Variational Inference with Inverse
        Autoregressive Flow*, NeurIPS 2016, arXiv:1606.04934; Germain et al.,
        *MADE*, ICML 2015.
    """

    closed_form_mean = False

    def __init__(
        self, num_steps=2, hidden_units=(256,), context_units=64, latent_dim=None, **kwargs
    ):
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.num_steps = check_positive_int("num_steps", num_steps)
        self.hidden_units = check_units("hidden_units", hidden_units)
        self.context_units = check_positive_int("context_units", context_units)

    def make_layers(self):
        d = self.latent_dim
        self.params = keras.layers.Dense(
            IndependentNormal.params_size(d) + self.context_units, name="params"
        )
        self.base = IndependentNormal(d, name="base")
        self.steps = []
        for t in range(self.num_steps):
            masks = made_masks(d, self.hidden_units, 2, reverse=t % 2 == 1)
            # The flow and its log-determinant stay float32 under a mixed policy.
            hidden = [
                MaskedDense(units, mask, dtype="float32", name=f"step_{t}_hidden_{i}")
                for i, (units, mask) in enumerate(zip(self.hidden_units, masks, strict=False))
            ]
            context = keras.layers.Dense(
                self.hidden_units[0], use_bias=False, dtype="float32", name=f"step_{t}_context"
            )
            output = MaskedDense(2 * d, masks[-1], dtype="float32", name=f"step_{t}_output")
            self.steps.append((hidden, context, output))

    def _network(self, step):
        hidden_layers, _, output_layer = step

        def network(x, projected):
            h = tf.nn.relu(hidden_layers[0](x) + projected)
            for layer in hidden_layers[1:]:
                h = tf.nn.relu(layer(h))
            shift, raw = tf.split(output_layer(h), 2, axis=-1)
            return shift, raw

        return network

    def call(self, features):
        d = self.latent_dim
        params = tf.cast(self.params(features), tf.float32)
        base = self.base(params[..., : 2 * d])
        context = params[..., 2 * d :]
        bijectors = []
        for t, step in enumerate(self.steps):
            _, context_layer, _ = step
            network = self._network(step)
            # The order of make_layers' masks.
            degrees = made_degrees(d, self.hidden_units, reverse=t % 2 == 1)[0]
            bijectors.append(
                IAFStep(network, d, context_layer(context), degrees, name=f"iaf_step_{t}")
            )
        # Chain applies its list from the last to the first.
        return IAFDistribution(base, tfb.Chain(bijectors[::-1]))

    def reparameterize(self, distribution, eps):
        normal = distribution.distribution.distribution
        return distribution.bijector.forward(reparameterize(normal.loc, normal.scale, eps))

    def point(self, distribution):
        return distribution.bijector.forward(distribution.distribution.mean())

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_steps": self.num_steps,
                "hidden_units": self.hidden_units,
                "context_units": self.context_units,
            }
        )
        return config
