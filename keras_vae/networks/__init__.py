from keras_vae.networks.build_networks import ARCHITECTURES, build_networks
from keras_vae.networks.completion import GatherPixels, ScatterPixels, conv_completion_networks
from keras_vae.networks.conv import conv_decoder, conv_encoder
from keras_vae.networks.mlp import mlp_decoder, mlp_encoder

__all__ = [
    "ARCHITECTURES",
    "GatherPixels",
    "ScatterPixels",
    "build_networks",
    "conv_completion_networks",
    "conv_decoder",
    "conv_encoder",
    "mlp_decoder",
    "mlp_encoder",
]
