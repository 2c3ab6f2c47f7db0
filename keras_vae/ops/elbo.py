"""The objectives: the ELBO and the importance-weighted bound.

Both take distributions and a decoding function rather than a model, so the
unconditional and the conditional VAE (and the evaluation code) share them.
Every returned term is per example, in nats; callers average over the batch.
"""

import tensorflow as tf

from keras_vae.ops.math import kl_divergence, log_mean_exp


def elbo(posterior, decode, prior, target, z, beta=1.0):
    """Per-example ELBO terms from one reparameterized sample.

    ELBO = E_q[log p(target | z)] - KL(q(z) || p(z)) (Doersch, 2016, eq. 7),
    estimated with the single sample `z ~ q`. The KL is analytic where TFP
    registers a closed form and `log q(z) - log p(z)` otherwise.

    Args:
        posterior: `tfd.Distribution`. Q(z|x), batch shape `[B]`.
        decode: callable. Maps `z` `[B, latent_dim]` to P(target|z).
        prior: `tfd.Distribution`. P(z) (or P(z|condition)), batch-broadcastable.
        target: float tensor `[B, ...]`. The data being modelled.
        z: float tensor `[B, latent_dim]`. A reparameterized sample of `posterior`.
        beta: float. Weight of the KL term in `loss`. Defaults to `1.0`.

    Returns:
        A dict of `[B]` tensors: `loss` (-reconstruction + beta * kl, see
        `weighted_kl`), `elbo`, `reconstruction` (log p(target|z)) and `kl`.

    Reference:
        Doersch, *Tutorial on Variational Autoencoders*, arXiv:1606.05908.
    """
    reconstruction = decode(z).log_prob(target)
    kl, _ = kl_divergence(posterior, prior, z)
    return {
        "loss": weighted_kl(beta, kl) - reconstruction,
        "elbo": reconstruction - kl,
        "reconstruction": reconstruction,
        "kl": kl,
    }


def weighted_kl(beta, kl):
    """`beta * kl`, and 0 where `beta` is 0 even if the KL is infinite.

    A KL-free epoch (a `beta` of 0 set by the user) can leave posteriors
    where the prior has no float32 density (a learned prior's components, a
    VampPrior's pseudo-inputs, moved far by the reconstruction alone). The
    KL is then +inf, and `0 * kl` would make the loss NaN. The selection
    sends a zero gradient to the KL, which the library's priors and
    posteriors keep finite where a density is 0 (`keras_vae.priors.mixture`).

    A Python `beta` of 0 gives zeros with no gradient path to the KL at
    all, which the models' steps use while their `beta` is 0
    (`ELBOModel.kl_weight`): XLA turned the zero gradient of a tensor
    `beta` of 0 into NaN on its way through such a KL's graph.

    Args:
        beta: float or float scalar tensor, >= 0.
        kl: float tensor. Per-example KL divergences.

    Returns:
        A tensor shaped like `kl`.
    """
    if not tf.is_tensor(beta) and beta == 0:
        return tf.zeros_like(kl)
    beta = tf.cast(beta, kl.dtype)
    return tf.where(beta > 0, beta * kl, tf.zeros_like(kl))


def importance_terms(posterior, decode, prior, target, z):
    """Log-likelihoods and log importance weights for samples `z` `[K, B, d]`.

    Args:
        posterior: `tfd.Distribution`. Q(z|x), batch shape `[B]`.
        decode: callable. Maps `z` `[N, latent_dim]` to P(target|z), batch `[N]`.
        prior: `tfd.Distribution`. P(z), batch-broadcastable with `[K, B]`.
        target: float tensor `[B, ...]`.
        z: float tensor `[K, B, latent_dim]` drawn from `posterior`.

    Returns:
        A tuple of `[K, B]` tensors: log p(target|z_k) and the log weights
        log p(target|z_k) + log p(z_k) - log q(z_k).
    """
    num_samples, batch = tf.shape(z)[0], tf.shape(z)[1]
    flat_z = tf.reshape(z, [num_samples * batch, -1])
    repeated = tf.repeat(target[tf.newaxis], num_samples, axis=0)
    flat_target = tf.reshape(repeated, tf.concat([[-1], tf.shape(target)[1:]], 0))
    log_likelihood = tf.reshape(decode(flat_z).log_prob(flat_target), [num_samples, batch])
    return log_likelihood, log_likelihood + prior.log_prob(z) - posterior.log_prob(z)


def iwae(posterior, decode, prior, target, z):
    """Per-example importance-weighted bound log (1/K) sum_k w_k.

    With K = 1 this is the single-sample ELBO estimate; it tightens towards
    log p(target) as K grows (Burda et al., 2016).

    Args:
        posterior, decode, prior, target, z: as in `importance_terms`.

    Returns:
        A `[B]` tensor.

    Reference:
        Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders*,
        arXiv:1509.00519.
    """
    _, log_weights = importance_terms(posterior, decode, prior, target, z)
    return log_mean_exp(log_weights, 0)


def multi_sample_terms(posterior, decode, prior, target, z, objective="elbo", beta=1.0):
    """Per-example terms from K samples `z` `[K, B, d]`.

    `reconstruction` averages log p(target|z_k) over the K samples and `kl`
    is as in `elbo`; `elbo` is their difference. `loss` is the negated
    K-sample ELBO (with `beta`) for `objective="elbo"` and the negated
    importance-weighted bound for `objective="iwae"`.

    Returns:
        A dict of `[B]` tensors, as `elbo` returns.
    """
    log_likelihood, log_weights = importance_terms(posterior, decode, prior, target, z)
    reconstruction = tf.reduce_mean(log_likelihood, axis=0)
    kl, _ = kl_divergence(posterior, prior, z)
    if kl.shape.rank == 2:  # the Monte Carlo KL is per sample
        kl = tf.reduce_mean(kl, axis=0)
    if objective == "iwae":
        loss = -log_mean_exp(log_weights, 0)
    else:
        loss = weighted_kl(beta, kl) - reconstruction
    return {"loss": loss, "elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}


def hybrid_loss(elbo_loss, prior_reconstruction, gsnn_weight):
    """Per-example loss of the CVAE's hybrid objective (Sohn et al., 2015).

    Mixes the negated conditional ELBO with the negated log-likelihood of the
    target under a decoder fed a draw of the prior P(z|X) (the Gaussian
    stochastic neural network, GSNN), the draws the model sees when it
    generates:

        (1 - gsnn_weight) * elbo_loss - gsnn_weight * prior_reconstruction.

    Args:
        elbo_loss: `[B]` tensor. The CVAE loss, -ELBO (with any KL weight).
        prior_reconstruction: `[B]` tensor. log P(Y|z, X) with z ~ P(z|X).
        gsnn_weight: float in [0, 1). Weight of the GSNN term.

    Returns:
        A `[B]` tensor.

    Reference:
        Sohn, Lee & Yan, *Learning Structured Output Representation using Deep
        Conditional Generative Models*, NeurIPS 2015 (the hybrid objective).
    """
    return (1.0 - gsnn_weight) * elbo_loss - gsnn_weight * prior_reconstruction
