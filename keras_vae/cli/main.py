"""The `keras-vae` command line: parses arguments and calls the library."""

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import threading
import warnings

from keras_vae.cli.quiet import import_tensorflow_quietly
from keras_vae.utils.checks import check_positive_float, check_positive_int, check_seed

# The names `keras_vae.priors.PRIORS` and `keras_vae.posteriors.POSTERIORS`
# register, and `keras_vae.models.vae.OBJECTIVES`, written out so that parsing
# needs no TensorFlow (a test keeps them equal).
PRIOR_NAMES = ("standard", "mog", "vamp", "learned")
POSTERIOR_NAMES = ("diagonal", "full", "iaf")
OBJECTIVE_NAMES = ("elbo", "iwae")
# The export's bounds, written out for the same reason (the same test keeps them
# equal): `export.validation.MAX_VERSION`, `export.tflite_micro`'s largest
# batch and arena.
MAX_VERSION = 2**63 - 1
MICRO_MAX_SAMPLES = 4096
MICRO_MAX_ARENA = 1 << 30


class _HelpFormatter(argparse.HelpFormatter):
    """Ends an option's help with its default, unless it has none or the help names it."""

    def _get_help_string(self, action):
        help_text = action.help
        default = action.default
        if (
            action.option_strings
            and default is not None
            and default is not False
            and default is not argparse.SUPPRESS
            and "default" not in help_text
        ):
            help_text += " (default: %(default)s)"
        return help_text


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument in one line, without the usage block; `--help` shows defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _one_line(error: BaseException) -> str:
    # Keras wraps errors raised inside a layer's call in a multi-line message;
    # the line that says what was expected is the one worth showing.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "Expected" in line:
            return line.replace("\x1b[1m", "").replace("\x1b[0m", "")
    return lines[0] if lines else type(error).__name__


def _number(check, convert, name, allow_zero=False):
    """An argparse type: `check` (from `keras_vae.utils.checks`) on the converted text.

    Checked while parsing, so a bad number is reported before TensorFlow loads.
    """

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            raise argparse.ArgumentTypeError(
                f"Expected {name} to be {kind}. Received: {name}={text!r}"
            ) from None
        try:
            return check(name, value, allow_zero=allow_zero)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def _positive_int(name, allow_zero=False):
    return _number(check_positive_int, int, name, allow_zero)


def _positive_float(name, allow_zero=False):
    return _number(check_positive_float, float, name, allow_zero)


def _int_up_to(name, largest, largest_text):
    """An argparse type for an integer in `[1, largest]`."""

    def check(name, value, allow_zero=False):
        del allow_zero
        if not 1 <= value <= largest:
            raise ValueError(
                f"Expected {name} to be an integer in [1, {largest_text}]. Received: {name}={value}"
            )
        return value

    return _number(check, int, name)


def _gsnn_weight():
    """An argparse type for `--gsnn-weight`, a float in [0, 1)."""

    def check(name, value, allow_zero=False):
        del allow_zero
        if not 0.0 <= value < 1.0:
            raise ValueError(f"Expected {name} to be a float in [0, 1). Received: {name}={value}")
        return value

    return _number(check, float, "gsnn_weight")


def _batch_sizes(text):
    """An argparse type for `--batch-sizes`: comma-separated integers in [1, 4096]."""
    parts = [part.strip() for part in text.split(",")]
    if not all(p.isdigit() and 1 <= int(p) <= MICRO_MAX_SAMPLES for p in parts):
        raise argparse.ArgumentTypeError(
            f"Expected batch_sizes to be integers in [1, {MICRO_MAX_SAMPLES}], comma-separated "
            f"(e.g. 1,64). Received: batch_sizes={text!r}"
        )
    return text


def _seed():
    """An argparse type for a seed, an integer in [0, 2**32) as the library's."""
    return _number(lambda name, value, allow_zero=False: check_seed(name, value), int, "seed")


