"""Posteriors by name, as `VAE(posterior=...)` and the CLI take them."""

from keras_vae.posteriors.diagonal_normal import DiagonalNormal
from keras_vae.posteriors.full_covariance_normal import FullCovarianceNormal
from keras_vae.posteriors.iaf import IAF
from keras_vae.posteriors.posterior import Posterior

POSTERIORS = {"diagonal": DiagonalNormal, "full": FullCovarianceNormal, "iaf": IAF}


def get(posterior):
    """A `Posterior` from a name in `POSTERIORS`, a `Posterior` (as is) or `None` (diagonal).

    Raises:
        ValueError: for anything else, naming the accepted values.
    """
    if posterior is None:
        return DiagonalNormal()
    if isinstance(posterior, Posterior):
        return posterior
    if isinstance(posterior, str) and posterior in POSTERIORS:
        return POSTERIORS[posterior]()
    raise ValueError(
        f"Expected posterior to be one of {tuple(POSTERIORS)} or a "
        f"keras_vae.posteriors.Posterior. Received: posterior={posterior!r}"
    )
