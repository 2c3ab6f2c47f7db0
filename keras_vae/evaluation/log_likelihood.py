"""Importance-sampled log-likelihoods of trained VAEs (Burda et al., 2016)."""

import math
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_vae.models import VAE
from keras_vae.models.validation import (
    check_data,
    check_positive_int,
    check_values,
    follows_model_contract,
)
from keras_vae.ops import random as portable_random
from keras_vae.ops.elbo import importance_terms
from keras_vae.ops.math import kl_divergence

# The default chunk keeps chunk * batch * event_size float32 values under 64 MB.
_CHUNK_FLOATS = 64 * 2**20 // 4
# Burda et al.'s threshold on Var_x(E_q[z_d]) for an active latent dimension.
_ACTIVE_VARIANCE = 0.01
# The noise counters of one batch, num_samples * batch * latent_dim, are int32.
_MAX_COUNTERS = 2**31
# Draws per batch from which compiling the noise generator with XLA pays off.
_XLA_MIN_DRAWS = 2**20
_EMPTY_MESSAGE = "Expected data to hold at least one example. Received: num_examples=0"


def log_likelihood(
    model: VAE,
    data: np.ndarray | tf.Tensor | tf.data.Dataset | tuple,
    num_samples: int = 5000,
    batch_size: int = 100,
    chunk_size: int | None = None,
    seed: int = 0,
    verbose: int = 1,
    bins: int | None = None,
) -> dict:
    """Importance-weighted estimate of log p(x) (or log p(y|x)) on a dataset.

    For each example, with z_k drawn from the posterior Q(z|x),

        log p(x) ≈ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x),

    a stochastic lower bound that is tight as K grows and equals the ELBO in
    expectation for K = 1. For a `ConditionalVAE` the same estimate of
    log p(y|x) uses Q(z|y, x), P(y|z, x) and P(z|x). Only the model's
    contract is used (`encode`, `decode`, `prior`, and its posterior layer's
    `reparameterize` and `point`), so every prior and posterior is scored the
    same way: log q and log p are the distributions' own `log_prob`.

    The K samples are drawn in chunks of `chunk_size` and their log weights
    combined with a running log-sum-exp, so K = 5000 on the 10,000 MNIST
    test images runs in bounded memory. The noise of sample k of example b
    in batch i is a pure function of `(seed, i, k, b)` (the portable
    counter-based generator of `keras_vae.ops.random`), so the result depends
    on `seed` and `batch_size` but not on `chunk_size`.

    Args:
        model: `keras_vae.VAE` or `keras_vae.ConditionalVAE`. An unbuilt
            model is built from the data's shape.
        data: for a `VAE`, an array or tensor `[N, *event_shape]` or a
            `tf.data.Dataset` of such batches (or of tuples whose first
            element is one). For a `ConditionalVAE`, a `(conditions, targets)`
            pair of arrays or a dataset of such pairs. Datasets are re-batched
            to `batch_size`.
        num_samples: int. Importance samples K per example. Defaults to
            `5000`.
        batch_size: int. Examples per batch. Defaults to `100`.
        chunk_size: int or `None`. Samples per chunk. Defaults to the largest
            chunk with `chunk * batch_size * event_size` below 16M floats
            (64 MB).
        seed: int. Non-negative seed of the samples. Defaults to `0`.
        verbose: int. `0` silent, `1` a progress bar over batches, `2` one
            line at the end. Defaults to `1`.
        bins: int or `None`. For a continuous likelihood only: the data are
            discrete values of `bins` levels per dimension, dequantized to
            `(k + u) / bins` with u ~ U[0, 1) (`keras_vae.data.dequantize`
            for 8-bit images and `bins=256`). Every log-probability
            figure is then of the discrete data: the density's figure minus
            D ln bins, a lower bound on log P(k) in expectation over u.
            Defaults to `None`.

    Returns:
        A dict with the means over examples, in nats per example:
        `log_likelihood` (the estimate of log p(x)), `nll` (its negation),
        `bits_per_dim` (`nll / (D ln 2)`, D the number of data dimensions;
        `None` for a continuous likelihood without `bins`, whose log p(x) is
        a density, in nats per unit volume, and may be positive),
        `elbo` (`reconstruction - kl`), `reconstruction` (E_q log p(x|z),
        the mean of log p(x|z_k) over the same K samples) and `kl`
        (KL(Q(z|x) || P(z)): analytic where TFP has a closed form, else the
        mean of log q(z_k) - log p(z_k) over the same K samples);
        `kl_estimator` (`"analytic"` or `"monte_carlo"`), `latent_dim`,
        `active_units` (latent dimensions whose posterior point, the mean
        where it has a closed form, varies over the data with variance above
        0.01; `None` for a single example), `num_samples`,
        `num_examples` and `per_example` (float64 numpy array `[N]` of the
        log p(x) estimates).

    Raises:
        ValueError: for a model that is not a `VAE` or `ConditionalVAE`, data
            (or a dataset's element spec) not shaped like the model's inputs,
            no examples, non-positive `num_samples`, `batch_size` or
            `chunk_size`, NaN or infinite values, values outside [0, 1] for
            a Bernoulli likelihood or with `bins`, or `bins` that is not an
            integer of at least 2, or is given for a binary likelihood.

    Example:

    >>> from keras_vae.models.presets import build_vae
    >>> vae = build_vae("mlp", (28, 28, 1), latent_dim=8)
    >>> x = np.zeros((4, 28, 28, 1), "float32")
    >>> metrics = log_likelihood(vae, x, num_samples=10, verbose=0)
    >>> metrics["per_example"].shape
    (4,)

    Reference:
        Burda, Grosse & Salakhutdinov, *Importance Weighted Autoencoders*,
        arXiv:1509.00519, sections 5 (the K = 5000 estimate) and 5.2 (active
        units).
    """
    num_samples = check_positive_int("num_samples", num_samples)
    batch_size = check_positive_int("batch_size", batch_size)
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    check_positive_int("seed", seed, allow_zero=True)
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"Expected verbose to be 0, 1 or 2. Received: verbose={verbose!r}")
    conditional = _check_model(model)
    if bins is not None:
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
            raise ValueError(f"Expected bins to be an integer >= 2. Received: bins={bins!r}")
        if model.likelihood.binary:
            raise ValueError(
                "Expected bins=None for a binary likelihood, whose log p(x) is already "
                f"discrete. Received: bins={bins!r}"
            )
    batches, num_batches, num_rows = _batches(model, conditional, data, batch_size)
    if num_rows == 0:
        raise ValueError(_EMPTY_MESSAGE)
    counters = num_samples * min(batch_size, num_rows or batch_size) * model.latent_dim
    if counters >= _MAX_COUNTERS:
        raise ValueError(
            "Expected num_samples * batch_size * latent_dim below 2**31. Received: "
            f"num_samples={num_samples}, batch_size={batch_size}, "
            f"latent_dim={model.latent_dim}"
        )
    event_size = math.prod(model.likelihood.event_shape)
    tiled_size = event_size + (math.prod(model.condition_shape) if conditional else 0)
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_FLOATS // (batch_size * tiled_size))
    chunk_size = min(chunk_size, num_samples)
    estimate = _batch_estimator(model, conditional, num_samples, chunk_size, batch_size)
    names = ("targets", "conditions") if conditional else ("data", None)
    binary = model.likelihood.binary
    # Dequantized data, (k + u) / bins, lie in [0, 1) as a Bernoulli's do in [0, 1].
    in_unit_interval = binary or bins is not None
    why = "for a Bernoulli likelihood" if binary else f"for dequantized data (bins={bins})"
    results = _run(
        estimate, batches, seed, num_batches, verbose, names, binary, in_unit_interval, why
    )
    per_example, reconstruction, kl, posterior_means = (
        np.concatenate(parts) for parts in zip(*results, strict=True)
    )
    if bins is not None:
        # log P(k) >= E_u log p((k + u) / bins) - D ln bins, and the same for log P(k|z).
        per_example = per_example - event_size * math.log(bins)
        reconstruction = reconstruction - event_size * math.log(bins)
    discrete = model.likelihood.binary or bins is not None
    metrics = _summarize(
        per_example, reconstruction, kl, posterior_means, num_samples, event_size, discrete
    )
    metrics["kl_estimator"] = model.kl_estimator
    return metrics


