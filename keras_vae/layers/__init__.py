from keras_vae.layers.distribution_layer import DistributionLayer
from keras_vae.layers.gaussian_likelihood import GaussianLikelihood
from keras_vae.layers.independent_bernoulli import IndependentBernoulli
from keras_vae.layers.independent_normal import IndependentNormal
from keras_vae.layers.masked_dense import MaskedDense
from keras_vae.layers.pixelcnn_bernoulli import PixelCNNBernoulli

__all__ = [
    "DistributionLayer",
    "GaussianLikelihood",
    "IndependentBernoulli",
    "IndependentNormal",
    "MaskedDense",
    "PixelCNNBernoulli",
]
