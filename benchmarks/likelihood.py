"""Test log-likelihood of MNIST VAEs against the IWAE paper's published figures.

Trains the one-stochastic-layer model of Burda et al. (2016), table 1 (an
encoder and a decoder of two hidden layers of 200 tanh units each, 50
latents, Bernoulli pixels), on dynamically binarized MNIST as a VAE and with
the importance-weighted objective at K=5 and K=50, then scores each on the
test split with the K=5000 importance-weighted estimate
(`keras_vae.evaluation.log_likelihood`). Optionally also the `conv` preset,
with the factorized Bernoulli likelihood (`conv`) or the autoregressive
`PixelCNNBernoulli` (`conv-pixelcnn`).

The MLP runs take any prior and posterior of the model family (`--prior
{standard,mog,vamp}`, `--prior-components K`, `--posterior
{diagonal,full,iaf}`), so the same budget compares them.

The schedule is the paper's, truncated: stage i lasts 3^i epochs at learning
rate 1e-3 * 10^(-i/7), Adam with epsilon 1e-4; `--stages 8` is the paper's full
3280 epochs ("3^8 passes"); `--epochs N` cuts the schedule after N epochs. The
paper's batch size is 20; the default here is 100, which runs several times
faster on a CPU. Models are saved under `--output` and, with `--reuse`,
reloaded instead of retrained; `--resume` continues the saved model of the most
stages below `--stages` (with its optimizer state) instead of starting over, or
the run's checkpoint, written every `--checkpoint-every` epochs, when that one
is further along. Every schedule is a prefix of the longer ones, so a long run
(the paper's 3280 epochs) can be carried over several sittings.

    python -m benchmarks.likelihood --runs vae iwae5 iwae50 --stages 4 3 3
    python -m benchmarks.likelihood --runs vae --stages 7 --epochs 500 --prior vamp
"""

import argparse
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import record, setup_tfds_dir  # noqa: E402
from keras_vae import VAE, data  # noqa: E402
from keras_vae.callbacks import BetaScheduler, linear_kl_warmup  # noqa: E402
from keras_vae.evaluation import log_likelihood  # noqa: E402
from keras_vae.layers import IndependentBernoulli  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.networks import mlp_decoder, mlp_encoder  # noqa: E402
from keras_vae.priors import MixtureOfGaussians, VampPrior  # noqa: E402

# Burda et al. (2016), table 1, MNIST, one stochastic layer, NLL in nats.
RUNS = {
    "vae": {"objective": "elbo", "num_samples": 1, "paper": 86.76},
    "iwae5": {"objective": "iwae", "num_samples": 5, "paper": 85.54},
    "iwae50": {"objective": "iwae", "num_samples": 50, "paper": 84.78},
    "conv": {"objective": "elbo", "num_samples": 1, "paper": None},
    "conv-pixelcnn": {"objective": "elbo", "num_samples": 1, "paper": None},
}


def build(run, seed, prior="standard", posterior="diagonal", prior_components=None):
    spec = RUNS[run]
    if run.startswith("conv"):
        likelihood = "pixelcnn" if run == "conv-pixelcnn" else "bernoulli"
        return build_vae("conv", (28, 28, 1), latent_dim=50, likelihood=likelihood, seed=seed)
    return VAE(
        mlp_encoder((28, 28, 1), hidden_units=(200, 200), activation="tanh"),
        mlp_decoder(50, (28, 28, 1), hidden_units=(200, 200), activation="tanh"),
        latent_dim=50,
        likelihood=IndependentBernoulli((28, 28, 1)),
        prior=make_prior(prior, prior_components),
        posterior=posterior,
        objective=spec["objective"],
        num_samples=spec["num_samples"],
        seed=seed,
    )


def make_prior(name, components):
    """The prior called `name`, with `components` mixture components if given."""
    if components is None or name == "standard":
        return name
    return {"mog": MixtureOfGaussians, "vamp": VampPrior}[name](components)


def run_label(run, args):
    """The run's name in files and the record: the prior and posterior when not the defaults."""
    if run.startswith("conv"):
        return run
    parts = [run]
    if args.prior != "standard":
        parts.append(
            args.prior + ("" if args.prior_components is None else str(args.prior_components))
        )
    if args.posterior != "diagonal":
        parts.append(args.posterior)
    if args.kl_warmup_epochs:
        parts.append(f"warmup{args.kl_warmup_epochs}")
    return "-".join(parts)


