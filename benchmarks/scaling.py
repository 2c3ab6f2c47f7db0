"""How the cost of training grows with the dataset and the latent size.

Times one epoch of `VAE.fit` (the `mlp` preset, numpy input, batch 128,
Keras's defaults otherwise) after a warm-up epoch, best of `--rounds`, for
each training-set size at latent 50 and for each latent size at the largest
training set. Evaluation time against K is `benchmarks.eval_speed`.

    python -m benchmarks.scaling --sizes 7500 15000 30000 60000 --latent-dims 2 10 50 200
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from benchmarks.common import binarize, mnist_arrays, record  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402


def epoch_seconds(x, latent_dim, architecture, batch_size, rounds):
    keras.utils.set_random_seed(0)
    model = build_vae(architecture, (28, 28, 1), latent_dim=latent_dim, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, batch_size=batch_size, epochs=1, verbose=0)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        model.fit(x, batch_size=batch_size, epochs=1, verbose=0)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="mlp")
    parser.add_argument("--sizes", type=int, nargs="+", default=[7500, 15000, 30000, 60000])
    parser.add_argument("--latent-dims", type=int, nargs="+", default=[2, 10, 50, 200])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    # Only the images timed: the binarization of a prefix is the prefix of the binarization.
    images, _ = mnist_arrays(f"train[:{max(args.sizes)}]")
    x = binarize(images)
    lines = [
        f"`{args.architecture}` preset, numpy input, batch {args.batch_size}; seconds for one "
        f"epoch, best of {args.rounds} after a warm-up epoch.",
        "",
        "| training images | latent dim | seconds per epoch | images/s |",
        "| ---: | ---: | ---: | ---: |",
    ]
    settings = [(size, 50) for size in args.sizes]
    settings += [(max(args.sizes), d) for d in args.latent_dims if d != 50]
    for size, latent_dim in settings:
        seconds = epoch_seconds(
            x[:size], latent_dim, args.architecture, args.batch_size, args.rounds
        )
        lines.append(f"| {size:,} | {latent_dim} | {seconds:.2f} | {size / seconds:,.0f} |")
        print(lines[-1], flush=True)
    record(f"Training cost against dataset size and latent size ({args.architecture})", lines)


if __name__ == "__main__":
    main()
