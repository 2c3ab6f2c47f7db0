"""Seconds for the IAF posterior's log q(z) at z it did not draw: the d-pass inverse against ours.

A VampPrior with an IAF posterior takes log q_k(z) of every component at
every z, which inverts each flow step. The plain inverse runs `latent_dim`
passes of the step's MADE network, and backpropagates through all of them;
`IAFStep` stops at the first pass that changes no bit of x (same values) and
takes the implicit gradient, solved the same way. Both run here on one IAF
(2 steps, hidden (256,), latent 50 by default) whose weights are moved away
from their initial values by Gaussian noise, at a batch of z drawn from the
posterior at other features; "before" is the plain loop written out below,
with TFP's change of variables (the same ops the old `_inverse` ran). With
much larger weight noise (0.05 here) some of those z overflow float32 in
the exact inverse, or in the d-pass loop's passes only: the d-pass loop
gives NaN in those rows; `IAFStep` solves them again one dimension per pass
(a finite log q(z) where the exact inverse is finite, else -inf), and they
no longer make the early-stopping loop run all d passes. Values are compared
where the d-pass loop is finite.

Each contender is a `tf.function` (graph, as the log-likelihood evaluation
runs, and XLA, as `jit_compile="auto"` trains an MLP on CPU), timed for the
values alone and for the values and gradients (z, features and every weight),
after a warm-up call, `--repeats` times in alternation; the figures are the
median and the range. The passes each step's inverse took are counted in
eager mode (a network that counts its calls). The figures are recorded in
benchmarks/RESULTS.md.

    python -m benchmarks.iaf_inverse --latent-dim 50 --batch 500 --repeats 7
"""

import argparse
import functools
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import record  # noqa: E402
from keras_vae.posteriors import IAF  # noqa: E402
from keras_vae.posteriors.iaf import IAFStep  # noqa: E402

GATE_BIAS = 2.0  # g = sigmoid(s + 2), as in `keras_vae.posteriors.iaf`
FEATURES = 256


def iaf_steps(dist):
    """The flow's steps in the order they apply to the base draw (step 0 first)."""
    steps = {b.name: b for b in dist.bijector.bijectors}
    return [steps[f"iaf_step_{t}"] for t in range(len(steps))]


def plain_inverse(step, y):
    """The d-pass inverse: x <- (y - (1 - g) * m) / g, d times from x = 0."""
    x = tf.zeros_like(y)
    for _ in range(step.latent_dim):
        shift, raw = step.network(x, step.context)
        gate = tf.sigmoid(raw + GATE_BIAS)
        x = (y - (1.0 - gate) * shift) / gate
    return x


def plain_log_prob(dist, z):
    x, log_det = z, 0.0
    for step in iaf_steps(dist)[::-1]:
        x = plain_inverse(step, x)
        log_det += step.forward_log_det_jacobian(x, event_ndims=1)
    return dist.distribution.log_prob(x) - log_det


def our_log_prob(dist, z):
    return dist.log_prob(z)


def make_iaf(latent_dim, hidden_units, num_steps, weight_noise, seed=0):
    keras.utils.set_random_seed(seed)
    posterior = IAF(num_steps=num_steps, hidden_units=hidden_units, latent_dim=latent_dim)
    posterior.bind(latent_dim)
    posterior.build((None, FEATURES))
    rng = np.random.default_rng(seed)
    for weight in posterior.weights:
        weight.assign(weight + rng.normal(scale=weight_noise, size=weight.shape))
    return posterior


