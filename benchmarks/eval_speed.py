"""Seconds for the importance-weighted log p(x) estimate, and the NLL it gives.

Scores a trained `.keras` VAE (default: the `make demo` model) with
`keras_vae.evaluation.log_likelihood` on the first N MNIST test images, binarized
once, for each K given, and records wall time, NLL, ELBO and active units.

    python -m benchmarks.eval_speed --model runs/mnist-mlp/model.keras \
        --num-images 1000 --importance-samples 50 500 5000
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from benchmarks.common import record, setup_tfds_dir  # noqa: E402
from keras_vae import data  # noqa: E402
from keras_vae.evaluation import log_likelihood  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/mnist-mlp/model.keras")
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--importance-samples", type=int, nargs="+", default=[50, 500, 5000])
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    setup_tfds_dir()
    model = keras.saving.load_model(args.model)
    images, _ = data.load_images("mnist", f"test[:{args.num_images}]")
    binary = data.binarize_static(images, seed=0)
    rows = []
    for k in args.importance_samples:
        start = time.perf_counter()
        result = log_likelihood(model, binary, num_samples=k, batch_size=args.batch_size, verbose=0)
        seconds = time.perf_counter() - start
        rows.append(
            f"| {k} | {seconds:.1f} | {result['nll']:.2f} | {result['elbo']:.2f} | "
            f"{result['active_units']} of {result['latent_dim']} |"
        )
    record(
        f"Importance-weighted log-likelihood: time and NLL on {args.num_images} test images",
        [
            f"Model: `{args.model}`. MNIST test[:{args.num_images}], one static binarization "
            f"(seed 0), batch {args.batch_size}, TensorFlow's default threading.",
            "",
            "| K | seconds | NLL (nats) | ELBO (nats) | active units |",
            "| ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
