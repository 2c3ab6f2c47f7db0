"""Bad inputs at every entrance: how many end in a clear error, a right result, a crash or a
silent wrong result.

A tiny MNIST-shaped MLP VAE (latent_dim 4, one training step on random
binary images) is saved, exported as a SavedModel and a float32 `.tflite`,
and each entrance is handed `--cases` bad inputs drawn from a seeded RNG:
NaN, infinities, float32's extremes, float64 values beyond float32, uint8
images, values outside [0, 1], wrong ranks and widths, strings, and counts
that are negative, zero, above the cap or beyond int32; `.keras` and
`.tflite` files truncated, bit-flipped, random or empty.

Each outcome is one of:

- clear error: an exception whose message says what was expected
  ("Expected ...", TensorFlow's "Shape of tensor ..."); for the raw TFLite
  runners, which have no run-time errors, also LiteRT's refusal to run, a
  NaN image for a NaN input, and `num_samples` clamped to the cap;
- correct result: the values of the reference (Keras, or a float64 numpy
  forward pass of the decoder for Keras's own `decode`) for an extreme but
  valid input;
- crash: any other exception (a traceback), or the child process dying or
  hanging (each family of entrances runs in a child with a timeout);
- silent wrong: a result for an invalid input, or one that differs from the
  reference.

Run: `python -m benchmarks.reliability_inputs [--cases 50]`; the lead
records the table in `benchmarks/RESULTS.md`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

LATENT_DIM = 4
IMAGE = (28, 28, 1)
OUTCOMES = ("clear error", "correct result", "crash", "silent wrong")
ENTRANCES = (
    "keras encode",
    "keras decode",
    "keras reconstruct",
    "keras sample",
    "keras log_likelihood",
    "keras load_model",
    "savedmodel serving_default",
    "savedmodel encode",
    "savedmodel reconstruct",
    "savedmodel sample",
    "tflite raw decode",
    "tflite raw sample",
    "sampler decode",
    "sampler sample",
    "sampler open",
)


# --- the bad inputs --------------------------------------------------------------


def bad_array(rng, width_shape, unit_interval):
    """One invalid (or extreme) array for an input shaped `[batch, *width_shape]`.

    Returns `(array, valid)`: `valid` says whether a right answer exists (finite
    float32 values of the right shape, in [0, 1] when `unit_interval`).
    """
    batch = int(rng.integers(1, 4))
    shape = (batch, *width_shape)
    kind = rng.choice(
        ["nan", "inf", "-inf", "huge", "float64", "uint8", "negative", "above", "rank", "width",
         "strings", "scalar"]
    )  # fmt: skip
    x = (rng.random(shape) < 0.5).astype(np.float32)
    flat = x.reshape(-1)
    spots = rng.integers(0, flat.size, int(rng.integers(1, 4)))
    if kind in ("nan", "inf", "-inf"):
        flat[spots] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[kind]
        return x, False
    if kind == "huge":
        flat[spots] = rng.choice([-1, 1], len(spots)) * 10.0 ** rng.uniform(20, 38.5, len(spots))
        return x, not unit_interval
    if kind == "float64":
        wide = x.astype(np.float64)
        wide.reshape(-1)[spots] = 10.0 ** rng.uniform(39, 300, len(spots))
        return wide, False
    if kind == "uint8":
        return (x * 255).astype(np.uint8), not unit_interval
    if kind == "negative":
        flat[spots] = -rng.uniform(0.01, 10, len(spots))
        return x, not unit_interval
    if kind == "above":
        flat[spots] = rng.uniform(1.01, 1000, len(spots))
        return x, not unit_interval
    if kind == "rank":
        return x.reshape(-1), False
    if kind == "width":
        return np.zeros((batch, int(np.prod(width_shape)) + 1), np.float32), False
    if kind == "strings":
        return np.full(shape, "0.5"), False
    return np.float32(0.5), False


def bad_count(rng):
    """`(num_samples, seed, kind)`: counts negative, zero, above the cap, beyond int32, not
    integers; seeds of other types; (for Keras) temperatures that are not finite, negative
    or beyond float32."""
    kind = rng.choice(
        ["negative", "zero", "cap", "int32", "int64", "float", "bool", "seed", "temperature"]
    )
    count = {
        "negative": -int(rng.integers(1, 2**31)),
        "zero": 0,
        "cap": int(rng.integers(4097, 10**6)),
        "int32": 2**31 - 1,
        "int64": int(rng.integers(2**31, 2**62)),
        "float": 2.0,
        "bool": True,
        "seed": 3,
        "temperature": 3,
    }[kind]
    seed = 1.5 if kind == "seed" else int(rng.integers(-(2**31), 2**31))
    return count, seed, kind


# --- the entrances -----------------------------------------------------------------


def setup(folder):
    """Trains, saves and exports the tiny VAE into `folder` (once)."""
    import keras

    from keras_vae.export import export_saved_model, export_tflite
    from keras_vae.models.presets import build_vae

    keras.utils.set_random_seed(0)
    model = build_vae("mlp", IMAGE, latent_dim=LATENT_DIM, seed=0)
    model.compile(optimizer="adam")
    x = (np.random.default_rng(0).random((16, *IMAGE)) < 0.5).astype("float32")
    model.fit(x, batch_size=16, epochs=1, verbose=0)
    model.save(os.path.join(folder, "model.keras"))
    export_saved_model(model, os.path.join(folder, "saved_model"), version=1)
    export_tflite(model, os.path.join(folder, "model.tflite"))


def numpy_decode(model, z):
    """The MLP decoder's probabilities in float64: an independent reference."""
    h = z.astype(np.float64)
    for layer in model.decoder.layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            h = h @ weights[0] + weights[1]
            if layer.get_config().get("activation") == "relu":
                h = np.maximum(h, 0)
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-h))).reshape(len(z), *IMAGE)


