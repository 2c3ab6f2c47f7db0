"""How much each latent dimension tells about the data: the order of a traversal."""

import numpy as np

from keras_vae.visualize.encoded_points import encoded_points
from keras_vae.visualize.prior_moments import prior_moments


def latent_activity(model, data, condition=None) -> np.ndarray:
    """Share of each latent's prior variance that the data explain, `[latent_dim]`.

    `Var_x(E[z_d | x]) / Var_P(z_d)`: the variance across the examples of the
    posterior's point in dimension `d` (Burda et al.'s "active units"
    statistic), divided by the prior's variance of `z_d`. By the law of total
    variance, when the posteriors average to the prior, `Var_P(z_d) =
    Var_x(E[z_d|x]) + E_x[Var(z_d|x)]`, so the share lies in [0, 1]: near 0 for
    a collapsed dimension (every posterior equal to the prior), near 1 for one
    that the encoder pins down for each example. Dividing makes priors of any
    scale (a learned mixture) comparable with N(0, I), where the share is the
    active-units statistic itself.

    It stands in for "the KL of each dimension", which exists only for a
    diagonal Gaussian posterior against a factorized prior: a full-covariance
    or flow posterior, or a mixture prior, has no per-dimension split of the
    KL. This share needs only the posterior's point and the prior's moments,
    so it holds for every prior and posterior of the family.

    Args:
        model: a model of the family.
        data: array `[N, *event_shape]`, N >= 2 (see `model_inputs`).
        condition: array `[N, *condition_shape]` or `None`.

    Returns:
        float64 array `[latent_dim]`.

    Example:

    >>> order = np.argsort(-latent_activity(vae, x_test[:1000]))  # doctest: +SKIP

    Reference:
        Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders*,
        arXiv:1509.00519, section 5.2.
    """
    if len(data) < 2:
        raise ValueError(
            "Expected at least two examples to measure the latents' spread. "
            f"Received: {len(data)} example(s)"
        )
    points = encoded_points(model, data, condition).astype("float64")
    _, variance = prior_moments(model, condition)
    return points.var(axis=0) / np.maximum(variance, 1e-12)
