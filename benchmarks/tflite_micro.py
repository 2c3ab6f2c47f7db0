"""TensorFlow Lite Micro files: arena, size, parity with Keras and invoke time.

Exports the MNIST MLP run (default `runs/mnist-mlp/model.keras`) and a conv
preset (untrained unless `--conv-model` names a trained one; its arena and
float32 parity do not depend on the weights) with `export_tflite_micro` for
a few `num_samples`, and the MLP as `quantize="int8-full"` at batch 1 (decode
only; z drawn on the host with `portable_normal` and quantized). Each file
runs in `tflite_micro` for seeds 0..S-1 and is compared with
`model.sample(N, seed=seed)`; the invoke times are the median (and 10th-90th
percentiles) of those runs.

    python -m benchmarks.tflite_micro --seeds 21
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import record, setup_tfds_dir  # noqa: E402

setup_tfds_dir()

import keras  # noqa: E402
import numpy as np  # noqa: E402
from tflite_micro.python.tflite_micro import runtime  # noqa: E402

from keras_vae.export import export_tflite  # noqa: E402
from keras_vae.export.litert_sampler import (  # noqa: E402
    dequantized,
    integer_inputs,
    portable_normal,
)
from keras_vae.export.tflite_micro import (  # noqa: E402
    export_tflite_micro,
    measure_arena,
    micro_io,
    read_micro_record,
)
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.tasks import load_model  # noqa: E402

INT8_ROWS = 64


def percentiles(times):
    ms = np.asarray(times) * 1e3
    return f"{np.median(ms):.2f} ms ({np.percentile(ms, 10):.2f}-{np.percentile(ms, 90):.2f})"


def float_row(name, model, num_samples, seeds, folder):
    path = os.path.join(folder, f"{name}-{num_samples}.tflite")
    start = time.perf_counter()
    export_tflite_micro(model, path, num_samples=num_samples, allow_untrained=True)
    seconds = time.perf_counter() - start
    with open(path, "rb") as f:
        content = f.read()
    record_ = read_micro_record(content)
    interpreter = runtime.Interpreter.from_bytes(content, arena_size=record_["arena_bytes"])
    _, outputs = micro_io(content)
    worst, times = 0.0, []
    for seed in range(seeds):
        interpreter.set_input(np.asarray(np.int32(seed)), 0)
        begin = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - begin)
        image = interpreter.get_output(outputs.index("image"))
        expected = np.asarray(model.sample(num_samples, seed=seed)).reshape(image.shape)
        worst = max(worst, float(np.abs(image - expected).max()))
    return (
        f"| {name}, sample N={num_samples} | float32 | {len(content) / 1e6:.2f} MB | "
        f"{record_['arena_bytes'] / 1024:.0f} KiB | {worst:.2g} | {percentiles(times)} | "
        f"{seconds:.1f} s |"
    )


def int8_row(name, model, seeds, folder):
    path = os.path.join(folder, f"{name}-int8.tflite")
    start = time.perf_counter()
    export_tflite(model, path, quantize="int8-full", batch_sizes=(1,))
    seconds = time.perf_counter() - start
    with open(path, "rb") as f:
        content = f.read()
    arena, _ = measure_arena(content)
    scales = read_micro_record(content)["quantization"]
    interpreter = runtime.Interpreter.from_bytes(content, arena_size=arena)
    names, _ = micro_io(content)
    worst, times = 0.0, []
    for seed in range(seeds):
        z = portable_normal((INT8_ROWS, model.latent_dim), seed)
        inputs = integer_inputs({"z": z}, scales)  # as the Sampler quantizes
        images = []
        for row in range(INT8_ROWS):
            for key, value in inputs.items():
                interpreter.set_input(value[row : row + 1], names.index(key))
            begin = time.perf_counter()
            interpreter.invoke()
            times.append(time.perf_counter() - begin)
            images.append(interpreter.get_output(0))
        image = dequantized(np.concatenate(images), scales["image"])
        expected = np.asarray(model.sample(INT8_ROWS, seed=seed)).reshape(image.shape)
        worst = max(worst, float(np.abs(image - expected).max()))
    return (
        f"| {name}, int8-full decode, batch 1 (z on the host) | int8 | "
        f"{len(content) / 1e6:.2f} MB | {arena / 1024:.0f} KiB | {worst:.2g} "
        f"({INT8_ROWS} rows a seed) | {percentiles(times)} a row | {seconds:.1f} s |"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/mnist-mlp/model.keras")
    parser.add_argument("--conv-model", default=None)
    parser.add_argument("--seeds", type=int, default=21)
    parser.add_argument("--num-samples", default="1,16")
    args = parser.parse_args()
    mlp = load_model(args.model)
    if args.conv_model:
        conv, conv_name = load_model(args.conv_model), "conv"
    else:
        keras.utils.set_random_seed(0)
        conv = build_vae("conv", (28, 28, 1), latent_dim=16, seed=0)
        conv(np.zeros((1, 28, 28, 1), np.float32))
        conv_name = "conv (untrained, latent 16)"
    counts = [int(n) for n in args.num_samples.split(",")]
    lines = [
        f"MLP: `{args.model}` (latent {mlp.latent_dim}). Seeds 0-{args.seeds - 1}; max |Δ| "
        "is against `model.sample(N, seed=seed)` in Keras (float32); invoke times in the "
        "tflite_micro Python interpreter on this host (median, 10th-90th percentile); the "
        "arena is the recorded one (smallest that allocates + 10%). Machine shared with "
        "other jobs.",
        "",
        "| file | type | size | arena | max \\|Δ\\| to Keras | invoke | export |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for n in counts:
            lines.append(float_row("MLP", mlp, n, args.seeds, folder))
        lines.append(float_row(conv_name, conv, counts[0], args.seeds, folder))
        lines.append(int8_row("MLP", mlp, args.seeds, folder))
    record("TensorFlow Lite Micro: arena, size, parity and invoke time", lines)


if __name__ == "__main__":
    main()
