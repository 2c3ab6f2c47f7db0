"""End-to-end training on an image dataset: what `keras-vae train` runs."""

import contextlib
import json
import numbers
import os

import keras
import tensorflow as tf

from keras_vae import data
from keras_vae.callbacks import BetaScheduler, ImageLogger, linear_kl_warmup
from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.presets import (
    LIKELIHOODS,
    PRIOR_COMPONENTS,
    build_cvae,
    build_vae,
    check_prior_components,
)
from keras_vae.models.vae import OBJECTIVES
from keras_vae.models.validation import check_choice, check_positive_int
from keras_vae.networks import ARCHITECTURES
from keras_vae.posteriors import POSTERIORS
from keras_vae.tasks.generation import complete_images, completion_grid, sample_images
from keras_vae.tasks.run_folder import (
    STATE_FILE,
    RunBackup,
    StopIfDiverged,
    changed_arguments,
    finished_epochs,
    json_safe,
    remove_backup,
    resumable,
    seed_backup,
    write_atomically,
    write_json,
)
from keras_vae.utils.cpu import warn_if_bfloat16_is_emulated
from keras_vae.utils.dtype_policy import global_dtype_policy
from keras_vae.utils.images import save_images
from keras_vae.utils.output_folder import RunLock, check_output_folder

BINARIZATIONS = ("dynamic", "static", "none")
DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
MODELS = ("vae", "cvae")
DEFAULT_LATENT_DIMS = {"vae": 50, "cvae": 8}
# Draws of z per image: one for the ELBO, the IWAE paper's k = 5 for its bound.
DEFAULT_NUM_SAMPLES = {"elbo": 1, "iwae": 5}
# The priors each model takes by name: P(z|X) needs a condition X, and the
# VampPrior's components are posteriors without one.
MODEL_PRIORS = {"vae": ("standard", "mog", "vamp"), "cvae": ("standard", "learned", "mog")}
_PRIOR_REFUSALS = {
    ("vae", "learned"): "a learned prior P(z|X) needs a condition X; use model='cvae'",
    ("cvae", "vamp"): "the VampPrior's components are posteriors without a condition; "
    "use model='vae'",
}


def make_datasets(
    model_kind,
    condition,
    images,
    labels,
    binarize,
    batch_size,
    seed,
    shuffle,
    num_classes=10,
    epoch=None,
):
    """The tf.data pipeline of x batches (VAE) or (condition, target) pairs (CVAE)."""
    if model_kind == "vae":
        return data.make_dataset(
            images, binarize=binarize, batch_size=batch_size, shuffle=shuffle, seed=seed,
            epoch=epoch,
        )  # fmt: skip
    conditions, targets = data.make_conditional_pairs(images, labels, condition, num_classes)
    return data.make_conditional_dataset(
        conditions,
        targets,
        binarize=binarize,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        binarize_condition=condition != "label",
        epoch=epoch,
    )


