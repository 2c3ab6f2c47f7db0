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


def iwae_networks(latent_dim):
    """The IWAE paper's MLP: 784-200-200 tanh encoder, 200-200-784 tanh decoder."""

    def tanh_stack(widths):
        layers = []
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(width_in, width_out), nn.Tanh()]
        return layers

    encoder = nn.Sequential(nn.Flatten(), *tanh_stack((784, 200, 200)))
    decoder = nn.Sequential(
        *tanh_stack((latent_dim, 200, 200)), nn.Linear(200, 784), nn.Unflatten(1, (1, 28, 28))
    )
    return encoder, decoder, 200


def pythae_trainer(x, architecture="iwae", latent_dim=50, batch_size=100, output_dir=None):
    """pythae's `VAE` and `BaseTrainer` on the benchmark's networks, ready to train.

    `architecture` is `"iwae"` (the IWAE paper's MLP, as
    `mlp_encoder`/`mlp_decoder` with `hidden_units=(200, 200)` and tanh) or
    one of `torch_networks`' (`"mlp"`, `"conv"`). The encoder ends in a mean
    and a log-variance head of `latent_dim` each; the decoder's logits go
    through a sigmoid, since pythae's Bernoulli loss is `binary_cross_entropy`
    on probabilities. `x` is a binarized `[N, 28, 28, 1]` float32 array.
    Returns a callable that runs one epoch of the trainer's own loop
    (`BaseTrainer.train_step`: its data loader, forward pass, optimizer step
    and callbacks), without its checkpoints and progress bar. pythae is not a
    dependency: `pip install torch==2.13.0 pythae==0.1.2`.
    """
    import numpy as np
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import ProgressBarCallback

    if architecture == "iwae":
        body, head, features = iwae_networks(latent_dim)
    else:
        body, head, features = torch_networks(architecture, latent_dim)

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = body
            self.mean = nn.Linear(features, latent_dim)
            self.log_var = nn.Linear(features, latent_dim)

        def forward(self, x):
            h = self.body(x)
            return ModelOutput(embedding=self.mean(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.head(z)))

    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=latent_dim, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    training = BaseTrainerConfig(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        learning_rate=1e-3,
        num_epochs=1,
        no_cuda=True,
    )
    data = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))
    trainer = BaseTrainer(
        model, train_dataset=BaseDataset(data, torch.zeros(len(data))), training_config=training
    )
    trainer.prepare_training()
    handler = trainer.callback_handler
    handler.callbacks = [c for c in handler.callbacks if not isinstance(c, ProgressBarCallback)]
    epochs = iter(range(1, 1 << 30))
    return lambda: trainer.train_step(next(epochs))