def _run(
    estimate, batches, seed, num_batches, verbose, names, binary_likelihood, unit_interval, why
):
    """Runs `estimate` on every batch, with a progress bar; returns its numpy outputs.

    Every batch is checked first (`check_values`): finite, and in [0, 1]
    when `unit_interval` (`why` says why, in the message). A binary
    likelihood's targets are then also checked to be 0 or 1 (a warning
    otherwise). A dataset's values are only seen here.
    """
    progbar = None
    if verbose:
        progbar = keras.utils.Progbar(
            num_batches, verbose=verbose, stateful_metrics=["log_likelihood"], unit_name="batch"
        )
    results, binary, total, count = [], True, 0.0, 0
    for index, (target, condition) in enumerate(batches):
        # Checked as given, then cast: a float64 -1e-118 is out of [0, 1],
        # though float32 makes it -0.
        check_values(names[0], target, unit_interval=unit_interval, why=why)
        target = tf.cast(target, "float32")
        if condition is not None:
            check_values(names[1], condition)
            condition = tf.cast(condition, "float32")
        if binary_likelihood:
            binary &= bool(tf.reduce_all((target == 0) | (target == 1)))
        outputs = estimate(target, condition, _batch_seed(seed, index))
        results.append([values.numpy().astype("float64") for values in outputs])
        if progbar is not None:
            total, count = total + float(np.sum(results[-1][0])), count + len(results[-1][0])
            progbar.update(index + 1, [("log_likelihood", total / count)])
    if not results:
        raise ValueError(_EMPTY_MESSAGE)
    if progbar is not None and num_batches is None:
        progbar.update(len(results), finalize=True)
    if not binary:
        warnings.warn(
            "The data are not binary, so the Bernoulli likelihood's log p(x) is a "
            "cross-entropy, not a log-likelihood. Binarize the data to compare with "
            "published results.",
            stacklevel=3,
        )
    return results


