from keras_vae.ops import elbo, math, random
from keras_vae.ops.elbo import importance_terms, iwae, multi_sample_terms
from keras_vae.ops.math import gaussian_kl, kl_divergence, log_mean_exp, reparameterize
from keras_vae.ops.random import normal, uniform

__all__ = [
    "elbo",
    "gaussian_kl",
    "importance_terms",
    "iwae",
    "kl_divergence",
    "log_mean_exp",
    "math",
    "multi_sample_terms",
    "normal",
    "random",
    "reparameterize",
    "uniform",
]