def load_mnist(test_images, seed, train_images=None):
    """MNIST train images (uint8, binarized per epoch later; the first
    `train_images`, or all) and the first `test_images` test images binarized
    once with `seed`."""
    train_images, _ = data.load_images("mnist", train_split(train_images))
    test, _ = data.load_images("mnist", f"test[:{test_images}]")
    return train_images, data.binarize_static(test, seed=seed)


def train_split(train_images):
    """The TFDS split that `load_mnist` trains on, for the record."""
    return "train" if train_images is None else f"train[:{train_images}]"


def paper_schedule(stages):
    """Learning rate per epoch: stage i is 3^i epochs at 1e-3 * 10^(-i/7)."""
    rates = []
    for stage in range(stages):
        rates += [1e-3 * 10 ** (-stage / 7)] * 3**stage
    return rates


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model (optimizer included) every `every` epochs as `{prefix}-{epochs}.keras`.

    The file is written under a temporary name and renamed, and older
    checkpoints of the run are removed only after that, so a run stopped at
    any moment leaves a complete checkpoint whose name gives its epochs.
    """

    def __init__(self, prefix, every):
        super().__init__()
        self.prefix, self.every = prefix, every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or self.model.stop_training:
            return  # not a checkpoint epoch, or stopped by a non-finite loss
        path = f"{self.prefix}-{epoch + 1}.keras"
        self.model.save(path + ".partial.keras")
        os.replace(path + ".partial.keras", path)
        for old, _ in checkpoints(self.prefix):
            if old != path:
                os.remove(old)


def checkpoints(prefix):
    """[(path, epochs)] of the checkpoints written by `EpochCheckpoint(prefix)`."""
    folder, stem = os.path.split(prefix)
    found = []
    for name in os.listdir(folder or "."):
        epochs = name[len(stem) + 1 : -len(".keras")]
        if name.startswith(stem + "-") and name.endswith(".keras") and epochs.isdigit():
            found.append((os.path.join(folder, name), int(epochs)))
    return found


def latest_start(output, run, stages, rates):
    """(path, epochs done) of the furthest saved state below `len(rates)` epochs, or None."""
    found = [
        (len(paper_schedule(s)), os.path.join(output, f"{run}-{s}stages.keras"))
        for s in range(1, stages)
        if os.path.exists(os.path.join(output, f"{run}-{s}stages.keras"))
    ]
    found += [
        (epochs, path)
        for path, epochs in checkpoints(os.path.join(output, f"{run}-checkpoint"))
        if epochs < len(rates)
    ]
    if not found:
        return None
    epochs, path = max(found)
    return path, epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["vae", "iwae5", "iwae50"], choices=RUNS)
    parser.add_argument(
        "--stages", type=int, nargs="+", default=[4], help="Schedule stages, one per run."
    )
    parser.add_argument(
        "--epochs", type=int, help="Cut the schedule after this many epochs (default: all)."
    )
    parser.add_argument("--prior", default="standard", choices=("standard", "mog", "vamp"))
    parser.add_argument(
        "--prior-components",
        type=int,
        help="Mixture components (mog) or pseudo-inputs (vamp); default: the class's.",
    )
    parser.add_argument("--posterior", default="diagonal", choices=("diagonal", "full", "iaf"))
    parser.add_argument(
        "--kl-warmup-epochs",
        type=int,
        default=0,
        help="KL warm-up: the KL weight is 1/N, 2/N, ..., 1 in the first N epochs (default: none).",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument(
        "--train-images", type=int, metavar="N", help="Train on the first N images (default: all)."
    )
    parser.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="XLA for training (default: compile's 'auto', XLA for the MLPs).",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/likelihood")
    parser.add_argument("--reuse", action="store_true", help="Load saved models if present.")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue the furthest saved state below --stages (a stage's model or the "
        "run's checkpoint), if any.",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=25,
        help="Save the run's checkpoint every N epochs (for --resume).",
    )
    args = parser.parse_args()
    setup_tfds_dir()
    train_images, test = load_mnist(args.test_images, args.seed, args.train_images)
    os.makedirs(args.output, exist_ok=True)

    rows = []
    for index, run in enumerate(args.runs):
        stages = args.stages[min(index, len(args.stages) - 1)]
        rates = paper_schedule(stages)[: args.epochs]
        label = run_label(run, args)
        cut = "" if len(rates) == len(paper_schedule(stages)) else f"-{len(rates)}epochs"
        path = os.path.join(args.output, f"{label}-{stages}stages{cut}.keras")
        minutes, resumed = None, 0
        if args.reuse and os.path.exists(path):
            model = keras.saving.load_model(path)
        else:
            saved = latest_start(args.output, label, stages, rates) if args.resume else None
            if saved is not None:
                # The .keras file holds the optimizer and sampler state too.
                model = keras.saving.load_model(saved[0])
                resumed = saved[1]
                print(f"resuming {run} from {saved[0]} after {resumed} epochs", flush=True)
            else:
                keras.utils.set_random_seed(args.seed)
                model = build(run, args.seed, args.prior, args.posterior, args.prior_components)
                model.compile(
                    optimizer=keras.optimizers.Adam(rates[0], epsilon=1e-4),
                    jit_compile="auto" if args.jit_compile is None else args.jit_compile,
                )
            # Each epoch's shuffle and draws are keyed by the seed and the epoch,
            # so a resumed run trains on the data of an uninterrupted one.
            epoch = tf.Variable(resumed, dtype=tf.int64, trainable=False)
            train = data.make_dataset(
                train_images,
                binarize="dynamic",
                batch_size=args.batch_size,
                seed=args.seed,
                epoch=epoch,
            )
            set_epoch = keras.callbacks.LambdaCallback(
                on_epoch_begin=lambda index, logs, v=epoch: v.assign(index)
            )
            schedule = keras.callbacks.LearningRateScheduler(lambda epoch, _, r=rates: r[epoch])
            checkpoint = EpochCheckpoint(
                os.path.join(args.output, f"{label}-checkpoint"), args.checkpoint_every
            )
            callbacks = [set_epoch, schedule, checkpoint]
            if args.kl_warmup_epochs:
                callbacks.append(BetaScheduler(linear_kl_warmup(args.kl_warmup_epochs)))
            start = time.perf_counter()
            history = model.fit(
                train,
                initial_epoch=resumed,
                epochs=len(rates),
                callbacks=[*callbacks, keras.callbacks.TerminateOnNaN()],
                verbose=2,
            )
            if not math.isfinite(history.history["loss"][-1]):
                raise SystemExit(
                    f"{label}: the loss became {history.history['loss'][-1]} in epoch "
                    f"{resumed + len(history.history['loss'])}; nothing saved after the last "
                    "checkpoint"
                )
            minutes = (time.perf_counter() - start) / 60
            model.save(path)
        start = time.perf_counter()
        result = log_likelihood(
            model, test, num_samples=args.importance_samples, seed=args.seed, verbose=2
        )
        eval_minutes = (time.perf_counter() - start) / 60
        spec = RUNS[run]
        paper = "n/a" if spec["paper"] is None else f"{spec['paper']:.2f}"
        gap = "" if spec["paper"] is None else f"{result['nll'] - spec['paper']:+.2f}"
        objective = "ELBO" if spec["objective"] == "elbo" else f"IWAE, K={spec['num_samples']}"
        rows.append(
            f"| {label} | {objective} | {len(rates)} ({stages} stages) | "
            f"{'reused' if minutes is None else f'{minutes:.1f}'}"
            f"{f' (epochs {resumed + 1}-{len(rates)}, resumed)' if resumed else ''} | "
            f"{result['nll']:.2f} | "
            f"{-result['elbo']:.2f} ({result['kl_estimator'].replace('_', ' ')} KL) | "
            f"{result['active_units']} of 50 | "
            f"{paper} | {gap} | {eval_minutes:.1f} |"
        )
        print(rows[-1], flush=True)
    jit = "'auto'" if args.jit_compile is None else args.jit_compile
    record(
        "Test log-likelihood against the IWAE paper (MNIST, one stochastic layer)",
        [
            f"Dynamically binarized MNIST {train_split(args.train_images)}, batch "
            f"{args.batch_size}, Adam (epsilon 1e-4) "
            "on the paper's schedule truncated to the given stages; "
            f"`jit_compile={jit}`"
            + (f", KL warm-up over {args.kl_warmup_epochs} epochs" if args.kl_warmup_epochs else "")
            + f". NLL = -log p(x) from K={args.importance_samples} "
            f"importance samples on MNIST test[:{args.test_images}] binarized once "
            f"(seed {args.seed}); -ELBO on the same images. MLP runs: 784-200-200-50 tanh "
            "encoder and decoder (the paper's architecture); conv: the `conv` preset, 50 latents; "
            "conv-pixelcnn: the same with `likelihood='pixelcnn'` (a 7x7 mask-A and three 3x3 "
            "mask-B convolutions of 32 channels over the image, fed 16 decoder channels).",
            "",
            "| run | objective | epochs | train min | NLL | -ELBO | active units | paper NLL "
            "| gap | eval min |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
