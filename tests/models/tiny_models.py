"""Tiny models of both kinds of the family, for the properties their shared machinery holds.

Both model 3 binary pixels with a 2-d latent: the encoder passes the pixels
through, the decoder is one Dense layer (reading `[z, condition]` for the
`ConditionalVAE`, whose conditions are one-hot rows of 2 classes). The
`kind` fixture of `conftest.py` hands a test each `Kind` in turn.
"""

import keras
import numpy as np

from keras_vae import VAE, ConditionalVAE
from keras_vae.layers import IndependentBernoulli

PIXELS = 3
LATENT_DIM = 2
CLASSES = 2


class Kind:
    """How to make a tiny model of one kind and hand it data.

    Keras's `(x, y)` is `(x, None)` for a VAE and `(condition, target)` for a
    CVAE; `inputs` and `predict_input` say which.
    """

    def __init__(self, name):
        self.name = name
        self.conditional = name == "cvae"
        # How error messages name the modelled data.
        self.data_name = "target" if self.conditional else "x"

    def __repr__(self):
        return self.name

    @property
    def decoder_inputs(self):
        """Width of the decoder's input: z, and the condition for a CVAE."""
        return LATENT_DIM + (CLASSES if self.conditional else 0)

    def make(
        self,
        build=True,
        kernel_regularizer=None,
        encoder=None,
        decoder=None,
        latent_dim=LATENT_DIM,
        **kwargs,
    ):
        """A tiny model (built unless `build=False`); `kwargs` go to the constructor."""
        if encoder is None:
            encoder = keras.Sequential([keras.Input((PIXELS,)), keras.layers.Identity()])
        if decoder is None:
            decoder = keras.Sequential(
                [
                    keras.Input((self.decoder_inputs,)),
                    keras.layers.Dense(PIXELS, kernel_regularizer=kernel_regularizer),
                ]
            )
        kwargs.setdefault("likelihood", IndependentBernoulli(PIXELS))
        if self.conditional:
            kwargs.setdefault("hidden_units", 4)
            model = ConditionalVAE(encoder, decoder, latent_dim, **kwargs)
        else:
            model = VAE(encoder, decoder, latent_dim, **kwargs)
        if build:
            model.build((None, CLASSES if self.conditional else PIXELS))
        return model

    def make_deterministic(self, **kwargs):
        """A tiny model whose posterior scale is ~1e-5: its terms do not depend on the noise."""
        model = self.make(**kwargs)
        params = model.posterior_layer.params
        kernel, bias = params.get_weights()
        kernel[:, LATENT_DIM:], bias[LATENT_DIM:] = 0.0, -30.0
        params.set_weights([kernel, bias])
        return model

    def data(self, n, seed=0):
        """`(x, condition)`: binary rows `[n, 3]` and one-hot conditions `[n, 2]` (or `None`)."""
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 2, (n, PIXELS)).astype("float32")
        condition = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, n)]
        return x, condition if self.conditional else None

    def inputs(self, x, condition):
        """What `fit` and `evaluate` take: `(x, None)` or `(condition, target)`."""
        return (condition, x) if self.conditional else (x, None)

    def predict_input(self, x, condition):
        """What `predict` reads: x for a VAE, the conditions for a CVAE."""
        return condition if self.conditional else x


KINDS = {name: Kind(name) for name in ("vae", "cvae")}
