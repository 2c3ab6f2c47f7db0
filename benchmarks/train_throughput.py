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

`--against pythae` runs another protocol, the one of the steadiness target:
`keras_vae.VAE.fit` on `data.make_dataset(..., binarize="dynamic")` against
pythae 0.1.2's `VAE` and `BaseTrainer` (`pip install torch==2.13.0
pythae==0.1.2`; not a dependency) on the same networks (`iwae`: the IWAE
paper's 784-200-200-50 tanh MLP; or the `conv` preset), batch 100, a warm-up
epoch each, then `--epochs` epochs each, alternating one epoch of one with one
of the other. It reports each one's median epoch, its spread, how many epochs
ran within 15 % of its fastest, the ratio of the medians, and the CPU seconds
each epoch used: an epoch whose CPU time stays put while its wall time grows
waited for a core it did not get.

    python -m benchmarks.train_throughput --against pythae --architecture iwae conv
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import binarize, mnist_arrays, mnist_data, record  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.networks import build_networks  # noqa: E402

REFERENCE = "hand-written Keras"
TORCH = "PyTorch float32"
FLOOR = "network passes only (no ELBO; an upper bound)"
KERAS_VAE = "keras_vae.VAE.fit"
KERAS_VAE_ARRAYS = "keras_vae.VAE.fit, numpy array"
PYTHAE = "pythae 0.1.2"


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


def keras_vae_epochs(architecture, images, batch_size, latent_dim, arrays=False):
    """A callable training `VAE.fit` one epoch further on the dynamic pipeline.

    With `arrays`, on a numpy array of the images binarized once instead.
    """
    from keras_vae import VAE, data
    from keras_vae.networks import mlp_decoder, mlp_encoder

    keras.utils.set_random_seed(0)
    if architecture == "iwae":
        encoder = mlp_encoder((28, 28, 1), hidden_units=(200, 200), activation="tanh")
        decoder = mlp_decoder(latent_dim, (28, 28, 1), hidden_units=(200, 200), activation="tanh")
        vae = VAE(encoder, decoder, latent_dim, seed=0)
    else:
        vae = build_vae(architecture, (28, 28, 1), latent_dim=latent_dim, seed=0)
    vae.compile(keras.optimizers.Adam(1e-3))
    if arrays:
        train = {"x": binarize(images.astype("float32") / 255.0), "batch_size": batch_size}
    else:
        train = {"x": data.make_dataset(images, batch_size=batch_size, binarize="dynamic", seed=0)}
    done = [0]

    def one_epoch():
        vae.fit(**train, initial_epoch=done[0], epochs=done[0] + 1, verbose=0)
        done[0] += 1

    return one_epoch


def timed_cpu(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def epoch_worker(connection, contender, architecture, size, batch_size, latent_dim):
    """A child process: builds one contender, then trains an epoch per request.

    Each contender lives in its own process, so neither one's thread pools
    (TensorFlow's, PyTorch's OpenMP) spin on the cores while the other trains.
    """
    import tempfile

    pixels, _ = mnist_data("train")
    images = pixels[:size]
    with tempfile.TemporaryDirectory() as output_dir:  # pythae's run folder
        if contender in (KERAS_VAE, KERAS_VAE_ARRAYS):
            one_epoch = keras_vae_epochs(
                architecture, images, batch_size, latent_dim, arrays=contender == KERAS_VAE_ARRAYS
            )
        else:
            from benchmarks.torch_reference import pythae_trainer

            binary = binarize(images.astype("float32") / 255.0)
            one_epoch = pythae_trainer(binary, architecture, latent_dim, batch_size, output_dir)
        one_epoch()  # warm-up: tracing, compilation, allocator
        connection.send("ready")
        while connection.recv() == "epoch":
            connection.send(timed_cpu(one_epoch))


SPIN = "\n".join(
    [
        "import time",
        "t = time.perf_counter()",
        "for i in range(10**7): pass",
        "print(time.perf_counter() - t)",
    ]
)


def machine_cpu_seconds():
    """CPU seconds the whole machine has run (user, nice, system, irq, softirq) and lost to steal.

    From `/proc/stat`; `(0.0, 0.0)` where it does not exist. Around an
    epoch, the machine's CPU less the contender's own is what other
    processes ran meanwhile; steal is time the hypervisor gave to other
    guests while this one had work.
    """
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:9]]
    except OSError:
        return 0.0, 0.0
    per_second = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:3]) + ticks[5] + ticks[6]) / per_second, ticks[7] / per_second


def two_core_probe(repeats=5):
    """How steadily the machine gives two cores: one loop alone, then two at once.

    Each run starts two single-threaded Python loops together; on two free
    cores each takes as long as one loop alone. Returns the ratios of the
    slower loop of each pair to the median loop alone.
    """
    import subprocess
    import sys

    def loops(count):
        processes = [
            subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
            for _ in range(count)
        ]
        return [float(process.communicate()[0]) for process in processes]

    alone = float(np.median([loops(1)[0] for _ in range(repeats)]))
    return [max(loops(2)) / alone for _ in range(repeats)]


def against_pythae(args):
    """Per-epoch rates of `VAE.fit` and pythae, alternating, as record lines."""
    import multiprocessing

    import torch

    context = multiprocessing.get_context("spawn")
    probe = two_core_probe()
    lines = [
        "Two-core probe, before: two single-threaded loops started together took "
        + ", ".join(f"{ratio:.2f}" for ratio in probe)
        + " times one loop alone (1.00 means two free cores).",
        "",
    ]
    for index, architecture in enumerate(args.architecture):
        size = min(60000, args.train_size[min(index, len(args.train_size) - 1)])
        workers = {}
        for name in (KERAS_VAE, KERAS_VAE_ARRAYS, PYTHAE):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=epoch_worker,
                args=(theirs, name, architecture, size, args.batch_size, args.latent_dim),
            )
            process.start()
            if ours.recv() != "ready":
                raise RuntimeError(f"{name} failed to start")
            workers[name] = (ours, process)
        walls = {name: [] for name in workers}
        cpus = {name: [] for name in workers}
        others = {name: [] for name in workers}
        try:
            for epoch in range(args.epochs):
                order = list(workers)
                for name in order if epoch % 2 == 0 else order[::-1]:
                    machine_before, steal_before = machine_cpu_seconds()
                    workers[name][0].send("epoch")
                    wall, cpu = workers[name][0].recv()
                    machine_after, steal_after = machine_cpu_seconds()
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                    # Tick counts: a few hundredths below zero are rounding.
                    others[name].append(
                        (max(0.0, machine_after - machine_before - cpu), steal_after - steal_before)
                    )
        finally:
            for connection, process in workers.values():
                connection.send("stop")
                process.join()
        lines += [
            f"**{architecture}**: MNIST train[:{size}], batch {args.batch_size}, "
            f"{args.epochs} epochs each after a warm-up epoch, alternating; one process each.",
            "",
            "| contender | median images/s | min – max | epochs within 15 % of its fastest "
            "| CPU s per epoch (median, min – max) | wall s per epoch (median) "
            "| other processes' CPU s, steal s (most in an epoch) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        medians = {}
        for name in workers:
            rates = size / np.array(walls[name])
            medians[name] = float(np.median(rates))
            steady = int(np.sum(rates >= 0.85 * rates.max()))
            cpu = np.array(cpus[name])
            other, steal = np.max(others[name], axis=0)
            lines.append(
                f"| {name} | {medians[name]:,.0f} | {rates.min():,.0f} – {rates.max():,.0f} "
                f"| {steady} of {len(rates)} | {np.median(cpu):.2f} ({cpu.min():.2f} – "
                f"{cpu.max():.2f}) | {np.median(walls[name]):.2f} | {other:.2f}, {steal:.2f} |"
            )
        lines += [
            "",
            "Ratio of the medians, keras_vae / pythae: "
            f"**{medians[KERAS_VAE] / medians[PYTHAE]:.2f}** (numpy array: "
            f"{medians[KERAS_VAE_ARRAYS] / medians[PYTHAE]:.2f}). Epoch rates in order: "
            + "; ".join(
                f"{name}: " + ", ".join(f"{size / w:,.0f}" for w in walls[name]) for name in workers
            ) + ".",
            "",
        ]  # fmt: skip
    probe = two_core_probe()
    lines += [
        "Two-core probe, after: "
        + ", ".join(f"{ratio:.2f}" for ratio in probe)
        + " times one loop alone.",
        "",
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads).",
    ]
    record("Training throughput: per-epoch rates of VAE.fit against pythae", lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", nargs="+", default=["mlp", "conv"])
    parser.add_argument(
        "--against",
        choices=["pythae"],
        default=None,
        help="Run the per-epoch protocol against pythae instead (architectures iwae, mlp, conv).",
    )
    parser.add_argument("--epochs", type=int, default=8, help="Timed epochs (--against).")
    parser.add_argument("--latent-dim", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds.")
    parser.add_argument(
        "--train-size",
        type=int,
        nargs="+",
        default=[30000, 10000],
        help="Training images per epoch, one per architecture (the last repeats). "
        "Defaults to 30000 10000, and to all 60000 with --against.",
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
    if args.against:
        if args.batch_size == 128:  # the steadiness target's batch, unless asked otherwise
            args.batch_size = 100
        if args.train_size == [30000, 10000]:  # whole epochs of MNIST, unless asked otherwise
            args.train_size = [60000]
        return against_pythae(args)
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
