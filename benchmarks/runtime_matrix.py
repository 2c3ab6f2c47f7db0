"""Runtime x model x quantization: parity with Keras and decode latency of every export.

For an MLP and a conv VAE (`--mlp`/`--conv` .keras files, or trained here for
`--epochs` on `--train-split` of MNIST), exports every kind of file:

- a SavedModel (float32), run with TensorFlow through its `serving_default`
  and `sample` signatures;
- `.tflite` files, float32, float16, dynamic, dynamic with
  `min_runtime="2.14"`, int8 (each with static signatures at `--batch`) and
  int8-full (fixed batch `--batch`), each run through
  `litert_sampler.Sampler` in LiteRT's Interpreter, in LiteRT's
  CompiledModel and in tflite-runtime 2.14 (the newest on PyPI; numpy<2, so
  in a venv of its own made with `python3.11 -m venv`, where `litert_sampler`
  falls back to `tflite_runtime`),
  one child process per file and runtime (CompiledModel can segfault);
- TFLite Micro files (`export_tflite_micro`, float32: `decode` at batch
  `--batch` and the in-model sampler with `num_samples=--batch`), and the
  int8-full file, in `tflite_micro` (z drawn and quantized on the host);
- ONNX files (`convert_onnx`, opset 18) in onnxruntime.

Each cell gives the largest |difference| of `decode` images from Keras's
`model.decode(z).mean()` for one z batch of `--batch` rows (seed 0), and of
`sample` images from `model.sample(batch, seed)` for seeds 0..`--seeds`-1
where the file samples (in the model, or on the host for decode-only
files), and the median (10th-90th percentile) wall time of a decode of the
batch over `--repeats` calls after 3 warm-up calls; or the runtime's refusal.

    python -m benchmarks.runtime_matrix --mlp runs/mnist-mlp/model.keras
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import binarize, mnist_arrays, record, setup_tfds_dir  # noqa: E402

# Before keras_vae, which imports TFDS: TFDS reads the folder when imported.
setup_tfds_dir()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_vae.export import (  # noqa: E402
    export_saved_model,
    export_tflite,
    export_tflite_micro,
    litert_sampler,
)
from keras_vae.export.onnx import ONNX_FILES, convert_onnx, write_onnx  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.tasks import load_model  # noqa: E402

# Quantization name -> export_tflite arguments (beside batch_sizes).
TFLITE_FILES = {
    "float32": {"quantize": None},
    "float16": {"quantize": "float16"},
    "dynamic": {"quantize": "dynamic"},
    "dynamic, min_runtime 2.14": {"quantize": "dynamic", "min_runtime": "2.14"},
    "int8": {"quantize": "int8"},
    "int8-full": {"quantize": "int8-full"},
}
# Runtime key -> (name in the table, the quantizations it is given).
RUNTIMES = {
    "saved_model": ("TensorFlow SavedModel", ("float32",)),
    "interpreter": ("LiteRT 2.3 Interpreter", tuple(TFLITE_FILES)),
    "compiled_model": ("LiteRT 2.3 CompiledModel", tuple(TFLITE_FILES)),
    "tflite_runtime": ("tflite-runtime 2.14", tuple(TFLITE_FILES)),
    "micro": ("TFLite Micro", ("float32", "int8-full")),
    "onnx": ("ONNX Runtime", ("float32",)),
}
WARMUP = 3
TFLITE_RUNTIME = "tflite-runtime==2.14.0"
# Runs in a child process, with the numpy and TFLite runtime of its Python:
# prints the refusal's first line and exits 3, or saves images and times.
WORKER = """
import sys
import time

import numpy as np

sys.path.insert(0, sys.argv[1])
from litert_sampler import Sampler

path, runtime, inputs, out = sys.argv[2:6]
data = np.load(inputs)
try:
    sampler = Sampler(path, runtime=runtime)
except ValueError as error:
    print(str(error).splitlines()[0])
    sys.exit(3)