def cases(entrance, folder, rng):
    """Yields one callable per case; each returns an outcome or raises."""
    path = os.path.join(folder, "model.tflite")
    model = _REFERENCE["model"]
    if entrance.startswith(("keras", "savedmodel")):
        import tensorflow as tf

        from keras_vae.evaluation import log_likelihood
        from keras_vae.tasks import load_model
    if entrance.startswith("savedmodel"):
        signatures = tf.saved_model.load(os.path.join(folder, "saved_model", "1")).signatures
    if entrance.startswith(("tflite", "sampler")):
        from ai_edge_litert.interpreter import Interpreter

        from keras_vae.export.litert_sampler import Sampler
    while True:
        if entrance in ("keras encode", "keras reconstruct", "keras log_likelihood"):
            x, valid = bad_array(rng, IMAGE, unit_interval=True)

            def run(x=x):
                if entrance == "keras encode":
                    model.encode(x)
                elif entrance == "keras reconstruct":
                    model.reconstruct(x)
                else:
                    log_likelihood(model, x, num_samples=2, verbose=0)
                return "silent wrong"

        elif entrance in ("keras decode", "savedmodel serving_default", "tflite raw decode",
                          "sampler decode"):  # fmt: skip
            z, valid = bad_array(rng, (LATENT_DIM,), unit_interval=False)

            def run(z=z, valid=valid):
                if entrance == "keras decode":
                    image = model.decode(z).mean().numpy()
                elif entrance == "savedmodel serving_default":
                    image = signatures["serving_default"](z=tf.constant(z))["image"].numpy()
                elif entrance == "sampler decode":
                    image = Sampler(path).decode(z)
                else:
                    try:
                        runner = Interpreter(model_path=path).get_signature_runner("decode")
                        image = runner(z=np.asarray(z))["image"]
                    except (ValueError, RuntimeError):
                        return "clear error"  # LiteRT refuses to run it
                    if not valid and np.isnan(image).all(axis=(1, 2, 3)).any():
                        return "clear error"  # NaN in, NaN out: TFLite has no errors
                return "correct result" if valid and right_images(image, z) else "silent wrong"

        elif entrance in ("savedmodel encode", "savedmodel reconstruct"):
            x, valid = bad_array(rng, IMAGE, unit_interval=True)

            def run(x=x):
                signatures[entrance.split()[1]](x=tf.constant(x))
                return "silent wrong"

        elif entrance in ("keras sample", "savedmodel sample", "tflite raw sample",
                          "sampler sample"):  # fmt: skip
            count, seed, kind = bad_count(rng)

            def run(count=count, seed=seed, kind=kind):
                if entrance == "keras sample":
                    if kind == "cap":
                        count = min(count, 10**4)  # a valid request; bigger ones cost memory
                    temperature = 1.0
                    if kind == "temperature":  # NaN, infinite, negative or beyond float32 z
                        temperature = float(rng.choice([np.nan, np.inf, -1.0, 1e38, 3e38]))
                    # Keras takes the int32 seed's 32 bits as an unsigned seed.
                    images = model.sample(count, seed=seed % 2**32, temperature=temperature)
                    valid = kind == "cap" or (kind == "temperature" and temperature >= 0)
                    ok = images.shape == (count, *IMAGE) and np.all((images >= 0) & (images <= 1))
                    return "correct result" if valid and ok else "silent wrong"
                if entrance in ("savedmodel sample", "sampler sample"):
                    if entrance == "savedmodel sample":
                        seed_, count_ = tf.constant(seed), tf.constant(count)
                        images = signatures["sample"](seed=seed_, num_samples=count_)["image"]
                    else:
                        images = Sampler(path).sample(seed, count)
                    # Only the "temperature" requests (3 draws, an int seed) are valid here.
                    expected = None
                    if kind == "temperature":
                        expected = model.sample(3, seed=seed % 2**32)  # the same 32 bits
                    ok = expected is not None and np.allclose(images, expected, atol=1e-5)
                    return "correct result" if ok else "silent wrong"
                # A raw runner takes int32 scalars: what a caller's cast would make of them.
                count = np.int64(count).astype(np.int32)
                runner = Interpreter(model_path=path).get_signature_runner("sample")
                try:
                    images = runner(seed=np.int32(seed), num_samples=count)
                except (ValueError, RuntimeError):
                    return "clear error" if count <= 0 else "crash"  # zero rows: refused
                rows = len(images["image"])
                if 1 <= count <= 4096:  # also a "bad" seed or temperature, which the runner lacks
                    return "correct result" if rows == count else "silent wrong"
                return "clear error" if rows == np.clip(count, 0, 4096) else "silent wrong"

        elif entrance == "keras load_model":
            name = damaged_file(rng, os.path.join(folder, "model.keras"), folder)

            def run(name=name):
                # A flip in bytes nothing reads leaves the same model: a right result.
                weights, expected = load_model(name).get_weights(), model.get_weights()
                same = len(weights) == len(expected) and all(
                    np.array_equal(a, b) for a, b in zip(weights, expected, strict=True)
                )
                return "correct result" if same else "silent wrong"

        elif entrance == "sampler open":
            name = damaged_file(rng, path, folder)

            def run(name=name):
                images = Sampler(name).sample(0, 4)
                same = np.array_equal(images, Sampler(path).sample(0, 4))
                return "correct result" if same else "silent wrong"

        yield run


