"""The images a model decodes from latents."""

import keras
import numpy as np

from keras_vae.models.elbo_model import likelihood_seed
from keras_vae.visualize.model_inputs import as_images


def decoded_images(model, z, condition=None, seed: int = 0) -> np.ndarray:
    """The likelihood's mean at each latent, as images `[N, H, W, C]` in [0, 1].

    A likelihood without a closed-form mean (autoregressive) gives its
    conditional probabilities along one seeded draw, as `model.sample` does.

    Args:
        model: a model of the family.
        z: float array `[N, latent_dim]`.
        condition: array `[N, *condition_shape]` or `None`.
        seed: int. Seed of the draw of an autoregressive likelihood.
            Defaults to `0`.

    Returns:
        float32 array `[N, H, W, C]` (a completion CVAE's observed part
        joined to the decoded missing part).

    Example:

    >>> images = decoded_images(vae, np.zeros((1, vae.latent_dim), "float32"))  # doctest: +SKIP
    """
    z = np.asarray(z, dtype="float32")
    likelihood = model.decode(z, condition)
    if model.likelihood.closed_form_mean:
        x = likelihood.mean()
    else:
        x = likelihood.sample(seed=likelihood_seed(seed))
        x = model.likelihood.expected_value(likelihood, x)
    return as_images(model, keras.ops.convert_to_numpy(x), condition)