def _add_data_args(parser):
    parser.add_argument("--dataset", default="mnist", help="TFDS image dataset name.")
    parser.add_argument(
        "--data-dir", default=None, help="TFDS data folder (default: $TFDS_DATA_DIR)."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keras-vae", description="Variational autoencoders on Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = sub.add_parser("train", help="Train a VAE on an image dataset.")
    _add_data_args(train)
    train.add_argument("--architecture", default="mlp", help="mlp or conv.")
    train.add_argument(
        "--latent-dim",
        type=_positive_int("latent_dim"),
        default=None,
        help="Latents (default: 50 VAE, 8 CVAE).",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int("epochs"),
        default=10,
        help="Passes over --train-split (a higher number trains a finished run further).",
    )
    train.add_argument(
        "--batch-size", type=_positive_int("batch_size"), default=128, help="Images per step."
    )
    train.add_argument(
        "--beta",
        type=_positive_float("beta", allow_zero=True),
        default=1.0,
        help="Weight of the KL term (a beta-VAE; the elbo metric stays the true ELBO).",
    )
    train.add_argument(
        "--kl-warmup-epochs",
        type=_positive_int("kl_warmup_epochs", allow_zero=True),
        default=0,
        help="KL warm-up: the KL weight rises linearly to --beta over N epochs (--beta/N first).",
    )
    train.add_argument(
        "--objective",
        default="elbo",
        choices=OBJECTIVE_NAMES,
        help="The bound trained on: elbo, or iwae (the importance-weighted bound of Burda et "
        "al.; needs --beta 1 and no KL warm-up).",
    )
    train.add_argument(
        "--num-samples",
        type=_positive_int("num_samples"),
        default=None,
        metavar="K",
        help="Draws of z per image in the objective (default: 1 for elbo, 5 for iwae).",
    )
    train.add_argument(
        "--learning-rate",
        type=_positive_float("learning_rate"),
        default=1e-3,
        help="Adam's learning rate.",
    )
    train.add_argument(
        "--clipnorm",
        type=_positive_float("clipnorm"),
        default=None,
        help="Clip each gradient to this norm (steadies a run that diverges).",
    )
    train.add_argument("--binarize", default="dynamic", help="dynamic, static or none.")
    train.add_argument(
        "--likelihood",
        default=None,
        help="bernoulli, pixelcnn (autoregressive, VAE only, not exportable) or gaussian "
        "(default: bernoulli for binarized data, gaussian with --binarize none).",
    )
    train.add_argument(
        "--seed",
        type=_seed(),
        default=0,
        help="Seeds the weights, the shuffling, the binarization and the samples.",
    )
    train.add_argument("--model", default="vae", help="vae or cvae.")
    train.add_argument(
        "--condition", default=None, help="CVAE condition: label, center-column or top-half."
    )
    train.add_argument(
        "--prior",
        default="standard",
        choices=PRIOR_NAMES,
        help="P(z): standard N(0, I), mog (a learned mixture of Gaussians), vamp (VampPrior; "
        "VAE only) or learned (a Gaussian network of the condition, P(z|X); CVAE only).",
    )
    train.add_argument(
        "--prior-components",
        type=_positive_int("prior_components"),
        default=None,
        metavar="K",
        help="Gaussians of --prior mog (default 10) or pseudo-inputs of --prior vamp "
        "(default 500).",
    )
    train.add_argument(
        "--posterior",
        default="diagonal",
        choices=POSTERIOR_NAMES,
        help="Q(z|x): diagonal Gaussian, full covariance, or iaf (an inverse autoregressive "
        "flow on a diagonal Gaussian).",
    )
    train.add_argument(
        "--gsnn-weight",
        type=_gsnn_weight(),
        default=0.0,
        help="CVAE: weight in [0, 1) of the reconstruction from prior draws in the loss.",
    )
    train.add_argument("--train-split", default="train", help="TFDS split to train on.")
    train.add_argument(
        "--test-split",
        default="test",
        help="TFDS split evaluated after every epoch and at the end.",
    )
    train.add_argument(
        "--output",
        required=True,
        help="Output folder. A stopped run resumes from its last finished epoch when "
        "started again with the same arguments.",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="Start over in a folder that holds a finished run, or a stopped one with other "
        "arguments (its files are replaced when the new run's are written).",
    )
    train.add_argument("--quiet", action="store_true", help="No progress bar.")
    train.add_argument(
        "--dtype-policy",
        default="float32",
        help="float32, mixed_bfloat16 (faster on CPUs with AVX512-BF16 and on TPUs) or "
        "mixed_float16 (GPUs). Mixed policies run the networks in 16 bits and keep the "
        "weights and the ELBO in float32.",
    )
    train.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "Compile the training step with XLA (default: on for MLPs, off for convolutions "
            "and for --prior vamp with --posterior full)."
        ),
    )

    evaluate = sub.add_parser("evaluate", help="ELBO, reconstruction and KL on a split.")
    evaluate.add_argument("model", help="A .keras file.")
    _add_data_args(evaluate)
    evaluate.add_argument("--split", default="test", help="TFDS split to evaluate.")
    evaluate.add_argument(
        "--batch-size", type=_positive_int("batch_size"), default=500, help="Images per batch."
    )
    evaluate.add_argument(
        "--seed", type=_seed(), default=0, help="Seeds the binarization and the importance samples."
    )
    evaluate.add_argument(
        "--importance-samples",
        type=_positive_int("importance_samples"),
        default=None,
        metavar="K",
        help="Also estimate log p(x) with K importance samples (adds nll).",
    )
    evaluate.add_argument("--json", action="store_true", help="End with one JSON line.")

    sample = sub.add_parser("sample", help="Generate images.")
    sample.add_argument("model", help="A .keras file.")
    sample.add_argument(
        "--num-samples",
        type=_positive_int("num_samples"),
        default=64,
        help="Images (per class for a label CVAE).",
    )
    sample.add_argument(
        "--seed",
        type=_seed(),
        default=0,
        help="The same seed gives the same images in every runtime.",
    )
    sample.add_argument(
        "--label",
        type=_positive_int("label", allow_zero=True),
        default=None,
        help="Class, for a label CVAE.",
    )
    sample.add_argument(
        "--temperature",
        type=_positive_float("temperature", allow_zero=True),
        default=1.0,
        help="Scale of the prior's spread: below 1, more typical images; 0, the mean (of the "
        "mixture component drawn, for --prior mog or vamp).",
    )
    sample.add_argument("--output", required=True, help="A .png grid or a .npy array.")

    complete = sub.add_parser("complete", help="Complete partly observed images (CVAE).")
    complete.add_argument("model", help="A .keras file of a completion CVAE.")
    _add_data_args(complete)
    complete.add_argument("--split", default=None, help="Images to complete (default: test[:8]).")
    complete.add_argument("--input", default=None, help="A .npy [N, H, W, C] in [0, 1] instead.")
    complete.add_argument(
        "--num-completions",
        type=_positive_int("num_completions"),
        default=6,
        help="Completions per image.",
    )
    complete.add_argument("--seed", type=_seed(), default=0, help="Seeds the completions.")
    complete.add_argument(
        "--temperature",
        type=_positive_float("temperature", allow_zero=True),
        default=1.0,
        help="Scale of the prior's spread: below 1, more typical completions; 0, the mean (of "
        "the mixture component drawn, for --prior mog).",
    )
    complete.add_argument(
        "--output",
        required=True,
        help="A .png grid (rows: observed, completions, original) or a .npy [N, K, H, W, C].",
    )
    plot = sub.add_parser("plot", help="Draw a picture of a model as a PNG.")
    # keras_vae.tasks.PLOT_KINDS, spelled out so --help needs no TensorFlow.
    plot.add_argument(
        "kind",
        choices=("reconstructions", "interpolate", "traverse", "manifold", "latents", "samples"),
        help="reconstructions (inputs beside them), interpolate (between pairs of images), "
        "traverse (one latent at a time, most active first), manifold (a 2-D latent space), "
        "latents (encoded images coloured by label) or samples (class rows for a label CVAE).",
    )
    plot.add_argument("model", help="A .keras file.")
    plot.add_argument("--output", required=True, help="A .png file.")
    _add_data_args(plot)
    plot.add_argument("--split", default=None, help="TFDS split of the images (default: test).")
    plot.add_argument("--input", default=None, help="A .npy [N, H, W, C] of images instead.")
    plot.add_argument(
        "--num",
        type=_positive_int("num"),
        default=None,
        help="Images (reconstructions 16, latents 2000), pairs (interpolate 4), latents "
        "(traverse 8), tiles per side (manifold 15), samples (64; 8 per class; 6 completions).",
    )
    plot.add_argument(
        "--steps",
        type=_positive_int("steps"),
        default=None,
        help="Tiles per row (interpolate 8, traverse 9).",
    )
    plot.add_argument(
        "--latent",
        type=_positive_int("latent", allow_zero=True),
        action="append",
        default=None,
        dest="latents",
        help="traverse: a latent to sweep (repeatable; default: the most active).",
    )
    plot.add_argument(
        "--extent",
        type=_positive_float("extent"),
        default=None,
        help="Prior standard deviations either side (traverse 3, manifold 2).",
    )
    plot.add_argument(
        "--label",
        type=_positive_int("label", allow_zero=True),
        action="append",
        default=None,
        dest="classes",
        help="samples of a label CVAE: a class row (repeatable; default: all).",
    )
    plot.add_argument("--seed", type=_seed(), default=0, help="Seeds every draw.")
    plot.add_argument(
        "--temperature",
        type=_positive_float("temperature", allow_zero=True),
        default=None,
        help="samples: the prior's spread (default: 1.0).",
    )
    plot.add_argument(
        "--zoom", type=_positive_int("zoom"), default=3, help="Pixels per image pixel."
    )
    export = sub.add_parser("export", help="Export to a SavedModel (TF Serving), TFLite, ONNX.")
    export.add_argument("model", help="A .keras file.")
    export.add_argument("--saved-model", default=None, metavar="BASE_DIR",
                        help="TF Serving model folder; writes BASE_DIR/<version>/.")  # fmt: skip
    export.add_argument("--tflite", default=None, metavar="FILE", help="A .tflite file.")
    export.add_argument("--onnx", default=None, metavar="DIR",
                        help="A folder for ONNX files of every signature (opset 18; needs "
                             "pip install 'keras-vae[onnx]'). It replaces an earlier "
                             "export's folder, never one holding other files.")  # fmt: skip
    export.add_argument("--quantize", default=None,
                        help="TFLite: float16, dynamic, int8 (float32 inputs and outputs) or "
                             "int8-full (int8 in and out, one decode signature with a fixed "
                             "batch, --batch-sizes B, default 1; z drawn by litert_sampler; "
                             "for Edge TPUs and NPUs).")  # fmt: skip
    export.add_argument("--tflite-micro", default=None, metavar="FILE",
                        help="A static-shape .tflite file for TensorFlow Lite Micro: the "
                             "seeded sampler (or, with --micro-function decode, the decoder), "
                             "its arena size in the metadata.")  # fmt: skip
    export.add_argument("--micro-num-samples", default=16,
                        type=_int_up_to("micro_num_samples", MICRO_MAX_SAMPLES, MICRO_MAX_SAMPLES),
                        metavar="N",
                        help="--tflite-micro: draws per sample call (or decode rows).")  # fmt: skip
    export.add_argument("--micro-function", default="sample", choices=("sample", "decode"),
                        help="--tflite-micro: the function the file holds.")  # fmt: skip
    export.add_argument("--micro-arena-limit", default=None,
                        type=_int_up_to("micro_arena_limit", MICRO_MAX_ARENA, "2**30"),
                        metavar="BYTES",
                        help="--tflite-micro: refuse a model needing a larger arena.")  # fmt: skip
    export.add_argument("--micro-quantize", default=None, choices=("int8-full",),
                        help="--tflite-micro: the full-integer decoder instead of float32 (with "
                             "--micro-function decode; z drawn on the host).")  # fmt: skip
    export.add_argument("--batch-sizes", default=None, metavar="B1,B2", type=_batch_sizes,
                        help="--tflite: fixed batches for static-shape signatures (decode_bB, "
                             "sample_bB), e.g. 1,64: ~2-3x faster convolutional decoders in "
                             "LiteRT, and runnable by its CompiledModel.")  # fmt: skip
    export.add_argument("--min-runtime", default=None, metavar="VERSION",
                        help="--tflite: the oldest TFLite runtime the file must run on, e.g. "
                             "2.14 (dynamic quantization then quantizes dense weights per "
                             "tensor); refused if the file would need a newer one.")  # fmt: skip
    export.add_argument("--version", type=_int_up_to("version", MAX_VERSION, "2**63 - 1"),
                        default=None,
                        help="SavedModel version (default: the next one).")  # fmt: skip
    export.add_argument("--allow-untrained", action="store_true",
                        help="Export a model whose optimizer never stepped.")  # fmt: skip
    export.add_argument("--calibration-split", default="train[:1000]",
                        help="For --quantize int8 of a completion CVAE: the TFDS split whose "
                             "observed parts calibrate the quantization.")  # fmt: skip
    export.add_argument("--dataset", default="mnist", help="TFDS dataset of --calibration-split.")
    export.add_argument(
        "--data-dir", default=None, help="TFDS data folder (default: $TFDS_DATA_DIR)."
    )
    return parser


