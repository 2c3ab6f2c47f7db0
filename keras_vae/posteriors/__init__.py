from keras_vae.posteriors.diagonal_normal import DiagonalNormal
from keras_vae.posteriors.full_covariance_normal import FullCovarianceNormal
from keras_vae.posteriors.get import POSTERIORS, get
from keras_vae.posteriors.iaf import IAF
from keras_vae.posteriors.posterior import Posterior

__all__ = ["DiagonalNormal", "FullCovarianceNormal", "IAF", "POSTERIORS", "Posterior", "get"]
