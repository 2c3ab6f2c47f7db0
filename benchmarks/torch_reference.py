"""The same VAE written in PyTorch, the reference for `train_throughput`.

The PyTorch model mirrors `keras_vae.networks`' MLP (784-512-256 encoder, a
Dense posterior head, 256-512-784 decoder, ReLU) or conv architecture
(stride-2 3x3 convolutions, 'same'-style padding, Dense 256; the decoder
mirrors it with transposed convolutions), trained with Adam (lr 1e-3) on the
same single-sample ELBO with the analytic KL, from in-memory tensors shuffled
every epoch. PyTorch is not a dependency: `pip install torch==2.13.0`.
"""

import torch
from torch import nn


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


def torch_epoch(model, optimizer, x, batch_size, autocast=False):
    """One epoch over `x` (NCHW); `autocast` runs it in bfloat16 autocast."""
    for index in torch.randperm(len(x)).split(batch_size):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model.loss(x[index])
        loss.backward()
        optimizer.step()
    return float(loss.detach())