def _train(args):
    from keras_vae.tasks import train_model

    with _stops_as_exit():
        _, metrics = train_model(
            dataset=args.dataset,
            architecture=args.architecture,
            latent_dim=args.latent_dim,
            epochs=args.epochs,
            batch_size=args.batch_size,
            beta=args.beta,
            kl_warmup_epochs=args.kl_warmup_epochs,
            objective=args.objective,
            num_samples=args.num_samples,
            seed=args.seed,
            output=args.output,
            learning_rate=args.learning_rate,
            binarize=args.binarize,
            model=args.model,
            condition=args.condition,
            prior=args.prior,
            prior_components=args.prior_components,
            posterior=args.posterior,
            gsnn_weight=args.gsnn_weight,
            likelihood=args.likelihood,
            train_split=args.train_split,
            test_split=args.test_split,
            data_dir=args.data_dir,
            verbose=0 if args.quiet else _progress_verbosity(),
            jit_compile="auto" if args.jit_compile is None else args.jit_compile,
            dtype_policy=args.dtype_policy,
            clipnorm=args.clipnorm,
            overwrite=args.overwrite,
        )
    test, config = metrics["test"], metrics.get("config", {})
    bound = ""
    if config.get("objective") == "iwae" and not config.get("gsnn_weight"):
        # The loss is the negated bound (a CVAE's GSNN term would be mixed in).
        bound = f", IWAE bound (K={config['num_samples']}) {-test['loss']:.2f} nats"
    print(
        f"test elbo {test['elbo']:.2f} nats (reconstruction {test['reconstruction']:.2f}, "
        f"kl {test['kl']:.2f}){bound}; files in {args.output}"
    )


