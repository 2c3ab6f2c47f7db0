"""Training throughput of `VAE.fit` against a plain hand-written Keras VAE.

Both models use the same `keras_vae.networks` encoder and decoder, the same
optimizer, numpy input and batch size; they are timed in the same process,
alternating, after a warm-up epoch. Prints images per second and the ratio.

    python benchmarks/train_throughput.py --architecture mlp conv --epochs 2
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import binarize, mnist_arrays, record  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.networks import build_networks  # noqa: E402


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


def make_models(architecture, latent_dim, jit_compile):
    keras.utils.set_random_seed(0)
    ours = build_vae(architecture, (28, 28, 1), latent_dim=latent_dim, seed=0)
    encoder, decoder = build_networks(architecture, (28, 28, 1), latent_dim, (28, 28, 1))
    plain = PlainVAE(encoder, decoder, latent_dim)
    for model in (ours, plain):
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    return {"keras_vae.VAE": ours, "hand-written Keras VAE": plain}


def images_per_second(model, x, batch_size, epochs):
    start = time.perf_counter()
    model.fit(x, batch_size=batch_size, epochs=epochs, verbose=0)
    return epochs * len(x) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", nargs="+", default=["mlp", "conv"])
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2, help="Timed epochs per round.")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating timing rounds.")
    parser.add_argument("--train-size", type=int, default=60000)
    parser.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"])
    args = parser.parse_args()
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]

    images, _ = mnist_arrays("train")
    x = binarize(images[: args.train_size])
    lines = [
        f"MNIST train[:{len(x)}], numpy input, batch {args.batch_size}, "
        f"jit_compile={args.jit_compile}; best of {args.rounds} rounds of "
        f"{args.epochs} epochs after a warm-up epoch (the two models alternate who goes first).",
        "",
        "| architecture | model | images/s | ratio to hand-written |",
        "| --- | --- | ---: | ---: |",
    ]
    for architecture in args.architecture:
        models = make_models(architecture, args.latent_dim, jit)
        for model in models.values():
            model.fit(x, batch_size=args.batch_size, epochs=1, verbose=0)
        best = {name: 0.0 for name in models}
        for round_index in range(args.rounds):
            # Alternate which model goes first, so order effects cancel.
            order = list(models.items())
            for name, model in order if round_index % 2 == 0 else order[::-1]:
                rate = images_per_second(model, x, args.batch_size, args.epochs)
                best[name] = max(best[name], rate)
        reference = best["hand-written Keras VAE"]
        for name, rate in best.items():
            lines.append(f"| {architecture} | {name} | {rate:,.0f} | {rate / reference:.2f} |")
    record("Training throughput: VAE.fit against a hand-written Keras VAE", lines)


if __name__ == "__main__":
    main()
