"""Latency, size and quality cost of the exported MNIST VAE decoder.

Trains an MLP (or, with `--architecture conv`, a convolutional) VAE for one
epoch on MNIST (or loads `--model`), exports it as a SavedModel and as TFLite
files (float32, float16, dynamic-range, int8) with static-shape signatures at
`--batch-sizes` (default 1,64), then:

- latency: median wall time of one call, after warm-up, and its spread (10th
  to 90th percentile), for one latent and a batch of 64, of the Keras decoder
  (`model.decode(z).mean()`, eager and in a `tf.function`), the SavedModel's
  `serving_default` signature (loaded in this process) and, for each TFLite
  file, its dynamic-shape `decode` and `sample` signatures (raw LiteRT
  signature runners, default CPU delegate: how files without
  `--batch-sizes` run) and `litert_sampler.Sampler`'s `decode` and `sample`,
  which take the static signatures, in LiteRT's Interpreter and in its
  CompiledModel. All in one process, one call at a time, every function in
  turn (round-robin), so that a change in the load of a shared machine hits
  all alike; a function leaves the rounds after `--runs` calls or
  `--max-seconds` of calls (at least 10).
- size: the TFLite files; the SavedModel folder (which also holds the encoder).
- quality cost of quantization: the test ELBO when a TFLite decoder replaces
  the Keras one. On the first `--eval-size` test images, binarized once
  (seed 1), one z per image is drawn from the Keras encoder's posterior
  (seed 0) and the same z is decoded by every decoder; the Bernoulli
  log-likelihood is computed in numpy from the returned probabilities,
  clipped to [1e-6, 1 - 1e-6], and the analytic KL to the prior is added.
  The Keras row goes through the same clipped formula, so the cost is only
  the decoder's.

    python -m benchmarks.export_latency               # train 1 epoch, then measure
    python -m benchmarks.export_latency --model runs/mnist-mlp/model.keras
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import binarize, mnist_arrays, record, setup_tfds_dir  # noqa: E402

# Before keras_vae, which imports TFDS: TFDS reads the folder when imported.
setup_tfds_dir()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from keras_vae.export import Sampler, export_saved_model, export_tflite  # noqa: E402
from keras_vae.export.validation import check_batch_sizes  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.tasks import load_model  # noqa: E402

QUANTIZE = (None, "float16", "dynamic", "int8")
BATCHES = (1, 64)
CLIP = 1e-6
# How each TFLite file runs: raw dynamic-shape signature runners, or the
# Sampler (static signatures where the batch matches) in each LiteRT API.
RUNNERS = ("dynamic signatures", "Sampler, Interpreter", "Sampler, CompiledModel")


def train_model(latent_dim, epochs, seed, train_images=None, architecture="mlp"):
    keras.utils.set_random_seed(seed)
    images, _ = mnist_arrays("train" if train_images is None else f"train[:{train_images}]")
    model = build_vae(architecture, (28, 28, 1), latent_dim=latent_dim, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(binarize(images, seed), batch_size=128, epochs=epochs, verbose=0)
    return model


def interleaved_microseconds(fns, runs, warmup, max_seconds=float("inf")):
    """Key -> (median, 10th percentile, 90th percentile) of one call's wall time, in µs.

    The calls go round-robin, one of each function per round, so a change
    in the machine's load (shared with other jobs) hits every function
    alike. A function leaves the rounds after `runs` calls, or after
    `max_seconds` of calls (at least 10); its warm-up stops after `warmup`
    calls or a quarter of `max_seconds` (at least 2).
    """
    for fn in fns.values():
        began = time.perf_counter()
        for done in range(warmup):
            fn()
            if done >= 1 and time.perf_counter() - began > max_seconds / 4:
                break
    times = {key: [] for key in fns}
    active = list(fns)
    while active:
        for key in list(active):
            start = time.perf_counter()
            fns[key]()
            times[key].append(time.perf_counter() - start)
            calls = len(times[key])
            if calls >= runs or (calls >= 10 and sum(times[key]) >= max_seconds):
                active.remove(key)
    timings = {}
    for key, values in times.items():
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        timings[key] = (statistics.median(values) * 1e6, deciles[0] * 1e6, deciles[-1] * 1e6)
    return timings


def spread(timing):
    """`median (p10–p90)` in µs, as a table cell."""
    median, low, high = timing
    return f"{median:,.0f} ({low:,.0f}–{high:,.0f})"


def folder_size(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def elbo(probabilities, x, kl):
    """Mean ELBO in nats: Bernoulli log-likelihood of clipped probabilities minus KL."""
    p = np.clip(probabilities.astype(np.float64), CLIP, 1.0 - CLIP)
    log_likelihood = (x * np.log(p) + (1.0 - x) * np.log1p(-p)).reshape(len(x), -1).sum(1)
    return float(np.mean(log_likelihood - kl))


def decode_in_batches(decode, z, batch=500):
    return np.concatenate([decode(z[i : i + batch]) for i in range(0, len(z), batch)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="A trained .keras VAE; else train one.")
    parser.add_argument("--architecture", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--train-images", type=int, metavar="N", help="Train on the first N images (default: all)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=300, help="Timed calls per measurement.")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="Per measurement.")
    parser.add_argument("--batch-sizes", default="1,64", help="Static TFLite signatures.")
    parser.add_argument(
        "--modes",
        default="float32,float16,dynamic,int8",
        help="TFLite files to make and time, among float32,float16,dynamic,int8.",
    )
    parser.add_argument("--eval-size", type=int, default=2000)
    args = parser.parse_args()

    start = time.perf_counter()
    if args.model:
        model, source = load_model(args.model), f"`{args.model}`"
    else:
        model = train_model(
            args.latent_dim, args.epochs, args.seed, args.train_images, args.architecture
        )
        name = {"mlp": "MLP", "conv": "convolutional (`conv` preset)"}[args.architecture]
        source = f"{name} VAE, latent {args.latent_dim}, trained {args.epochs} epoch(s) here"
        if args.train_images is not None:
            source += f" on MNIST train[:{args.train_images}]"
    latent_dim = model.latent_dim
    folder = tempfile.mkdtemp(prefix="export_latency_")
    saved_model = export_saved_model(model, os.path.join(folder, "saved_model"))
    batch_sizes = check_batch_sizes(args.batch_sizes)
    modes = [None if m == "float32" else m for m in args.modes.split(",")]
    if None not in modes or not set(modes) <= set(QUANTIZE):
        parser.error(f"--modes must include float32, among {QUANTIZE}: {args.modes!r}")
    tflite = {
        mode: export_tflite(
            model,
            os.path.join(folder, f"{mode or 'float32'}.tflite"),
            mode,
            batch_sizes=batch_sizes,
        )
        for mode in modes
    }
    setup_minutes = (time.perf_counter() - start) / 60

    rng = np.random.default_rng(args.seed)
    latents = {n: rng.standard_normal((n, latent_dim)).astype(np.float32) for n in BATCHES}
    keras_eager = {n: (lambda z=z: model.decode(z).mean().numpy()) for n, z in latents.items()}
    graph_decode = tf.function(lambda z: model.decode(z).mean())
    keras_graph = {n: (lambda z=z: graph_decode(z).numpy()) for n, z in latents.items()}
    serve = tf.saved_model.load(saved_model).signatures["serving_default"]
    served = {n: (lambda z=z: serve(z=tf.constant(z))["image"].numpy()) for n, z in latents.items()}

    rows = [
        ("Keras decode, eager", None, keras_eager, None),
        ("Keras decode, tf.function", None, keras_graph, None),
        ("SavedModel `serving_default`", folder_size(saved_model), served, None),
    ]
    samplers = {mode: Sampler(path, runtime="interpreter") for mode, path in tflite.items()}
    for mode, sampler in samplers.items():
        dynamic = Interpreter(model_path=tflite[mode])
        decode_runner = dynamic.get_signature_runner("decode")
        sample_runner = dynamic.get_signature_runner("sample")
        runs = {
            RUNNERS[0]: (
                {n: (lambda z=z, r=decode_runner: r(z=z)) for n, z in latents.items()},
                {
                    n: (lambda n=n, r=sample_runner: r(seed=np.int32(0), num_samples=np.int32(n)))
                    for n in BATCHES
                },
            )
        }
        compiled = None
        with contextlib.suppress(ValueError):
            compiled = Sampler(tflite[mode], runtime="compiled_model")
        for runner, s in ((RUNNERS[1], sampler), (RUNNERS[2], compiled)):
            if s is not None:
                runs[runner] = (
                    {n: (lambda z=z, s=s: s.decode(z)) for n, z in latents.items()},
                    {n: (lambda n=n, s=s: s.sample(0, n)) for n in BATCHES},
                )
        size = os.path.getsize(tflite[mode])
        for runner, (decode, sample) in runs.items():
            rows.append((f"TFLite {mode or 'float32'}, {runner}", size, decode, sample))
    fns = {}
    for index, (_, _, decode, sample) in enumerate(rows):
        for n in BATCHES:
            fns[index, "decode", n] = decode[n]
            if sample is not None:
                fns[index, "sample", n] = sample[n]
    timings = interleaved_microseconds(fns, args.runs, args.warmup, args.max_seconds)
    rows = [
        (
            name,
            size,
            [timings[index, "decode", n] for n in BATCHES],
            None if sample is None else [timings[index, "sample", n] for n in BATCHES],
        )
        for index, (name, size, _, sample) in enumerate(rows)
    ]

    images, _ = mnist_arrays(f"test[:{args.eval_size}]")
    x = binarize(images, args.seed + 1)
    posterior = model.encode(tf.constant(x))
    z = posterior.sample(seed=[args.seed, 0]).numpy()
    kl = tfp.distributions.kl_divergence(posterior, model.prior()).numpy()
    keras_probabilities = decode_in_batches(lambda b: model.decode(b).mean().numpy(), z)
    reference = elbo(keras_probabilities, x, kl)
    elbos = {mode: elbo(decode_in_batches(s.decode, z), x, kl) for mode, s in samplers.items()}

    float_size = os.path.getsize(tflite[None])
    lines = [
        f"Model: {source}. Setup (data, training, {len(tflite) + 1} exports): "
        f"{setup_minutes:.1f} min. "
        "The SavedModel also holds the encoder; sizes in % are of the float32 TFLite file. "
        f"Every TFLite file holds static-shape signatures at batch sizes {list(batch_sizes)}.",
        f"Latency in µs: median (10th–90th percentile) of {args.runs} calls (or as many as "
        f"{args.max_seconds:g} s allow, at least 10) after {args.warmup} warm-up calls, one "
        "process, one call at a time, every function called in turn (round-robin) so that "
        "changes in the load of the machine, shared with other jobs, hit all alike. TFLite "
        "through LiteRT's default CPU delegate (XNNPACK): `dynamic signatures` are the raw "
        "`decode` and `sample` signature runners (run-time shapes, as a file exported "
        "without `--batch-sizes` runs); `Sampler` is `litert_sampler.Sampler`'s "
        "`decode`/`sample` (input checks included), which take the static signature of a "
        "matching batch, in LiteRT's Interpreter or CompiledModel. `sample` draws z with "
        "the portable RNG and decodes it.",
        f"ELBO: first {len(x)} MNIST test images binarized once; one posterior z per image "
        "from the Keras encoder, decoded by each decoder; Bernoulli log-likelihood from the "
        f"probabilities clipped to [{CLIP:g}, 1 - {CLIP:g}], minus the analytic KL. "
        "Cost = Keras ELBO - this decoder's ELBO, in nats per image.",
        "",
        "| export | size | decode 1 (µs) | decode 64 (µs) | sample 1 (µs) | sample 64 (µs) "
        "| test ELBO | ELBO cost (nats) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, size, decode_us, sample_us in rows:
        mode = next((m for m in QUANTIZE if name.startswith(f"TFLite {m or 'float32'}, ")), "keras")
        size_text = "" if size is None else f"{size / 1024:,.0f} KiB"
        if size is not None and mode != "keras":
            size_text += f" ({size / float_size:.0%})"
        sample_text = ["", ""] if sample_us is None else [spread(t) for t in sample_us]
        if mode == "keras":
            elbo_text = [f"{reference:.2f}", "0 (reference)"] if "eager" in name else ["", ""]
        elif name.endswith(RUNNERS[1]):
            elbo_text = [f"{elbos[mode]:.2f}", f"{reference - elbos[mode]:.3f}"]
        else:
            elbo_text = ["", ""]
        lines.append(
            f"| {name} | {size_text} | {spread(decode_us[0])} | {spread(decode_us[1])} | "
            f"{sample_text[0]} | {sample_text[1]} | {elbo_text[0]} | {elbo_text[1]} |"
        )
    title = "Export: latency, size and quantization cost of the MNIST VAE decoder"
    if args.architecture == "conv" and not args.model:
        title += " (convolutional)"
    record(title, lines)


if __name__ == "__main__":
    main()