z = data["z"]
decoded = sampler.decode(z)
samples = np.stack([sampler.sample(int(seed), len(z)) for seed in data["seeds"]])
for _ in range(int(data["warmup"])):
    sampler.decode(z)
times = []
for _ in range(int(data["repeats"])):
    start = time.perf_counter()
    sampler.decode(z)
    times.append(time.perf_counter() - start)
np.savez(out, decode=decoded, sample=samples, times=np.asarray(times))
"""


def train_model(architecture, latent_dim, split, epochs, seed=0):
    images, _ = mnist_arrays(split)
    keras.utils.set_random_seed(seed)
    model = build_vae(architecture, (28, 28, 1), latent_dim=latent_dim, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(binarize(images, seed), batch_size=128, epochs=epochs, verbose=0)
    return model


def timed(fn, repeats, warmup=WARMUP):
    """Seconds of each of `repeats` calls of `fn` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def cell(reference, decoded=None, samples=None, times=None, refused=None):
    """One (runtime, model, quantization) result, parity against `reference`."""
    if refused is not None:
        # A temporary file's folder says nothing: keep its name only.
        return {"refused": re.sub(r"'/[^']*/([^'/]+)'", r"'\1'", refused)}
    shape = reference["decode"].shape
    result = {
        "decode": float(np.max(np.abs(np.reshape(decoded, shape) - reference["decode"]))),
        "sample": None,
        "batch": shape[0],
        "times": np.asarray(times),
    }
    if samples is not None:
        samples = np.reshape(samples, reference["sample"].shape)
        result["sample"] = float(np.max(np.abs(samples - reference["sample"])))
    return result


def keras_reference(model, batch, seeds):
    z = np.random.default_rng(0).standard_normal((batch, model.latent_dim)).astype(np.float32)
    return {
        "z": z,
        "seeds": np.arange(seeds, dtype=np.int32),
        "decode": np.asarray(model.decode(z).mean()),
        "sample": np.stack([np.asarray(model.sample(batch, seed=s)) for s in range(seeds)]),
    }


def make_tflite_runtime_python(folder):
    """The Python of a new venv with tflite-runtime 2.14 (and numpy<2).

    Raises:
        ValueError: when the venv or the install fails (its last line).
    """
    venv = os.path.join(folder, "tflite-runtime-venv")
    python = os.path.join(venv, "bin", "python")
    packages = [TFLITE_RUNTIME, "numpy<2"]
    for args in (
        ["python3.11", "-m", "venv", venv],
        [python, "-m", "pip", "install", "--quiet", *packages],
    ):
        try:
            done = subprocess.run(args, capture_output=True, text=True)
        except OSError as error:
            raise ValueError(f"{args[0]} did not run ({error})") from None
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            raise ValueError(f"{TFLITE_RUNTIME} did not install here: {lines[-1]}")
    return python


def worker_folder(folder):
    """A folder holding litert_sampler.py and the worker, as a device would have them."""
    path = os.path.join(folder, "worker")
    os.makedirs(path, exist_ok=True)
    shutil.copy(litert_sampler.__file__, os.path.join(path, "litert_sampler.py"))
    with open(os.path.join(path, "worker.py"), "w") as f:
        f.write(WORKER)
    return path


def run_worker(python, folder, path, runtime, reference, repeats, scratch):
    """Runs a `.tflite` file through the Sampler in a child process; a cell."""
    inputs = os.path.join(scratch, "inputs.npz")
    out = os.path.join(scratch, "out.npz")
    if os.path.exists(out):
        os.remove(out)
    np.savez(inputs, z=reference["z"], seeds=reference["seeds"], repeats=repeats, warmup=WARMUP)
    args = [python, os.path.join(folder, "worker.py"), folder, path, runtime, inputs, out]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode == 3:
        return cell(reference, refused=done.stdout.strip().splitlines()[-1])
    if done.returncode < 0:
        return cell(reference, refused=f"crashed ({signal.Signals(-done.returncode).name})")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return cell(reference, refused=lines[-1])
    result = np.load(out)
    return cell(reference, result["decode"], result["sample"], result["times"])


