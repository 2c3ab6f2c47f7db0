"""Latency, size and quality cost of the exported MNIST VAE decoder.

Trains an MLP VAE for one epoch on MNIST (or loads `--model`), exports it as a
SavedModel and as TFLite files (float32, float16, dynamic-range, int8), then:

- latency: median wall time of one call, after warm-up, for one latent and a
  batch of 64, of the Keras decoder (`model.decode(z).mean()`, eager and in a
  `tf.function`), the SavedModel's `serving_default` signature (loaded in
  this process) and each TFLite file's `decode` and `sample` signatures
  (LiteRT signature runners, default CPU delegate, as `litert_sampler` runs
  them). All in one process, one call at a time.
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

from keras_vae.export import Sampler, export_saved_model, export_tflite  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.tasks import load_model  # noqa: E402

QUANTIZE = (None, "float16", "dynamic", "int8")
BATCHES = (1, 64)
CLIP = 1e-6


def train_model(latent_dim, epochs, seed, train_images=None):
    keras.utils.set_random_seed(seed)
    images, _ = mnist_arrays("train" if train_images is None else f"train[:{train_images}]")
    model = build_vae("mlp", (28, 28, 1), latent_dim=latent_dim, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(binarize(images, seed), batch_size=128, epochs=epochs, verbose=0)
    return model


def median_microseconds(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


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
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--train-images", type=int, metavar="N", help="Train on the first N images (default: all)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=300, help="Timed calls per measurement.")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--eval-size", type=int, default=2000)
    args = parser.parse_args()

    start = time.perf_counter()
    if args.model:
        model, source = load_model(args.model), f"`{args.model}`"
    else:
        model = train_model(args.latent_dim, args.epochs, args.seed, args.train_images)
        source = f"MLP VAE, latent {args.latent_dim}, trained {args.epochs} epoch(s) here"
        if args.train_images is not None:
            source += f" on MNIST train[:{args.train_images}]"
    latent_dim = model.latent_dim
    folder = tempfile.mkdtemp(prefix="export_latency_")
    saved_model = export_saved_model(model, os.path.join(folder, "saved_model"))
    tflite = {
        mode: export_tflite(model, os.path.join(folder, f"{mode or 'float32'}.tflite"), mode)
        for mode in QUANTIZE
    }
    setup_minutes = (time.perf_counter() - start) / 60

    rng = np.random.default_rng(args.seed)
    latents = {n: rng.standard_normal((n, latent_dim)).astype(np.float32) for n in BATCHES}
    keras_eager = {n: (lambda z=z: model.decode(z).mean().numpy()) for n, z in latents.items()}
    graph_decode = tf.function(lambda z: model.decode(z).mean())
    keras_graph = {n: (lambda z=z: graph_decode(z).numpy()) for n, z in latents.items()}
    serve = tf.saved_model.load(saved_model).signatures["serving_default"]
    served = {n: (lambda z=z: serve(z=tf.constant(z))["image"].numpy()) for n, z in latents.items()}

    def measure(fns):
        return [median_microseconds(fns[n], args.runs, args.warmup) for n in BATCHES]

    rows = [
        ("Keras decode, eager", None, measure(keras_eager), None),
        ("Keras decode, tf.function", None, measure(keras_graph), None),
        ("SavedModel `serving_default`", folder_size(saved_model), measure(served), None),
    ]
    samplers = {mode: Sampler(path) for mode, path in tflite.items()}
    for mode, sampler in samplers.items():
        decode = {n: (lambda z=z, s=sampler: s.decode(z)) for n, z in latents.items()}
        sample = {n: (lambda n=n, s=sampler: s.sample(0, n)) for n in BATCHES}
        name = f"TFLite {mode or 'float32'}"
        rows.append((name, os.path.getsize(tflite[mode]), measure(decode), measure(sample)))

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
        f"Model: {source}. Setup (data, training, 5 exports): {setup_minutes:.1f} min. "
        "The SavedModel also holds the encoder; sizes in % are of the float32 TFLite file.",
        f"Latency: median of {args.runs} calls after {args.warmup} warm-up calls, one process, "
        "one call at a time; TFLite through LiteRT signature runners (default CPU delegate, "
        "XNNPACK). `sample` draws z with the portable RNG and decodes it.",
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
        mode = next((m for m in QUANTIZE if name == f"TFLite {m or 'float32'}"), "keras")
        size_text = "" if size is None else f"{size / 1024:,.0f} KiB"
        if size is not None and mode != "keras":
            size_text += f" ({size / float_size:.0%})"
        sample_text = ["", ""] if sample_us is None else [f"{t:,.0f}" for t in sample_us]
        if mode == "keras":
            elbo_text = [f"{reference:.2f}", "0 (reference)"] if "eager" in name else ["", ""]
        else:
            elbo_text = [f"{elbos[mode]:.2f}", f"{reference - elbos[mode]:.3f}"]
        lines.append(
            f"| {name} | {size_text} | {decode_us[0]:,.0f} | {decode_us[1]:,.0f} | "
            f"{sample_text[0]} | {sample_text[1]} | {elbo_text[0]} | {elbo_text[1]} |"
        )
    record("Export: latency, size and quantization cost of the MNIST VAE decoder", lines)


if __name__ == "__main__":
    main()
