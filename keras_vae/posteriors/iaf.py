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


class IAFStep(tfb.Bijector):
    """One IAF step y = g * x + (1 - g) * m, with (m, g) autoregressive in x.

    `network(x)` returns `(m, s)` `[..., d]` where `m_i` and `s_i` depend on
    `x_<i` (in the step's order) only, and g = sigmoid(s + 2). Forward is one
    pass of the network; the Jacobian is triangular with diagonal g. Inverse
    needs `d` passes, one per dimension: TFP caches the forward pass, so the
    log-density of the posterior's own draws never inverts.

    Args:
        network: callable. Maps x to `(m, s)`.
        latent_dim: int. d.
        name: str.
    """

    def __init__(self, network, latent_dim, name="iaf_step"):
        parameters = dict(locals())
        self._network = network
        self._latent_dim = latent_dim
        super().__init__(
            forward_min_event_ndims=1, validate_args=False, parameters=parameters, name=name
        )

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}

    def _gate_terms(self, x):
        shift, raw = self._network(x)
        return shift, raw + _GATE_BIAS

    def _forward(self, x):
        shift, logit = self._gate_terms(x)
        gate = tf.sigmoid(logit)
        return gate * x + (1.0 - gate) * shift

    def _inverse(self, y):
        x = tf.zeros_like(y)
        # After pass i, x is exact in the first i dimensions of the order.
        for _ in range(self._latent_dim):
            shift, logit = self._gate_terms(x)
            gate = tf.sigmoid(logit)
            x = (y - (1.0 - gate) * shift) / gate
        return x

    def _forward_log_det_jacobian(self, x):
        _, logit = self._gate_terms(x)
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
    `latent_dim` passes per step. The KL has no closed form: the model uses
    the Monte Carlo estimate at its draws. The `point` that reconstructions
    decode is the flow's image of the base mean (not the mean of Q).

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

    def _network(self, step, context):
        hidden_layers, context_layer, output_layer = step
        projected = context_layer(context)

        def network(x):
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
        bijectors = [
            IAFStep(self._network(step, context), d, name=f"iaf_step_{t}")
            for t, step in enumerate(self.steps)
        ]
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