def _batch_seed(seed, index):
    """A well-mixed int32 seed for batch `index`, so batches draw unrelated noise."""
    word = np.random.SeedSequence([int(seed), index]).generate_state(1)
    return tf.constant(word.view(np.int32)[0])


def _check_model(model):
    """Whether `model` is conditional; raises unless it is a model of the VAE family."""
    if follows_model_contract(model):
        return model.conditional
    raise ValueError(
        "Expected model to be a keras_vae VAE or ConditionalVAE (a model with an "
        f"encoder and encode and decode methods). Received: model={model!r}"
    )


def _batches(model, conditional, data, batch_size):
    """Checks `data` and builds `model`.

    Returns:
        A tuple: an iterable of `(target, condition)` batches as given
        (`condition` is `None` for a `VAE`), the number of batches and the
        number of examples (both `None` for a dataset).
    """
    if isinstance(data, tf.data.Dataset):
        return _dataset_batches(model, conditional, data, batch_size), None, None
    if conditional:
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise ValueError(
                "Expected data to be a (conditions, targets) pair of arrays or a dataset "
                f"of pairs for a ConditionalVAE. Received: data of type {type(data).__name__}"
            )
        conditions, targets = data
        _build(model, conditional, "conditions", tuple(np.shape(conditions)))
        check_data("conditions", conditions, model.condition_shape)
        check_data("targets", targets, model.target_shape)
        if np.shape(conditions)[0] != np.shape(targets)[0]:
            raise ValueError(
                "Expected as many conditions as targets. Received: "
                f"conditions.shape={np.shape(conditions)}, targets.shape={np.shape(targets)}"
            )
        arrays = (targets, conditions)
    else:
        _build(model, conditional, "data", tuple(np.shape(data)))
        check_data("data", data, model.event_shape)
        arrays = (data, None)
    num_rows = int(np.shape(arrays[0])[0])

    def generate():
        for start in range(0, num_rows, batch_size):
            yield tuple(
                None if a is None else a[start : start + batch_size]  # cast once checked
                for a in arrays
            )

    return generate(), -(-num_rows // batch_size), num_rows


def _dataset_batches(model, conditional, dataset, batch_size):
    """Checks a dataset's element spec; returns its `(target, condition)` batches."""
    spec = dataset.element_spec
    if conditional:
        if not (isinstance(spec, tuple) and len(spec) >= 2 and _is_tensor_spec(spec[:2])):
            raise ValueError(
                "Expected a dataset of (condition, target) pairs for a ConditionalVAE. "
                f"Received: element_spec={spec}"
            )
        _build(model, conditional, "data.element_spec[0]", tuple(spec[0].shape))
        check_data("data.element_spec[0]", spec[0], model.condition_shape)
        check_data("data.element_spec[1]", spec[1], model.target_shape)
        dataset = dataset.map(lambda *pair: (pair[1], pair[0]))
    else:
        if isinstance(spec, tuple) and spec:
            spec = spec[0]
            dataset = dataset.map(lambda *element: element[0])
        if not _is_tensor_spec([spec]):
            raise ValueError(
                f"Expected a dataset of x batches for a VAE. Received: element_spec={spec}"
            )
        _build(model, conditional, "data.element_spec", tuple(spec.shape))
        check_data("data.element_spec", spec, model.event_shape)
        dataset = dataset.map(lambda x: (x,))

    def generate():
        for batch in dataset.unbatch().batch(batch_size):
            yield tuple(batch) + (None,) * (not conditional)  # cast once checked

    return generate()


def _is_tensor_spec(specs):
    return all(isinstance(s, tf.TensorSpec) and s.shape.rank is not None for s in specs)


def _build(model, conditional, name, shape):
    """Builds an unbuilt model for inputs shaped `shape` (the conditions of a CVAE)."""
    if model.built:
        return
    if len(shape) < 2:
        raise ValueError(
            f"Expected {name} shaped [batch, ...] to build the model. "
            f"Received: {name}.shape={shape}"
        )
    if not conditional and model.likelihood is not None:
        check_data(name, tf.TensorSpec((None,) + shape[1:]), model.event_shape)
    model.build((None,) + shape[1:])


def _noise(shape, seed, counter_offset):
    """Standard normal noise of the portable generator, `shape` `[num, B, d]`."""
    return portable_random.normal(shape, seed, counter_offset)


# XLA fuses the generator's integer ops, about 5x faster than running them op by
# op, but compiles for about a second per shape. The estimator and the noise trace
# without AutoGraph: they hold no Python control flow on tensors (the chunk loop is
# a `tf.while_loop`), and AutoGraph's rewriting of every function it meets cost
# about 2 s of a `keras-vae evaluate --importance-samples` process.
_compiled_noise = tf.function(_noise, jit_compile=True, autograph=False)


# One traced estimator per model and kind of draw, so that calls with other seeds,
# data, sample counts or chunk sizes do not retrace (a sweep over K traced once per K,
# and TensorFlow warned of "excessive retracing"). Keys are weak and the estimators
# hold the model weakly, so a deleted model frees its entry.
_ESTIMATORS = weakref.WeakKeyDictionary()


def _batch_estimator(model, conditional, num_samples, chunk_size, batch_size):
    """A `tf.function` from a batch to its per-example terms.

    It maps `(target, condition, seed)` to `[B]` tensors log p(x),
    E_q log p(x|z) and the KL, and the `[B, latent_dim]` posterior points.
    """
    cache = _ESTIMATORS.setdefault(model, {})
    compiled = num_samples * batch_size * model.latent_dim >= _XLA_MIN_DRAWS
    if compiled not in cache:
        specs = (
            tf.TensorSpec((None,) + tuple(model.likelihood.event_shape), tf.float32),
            tf.TensorSpec((None,) + tuple(model.condition_shape), tf.float32)
            if conditional
            else None,
        )
        cache[compiled] = _make_batch_estimator(weakref.ref(model), specs, compiled)
    estimate = cache[compiled]
    counts = (tf.constant(num_samples, tf.int32), tf.constant(chunk_size, tf.int32))
    return lambda target, condition, seed: estimate(target, condition, seed, *counts)


def _make_batch_estimator(model_ref, specs, compiled):
    target_spec, condition_spec = specs
    noise = _compiled_noise if compiled else _noise
    conditional = condition_spec is not None

    def estimate(target, condition, seed, num_samples, chunk_size):
        model = model_ref()
        posterior = model.encode(target, condition)
        prior = model.prior(condition)
        point = model.posterior_layer.point(posterior)
        latent_shape = tf.shape(point)
        counters_per_sample = tf.size(point)
        analytic = model.kl_estimator == "analytic"

        def chunk_terms(start, num):
            # Sample k of example b uses counters k * B * d + b * d + j: no overlap
            # between samples, and the same numbers whatever the chunking.
            eps = noise(tf.concat([[num], latent_shape], 0), seed, start * counters_per_sample)
            z = model.posterior_layer.reparameterize(posterior, eps)
            tiled = None
            if conditional:
                tiled = tf.tile(
                    condition, tf.concat([[num], tf.ones_like(tf.shape(condition)[1:])], 0)
                )
            decode = lambda z: model.decode(z, tiled)  # noqa: E731
            log_likelihood, log_weights = importance_terms(posterior, decode, prior, target, z)
            return (
                tf.cast(tf.reduce_logsumexp(log_weights, 0), tf.float64),
                tf.cast(tf.reduce_sum(log_likelihood, 0), tf.float64),
                # log q(z_k) - log p(z_k), for the Monte Carlo KL.
                tf.cast(tf.reduce_sum(log_likelihood - log_weights, 0), tf.float64),
            )

        def add_chunk(start, num, log_sum, total, log_ratio):
            chunk_log_sum, chunk_total, chunk_ratio = chunk_terms(start, num)
            log_sum = tf.reduce_logsumexp(tf.stack([log_sum, chunk_log_sum]), 0)
            return log_sum, total + chunk_total, log_ratio + chunk_ratio

        batch = latent_shape[:1]
        sums = (
            tf.fill(batch, tf.constant(-np.inf, tf.float64)),
            tf.zeros(batch, tf.float64),
            tf.zeros(batch, tf.float64),
        )

        def next_chunk(start, *sums):
            num = tf.minimum(chunk_size, num_samples - start)  # the last may be smaller
            return (start + num, *add_chunk(start, num, *sums))

        # One chunk in memory at a time.
        _, log_sum, total, log_ratio = tf.while_loop(
            lambda start, *sums: start < num_samples,
            next_chunk,
            (tf.constant(0), *sums),
            parallel_iterations=1,
        )
        num = tf.cast(num_samples, tf.float64)
        if analytic:
            kl = tf.cast(kl_divergence(posterior, prior)[0], tf.float64)
        else:
            kl = log_ratio / num
        return log_sum - tf.math.log(num), total / num, kl, point

    # Input signatures give one trace for every batch size, the last partial one
    # included, and for every sample count and chunk size.
    scalar = tf.TensorSpec((), tf.int32)
    if conditional:

        @tf.function(
            input_signature=[target_spec, condition_spec, scalar, scalar, scalar], autograph=False
        )
        def estimate_pair(target, condition, seed, num_samples, chunk_size):
            return estimate(target, condition, seed, num_samples, chunk_size)

        return estimate_pair

    @tf.function(input_signature=[target_spec, scalar, scalar, scalar], autograph=False)
    def estimate_single(target, seed, num_samples, chunk_size):
        return estimate(target, None, seed, num_samples, chunk_size)

    return lambda target, condition, *args: estimate_single(target, *args)


def _summarize(per_example, reconstruction, kl, posterior_means, num_samples, size, discrete):
    """The metrics dict of `log_likelihood` from per-example numpy arrays.

    Bits per dimension are reported for `discrete` data only: a density's
    log p(x) depends on the units of x.
    """
    mean_log_likelihood = float(np.mean(per_example))
    kl = float(np.mean(kl))
    # A variance across examples: undefined for one example (not "0 active").
    num_examples = int(per_example.shape[0])
    active = np.var(posterior_means, axis=0) > _ACTIVE_VARIANCE if num_examples > 1 else None
    return {
        "log_likelihood": mean_log_likelihood,
        "nll": -mean_log_likelihood,
        "bits_per_dim": -mean_log_likelihood / (size * math.log(2.0)) if discrete else None,
        "elbo": float(np.mean(reconstruction)) - kl,
        "reconstruction": float(np.mean(reconstruction)),
        "kl": kl,
        "latent_dim": int(posterior_means.shape[-1]),
        "active_units": None if active is None else int(np.sum(active)),
        "num_samples": num_samples,
        "num_examples": num_examples,
        "per_example": per_example,
    }
