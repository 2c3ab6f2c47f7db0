"""The inverse autoregressive flow posterior."""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae.layers import IndependentNormal, MaskedDense
from keras_vae.layers.masked_dense import made_masks
from keras_vae.networks.validation import check_positive_int, check_units
from keras_vae.ops.math import reparameterize
from keras_vae.posteriors.posterior import Posterior

tfb = tfp.bijectors
tfd = tfp.distributions

# Added to the gate's pre-activation so that each step starts close to the
# identity (sigmoid(2) = 0.88), as Kingma et al.'s "forget gate bias" does.
_GATE_BIAS = 2.0


def _fixed_point(update, start, max_passes):
    """Iterates `x <- update(x)` from `start` until a pass leaves x unchanged.

    Stopping at the first fixed point gives, bit for bit, what all
    `max_passes` passes would: `update` is deterministic (the same ops on
    tensors of the same shapes every pass), so once `update(x)` equals x
    every later pass returns x again. `tf.equal` takes -0 for +0; the passes
    here only add, multiply, divide by a positive gate and apply relu and
    sigmoid, so a zero's sign changes no other value. NaN never equals
    itself: a NaN anywhere in the batch runs all `max_passes`, and the bound
    always ends the loop.

    Args:
        update: callable. One pass, from a tensor to one of the same shape.
        start: float tensor. The first x.
        max_passes: int. The most passes to run.

    Returns:
        The last x.
    """

    def unchanged_yet(passes, x, unchanged):
        return tf.logical_and(passes < max_passes, tf.logical_not(unchanged))

    def one_pass(passes, x, unchanged):
        new = update(x)
        return passes + 1, new, tf.reduce_all(tf.equal(new, x))

    _, x, _ = tf.while_loop(unchanged_yet, one_pass, (tf.constant(0), start, tf.constant(False)))
    return x


class IAFStep(tfb.Bijector):
    """One IAF step y = g * x + (1 - g) * m, with (m, g) autoregressive in x.

    `network(x, context)` returns `(m, s)` `[..., d]` where `m_i` and `s_i`
    depend on `x_<i` (in the step's order) and the context only, and
    g = sigmoid(s + 2). Forward is one pass of the network; the Jacobian is
    triangular with diagonal g. TFP caches the forward pass, so the
    log-density of the posterior's own draws never inverts.

    Inverse iterates x <- (y - (1 - g(x)) * m(x)) / g(x) from x = 0: after
    pass i, x is exact in the first i dimensions of the order, so `d` passes
    always suffice; the loop stops earlier at the first pass that changes no
    bit of x (the rest of the d passes would change none either). Its
    gradient is the implicit one of F(x) = y, solved by the same kind of
    iteration, so it is exact however early the loop stopped.

    Args:
        network: callable. Maps `(x, context)` to `(m, s)`.
        latent_dim: int. d.
        context: float tensor. The network's second input, broadcastable
            against its hidden layer; it receives its gradient through the
            inverse too.
        name: str.
    """

    def __init__(self, network, latent_dim, context, name="iaf_step"):
        parameters = dict(locals())
        self._network = network
        self._latent_dim = latent_dim
        self._context = context
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

    def _gate_terms(self, x, context):
        shift, raw = self._network(x, context)
        return shift, raw + _GATE_BIAS

    def _forward(self, x):
        shift, logit = self._gate_terms(x, self._context)
        gate = tf.sigmoid(logit)
        return gate * x + (1.0 - gate) * shift

    def _inverse(self, y):
        d = self._latent_dim

        @tf.custom_gradient
        def inverse(y, context):
            def solve_pass(x):
                shift, logit = self._gate_terms(x, context)
                gate = tf.sigmoid(logit)
                return (y - (1.0 - gate) * shift) / gate

            # Why a fixed point comes by pass d: the masked weights add
            # x_j * 0 = 0 exactly for every j that output i cannot see, so
            # once x_<i is settled each pass gives x_i the same bits. It
            # often comes much sooner, once the errors left in the first
            # dimensions no longer move the later ones' bits. This needs x
            # finite: an inf in a dimension not yet settled gives inf * 0 =
            # NaN everywhere in its row, as in the plain d-pass loop, and
            # then all d passes run and return the same NaN. The first pass
            # runs outside the loop because it broadcasts y against the
            # context (a VampPrior's [B, 1, d] against its K components).
            x = _fixed_point(solve_pass, solve_pass(tf.zeros_like(y)), d - 1)

            def gradient(upstream, variables=None):
                # F(x*) = y: for a cotangent v on x*, u = J^{-T} v gives
                # dL/dy = u and dL/d(context, weights) = -u^T dF/d(context, weights).
                # J = diag(g) + N with N the network's part, strictly
                # triangular, so u = (v - N^T u) / g is again exact after d
                # passes and may stop at a bitwise fixed point.
                with tf.GradientTape(persistent=True) as tape:
                    tape.watch([x, y, context])
                    # dL/dy sums u over the axes along which y was broadcast.
                    broadcast_y = tf.broadcast_to(y, tf.shape(x))
                    shift, logit = self._gate_terms(x, context)
                    gate = tf.sigmoid(logit)
                    # Holding x in g * x leaves its x-derivative N, not J.
                    off_diagonal = gate * tf.stop_gradient(x) + (1.0 - gate) * shift

                def adjoint_pass(u):
                    vjp = tape.gradient(
                        off_diagonal,
                        x,
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
        _, logit = self._gate_terms(x, self._context)
        return tf.reduce_sum(tf.math.log_sigmoid(logit), axis=-1)


@keras.saving.register_keras_serializable(package="keras_vae")
class IAF(Posterior):
    """Q(z|x): a diagonal Gaussian followed by `num_steps` inverse autoregressive flows.

    The features give the base Gaussian's mean and scale and a context h.
    Each step draws on a MADE network (masked dense layers, ReLU, with h
    added to the first hidden layer) to form z <- g * z + (1 - g) * m,
    where `m_i` and the gate `g_i` depend on `z_<i` only; consecutive steps
    reverse the order of the dimensions. log q(z) = log N(z_0) - sum_t
    sum_i log g_t,i. The distribution is a `tfd.TransformedDistribution`:
    `log_prob` of the posterior's own draws is one pass per step (TFP caches
    the draws' base points); of any other z it inverts the flow, which costs
    up to `latent_dim` passes per step (the inverse stops at the first pass
    that changes no bit, with the same result) and gives exact gradients.
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
            bijectors.append(IAFStep(network, d, context_layer(context), name=f"iaf_step_{t}"))
        # Chain applies its list from the last to the first.
        return tfd.TransformedDistribution(base, tfb.Chain(bijectors[::-1]))

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