def _progress_verbosity():
    """Keras's `verbose`: a live progress bar on a terminal, else one plain line per epoch.

    Written to a file or a pipe (a CI log, `nohup`), the bar would be a stream
    of partial lines and ANSI colour codes.
    """
    return 1 if sys.stdout.isatty() else 2


def _evaluate(args):
    from keras_vae.evaluation import format_metrics
    from keras_vae.tasks import evaluate_model, json_safe

    metrics = evaluate_model(
        args.model,
        dataset=args.dataset,
        split=args.split,
        batch_size=args.batch_size,
        seed=args.seed,
        data_dir=args.data_dir,
        importance_samples=args.importance_samples,
        verbose=0 if args.json else _progress_verbosity(),
    )
    print(format_metrics(metrics))
    if args.json:
        print(json.dumps(json_safe(metrics), allow_nan=False))


def _sample(args):
    from keras_vae.tasks import load_model, sample_images
    from keras_vae.utils import check_image_path, save_images

    check_image_path(args.output)
    model = load_model(args.model)
    images = sample_images(
        model, args.num_samples, args.seed, label=args.label, temperature=args.temperature
    )
    rows = None
    if args.label is None and getattr(model, "condition_type", None) == "label":
        rows = model.condition_shape[0]
    print(f"wrote {save_images(images, args.output, num_rows=rows)}")


