"""Posteriors by name, as `VAE(posterior=...)` and the CLI take them."""

from keras_vae.posteriors.diagonal_normal import DiagonalNormal
from keras_vae.posteriors.full_covariance_normal import FullCovarianceNormal
from keras_vae.posteriors.iaf import IAF
from keras_vae.posteriors.posterior import Posterior
from keras_vae.utils.registry import resolve

POSTERIORS = {"diagonal": DiagonalNormal, "full": FullCovarianceNormal, "iaf": IAF}


def get(posterior):
    """A `Posterior` from a name in `POSTERIORS`, a `Posterior` (as is) or `None` (diagonal).

    Raises:
        ValueError: for anything else, naming the accepted values.
    """
    return resolve("posterior", posterior, POSTERIORS, Posterior, default="diagonal")
