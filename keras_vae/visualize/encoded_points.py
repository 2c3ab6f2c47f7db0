"""The latent that stands for each example in the pictures."""

import keras
import numpy as np


def encoded_points(model, data, condition=None, batch_size: int = 500) -> np.ndarray:
    """Each example's representative latent: the posterior's `point` (its mean where closed).

    Args:
        model: a model of the family.
        data: array `[N, *event_shape]` (see `model_inputs`).
        condition: array `[N, *condition_shape]` or `None`.
        batch_size: int. Examples encoded at a time, which bounds the
            encoder's memory. Defaults to `500`.

    Returns:
        float32 array `[N, latent_dim]`.
    """
    points = []
    for start in range(0, max(len(data), 1), batch_size):
        part = slice(start, start + batch_size)
        posterior = model.encode(data[part], None if condition is None else condition[part])
        points.append(keras.ops.convert_to_numpy(model.posterior_layer.point(posterior)))
    return np.concatenate(points).astype("float32")
