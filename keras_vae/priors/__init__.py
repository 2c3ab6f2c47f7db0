from keras_vae.priors.conditional_gaussian import ConditionalGaussian
from keras_vae.priors.get import PRIORS, get
from keras_vae.priors.mixture_of_gaussians import MixtureOfGaussians
from keras_vae.priors.prior import Prior
from keras_vae.priors.standard_normal import StandardNormal
from keras_vae.priors.vamp_prior import VampPrior

__all__ = [
    "PRIORS",
    "ConditionalGaussian",
    "MixtureOfGaussians",
    "Prior",
    "StandardNormal",
    "VampPrior",
    "get",
]
