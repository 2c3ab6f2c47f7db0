"""Training throughput of `VAE.fit` against a hand-written Keras VAE and PyTorch.

Every contender trains the same networks (`keras_vae.networks`' MLP or conv,
latent 50, mirrored in PyTorch by `benchmarks.torch_reference`) on the same
single-sample ELBO with Adam (lr 1e-3), batch 128, from in-memory arrays. All
are timed in one process: a warm-up epoch each, then `--rounds` rounds in
which every contender trains one epoch, in an order that reverses each round;
the best round counts (this machine shares its cores, so single timings vary
by 20%). Ratios are against the hand-written Keras VAE at Keras's defaults and
against PyTorch in float32.

Contenders: `keras_vae.VAE` with its defaults (float32, steps_per_execution=8,
`jit_compile="auto"`: XLA on CPU for the MLP, none for the conv net), with the
other `jit_compile` setting, and under the `mixed_bfloat16` dtype policy; the
hand-written Keras VAE with Keras's defaults and with `jit_compile=True`;
PyTorch in float32 and in bfloat16 autocast (if torch is installed:
`pip install torch==2.13.0`).

One more row is not a VAE: the same network passes and Adam update with no
sampling and a trivial loss (the mean of the decoder's output), in float32
with the defaults' `jit_compile` and steps_per_execution=8. Any VAE with
these networks runs at least this work per step, so its rate bounds what
removing overhead can win: its ratio to the hand-written Keras VAE is the
most a float32 implementation of these networks could reach.

    python -m benchmarks.train_throughput --architecture mlp conv
    python -m benchmarks.train_throughput --without bfloat16  # CPUs that emulate bfloat16
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import binarize, mnist_arrays, record  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.networks import build_networks  # noqa: E402

REFERENCE = "hand-written Keras"
TORCH = "PyTorch float32"
FLOOR = "network passes only (no ELBO; an upper bound)"


class PlainVAE(keras.Model):
    """The reference: a VAE written by hand with a GradientTape train_step."""

    def __init__(self, encoder, decoder, latent_dim, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.latent_dim = encoder, decoder, latent_dim
        self.flatten = keras.layers.Flatten()
        self.head = keras.layers.Dense(2 * latent_dim)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, x):
        with tf.GradientTape() as tape:
            params = self.head(self.flatten(self.encoder(x, training=True)))
            mu, raw = tf.split(params, 2, axis=-1)
            sigma = tf.nn.softplus(raw) + 1e-5
            z = mu + sigma * tf.random.normal(tf.shape(mu))
            logits = self.decoder(z, training=True)
            xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits)
            reconstruction = -tf.reduce_sum(xent, axis=[1, 2, 3])
            kl = 0.5 * tf.reduce_sum(
                tf.square(sigma) + tf.square(mu) - 1.0 - 2.0 * tf.math.log(sigma), axis=-1
            )
            loss = tf.reduce_mean(kl - reconstruction)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=False))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


class NetworkPasses(PlainVAE):
    """Not a VAE: the reference's network passes and update, with a trivial loss."""

    def train_step(self, x):
        with tf.GradientTape() as tape:
            params = self.head(self.flatten(self.encoder(x, training=True)))
            mu = params[:, : self.latent_dim]
            loss = tf.reduce_mean(self.decoder(mu, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=False))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def keras_contenders(architecture, latent_dim, x, batch_size):
    """`{name: run_one_epoch}` for the Keras models, and the defaults' `jit_compile`."""
    contenders = {}

    def add(name, model, **compile_kwargs):
        model.compile(optimizer=keras.optimizers.Adam(1e-3), **compile_kwargs)
        contenders[name] = lambda: model.fit(x, batch_size=batch_size, epochs=1, verbose=0)

    keras.utils.set_random_seed(0)
    default = build_vae(architecture, (28, 28, 1), latent_dim=latent_dim, seed=0)
    add("keras_vae.VAE", default)
    other = not default.jit_compile
    add(
        f"keras_vae.VAE, jit_compile={other}",
        build_vae(architecture, (28, 28, 1), latent_dim=latent_dim, seed=0),
        jit_compile=other,
    )
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_vae(architecture, (28, 28, 1), latent_dim=latent_dim, seed=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    add("keras_vae.VAE, mixed_bfloat16", mixed)
    for name, jit in ((REFERENCE, "auto"), (f"{REFERENCE}, jit_compile=True", True)):
        encoder, decoder = build_networks(architecture, (28, 28, 1), latent_dim, (28, 28, 1))
        add(name, PlainVAE(encoder, decoder, latent_dim), jit_compile=jit)
    encoder, decoder = build_networks(architecture, (28, 28, 1), latent_dim, (28, 28, 1))
    add(
        FLOOR,
        NetworkPasses(encoder, decoder, latent_dim),
        jit_compile=default.jit_compile,
        steps_per_execution=8,
    )
    return contenders, default.jit_compile


def torch_contenders(architecture, latent_dim, x, batch_size):
    """`{name: run_one_epoch}` for PyTorch and its version, or `({}, None)`."""
    try:
        import torch

        from benchmarks.torch_reference import TorchVAE, torch_epoch
    except ImportError:
        return {}, None
    torch.manual_seed(0)
    x_torch = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    contenders = {}
    for name, autocast in ((TORCH, False), ("PyTorch bfloat16 autocast", True)):
        model = TorchVAE(architecture, latent_dim)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        contenders[name] = lambda m=model, o=optimizer, a=autocast: torch_epoch(
            m, o, x_torch, batch_size, autocast=a
        )
    return contenders, f"torch {torch.__version__} ({torch.get_num_threads()} threads)"


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", nargs="+", default=["mlp", "conv"])
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds.")
    parser.add_argument(
        "--train-size",
        type=int,
        nargs="+",
        default=[30000, 10000],
        help="Training images per epoch, one per architecture (the last repeats).",
    )
    parser.add_argument(
        "--without",
        nargs="+",
        default=[],
        metavar="TEXT",
        help="Leave out the contenders whose name contains any TEXT (for example bfloat16, "
        "which CPUs without bfloat16 arithmetic run about 10x slower). The two references "
        "cannot be left out.",
    )
    args = parser.parse_args()
    for text in args.without:
        if text in REFERENCE or text in TORCH:
            parser.error(
                f"Expected --without to spare the references ({REFERENCE!r}, {TORCH!r}). "
                f"Received: without={text!r}"
            )
    images, _ = mnist_arrays(f"train[:{max(args.train_size)}]")

    lines, torch_version = [], "no torch"
    for index, architecture in enumerate(args.architecture):
        size = args.train_size[min(index, len(args.train_size) - 1)]
        x = binarize(images[:size])
        contenders, jit_choice = keras_contenders(architecture, args.latent_dim, x, args.batch_size)
        theirs, version = torch_contenders(architecture, args.latent_dim, x, args.batch_size)
        torch_version = version or "no torch"
        contenders.update(theirs)
        contenders = {
            name: fn
            for name, fn in contenders.items()
            if not any(text in name for text in args.without)
        }
        for fn in contenders.values():
            fn()  # warm-up: tracing, compilation, allocator
        best = dict.fromkeys(contenders, 0.0)
        for round_index in range(args.rounds):
            order = list(contenders.items())
            for name, fn in order if round_index % 2 == 0 else order[::-1]:
                best[name] = max(best[name], size / timed(fn))
        lines += [
            f"**{architecture}**: MNIST train[:{size}], batch {args.batch_size}, "
            f"best of {args.rounds} one-epoch rounds.",
            "",
            f"| contender | images/s | ratio to {REFERENCE} | ratio to {TORCH} |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, rate in best.items():
            vs_torch = f"{rate / best[TORCH]:.2f}" if TORCH in best else "n/a"
            lines.append(f"| {name} | {rate:,.0f} | {rate / best[REFERENCE]:.2f} | {vs_torch} |")
        lines.append("")
        lines.append(f"`keras_vae.VAE` with its defaults compiled with jit_compile={jit_choice}.")
        lines.append("")
    lines.append(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {torch_version}.")
    record("Training throughput: VAE.fit against hand-written Keras and PyTorch", lines)


if __name__ == "__main__":
    main()