def contenders(posterior, features, z):
    """Name -> a compiled call, for each of before/after, graph/XLA, values/gradients."""

    def values(log_prob, x, z):
        return tf.reduce_sum(log_prob(posterior(x), z))

    def gradients(log_prob, x, z):
        with tf.GradientTape() as tape:
            tape.watch([x, z])
            loss = tf.reduce_sum(log_prob(posterior(x), z))
        return loss, tape.gradient(loss, [x, z, *posterior.trainable_weights])

    calls = {}
    for jit_compile in (False, True):
        for what, fn in (("values", values), ("gradients", gradients)):
            for who, log_prob in (("before", plain_log_prob), ("after", our_log_prob)):
                compiled = tf.function(functools.partial(fn, log_prob), jit_compile=jit_compile)
                key = ("XLA" if jit_compile else "graph", what, who)
                calls[key] = functools.partial(compiled, features, z)
    return calls


def passes_taken(dist, z):
    """The passes each step's inverse runs at its input, counted in eager mode."""
    counts, x = [], z
    for step in iaf_steps(dist)[::-1]:
        calls = []

        def network(x, context, step=step, calls=calls):
            calls.append(None)
            return step.network(x, context)

        x = IAFStep(network, step.latent_dim, step.context, step.degrees).inverse(x)
        counts.append(len(calls))
    return counts[::-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--num-steps", type=int, default=2)
    parser.add_argument("--hidden-units", type=int, nargs="+", default=[256])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--weight-noise", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    posterior = make_iaf(args.latent_dim, args.hidden_units, args.num_steps, args.weight_noise)
    rng = np.random.default_rng(1)
    features = tf.constant(rng.normal(size=(args.batch, FEATURES)).astype("float32"))
    others = rng.normal(size=(args.batch, FEATURES)).astype("float32")
    eps = rng.normal(size=(args.batch, args.latent_dim)).astype("float32")
    z = tf.identity(posterior.reparameterize(posterior(others), eps)) + 0.0
    dist = posterior(features)
    passes = passes_taken(dist, z)
    before, after = plain_log_prob(dist, z).numpy(), dist.log_prob(z).numpy()
    finite = np.isfinite(before)
    same = np.array_equal(before[finite], after[finite])
    lost = (
        f" Rows where the d-pass loop gives NaN: {np.sum(~finite)}, of which ours gives "
        f"{np.sum(np.isfinite(after[~finite]))} finite and {np.sum(np.isneginf(after[~finite]))} "
        "-inf."
        if not finite.all()
        else ""
    )

    calls = contenders(posterior, features, z)
    for call in calls.values():  # traces and compiles
        call()
    seconds = {key: [] for key in calls}
    keys = list(calls)
    for repeat in range(args.repeats):
        for key in keys if repeat % 2 == 0 else keys[::-1]:
            start = time.perf_counter()
            result = calls[key]()
            tf.nest.map_structure(lambda t: t.numpy(), result)
            seconds[key].append(time.perf_counter() - start)

    rows = []
    for mode in ("graph", "XLA"):
        for what in ("values", "gradients"):
            old, new = seconds[(mode, what, "before")], seconds[(mode, what, "after")]
            rows.append(
                f"| {mode} | {what} | {statistics.median(old):.3f} ({min(old):.3f}–{max(old):.3f})"
                f" | {statistics.median(new):.3f} ({min(new):.3f}–{max(new):.3f})"
                f" | {statistics.median(old) / statistics.median(new):.1f}× |"
            )
    lines = [
        f"IAF with latent_dim {args.latent_dim}, {args.num_steps} steps, hidden "
        f"{tuple(args.hidden_units)}, context 64, weights moved by N(0, {args.weight_noise}²); "
        f"batch {args.batch} of z drawn from the posterior at other features. Passes per "
        f"step's inverse (of {args.latent_dim}): {passes}, mean "
        f"{statistics.mean(passes):.1f}. log q(z) before and after bit for bit equal "
        f"where the d-pass loop is finite (eager): {same}.{lost} Seconds per call, median "
        f"(min–max) of {args.repeats}:",
        "",
        "| tf.function | computes | d-pass loop s | early stop s | speed-up |",
        "| --- | --- | ---: | ---: | ---: |",
        *rows,
    ]
    record("IAF log q(z) at foreign z: the d-pass inverse against the early-stopping one", lines)


if __name__ == "__main__":
    main()
