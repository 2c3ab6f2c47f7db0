"""Checks shared by the exporters, so bad input fails with one clear line."""

import numbers

from keras_vae.layers import PixelCNNBernoulli
from keras_vae.models import VAE, ConditionalVAE

QUANTIZE_MODES = (None, "float16", "dynamic", "int8")


def check_exportable(model, allow_untrained: bool = False) -> None:
    """Raises unless `model` is a built (and, by default, trained) keras-vae model.

    "Trained" means the optimizer has taken at least one step:
    `model.optimizer.iterations > 0`. A model loaded from a `.keras` file with
    its optimizer (the default of `keras.saving.load_model`) keeps that count.

    Args:
        model: the object to check.
        allow_untrained: bool. Accept a built model whose optimizer never
            stepped (or that was never compiled), e.g. weights set by hand.

    Raises:
        ValueError: naming what was expected and what was received.
    """
    if not isinstance(model, (VAE, ConditionalVAE)):
        raise ValueError(
            f"Expected a keras_vae VAE or ConditionalVAE. Received: model={type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            "Expected a built model: fit it or call it on data first. "
            f"Received: an unbuilt {type(model).__name__}"
        )
    if isinstance(model.likelihood, PixelCNNBernoulli):
        raise ValueError(
            "Expected a likelihood with a closed-form mean (IndependentBernoulli or "
            "GaussianLikelihood): the exported signatures return it, and an "
            "autoregressive likelihood draws pixel by pixel. Received: "
            "likelihood=PixelCNNBernoulli"
        )
    if allow_untrained:
        return
    optimizer = getattr(model, "optimizer", None)
    steps = 0 if optimizer is None else int(optimizer.iterations.numpy())
    if steps == 0:
        state = "no optimizer" if optimizer is None else "an optimizer that never stepped"
        raise ValueError(
            "Expected a trained model (optimizer.iterations > 0); pass "
            f"allow_untrained=True to export it anyway. Received: a {type(model).__name__} "
            f"with {state}"
        )


def check_quantize(quantize) -> None:
    """Raises unless `quantize` is one of `QUANTIZE_MODES`."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"Expected quantize to be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}"
        )


def check_version(version):
    """Returns `version` as an int; raises unless it is `None` or a positive integer."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, numbers.Integral) or version < 1:
        raise ValueError(
            f"Expected version to be a positive integer or None. Received: version={version!r}"
        )
    return int(version)