def _complete(args):
    from keras_vae import data
    from keras_vae.tasks import complete_images, completion_grid, load_model
    from keras_vae.utils import check_image_path, save_images

    check_image_path(args.output)
    _check_split_or_input(args)
    # --input first: a bad path fails before the model loads.
    images = None if args.input is None else _load_npy(args.input)
    model = load_model(args.model)
    if images is not None:
        images = data.scale_images(images)
    else:
        split = args.split or "test[:8]"
        images = data.scale_images(data.load_images(args.dataset, split, args.data_dir)[0])
    completions = complete_images(
        model, images, args.num_completions, args.seed, temperature=args.temperature
    )
    if args.output.endswith(".npy"):
        save_images(completions, args.output)
    else:
        grid = completion_grid(images, completions, model.condition_type)
        save_images(grid, args.output, num_rows=len(images))
    print(f"wrote {args.output}")


def _check_split_or_input(args):
    """Raises if both `--split` and `--input` name the images (one would be ignored)."""
    if args.split is not None and args.input is not None:
        raise ValueError(
            "Expected --split or --input, not both: they name the same images. Received: "
            f"split={args.split!r}, input={args.input!r}"
        )


def _plot(args):
    from keras_vae.tasks import plot_model
    from keras_vae.visualize import check_png_path

    check_png_path(args.output)
    _check_split_or_input(args)
    images = None if args.input is None else _load_npy(args.input)
    path = plot_model(
        args.kind,
        args.model,  # loaded once the options are checked
        args.output,
        images=images,
        dataset=args.dataset,
        split=args.split or "test",
        data_dir=args.data_dir,
        num=args.num,
        steps=args.steps,
        latents=args.latents,
        extent=args.extent,
        classes=args.classes,
        seed=args.seed,
        temperature=args.temperature,
        zoom=args.zoom,
    )
    print(f"wrote {path}")


def _load_npy(path):
    """The array in the `.npy` file `path`; one-line errors for a missing or bad file."""
    import numpy as np

    try:
        return np.load(path)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ValueError(
            f"Expected --input to be a readable .npy file. Received: input={path!r} ({reason})"
        ) from None
    except ValueError:  # e.g. a pickle or a file of another format
        raise ValueError(
            f"Expected --input to be a .npy file of numbers. Received: input={path!r}, "
            "which np.load cannot read as one"
        ) from None


def _export(args):
    from keras_vae.export import export_model, format_report
    from keras_vae.export.export_model import check_export_arguments

    if args.micro_quantize is not None and args.tflite_micro is None:
        raise ValueError(
            "Expected --tflite-micro FILE with --micro-quantize (it applies to the TFLite Micro "
            f"file). Received: micro_quantize={args.micro_quantize!r} and no --tflite-micro"
        )
    if (
        args.tflite_micro is not None
        and args.tflite is not None
        and os.path.realpath(args.tflite_micro) == os.path.realpath(args.tflite)
    ):
        raise ValueError(
            "Expected --tflite-micro FILE to differ from --tflite FILE (the TFLite Micro file "
            f"would replace the verified one). Received: both {args.tflite!r}"
        )
    if args.tflite_micro is not None:
        from keras_vae.export.tflite_micro import check_micro_arguments

        # Before the model loads and any file is written.
        check_micro_arguments(
            args.tflite_micro, args.micro_num_samples, args.micro_function,
            arena_limit=args.micro_arena_limit, quantize=args.micro_quantize,
        )  # fmt: skip
    if args.saved_model is None and args.tflite is None and args.onnx is None:
        if args.tflite_micro is not None:
            model, conditions = _calibration(args, args.micro_quantize)
            return _write_tflite_micro(args, _tflite_micro_file(args, model, conditions))
        raise ValueError(
            "Expected --saved-model BASE_DIR, --tflite FILE or --onnx DIR (or several), or "
            "--tflite-micro FILE. Received: none"
        )
    if args.quantize is not None and args.tflite is None:
        raise ValueError(
            "Expected --tflite FILE with --quantize (it applies to the TFLite file). "
            f"Received: quantize={args.quantize!r} and no --tflite"
        )
    if args.batch_sizes is not None and args.tflite is None:
        raise ValueError(
            "Expected --tflite FILE with --batch-sizes (they shape the TFLite file's static "
            f"signatures). Received: batch_sizes={args.batch_sizes!r} and no --tflite"
        )
    if args.min_runtime is not None and args.tflite is None:
        raise ValueError(
            "Expected --tflite FILE with --min-runtime (it applies to the TFLite file). "
            f"Received: min_runtime={args.min_runtime!r} and no --tflite"
        )
    if args.version is not None and args.saved_model is None:
        raise ValueError(
            "Expected --saved-model BASE_DIR with --version (it numbers the SavedModel folder). "
            f"Received: version={args.version!r} and no --saved-model"
        )
    # Paths and options checked before the model loads and the TFLite Micro file converts.
    check_export_arguments(
        saved_model_base=args.saved_model,
        tflite_path=args.tflite,
        onnx_dir=args.onnx,
        quantize=args.quantize,
        version=args.version,
        batch_sizes=() if args.batch_sizes is None else args.batch_sizes,
        min_runtime=args.min_runtime,
    )
    int8_tflite = args.quantize in ("int8", "int8-full") and args.tflite is not None
    model, conditions = _calibration(args, int8_tflite or args.micro_quantize is not None)
    micro = None
    if args.tflite_micro is not None:
        # Converted first: a model it refuses (arena, ops) then leaves nothing written.
        if isinstance(model, str):
            from keras_vae.tasks import load_model

            model = load_model(model)
        micro = _tflite_micro_file(args, model, conditions if args.micro_quantize else None)
    with _stops_as_exit():
        report = export_model(
            model,
            saved_model_base=args.saved_model,
            tflite_path=args.tflite,
            onnx_dir=args.onnx,
            quantize=args.quantize,
            version=args.version,
            allow_untrained=args.allow_untrained,
            representative_conditions=conditions if int8_tflite else None,
            batch_sizes=() if args.batch_sizes is None else args.batch_sizes,
            min_runtime=args.min_runtime,
        )
    print(format_report(report))
    if not report["ok"]:
        raise ValueError(
            "Expected the exported files to reproduce the Keras model within tolerance. "
            "Received: differences above tolerance (see the report above)"
        )
    if micro is not None:
        _write_tflite_micro(args, micro)


