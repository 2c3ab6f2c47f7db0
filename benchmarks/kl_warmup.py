"""KL warm-up against none: test ELBO, importance-weighted NLL and active units.

Trains what `keras-vae train --dataset mnist --architecture ARCH --latent-dim
D --epochs E --kl-warmup-epochs W` trains (the library function behind the
CLI), once per warm-up length, and scores each model on the same statically
binarized test images.

    python -m benchmarks.kl_warmup --warmup-epochs 0 10 --epochs 20
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import add_split_args, record, setup_tfds_dir, splits_note  # noqa: E402
from keras_vae import data  # noqa: E402
from keras_vae.evaluation import log_likelihood  # noqa: E402
from keras_vae.tasks import train_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="mlp")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--warmup-epochs", type=int, nargs="+", default=[0, 10])
    parser.add_argument("--importance-samples", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    add_split_args(parser)
    args = parser.parse_args()
    setup_tfds_dir()
    images, _ = data.load_images("mnist", f"test[:{args.test_images}]")
    test = data.binarize_static(images, seed=0)
    rows = []
    for warmup in args.warmup_epochs:
        start = time.perf_counter()
        model, metrics = train_model(
            dataset="mnist",
            architecture=args.architecture,
            latent_dim=args.latent_dim,
            epochs=args.epochs,
            seed=args.seed,
            kl_warmup_epochs=warmup,
            train_split=args.train_split,
            test_split=args.test_split,
            verbose=2,
        )
        minutes = (time.perf_counter() - start) / 60
        scores = log_likelihood(model, test, num_samples=args.importance_samples, verbose=0)
        rows.append(
            f"| {warmup} | {metrics['test']['elbo']:.2f} | {scores['nll']:.2f} | "
            f"{metrics['test']['kl']:.2f} | {scores['active_units']} of {args.latent_dim} | "
            f"{minutes:.1f} |"
        )
        print(rows[-1], flush=True)
    record(
        f"KL warm-up: {args.architecture} VAE, latent {args.latent_dim}, {args.epochs} epochs",
        [
            "Dynamically binarized MNIST train, batch 128, Adam 1e-3, seed "
            f"{args.seed}; `--kl-warmup-epochs W`: the KL weight is 1/W, 2/W, ..., 1 "
            "in the first W epochs, then 1. Test ELBO on all test images (binarized with "
            f"seed + 1); NLL with K = {args.importance_samples} importance samples and active "
            "units (posterior-mean variance across images above 0.01) on "
            f"test[:{args.test_images}] binarized with seed 0. Nats per example."
            + splits_note(args),
            "",
            "| warm-up epochs | test ELBO | NLL | test KL | active units | train min |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
