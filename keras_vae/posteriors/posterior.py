"""The base class of the approximate posteriors Q(z|x)."""

import keras

from keras_vae.networks.validation import check_positive_int


class Posterior(keras.layers.Layer):
    """A layer that turns encoder features into Q(z|x) and draws from it.

    Every posterior answers the same calls, so models, priors (a VampPrior
    mixes posteriors), evaluation and export never ask which one they hold:

    - `call(features)`: features `[B, F]` -> a `tfd.Distribution` of batch
      shape `[B]` and event shape `[latent_dim]`.
    - `reparameterize(distribution, eps)`: a draw z from standard normal
      noise `eps` `[..., B, latent_dim]`, differentiable in the parameters.
      Training draws `eps` with Philox, export and evaluation with the
      portable RNG; scaling `eps` gives a draw at a lower temperature.
    - `point(distribution)`: one representative z `[B, latent_dim]`, which
      reconstructions decode: the mean where it has a closed form.
    - `export_outputs(distribution)`: the tensors the exported `encode`
      signature returns, by name (always `loc`, the point).

    Args:
        latent_dim: int or `None`. Number of latents. `None` takes the
            model's; a number that differs from the model's is refused when
            the model is made. Defaults to `None`.
        **kwargs: Base layer keyword arguments.
    """

    # Whether `point` is the distribution's exact mean (else, e.g., a flow's
    # image of its base mean).
    closed_form_mean = True
    # Whether a mixture of these posteriors (a VampPrior's) scores z faster
    # without XLA; `compile(jit_compile="auto")` then leaves XLA off.
    mixture_prefers_graph_mode = False

    def __init__(self, latent_dim=None, **kwargs):
        # Densities stay float32 under a mixed-precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.latent_dim = (
            None if latent_dim is None else check_positive_int("latent_dim", latent_dim)
        )
        self._has_layers = False

    def _make_layers_once(self):
        if not self._has_layers:
            self.make_layers()
            self._has_layers = True

    def bind(self, latent_dim):
        """Sets the latent size from the model's, or raises if they differ."""
        if self.latent_dim is not None and self.latent_dim != latent_dim:
            raise ValueError(
                f"Expected a posterior over the model's latent_dim={latent_dim} latents. "
                f"Received: {type(self).__name__} with latent_dim={self.latent_dim}"
            )
        self.latent_dim = latent_dim
        self._make_layers_once()

    def make_layers(self):
        """Creates the sublayers, once `latent_dim` is known."""

    def build(self, features_shape):
        self._make_layers_once()  # a deserialized layer is built before any `bind`
        # One pass on zeros builds every sublayer, the flow's included.
        self.point(self.call(keras.ops.zeros((1, features_shape[-1]))))
        self.built = True

    def reparameterize(self, distribution, eps):
        raise NotImplementedError

    def point(self, distribution):
        return distribution.mean()

    def export_outputs(self, distribution):
        return {"loc": self.point(distribution)}

    def get_config(self):
        config = super().get_config()
        config.update({"latent_dim": self.latent_dim})
        return config