def _calibration(args, needed):
    """(model, conditions) for an int8 export when `needed`, else (`args.model`, None)."""
    return _completion_calibration(args) if needed else (args.model, None)


def _tflite_micro_file(args, model, conditions=None):
    """`(path, content)` of the `--tflite-micro` file, checked and converted, not written."""
    from keras_vae.export.tflite_micro import tflite_micro_file

    if isinstance(model, str):
        from keras_vae.tasks import load_model

        model = load_model(model)
    with _stops_as_exit():
        return tflite_micro_file(
            model,
            args.tflite_micro,
            num_samples=args.micro_num_samples,
            function=args.micro_function,
            allow_untrained=args.allow_untrained,
            arena_limit=args.micro_arena_limit,
            quantize=args.micro_quantize,
            representative_conditions=conditions,
        )


def _write_tflite_micro(args, micro):
    from keras_vae.export.tflite_micro import read_micro_record
    from keras_vae.utils.staged_path import write_bytes_atomically

    path, content = micro
    with _stops_as_exit():
        write_bytes_atomically(path, content)
    record = read_micro_record(path)
    parity = record["parity_max_abs_diff"]
    print(
        f"TFLite Micro: {path} ({args.micro_function}"
        + ("" if args.micro_quantize is None else f", {args.micro_quantize}")
        + f", {args.micro_num_samples} rows, arena "
        f"{record['arena_bytes']} bytes {record['arena_source']}"
        + ("" if parity is None else f", max |diff| to Keras {parity:.2g}")
        + ")"
    )