def saved_model_cell(model, folder, reference, repeats):
    path = export_saved_model(model, os.path.join(folder, "saved_model"))
    signatures = tf.saved_model.load(path).signatures
    z = tf.constant(reference["z"])

    def decode():
        return signatures["serving_default"](z=z)["image"].numpy()

    n = tf.constant(len(reference["z"]), tf.int32)
    samples = [
        signatures["sample"](seed=tf.constant(int(s), tf.int32), num_samples=n)["image"].numpy()
        for s in reference["seeds"]
    ]
    return cell(reference, decode(), np.stack(samples), timed(decode, repeats))


def onnx_cell(model, folder, reference, repeats):
    import onnxruntime

    onnx_dir = os.path.join(folder, "onnx")
    write_onnx(convert_onnx(model), onnx_dir)

    def session(signature):
        return onnxruntime.InferenceSession(
            os.path.join(onnx_dir, ONNX_FILES[signature]), providers=["CPUExecutionProvider"]
        )

    decode_session, sample_session = session("serving_default"), session("sample")
    z = reference["z"]
    decode_output = [decode_session.get_outputs()[0].name]
    sample_output = [o.name for o in sample_session.get_outputs()].index("image")

    def decode():
        return decode_session.run(decode_output, {"z": z})[0]

    n = np.array(len(z), np.int32)
    samples = [
        sample_session.run(None, {"seed": np.array(s, np.int32), "num_samples": n})[sample_output]
        for s in reference["seeds"]
    ]
    return cell(reference, decode(), np.stack(samples), timed(decode, repeats))


def micro_interpreter(path):
    from tflite_micro.python.tflite_micro import runtime

    from keras_vae.export.tflite_micro import measure_arena, micro_io, read_micro_record

    with open(path, "rb") as f:
        content = f.read()
    record_ = read_micro_record(content)
    arena = record_.get("arena_bytes") or measure_arena(content)[0]
    interpreter = runtime.Interpreter.from_bytes(content, arena_size=arena)
    return interpreter, micro_io(content), record_


def micro_float_cell(model, folder, reference, repeats):
    batch = len(reference["z"])
    decode_path = export_tflite_micro(
        model, os.path.join(folder, "micro-decode.tflite"), function="decode", batch_size=batch
    )
    sample_path = export_tflite_micro(
        model, os.path.join(folder, "micro-sample.tflite"), num_samples=batch
    )
    decoder, (inputs, outputs), _ = micro_interpreter(decode_path)

    def decode():
        decoder.set_input(reference["z"], inputs.index("z"))
        decoder.invoke()
        return decoder.get_output(outputs.index("image"))

    sampler, (_, sample_outputs), _ = micro_interpreter(sample_path)
    samples = []
    for seed in reference["seeds"]:
        sampler.set_input(np.asarray(np.int32(seed)), 0)
        sampler.invoke()
        samples.append(np.array(sampler.get_output(sample_outputs.index("image"))))
    return cell(reference, np.array(decode()), np.stack(samples), timed(decode, repeats))


def micro_int8_full_cell(path, reference, repeats):
    interpreter, (inputs, _), record_ = micro_interpreter(path)
    scales = record_["quantization"]

    def decode(z):  # quantized and dequantized on the host, as the Sampler does
        for name, value in litert_sampler.integer_inputs({"z": z}, scales).items():
            interpreter.set_input(value, inputs.index(name))
        interpreter.invoke()
        return litert_sampler.dequantized(interpreter.get_output(0), scales["image"])

    batch, latent_dim = reference["z"].shape
    samples = [
        decode(litert_sampler.portable_normal((batch, latent_dim), int(s)))
        for s in reference["seeds"]
    ]
    z = reference["z"]
    return cell(reference, decode(z), np.stack(samples), timed(lambda: decode(z), repeats))


