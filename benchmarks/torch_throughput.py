"""Training throughput of `VAE.fit` against the same VAE written in PyTorch (CPU).

The PyTorch model mirrors `keras_vae.networks`' MLP (784-512-256 encoder, a
Dense posterior head, 256-512-784 decoder, ReLU) or conv architecture
(stride-2 3x3 convolutions, 'same'-style padding, Dense 256; the decoder
mirrors it with transposed convolutions), trained with Adam (lr 1e-3) on the
same single-sample ELBO with the analytic KL, from in-memory tensors shuffled
every epoch, batch 128. Both are timed in the same process, alternating, after
a warm-up epoch. PyTorch is not a dependency: `pip install torch==2.13.0`.

    python -m benchmarks.torch_throughput --architecture mlp conv
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.common import binarize, mnist_arrays, record  # noqa: E402
from keras_vae.models import build_vae  # noqa: E402


def torch_networks(architecture, latent_dim):
    if architecture == "mlp":
        encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU()
        )
        decoder = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
            nn.Linear(512, 784), nn.Unflatten(1, (1, 28, 28)),
        )  # fmt: skip
        return encoder, decoder, 256
    encoder = nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.Conv2d(32, 1, 3, padding=1),
    )  # fmt: skip
    return encoder, decoder, 256


class TorchVAE(nn.Module):
    def __init__(self, architecture, latent_dim):
        super().__init__()
        self.encoder, self.decoder, features = torch_networks(architecture, latent_dim)
        self.head = nn.Linear(features, 2 * latent_dim)

    def loss(self, x):
        mu, raw = self.head(self.encoder(x)).chunk(2, dim=-1)
        sigma = nn.functional.softplus(raw) + 1e-5
        z = mu + sigma * torch.randn_like(mu)
        logits = self.decoder(z)
        xent = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
        reconstruction = -xent.sum(dim=(1, 2, 3))
        kl = 0.5 * (sigma**2 + mu**2 - 1.0 - 2.0 * torch.log(sigma)).sum(dim=-1)
        return (kl - reconstruction).mean()


def torch_epoch(model, optimizer, x, batch_size):
    for index in torch.randperm(len(x)).split(batch_size):
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(x[index])
        loss.backward()
        optimizer.step()
    return float(loss)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", nargs="+", default=["mlp", "conv"])
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=60000)
    args = parser.parse_args()
    torch.manual_seed(0)
    images, _ = mnist_arrays("train")
    x = binarize(images[: args.train_size])
    x_torch = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    n = len(x)
    lines = [
        f"MNIST train[:{n}] in memory, batch {args.batch_size}, Adam 1e-3, one epoch per "
        f"timing, best of {args.rounds} alternating rounds after a warm-up epoch. "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; keras_vae.VAE "
        "with its defaults (numpy input, steps_per_execution=8, no XLA on CPU).",
        "",
        "| architecture | keras_vae.VAE images/s | PyTorch images/s | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for architecture in args.architecture:
        keras.utils.set_random_seed(0)
        ours = build_vae(architecture, (28, 28, 1), latent_dim=args.latent_dim, seed=0)
        ours.compile(optimizer=keras.optimizers.Adam(1e-3))
        theirs = TorchVAE(architecture, args.latent_dim)
        optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-3)

        def run_ours(model=ours):
            model.fit(x, batch_size=args.batch_size, epochs=1, verbose=0)

        def run_theirs(model=theirs, opt=optimizer):
            torch_epoch(model, opt, x_torch, args.batch_size)

        run_ours()
        run_theirs()
        best_ours = best_theirs = 0.0
        for round_index in range(args.rounds):
            pair = [("ours", run_ours), ("theirs", run_theirs)]
            for name, fn in pair if round_index % 2 == 0 else pair[::-1]:
                rate = n / timed(fn)
                if name == "ours":
                    best_ours = max(best_ours, rate)
                else:
                    best_theirs = max(best_theirs, rate)
        lines.append(
            f"| {architecture} | {best_ours:,.0f} | {best_theirs:,.0f} | "
            f"{best_ours / best_theirs:.2f} |"
        )
    record("Training throughput: VAE.fit against the same VAE in PyTorch (CPU)", lines)


if __name__ == "__main__":
    main()
