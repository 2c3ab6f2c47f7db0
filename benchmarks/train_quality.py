"""Test ELBO reached by `keras-vae train` on dynamically binarized MNIST.

Runs exactly what `keras-vae train --dataset mnist --architecture mlp
--latent-dim 50 --epochs 3` runs (the library function behind the CLI),
and records the test ELBO and the wall time. The target is >= -115 nats.

    python -m benchmarks.train_quality --architecture mlp --latent-dim 50 --epochs 3
"""

import argparse
import os
import shutil
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.common import add_split_args, record, setup_tfds_dir, splits_note  # noqa: E402
from keras_vae.tasks import train_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="mlp")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    add_split_args(parser)
    parser.add_argument("--output", default="runs/benchmark-quality")
    parser.add_argument("--copy-samples", default=None, help="Also copy samples.png here.")
    args = parser.parse_args()
    setup_tfds_dir()
    start = time.perf_counter()
    _, metrics = train_model(
        dataset="mnist",
        architecture=args.architecture,
        latent_dim=args.latent_dim,
        epochs=args.epochs,
        seed=args.seed,
        output=args.output,
        train_split=args.train_split,
        test_split=args.test_split,
        verbose=2,
    )
    minutes = (time.perf_counter() - start) / 60
    if args.copy_samples:
        shutil.copy(os.path.join(args.output, "samples.png"), args.copy_samples)
    test, train = metrics["test"], metrics["train"]
    record(
        f"Test ELBO: {args.architecture} VAE, latent {args.latent_dim}, {args.epochs} epochs",
        [
            "Dynamically binarized MNIST, batch 128, Adam 1e-3; the test split is scored on one "
            "fixed binarization (seed + 1). Per example, in nats." + splits_note(args),
            "",
            "| split | ELBO | reconstruction | KL |",
            "| --- | ---: | ---: | ---: |",
            f"| train | {train['elbo']:.2f} | {train['reconstruction']:.2f} | {train['kl']:.2f} |",
            f"| test | {test['elbo']:.2f} | {test['reconstruction']:.2f} | {test['kl']:.2f} |",
            "",
            f"Wall time (data loading, training, evaluation, saving): {minutes:.1f} min.",
        ],
    )


if __name__ == "__main__":
    main()
