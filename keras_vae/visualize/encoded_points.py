"""The latent that stands for each example in the pictures."""

import keras
import numpy as np


def encoded_points(model, data, condition=None) -> np.ndarray:
    """Each example's representative latent: the posterior's `point` (its mean where closed).

    Args:
        model: a model of the family.
        data: array `[N, *event_shape]` (see `model_inputs`).
        condition: array `[N, *condition_shape]` or `None`.

    Returns:
        float32 array `[N, latent_dim]`.
    """
    posterior = model.encode(data, condition)
    return keras.ops.convert_to_numpy(model.posterior_layer.point(posterior)).astype("float32")