# The signals `_stops_as_exit` turns into `SystemExit(128 + signal)`.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _stops_as_exit():
    """Turns SIGTERM and Ctrl+C into `SystemExit(128 + signal)` meanwhile.

    Python's default SIGTERM ends the process at once, leaving a hidden
    half-written SavedModel and TFLite file behind (`kill`, a container stop,
    a CI timeout); an exception runs the export's clean-up first. Ctrl+C
    (SIGINT) takes the same way, not Python's `KeyboardInterrupt`, so that
    both stops are kept from being lost in the same ways, below.

    Python runs the handler in whatever frame is executing, and an exception
    raised inside a finalizer (TensorFlow's `__del__` methods run during
    export) is printed and dropped. When `sys.unraisablehook` sees our
    `SystemExit` dropped that way, a SIGALRM a few milliseconds later raises
    it again, until it lands in ordinary code.

    A `SystemExit` raised while native code is running can also come back as
    another exception: TensorFlow's pybind11 bindings replace it with a
    `RuntimeError` ("MISMATCH of original and normalized active exception
    types") when the signal lands while they handle an exception of their own.
    After a stop, any exception leaving the block is re-raised as the
    `SystemExit`, so the process still exits 128 + the signal, not 1.

    Library code may also catch the `SystemExit` and go on (Keras's
    functional call has a bare `except:`). So the stop is recorded too
    (`staged_path.request_stop`): a staged file asked to publish after it
    raises it instead, so a stopped export never publishes, and `main`
    prints no warning after it.
    """
    from keras_vae.utils.staged_path import request_stop, withdraw_stop

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    stops = []  # the exit code of the first stop, once one came
    # The caller's SIGALRM handler and timer, once a dropped SystemExit took
    # them over: until then a caller's own alarm (a test timeout) is theirs.
    alarm = []

    def exit_now(signum, frame):
        if not stops:
            stops.append(128 + signum)
            request_stop(stops[0])  # in case the SystemExit is lost before the files are published
        raise SystemExit(stops[0])

    def raise_again_if_dropped(unraisable):
        exc = unraisable.exc_value
        if stops and isinstance(exc, SystemExit) and exc.code == stops[0]:
            if not alarm:
                timer = signal.getitimer(signal.ITIMER_REAL)
                alarm.append((signal.signal(signal.SIGALRM, exit_now), timer))
            signal.setitimer(signal.ITIMER_REAL, 0.005)
            return
        previous_hook(unraisable)

    previous = {signum: signal.signal(signum, exit_now) for signum in STOP_SIGNALS}
    previous_hook, sys.unraisablehook = sys.unraisablehook, raise_again_if_dropped
    try:
        yield
        if stops:  # the SystemExit was dropped and the block ended before the alarm
            raise SystemExit(stops[0])
    except BaseException as error:
        if stops and not (isinstance(error, SystemExit) and error.code == stops[0]):
            raise SystemExit(stops[0]) from error
        raise
    finally:
        withdraw_stop()
        sys.unraisablehook = previous_hook
        if alarm:
            ((previous_alarm, timer),) = alarm
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_alarm)
            if timer[0] > 0:
                signal.setitimer(signal.ITIMER_REAL, *timer)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _completion_calibration(args):
    """(model, conditions): the observed parts of `--calibration-split` for a completion CVAE."""
    from keras_vae import data
    from keras_vae.tasks import load_model

    model = load_model(args.model)
    kind = getattr(model, "condition_type", None)
    if kind not in ("center-column", "top-half"):
        return model, None
    images = data.load_images(args.dataset, args.calibration_split, data_dir=args.data_dir)[0]
    if model.likelihood.binary:  # observed pixels as in training: binarized
        images = data.binarize_static(images, seed=0)
    else:
        images = data.scale_images(images)
    image_shape = getattr(model, "image_shape", None)
    if image_shape is None or images.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"Expected --dataset images shaped like the model's (image_shape={image_shape}) "
            f"to calibrate it. Received: {args.dataset} images shaped {images.shape[1:]}"
        )
    return model, data.split_image(images, kind)[0]


COMMANDS = {
    "export": _export,
    "train": _train,
    "evaluate": _evaluate,
    "sample": _sample,
    "complete": _complete,
    "plot": _plot,
}


