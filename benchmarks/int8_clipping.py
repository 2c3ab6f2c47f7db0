"""How often the int8 TFLite files' images differ from float32 Keras, with and without
calibrating z at the sampler's extremes.

Loads a trained VAE (default `runs/mnist-mlp/model.keras`) and exports it
three ways: `int8` calibrated as before this change (the calibration seeds'
draws only: `extreme_latents` patched to add nothing, and no widening of the
`sample` signature's ranges), `int8` as it is now (extremes included), and
`int8-full` (batch 64). For each file, `Sampler.sample(seed, 4096)` for
seeds 0..N-1 against `model.sample(4096, seed=seed)` (Keras, float32):
the fraction of images whose max |Δ| exceeds 0.1, the largest |Δ|, and the
largest |Δ| among images whose z has a coordinate beyond 4. Then a decode
at the extremes: the latents of `extreme_latents` (one coordinate at
±5.77), decoded by each file and by Keras. Last, the CPU latency of
`Sampler.decode` and `Sampler.sample` for 1 and 64 rows (LiteRT
Interpreter, XNNPACK), with an `int8-full` file at batch 1 too.

    python -m benchmarks.int8_clipping --seeds 21
"""

import argparse
import os
import tempfile
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import record, setup_tfds_dir  # noqa: E402
from benchmarks.export_latency import interleaved_microseconds, spread  # noqa: E402

setup_tfds_dir()

import numpy as np  # noqa: E402

from keras_vae.export import Sampler, export_tflite  # noqa: E402
from keras_vae.export import tflite as tflite_module  # noqa: E402
from keras_vae.export.integer import extreme_latents  # noqa: E402
from keras_vae.tasks import load_model  # noqa: E402

NUM_SAMPLES = 4096
THRESHOLD = 0.1


def export_before(model, path):
    """The int8 file as calibrated before: no extreme latents, no widened ranges."""

    def no_extremes(*args):
        return []

    with (
        mock.patch.object(tflite_module, "_extreme_calibration_data", no_extremes),
        mock.patch.object(tflite_module, "_with_decode_latent_range", lambda content: content),
    ):
        return export_tflite(model, path, quantize="int8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/mnist-mlp/model.keras")
    parser.add_argument("--seeds", type=int, default=21)
    parser.add_argument("--runs", type=int, default=200, help="Timed calls per measurement.")
    args = parser.parse_args()

    model = load_model(args.model)
    folder = tempfile.mkdtemp(prefix="int8_clipping_")
    start = time.perf_counter()
    files = {
        "int8, before (calibration draws only)": export_before(
            model, os.path.join(folder, "before.tflite")
        ),
        "int8, after (extremes calibrated)": export_tflite(
            model, os.path.join(folder, "int8.tflite"), quantize="int8"
        ),
        "int8-full, batch 64": export_tflite(
            model, os.path.join(folder, "full.tflite"), quantize="int8-full", batch_sizes=(64,)
        ),
    }
    export_seconds = time.perf_counter() - start
    samplers = {name: Sampler(path) for name, path in files.items()}
    stats = {name: {"over": 0, "worst": 0.0, "worst_extreme": 0.0} for name in files}
    images_total = 0
    z_max = 0.0
    for seed in range(args.seeds):
        reference = np.asarray(model.sample(NUM_SAMPLES, seed=seed))
        reference = reference.reshape(NUM_SAMPLES, -1)
        for name, sampler in samplers.items():
            images, z = sampler.sample(seed, NUM_SAMPLES, return_latent=True)
            difference = np.abs(images.reshape(NUM_SAMPLES, -1) - reference).max(axis=1)
            extreme = np.abs(z).max(axis=1) > 4.0
            entry = stats[name]
            entry["over"] += int(np.sum(difference > THRESHOLD))
            entry["worst"] = max(entry["worst"], float(difference.max()))
            if extreme.any():
                entry["worst_extreme"] = max(
                    entry["worst_extreme"], float(difference[extreme].max())
                )
            z_max = max(z_max, float(np.abs(z).max()))
        images_total += NUM_SAMPLES

    z, _ = extreme_latents(model)
    keras_extreme = np.asarray(model.likelihood.portable_mean(model.decode(z)))
    keras_extreme = keras_extreme.reshape(len(z), -1)
    lines = [
        f"Model: `{args.model}` (latent {model.latent_dim}). {images_total:,} images: "
        f"`Sampler.sample(seed, {NUM_SAMPLES})` for seeds 0–{args.seeds - 1} against Keras "
        f"`model.sample` (float32); largest |z| drawn: {z_max:.2f}. Exports took "
        f"{export_seconds:.0f} s. Extremes: the {len(z)} latents of `extreme_latents` (one "
        "coordinate at ±5.77, the rest a typical draw), decoded by each file and by Keras.",
        "",
        f"| file | images with max \\|Δ\\| > {THRESHOLD} | max \\|Δ\\| | max \\|Δ\\|, \\|z\\|∞ > 4 "
        "| max \\|Δ\\| at the extremes |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, sampler in samplers.items():
        entry = stats[name]
        at_extremes = np.abs(sampler.decode(z).reshape(len(z), -1) - keras_extreme).max()
        lines.append(
            f"| {name} | {entry['over']:,} ({entry['over'] / images_total:.2e}) | "
            f"{entry['worst']:.3f} | {entry['worst_extreme']:.3f} | {at_extremes:.3f} |"
        )
    files["int8-full, batch 1"] = export_tflite(
        model, os.path.join(folder, "full1.tflite"), quantize="int8-full"
    )
    timed = {name: Sampler(path) for name, path in files.items() if "before" not in name}
    latents = {n: z[:n] if n <= len(z) else np.resize(z, (n, z.shape[1])) for n in (1, 64)}
    fns = {}
    for name, sampler in timed.items():
        for n, rows in latents.items():
            fns[name, "decode", n] = lambda s=sampler, rows=rows: s.decode(rows)
            fns[name, "sample", n] = lambda s=sampler, n=n: s.sample(0, n)
    timings = interleaved_microseconds(fns, args.runs, warmup=20, max_seconds=20.0)
    lines += [
        "",
        f"Latency in µs: median (10th–90th percentile) of {args.runs} calls (at most 20 s "
        "each), round-robin, one process; `litert_sampler.Sampler` in LiteRT's Interpreter "
        "(XNNPACK), input checks and, for int8-full, the host's draw and (de)quantization "
        "included. The machine was shared with other jobs.",
        "",
        "| file | decode 1 | decode 64 | sample 1 | sample 64 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in timed:
        cells = [spread(timings[name, kind, n]) for kind in ("decode", "sample") for n in (1, 64)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    record("Export: int8 images against float32 Keras, z calibrated at the extremes", lines)


if __name__ == "__main__":
    main()