def model_cells(model, args, runtimes, quantizations, pythons, folder):
    """(runtime key, quantization) -> cell for one model."""
    reference = keras_reference(model, args.batch, args.seeds)
    cells = {}
    if "saved_model" in runtimes:
        cells["saved_model", "float32"] = saved_model_cell(model, folder, reference, args.repeats)
    if "onnx" in runtimes:
        try:
            cells["onnx", "float32"] = onnx_cell(model, folder, reference, args.repeats)
        except ValueError as error:
            cells["onnx", "float32"] = cell(reference, refused=str(error).splitlines()[0])
    tflite = {}
    for name in quantizations:
        path = os.path.join(folder, f"{name.replace(', ', '-').replace(' ', '_')}.tflite")
        try:
            tflite[name] = export_tflite(
                model, path, batch_sizes=(args.batch,), **TFLITE_FILES[name]
            )
        except ValueError as error:
            tflite[name] = ValueError(str(error).splitlines()[0])
    for key in ("interpreter", "compiled_model", "tflite_runtime"):
        if key not in runtimes:
            continue
        python, worker = pythons[key]
        runtime = "compiled_model" if key == "compiled_model" else "interpreter"
        for name, path in tflite.items():
            if isinstance(python, ValueError):
                cells[key, name] = cell(reference, refused=str(python))
            elif isinstance(path, ValueError):
                cells[key, name] = cell(reference, refused=f"not exported: {path}")
            else:
                cells[key, name] = run_worker(
                    python, worker, path, runtime, reference, args.repeats, folder
                )
    if "micro" in runtimes:
        if "float32" in quantizations:
            try:
                cells["micro", "float32"] = micro_float_cell(model, folder, reference, args.repeats)
            except ValueError as error:
                cells["micro", "float32"] = cell(reference, refused=str(error).splitlines()[0])
        if isinstance(tflite.get("int8-full"), str):
            cells["micro", "int8-full"] = micro_int8_full_cell(
                tflite["int8-full"], reference, args.repeats
            )
    return cells


def parity_text(result):
    if "refused" in result:
        return f"refused: {result['refused']}"
    text = f"decode {result['decode']:.1e}"
    if result["sample"] is not None:
        text += f"; sample {result['sample']:.1e}"
    return text


def latency_text(result):
    if "refused" in result:
        return "—"
    ms = result["times"] * 1e3
    low, median, high = np.percentile(ms, [10, 50, 90])
    return f"{median:.2f} ({low:.2f}–{high:.2f})"


def table(cells_by_model, runtimes, quantizations):
    """Markdown lines: a row per runtime and quantization, parity and latency per model."""
    models = list(cells_by_model)
    header = "| runtime | quantization | " + " | ".join(
        f"{m} parity | {m} decode (ms)" for m in models
    )
    lines = [header + " |", "| --- | --- |" + " --- | ---: |" * len(models)]
    for key in runtimes:
        name, allowed = RUNTIMES[key]
        for quantization in (q for q in allowed if q in quantizations):
            row = [name, quantization]
            found = False
            for model in models:
                result = cells_by_model[model].get((key, quantization))
                if result is None:
                    row += ["", ""]
                else:
                    found = True
                    row += [parity_text(result), latency_text(result)]
            if found:
                lines.append("| " + " | ".join(row) + " |")
    return lines