def train_model(
    dataset: str = "mnist",
    architecture: str = "mlp",
    latent_dim: int | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    beta: float = 1.0,
    seed: int = 0,
    output: str | None = None,
    learning_rate: float = 1e-3,
    binarize: str = "dynamic",
    model: str = "vae",
    condition: str | None = None,
    prior: str = "standard",
    train_split: str = "train",
    test_split: str = "test",
    data_dir: str | None = None,
    verbose: int | str = "auto",
    jit_compile: bool | str = "auto",
    gsnn_weight: float = 0.0,
    likelihood: str | None = None,
    dtype_policy: str = "float32",
    kl_warmup_epochs: int = 0,
    posterior: str = "diagonal",
    prior_components: int | None = None,
    clipnorm: float | None = None,
    overwrite: bool = False,
    objective: str = "elbo",
    num_samples: int | None = None,
):
    """Trains a VAE or a CVAE on a TFDS image dataset and writes its artifacts.

    Writes, under `output`: `model.keras`, `metrics.json` (the per-epoch
    history and the final train and test metrics), `samples.png` (generated
    images: a grid from the prior, one row per class for a label CVAE, or
    rows of [observed part, completions, original] for a completion CVAE) and
    TensorBoard logs in `logs/` (the losses, and in `logs/samples` the
    samples and reconstructions of `keras_vae.callbacks.ImageLogger` after
    every epoch, also as PNG files in `logs/images`). Files are written under hidden
    names and renamed into place, so a stopped run or a full disk never
    leaves a partial one, and an earlier run's files stay until they are
    replaced. One run writes into a folder at a time (`RunLock`).

    While it trains, `output/backup/` holds the weights, the optimizer state
    and the history of the last finished epoch, committed as one unit
    (`RunBackup`). A run that was stopped (Ctrl+C, a killed job) resumes
    from there when it is started again with the same arguments (`epochs`
    may be raised); other arguments are refused with one line, as they are
    for a folder that holds a finished run, unless `overwrite`. A finished
    run started again with more `epochs` trains on from its `model.keras`
    (weights and optimizer state) and history; with as many, it is loaded
    and returned, with nothing trained. Each
    epoch's shuffle and binarization draws are keyed by `seed` and the
    epoch, so the resumed run ends with the weights and figures of an
    uninterrupted one. The folder goes once the run's files are written.

    Training that diverges (a non-finite loss or weight at the end of an
    epoch) stops with a `TrainingDivergedError` naming the epoch; nothing
    non-finite is written, and the backup keeps the last finite epoch.

    Args:
        dataset: str. TFDS image dataset name. Defaults to `"mnist"`.
        architecture: str. `"mlp"` or `"conv"`. Defaults to `"mlp"`.
        latent_dim: int or `None`. Number of latents. Defaults to `50` for a
            VAE and `8` for a CVAE, whose condition carries the class and
            whose few latents then hold the style, which keeps samples true to
            the requested class.
        epochs: int. Passes over the training split. Defaults to `10`.
        batch_size: int. Defaults to `128`.
        beta: float. KL weight. Defaults to `1.0`.
        seed: int. Seeds weights, shuffling, binarization and samples.
        output: str or `None`. Output folder; `None` writes nothing.
        learning_rate: float. Adam's learning rate. Defaults to `1e-3`.
        binarize: str. `"dynamic"`, `"static"` or `"none"` (Gaussian
            likelihood on grey values). Defaults to `"dynamic"`.
        model: str. `"vae"` or `"cvae"`. Defaults to `"vae"`.
        condition: str or `None`. For a CVAE: `"label"`, `"center-column"`
            or `"top-half"`.
        prior: str. P(z): `"standard"` (N(0, I)), `"mog"` (a learned
            mixture of Gaussians), `"vamp"` (VampPrior, VAE only) or
            `"learned"` (a Gaussian network of the condition, P(z|X), CVAE
            only). Defaults to `"standard"`.
        train_split: str. TFDS split to train on, e.g. `"train[:1000]"`.
        test_split: str. TFDS split for the final test metrics.
        data_dir: str or `None`. TFDS data folder (else `TFDS_DATA_DIR`).
        verbose: Keras verbosity for `fit`. Defaults to `"auto"`.
        jit_compile: `"auto"`, `True` or `False`. Compile the training step
            with XLA. `"auto"` uses XLA on CPU unless the model has
            convolutions or a VampPrior over full-covariance posteriors,
            which ran slower under XLA on our CPU (see `ELBOModel.compile`).
            Defaults to `"auto"`.
        gsnn_weight: float in [0, 1). For a CVAE, the weight of the
            reconstruction from prior draws in the loss (Sohn et al.'s hybrid
            objective). Defaults to `0.0`.
        likelihood: str or `None`. P(x|z): `"bernoulli"` (binarized data),
            `"pixelcnn"` (binarized data, VAE only: an autoregressive
            `PixelCNNBernoulli` on the decoder, for better log-likelihoods;
            such a model is not exportable) or `"gaussian"` (`binarize="none"`).
            Defaults to `None`: Bernoulli for binarized data, Gaussian otherwise.
        dtype_policy: str. The Keras dtype policy of the model's layers:
            `"float32"`, `"mixed_bfloat16"` (faster on CPUs with AVX512-BF16;
            warns on a CPU without bfloat16 arithmetic and no GPU, where it is
            slower) or `"mixed_float16"` (GPUs; the loss is scaled). Mixed policies
            run the networks in 16 bits; the weights, the distribution layers
            and the ELBO stay in float32, and `keras-vae export` writes a
            float32 copy. The global policy is left as it was. Defaults to
            `"float32"`.
        kl_warmup_epochs: int. A KL warm-up: the KL weight rises linearly
            from `beta / kl_warmup_epochs` in the first epoch to `beta` in
            epoch `kl_warmup_epochs` (counted from 1) and after
            (`keras_vae.callbacks.linear_kl_warmup`), which counters
            posterior collapse. The history logs each epoch's `beta`. `0`
            (the default) trains with `beta` throughout.
        posterior: str. Q(z|x): `"diagonal"` (a diagonal Gaussian), `"full"`
            (full covariance) or `"iaf"` (an inverse autoregressive flow).
            Defaults to `"diagonal"`.
        prior_components: int or `None`. Gaussians of `prior="mog"` or
            pseudo-inputs of `prior="vamp"`; refused with other priors.
            `None` keeps the prior's default (10 and 500); the run's config
            records the number used. Defaults to `None`.
        clipnorm: float or `None`. Clip each gradient to this norm (Adam's
            `clipnorm`), a remedy for training that diverges. Defaults to
            `None` (no clipping).
        overwrite: bool. Start over in a folder that holds a finished run or
            a stopped one with other arguments (its files are replaced once
            the new run's are written). Defaults to `False`.
        objective: str. The bound trained on: `"elbo"` or `"iwae"`, the
            importance-weighted bound of Burda et al. (2016) with
            `num_samples` draws per image, which needs `beta=1.0` and no KL
            warm-up (it has no KL weight). Defaults to `"elbo"`.
        num_samples: int or `None`. Draws of z per image in the objective:
            the IWAE bound's K, or the draws the ELBO averages. `None` is 1
            for the ELBO and 5 for the IWAE bound (the IWAE paper's k = 5).
            Defaults to `None`.

    Returns:
        A tuple `(model, metrics)` where `metrics` is what `metrics.json` holds.
    """
    check_choice("binarize", binarize, BINARIZATIONS)
    check_choice("model", model, MODELS)
    check_choice("dtype_policy", dtype_policy, DTYPE_POLICIES)
    if model == "cvae":
        check_choice("condition", condition, data.CONDITIONS)
    elif condition is not None:
        raise ValueError(
            f"Expected condition=None for model='vae' (use model='cvae'). "
            f"Received: condition={condition!r}"
        )
    elif gsnn_weight != 0.0:
        raise ValueError(
            f"Expected gsnn_weight=0.0 for model='vae' (it weights a CVAE loss term). "
            f"Received: gsnn_weight={gsnn_weight!r}"
        )
    _check_prior(model, prior)
    check_choice("posterior", posterior, tuple(POSTERIORS))
    check_prior_components(prior, prior_components)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ValueError(f"Expected seed to be an integer in [0, 2**32). Received: seed={seed!r}")
    seed = int(seed)  # numpy integers too: metrics.json holds it
    check_positive_float("learning_rate", learning_rate)
    if clipnorm is not None:
        check_positive_float("clipnorm", clipnorm)
    if latent_dim is None:
        latent_dim = DEFAULT_LATENT_DIMS[model]
    # Checked here too (the presets check them again), before any data loads.
    check_choice("architecture", architecture, ARCHITECTURES)
    check_positive_int("latent_dim", latent_dim)
    check_positive_float("beta", beta, allow_zero=True)
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    kl_warmup_epochs = check_positive_int("kl_warmup_epochs", kl_warmup_epochs, allow_zero=True)
    check_choice("objective", objective, OBJECTIVES)
    if objective == "iwae" and (beta != 1.0 or kl_warmup_epochs):
        raise ValueError(
            "Expected beta=1.0 and kl_warmup_epochs=0 with objective='iwae' (the bound has "
            f"no KL weight). Received: beta={beta!r}, kl_warmup_epochs={kl_warmup_epochs!r}"
        )
    if num_samples is None:
        num_samples = DEFAULT_NUM_SAMPLES[objective]
    num_samples = check_positive_int("num_samples", num_samples)
    binarize_mode = None if binarize == "none" else binarize
    if likelihood is None:
        likelihood = "gaussian" if binarize_mode is None else "bernoulli"
    check_choice("likelihood", likelihood, LIKELIHOODS)
    if (likelihood == "gaussian") != (binarize_mode is None):
        expected = "binarize='none'" if likelihood == "gaussian" else "binarized data"
        raise ValueError(
            f"Expected {expected} for likelihood={likelihood!r}. Received: binarize={binarize!r}"
        )
    if likelihood == "pixelcnn" and model != "vae":
        raise ValueError(
            "Expected model='vae' for likelihood='pixelcnn' (CVAEs take factorized "
            f"likelihoods). Received: model={model!r}"
        )
    if output is not None:
        check_output_folder(output)
    # One writer per output folder, from before the backup is read to the last file.
    with contextlib.nullcontext() if output is None else RunLock(output):
        warn_if_bfloat16_is_emulated(dtype_policy)
        train_images, train_labels = data.load_images(dataset, train_split, data_dir=data_dir)
        test_images, test_labels = data.load_images(dataset, test_split, data_dir=data_dir)
        image_shape = train_images.shape[1:]
        # From the dataset's metadata: a slice need not hold every class.
        num_classes = data.num_classes(dataset, data_dir=data_dir)
        pipeline = (model, condition)
        keras.utils.set_random_seed(seed)  # the initial weights and the model's noise
        # Each pass's shuffle and draws are keyed by `seed` and the epoch alone,
        # not by the global seed or by how many passes came before: a resumed run
        # sees the data of an uninterrupted one.
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        train_ds = make_datasets(
            *pipeline, train_images, train_labels, binarize_mode, batch_size, seed, True,
            num_classes, epoch,
        )  # fmt: skip
        test_ds = make_datasets(
            *pipeline, test_images, test_labels, binarize_mode, batch_size, seed + 1, False,
            num_classes, epoch,
        )  # fmt: skip

        with global_dtype_policy(dtype_policy):  # layers take the policy when made
            shared = dict(
                architecture=architecture,
                latent_dim=latent_dim,
                likelihood=likelihood,
                beta=beta,
                seed=seed,
                prior=prior,
                posterior=posterior,
                prior_components=prior_components,
                objective=objective,
                num_samples=num_samples,
            )
            if model == "vae":
                vae = build_vae(input_shape=image_shape, **shared)
            else:
                vae = build_cvae(
                    condition=condition,
                    image_shape=image_shape,
                    num_classes=num_classes,
                    gsnn_weight=gsnn_weight,
                    **shared,
                )
            optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
            vae.compile(optimizer=optimizer, jit_compile=jit_compile)
        if prior in PRIOR_COMPONENTS:
            # Recorded as the number the model has: leaving the default or giving
            # it is the same run, which resumes the other.
            prior_components = getattr(vae.prior_layer, PRIOR_COMPONENTS[prior])
        config = {
            "dataset": dataset,
            "model": model,
            "condition": condition,
            "prior": prior,
            "prior_components": prior_components,
            "posterior": posterior,
            "gsnn_weight": gsnn_weight if model == "cvae" else None,
            "architecture": architecture,
            "latent_dim": latent_dim,
            "epochs": epochs,
            "batch_size": batch_size,
            "beta": beta,
            "kl_warmup_epochs": kl_warmup_epochs,
            "objective": objective,
            "num_samples": num_samples,
            "seed": seed,
            "learning_rate": learning_rate,
            "clipnorm": clipnorm,
            "binarize": binarize,
            "likelihood": likelihood,
            "train_split": train_split,
            "test_split": test_split,
            "jit_compile": vae.jit_compile,
            "dtype_policy": dtype_policy,
        }

        set_epoch = keras.callbacks.LambdaCallback(on_epoch_begin=lambda i, logs: epoch.assign(i))
        advice = (
            f"; try a lower --learning-rate (this run had {learning_rate:g}) or --clipnorm 1.0, "
            "with --overwrite"
        )
        # First after the epoch counter: nothing later sees a diverged epoch.
        callbacks, backup, initial_epoch = [set_epoch, StopIfDiverged(advice)], None, 0
        if kl_warmup_epochs:
            callbacks.append(BetaScheduler(linear_kl_warmup(kl_warmup_epochs, beta)))
        if output is not None:
            finished = _finished_run(output, json_safe(config), overwrite)
            if finished is not None and finished["config"]["epochs"] == epochs:
                if verbose:
                    print(
                        f"The run in {output} finished its {epochs} epochs: nothing to train "
                        "(a higher --epochs trains on, --overwrite starts over)"
                    )
                from keras_vae.tasks.evaluation import load_model  # it imports this module

                return load_model(os.path.join(output, "model.keras")), finished
            backup_folder = os.path.join(output, "backup")
            if overwrite and not resumable(backup_folder, json_safe(config)):
                # A stopped run of this command resumes, as the stop line says.
                remove_backup(backup_folder)
            if finished is not None and not finished_epochs(output):
                # Trained on from the finished run's weights, optimizer and history.
                seed_backup(backup_folder, json_safe(config), output, finished)
            backup = RunBackup(backup_folder, json_safe(config))
            initial_epoch = backup.epoch  # its callback restores that epoch's state
            logs = os.path.join(output, "logs")
            callbacks.append(keras.callbacks.TensorBoard(log_dir=logs))
            callbacks.append(
                ImageLogger(
                    test_images,
                    test_labels,
                    log_dir=os.path.join(logs, "samples"),
                    png_dir=os.path.join(logs, "images"),
                    seed=seed,
                )
            )
            callbacks.append(backup.callback())  # last: it commits what the others logged
            if backup.resumed and verbose:
                stopped = "finished" if finished is not None else "stopped"
                print(f"Resuming the {stopped} run in {output} after epoch {initial_epoch}")
        history = vae.fit(
            train_ds,
            epochs=epochs,
            initial_epoch=initial_epoch,
            validation_data=test_ds,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles
        )
        if backup is None:
            history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        else:
            history = backup.history  # epochs of a stopped run included
        epoch.assign(epochs)  # fresh draws for the final figures, resumed or not
        metrics = {
            "config": config,
            "history": history,
            "train": _evaluate(vae, train_ds),
            "test": _evaluate(vae, test_ds),
        }
        if output is not None:
            write_atomically(os.path.join(output, "model.keras"), vae.save)
            write_json(os.path.join(output, "metrics.json"), metrics)
            _save_preview(vae, condition, test_images, seed, os.path.join(output, "samples.png"))
            backup.remove()
        return vae, metrics