def main(argv=None, own_process=False) -> int:
    """Runs one `keras-vae` command; returns its exit code.

    Args:
        argv: list of str or `None`. The arguments after the program name;
            `None` reads `sys.argv`. Defaults to `None`.
        own_process: bool. Whether the command is the whole process (the
            `keras-vae` executable): then the objects that the imports made
            are frozen out of the garbage collector (see
            `_freeze_imported_objects`). Defaults to `False`, for callers
            whose own objects must stay collectable.
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        # argparse would say "the following arguments are required: command".
        commands = next(a for a in parser._actions if a.dest == "command").choices
        parser.error(
            f"Expected a command: {', '.join(commands)} (`keras-vae COMMAND --help` lists its "
            "options). Received: none"
        )
    args = parser.parse_args(argv)
    prefix = f"keras-vae {args.command}"
    try:
        lock = _lock_output(args)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"{prefix}: error: {_one_line(e)}", file=sys.stderr)
        return 1
    try:
        return _run(args, prefix, own_process, lock)
    finally:
        if lock is not None:
            lock.release()


def _lock_output(args):
    """Checks and locks `train`'s output folder before TensorFlow loads; the lock, or `None`.

    A folder that another run writes to is refused at once, not after the
    seconds of TensorFlow's start-up. `train_model` takes the same lock
    again inside (it is re-entrant).
    """
    if args.command != "train":
        return None
    from keras_vae.utils.output_folder import RunLock, check_output_folder

    check_output_folder(args.output)
    return RunLock(args.output).acquire()


def _run(args, prefix, own_process, lock=None):
    """`main` once the arguments are parsed (and a `train` holds its output folder, `lock`)."""
    with _start_up_stops(f"{prefix}: {_stopped(args, started=False)}\n", lock):
        if own_process:
            start_up_as_the_executable()
        else:
            import_tensorflow_quietly()

    def show_warning(message, category, filename, lineno, file=None, line=None):
        from keras_vae.utils.staged_path import stop_requested

        if stop_requested():
            # Once stopped, the stop's line is the only one: library code that
            # caught the stop's SystemExit warns of what it made of it (Keras's
            # functional call once turned it into "The structure of `inputs`
            # doesn't match the expected structure").
            return
        # One line, as errors are, instead of Python's file:line and source line.
        text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        print(f"{prefix}: warning: {text}", file=sys.stderr)

    # `train` and `export` turn stops into exits around their writes themselves.
    stops = contextlib.nullcontext() if args.command in ("train", "export") else _stops_as_exit()
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            with stops:
                COMMANDS[args.command](args)
        except KeyboardInterrupt:  # Ctrl+C
            print(f"{prefix}: {_stopped(args)}", file=sys.stderr)
            return 128 + signal.SIGINT
        except SystemExit as e:  # a stop, in `_stops_as_exit`
            if e.code not in [128 + signum for signum in STOP_SIGNALS]:
                raise
            print(f"{prefix}: {_stopped(args)}", file=sys.stderr)
            return e.code
        except (ValueError, OSError, RuntimeError) as e:
            print(f"{prefix}: error: {_one_line(e)}", file=sys.stderr)
            return 1
        except Exception as e:
            # TensorFlow's own errors (a full disk under a TensorBoard writer, a
            # folder it may not write) are not OSErrors.
            if not type(e).__module__.startswith("tensorflow"):
                raise
            print(f"{prefix}: error: {_one_line(e)}", file=sys.stderr)
            return 1
    return 0


@contextlib.contextmanager
def _start_up_stops(line, lock=None):
    """Ends the process at Ctrl+C or SIGTERM meanwhile: `line` on stderr, `lock` released.

    The seconds of TensorFlow's import come before a command sets its own
    handlers (`_stops_as_exit`). Python's default SIGTERM ended the process
    there without a word, leaving the output folder that `train`'s lock
    made. An exception raised in the import does not do: pybind11 turns it
    into an `ImportError` with a long traceback, or the import machinery
    swallows it and the command runs on. Nothing is written yet, so the
    handler writes its line to the real stderr (the import silences
    descriptor 2), releases the lock and exits at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stderr = os.dup(2)

    def stop(signum, frame):
        os.write(stderr, line.encode())
        if lock is not None:
            lock.release()  # and the folder it made goes
        os._exit(128 + signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(stderr)


def _stopped(args, started=True):
    """The line printed when a command is stopped by Ctrl+C or SIGTERM.

    Reads nothing that imports TensorFlow: a stop during its import would
    import it again.
    """
    if args.command == "train":
        from keras_vae.utils.output_folder import finished_epochs

        done = finished_epochs(args.output)
        if done:
            return f"stopped after epoch {done}; run the same command to resume"
        if not started:
            return "stopped before training began; run the same command to start again"
        return "stopped in the first epoch; run the same command to start again"
    if args.command == "export":
        return "stopped; nothing was published"
    return "stopped; nothing was written"


def console_main() -> int:
    """The `keras-vae` executable: `main` on `sys.argv`, owning the process."""
    return main(sys.argv[1:], own_process=True)


def start_up_as_the_executable():
    """Imports TensorFlow as the `keras-vae` executable does before its command.

    Without scikit-learn and matplotlib
    (`_import_tensorflow_without_unused_extras`), then with the imported
    objects frozen out of garbage collection (`_freeze_imported_objects`).
    For processes that own themselves as the executable does, such as the
    killed children of `benchmarks/reliability.py`.
    """
    _import_tensorflow_without_unused_extras()
    _freeze_imported_objects()


# Optional packages that Keras imports when installed, for features no command
# uses: scikit-learn for its wrappers (`keras.wrappers`), matplotlib for its
# plotting helpers (`keras.visualization`). `keras-vae plot` imports matplotlib
# itself, afterwards.
_KEPT_OUT_OF_THE_START_UP = ("sklearn", "matplotlib")


def _import_tensorflow_without_unused_extras():
    """`import_tensorflow_quietly` with `unused_extras_kept_out`."""
    with unused_extras_kept_out():
        import_tensorflow_quietly()


@contextlib.contextmanager
def unused_extras_kept_out():
    """Makes importing scikit-learn and matplotlib fail meanwhile, unless already imported.

    Importing Keras imports them when installed. On a 2-core AMD EPYC,
    scikit-learn took 0.6-0.8 s of the 5 s start-up; matplotlib, 0.2 s of
    `keras-vae sample`'s 5.8 s (median of 8 paired runs). A `None` in
    `sys.modules` makes an import fail as when the package is absent, which
    Keras allows for; the entries are removed afterwards, so the packages
    import normally later. For processes that start as the executable does
    (the test suite's workers).
    """
    kept_out = [name for name in _KEPT_OUT_OF_THE_START_UP if name not in sys.modules]
    for name in kept_out:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in kept_out:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def _freeze_imported_objects():
    """Leaves the objects made by importing TensorFlow, Keras and TFP out of garbage collection.

    They are about half a million and live as long as the process, yet every
    full collection walks them: TensorFlow's tracing triggers many, and the
    TFLite converter runs one per file. Frozen, they are skipped (Python's
    `gc.freeze`). Measured on a 2-core AMD EPYC, 3 alternating runs: `keras-vae
    export` of the MNIST MLP (SavedModel and TFLite) took 8.9-9.1 s instead of
    10.8-11.2 s, and `keras-vae sample` 4.8-4.9 s instead of 6.1-6.5 s.
    """
    import keras_vae.models  # noqa: F401  (Keras and TFP: every command imports them)

    gc.freeze()


if __name__ == "__main__":
    sys.exit(console_main())