def parse_list(text, allowed, flag, parser):
    values = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        parser.error(f"Expected {flag} among {', '.join(allowed)}. Received: {flag}={text!r}")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp", default=None, help="A trained MLP VAE (.keras); else trained.")
    parser.add_argument("--conv", default=None, help="A trained conv VAE (.keras); else trained.")
    parser.add_argument("--models", default="mlp,conv", help="Which of mlp,conv to measure.")
    parser.add_argument("--latent-dim", type=int, default=16, help="Of the models trained here.")
    parser.add_argument("--train-split", default="train[:5000]")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64, help="Rows of z decoded and sampled.")
    parser.add_argument("--seeds", type=int, default=5, help="Sample seeds 0..N-1.")
    parser.add_argument("--repeats", type=int, default=20, help="Timed decodes per cell.")
    parser.add_argument(
        "--runtimes", default=",".join(RUNTIMES), help=f"Among {','.join(RUNTIMES)}."
    )
    parser.add_argument(
        "--quantizations",
        default="float32,float16,dynamic,dynamic-2.14,int8,int8-full",
        help="Among float32,float16,dynamic,dynamic-2.14,int8,int8-full.",
    )
    parser.add_argument(
        "--tflite-runtime-python",
        default=None,
        help="A Python with tflite-runtime 2.14 and numpy<2; else a venv is made.",
    )
    args = parser.parse_args(argv)
    models = parse_list(args.models, ("mlp", "conv"), "--models", parser)
    runtimes = parse_list(args.runtimes, tuple(RUNTIMES), "--runtimes", parser)
    short = {q.replace(", min_runtime ", "-"): q for q in TFLITE_FILES}
    quantizations = [
        short[q] for q in parse_list(args.quantizations, tuple(short), "--quantizations", parser)
    ]

    start = time.perf_counter()
    folder = tempfile.mkdtemp(prefix="runtime_matrix_")
    pythons = {}
    worker = worker_folder(folder)
    if {"interpreter", "compiled_model"} & set(runtimes):
        pythons["interpreter"] = pythons["compiled_model"] = (sys.executable, worker)
    if "tflite_runtime" in runtimes:
        try:
            python = args.tflite_runtime_python or make_tflite_runtime_python(folder)
        except ValueError as error:
            python = error  # each tflite-runtime cell says why
        pythons["tflite_runtime"] = (python, worker)

    sources, cells_by_model = [], {}
    for architecture in models:
        path = getattr(args, architecture)
        name = {"mlp": "MLP", "conv": "conv"}[architecture]
        if path:
            model = load_model(path)
            sources.append(f"{name}: `{path}` (latent {model.latent_dim})")
        else:
            model = train_model(architecture, args.latent_dim, args.train_split, args.epochs)
            sources.append(
                f"{name}: `{architecture}` preset, latent {args.latent_dim}, trained "
                f"{args.epochs} epoch(s) here on MNIST {args.train_split}"
            )
        model_folder = os.path.join(folder, architecture)
        os.makedirs(model_folder)
        cells_by_model[name] = model_cells(
            model, args, runtimes, quantizations, pythons, model_folder
        )
    minutes = (time.perf_counter() - start) / 60

    lines = [
        f"Models: {'; '.join(sources)}. Whole run (exports included): {minutes:.1f} min.",
        f"Parity: max |Δ| of `decode` images from Keras `model.decode(z).mean()` for one "
        f"batch of {args.batch} latents, and of `sample` images from `model.sample"
        f"({args.batch}, seed)` for seeds 0–{args.seeds - 1} (in the model, or z drawn on the "
        "host for decode-only files: int8-full and TFLite Micro's int8-full). Latency: decode "
        f"of {args.batch} rows, median (10th–90th percentile) in ms of {args.repeats} calls "
        f"after {WARMUP} warm-up calls, each runtime's default threads. Every `.tflite` has "
        f"static signatures at batch {args.batch} (int8-full: that one fixed batch), run "
        "through `litert_sampler.Sampler` (which takes them) in a child process per file; "
        "for tflite-runtime 2.14, in a python3.11 venv (numpy<2) where `litert_sampler` "
        "falls back to `tflite_runtime`. TFLite "
        f"Micro float32: `export_tflite_micro` files (decode at batch {args.batch}; the "
        f"in-model sampler with num_samples={args.batch}) in `tflite_micro`'s Python "
        "interpreter. \"refused\" quotes the runtime's (or the Sampler's) first line.",
        "The machine was shared by other jobs while this ran: latencies are indicative; "
        "compare rows within a column rather than across runs.",
        "",
        *table(cells_by_model, runtimes, quantizations),
    ]
    record(
        "Runtime matrix: parity with Keras and decode latency per runtime and quantization", lines
    )
    shutil.rmtree(folder, ignore_errors=True)
    return cells_by_model


if __name__ == "__main__":
    main()