def _check_prior(model, prior):
    """Raises unless `prior` names a prior that `model` (`"vae"` or `"cvae"`) takes."""
    reason = _PRIOR_REFUSALS.get((model, prior)) if isinstance(prior, str) else None
    if reason is not None:
        raise ValueError(
            f"Expected prior to be one of {MODEL_PRIORS[model]} for model={model!r} ({reason}). "
            f"Received: prior={prior!r}"
        )
    check_choice("prior", prior, MODEL_PRIORS[model])


def _finished_run(output, config, overwrite):
    """The `metrics.json` of the finished run in `output` that `config` trains on, or `None`.

    `None` with `overwrite`, or when `output` holds no finished run. The
    finished run is returned when `config` has its arguments, `epochs` aside,
    and at least its epochs: as many leave nothing to train, more train on
    from its end. Raises for other arguments or fewer epochs, and if
    `output` holds a `model.keras` or `samples.png` that no run there wrote
    (no `metrics.json`, no backup): `train` would replace them.
    """
    path = os.path.join(output, "metrics.json")
    if overwrite:
        return None
    if not os.path.exists(path):
        if os.path.exists(os.path.join(output, "backup", STATE_FILE)):
            return None  # a stopped run, perhaps killed after writing model.keras
        for name in ("model.keras", "samples.png"):
            if os.path.lexists(os.path.join(output, name)):
                raise ValueError(
                    f"Expected {output} to hold a keras-vae run or none: train writes {name} "
                    f"there (or --overwrite to replace it). Received: a {name} and no run's "
                    "metrics.json or backup"
                )
        return None
    try:
        with open(path) as f:
            finished = json.load(f)
        saved = finished["config"]
        if not isinstance(saved["epochs"], int) or not isinstance(finished["history"], dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        finished = None
    if finished is None:
        changed = f"{path} is not a keras-vae metrics file"
    else:
        changed = changed_arguments(saved, config, ignore=("epochs",))
    if changed:
        raise ValueError(
            f"Expected the arguments of the finished run in {output} (epochs may be raised "
            f"to train it on), or --overwrite to replace it. Received: {changed}"
        )
    if config["epochs"] < saved["epochs"]:
        raise ValueError(
            f"Expected epochs to be at least {saved['epochs']}, the epochs the finished run "
            f"in {output} trained (or --overwrite to replace it). Received: "
            f"epochs={config['epochs']}"
        )
    return finished


def _evaluate(model, dataset):
    logs = model.evaluate(dataset, verbose=0, return_dict=True)
    return {k: float(v) for k, v in logs.items()}


def _preview(model, condition, test_images, seed):
    """What `samples.png` shows: `(images, num_rows)` for `save_images` or `image_grid`."""
    if condition in (None, "label"):
        images = sample_images(model, 8 if condition else 64, seed)
        return images, model.condition_shape[0] if condition else None
    originals = data.scale_images(test_images[:8])
    completions = complete_images(model, originals, 6, seed)
    return completion_grid(originals, completions, condition), 8


def _save_preview(model, condition, test_images, seed, path):
    images, num_rows = _preview(model, condition, test_images, seed)
    save_images(images, path, num_rows=num_rows)
