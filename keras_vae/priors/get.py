"""Priors by name, as `VAE(prior=...)` and the CLI take them."""

from keras_vae.priors.conditional_gaussian import ConditionalGaussian
from keras_vae.priors.mixture_of_gaussians import MixtureOfGaussians
from keras_vae.priors.prior import Prior
from keras_vae.priors.standard_normal import StandardNormal
from keras_vae.priors.vamp_prior import VampPrior
from keras_vae.utils.registry import resolve

PRIORS = {
    "standard": StandardNormal,
    "mog": MixtureOfGaussians,
    "vamp": VampPrior,
    "learned": ConditionalGaussian,
}


def get(prior):
    """A `Prior` from a name in `PRIORS`, a `Prior` (as is) or `None` (standard).

    Raises:
        ValueError: for anything else, naming the accepted values.
    """
    return resolve("prior", prior, PRIORS, Prior, default="standard")
