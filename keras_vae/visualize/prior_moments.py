"""The mean and variance of each latent under a model's prior."""

import keras

# Draws for the priors whose moments TFP does not compute (a VampPrior mixing
# flow posteriors).
_NUM_DRAWS = 4096


def prior_moments(model, condition=None, seed: int = 0) -> tuple:
    """Mean and variance `[latent_dim]` of each latent under the prior.

    For a conditional prior P(z|c) these are the moments of the mixture over
    the given conditions (the law of total variance: the mean of the
    variances plus the variance of the means). They are exact where the
    prior's distribution computes them (Gaussians and mixtures of Gaussians),
    else estimated from seeded draws of `model.sample_latent`.

    Args:
        model: a model of the family.
        condition: array `[B, *condition_shape]` or `None`.
        seed: int. Seed of the draws, where they are needed. Defaults to `0`.

    Returns:
        A tuple `(mean, variance)` of float64 arrays `[latent_dim]`.

    Example:

    >>> mean, variance = prior_moments(vae)  # doctest: +SKIP
    """
    prior = model.prior(condition)
    try:
        mean = keras.ops.convert_to_numpy(prior.mean()).astype("float64")
        variance = keras.ops.convert_to_numpy(prior.variance()).astype("float64")
    except NotImplementedError:
        # The model's own sampler picks a component before drawing from it; a
        # TFP mixture of flows would draw from every component.
        draws = model.sample_latent(_NUM_DRAWS, seed, condition=condition)
        draws = keras.ops.convert_to_numpy(draws).astype("float64")
        draws = draws.reshape(-1, draws.shape[-1])
        return draws.mean(axis=0), draws.var(axis=0)
    mean = mean.reshape(-1, mean.shape[-1])
    variance = variance.reshape(-1, variance.shape[-1])
    return mean.mean(axis=0), variance.mean(axis=0) + mean.var(axis=0)