_REFERENCE = {}


def right_images(image, z):
    """Whether `image` is the decoder's output for the valid latents `z`.

    Against the float64 numpy forward pass for |z| < 1e6; beyond, where
    float32 rounding decides saturated pixels, finite values in [0, 1].
    """
    image = np.asarray(image)
    if image.shape != (len(z), *IMAGE) or not np.all((image >= 0) & (image <= 1)):
        return False
    if np.max(np.abs(z)) >= 1e6:
        return True
    return bool(np.allclose(image, numpy_decode(_REFERENCE["model"], z), atol=1e-4))


def damaged_file(rng, source, folder):
    """A copy of `source` truncated, with bit flips in its second half, random or empty."""
    content = bytearray(open(source, "rb").read())
    kind = rng.choice(["truncated", "flipped", "random", "empty"])
    if kind == "truncated":
        content = content[: int(rng.integers(1, len(content)))]
    elif kind == "flipped":
        for spot in rng.integers(len(content) // 2, len(content), int(rng.integers(1, 64))):
            content[spot] ^= 1 << int(rng.integers(0, 8))
    elif kind == "random":
        content = bytearray(rng.bytes(int(rng.integers(1, 10**5))))
    else:
        content = bytearray()
    name = os.path.join(folder, f"damaged{os.path.splitext(source)[1]}")
    with open(name, "wb") as f:
        f.write(content)
    return name


def classify(run):
    import tensorflow as tf

    try:
        return run()
    except (ValueError, TypeError, tf.errors.InvalidArgumentError, RuntimeError) as error:
        message = str(error)
        if "Expected" in message or "Shape of tensor" in message or "expected to be a" in message:
            return "clear error"
        print(f"  traceback: {type(error).__name__}: {message.splitlines()[0][:160]}", flush=True)
        return "crash"
    except Exception as error:  # noqa: BLE001  (what the benchmark counts)
        print(f"  traceback: {type(error).__name__}: {str(error)[:160]}", flush=True)
        return "crash"


GROUPS = {
    "keras": [e for e in ENTRANCES if e.startswith("keras")],
    "savedmodel": [e for e in ENTRANCES if e.startswith("savedmodel")],
    "litert": [e for e in ENTRANCES if e.startswith(("tflite", "sampler"))],
}


def child(group, folder, num_cases, seed, only):
    """Runs the cases of a group's entrances, printing one JSON line per case."""
    import keras_vae  # noqa: F401  (registers the classes)
    from keras_vae.tasks import load_model

    _REFERENCE["model"] = load_model(os.path.join(folder, "model.keras"))
    for entrance in GROUPS[group]:
        if only and entrance not in only:
            continue
        rng = np.random.default_rng([seed, ENTRANCES.index(entrance)])
        generator = cases(entrance, folder, rng)
        for _ in range(num_cases):
            outcome = classify(next(generator))
            print(json.dumps({"entrance": entrance, "outcome": outcome}), flush=True)


def run_group(group, folder, num_cases, seed, timeout, only):
    """Entrance -> counts for a group, its cases run in one child process.

    A child that dies or hangs leaves its remaining cases counted as crashes.
    """
    entrances = [e for e in GROUPS[group] if not only or e in only]
    counts = {entrance: dict.fromkeys(OUTCOMES, 0) for entrance in entrances}
    if not entrances:
        return counts
    argv = [sys.executable, "-m", "benchmarks.reliability_inputs", "--child", group,
            "--folder", folder, "--cases", str(num_cases), "--seed", str(seed),
            "--only", *entrances]  # fmt: skip
    try:
        process = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        stdout = process.stdout
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout
        stdout = stdout or ""
    for line in stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            counts[record["entrance"]][record["outcome"]] += 1
        elif line.strip():
            print(f"{group}: {line.strip()}")
    for entrance_counts in counts.values():
        entrance_counts["crash"] += num_cases - sum(entrance_counts.values())
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50, help="Bad inputs per entrance.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800, help="Seconds per group.")
    parser.add_argument("--only", nargs="*", default=None, help="Entrances to run.")
    parser.add_argument("--record", action="store_true", help="Append the table to RESULTS.md.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.child is not None:
        child(args.child, args.folder, args.cases, args.seed, args.only)
        return 0
    with tempfile.TemporaryDirectory(prefix="keras_vae_reliability_inputs_") as folder:
        setup(folder)
        print(f"{'entrance':28s} {'tried':>5s} " + " ".join(f"{o:>14s}" for o in OUTCOMES))
        totals, tried = dict.fromkeys(OUTCOMES, 0), 0
        table = [
            f"Bad inputs per entrance: {args.cases} (hypothesis, seed {args.seed}).",
            "",
            "| entrance | tried | " + " | ".join(OUTCOMES) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in OUTCOMES) + " |",
        ]
        start = time.perf_counter()
        for group in GROUPS:
            counts = run_group(group, folder, args.cases, args.seed, args.timeout, args.only)
            for entrance, entrance_counts in counts.items():
                tried += args.cases
                for outcome in OUTCOMES:
                    totals[outcome] += entrance_counts[outcome]
                row = " ".join(f"{entrance_counts[o]:14d}" for o in OUTCOMES)
                print(f"{entrance:28s} {args.cases:5d} {row}", flush=True)
                cells = " | ".join(str(entrance_counts[o]) for o in OUTCOMES)
                table.append(f"| {entrance} | {args.cases} | {cells} |")
        row = " ".join(f"{totals[o]:14d}" for o in OUTCOMES)
        print(f"{'total':28s} {tried:5d} {row}")
        print(f"({time.perf_counter() - start:.0f} s)")
        cells = " | ".join(f"**{totals[o]}**" for o in OUTCOMES)
        table.append(f"| **total** | **{tried}** | {cells} |")
    if args.record:
        from benchmarks.common import record

        record("Reliability: bad inputs at every entrance", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
