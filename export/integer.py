"""Full-integer TFLite decoders (`quantize="int8-full"`) for Edge TPUs and NPUs.

An `int8-full` file holds one signature, `decode`, with int8 inputs (`z`
and, for a ConditionalVAE, `condition`), an int8 output (`image`), a batch
fixed at export and only int8 builtin ops: no float tensor, no QUANTIZE or
DEQUANTIZE. The seeded draw of z cannot be int8 (an int8 uniform has 256
levels), so it happens on the host: the TF-free `litert_sampler.Sampler`
draws z with its numpy copy of the portable RNG, quantizes it with the `z`
input's scale and zero point, runs the decoder and dequantizes the image.
The file's `keras_vae` metadata records each input's and output's
quantization (`dtype`, `scale`, `zero_point`) and `"sampling": "host"`.

A Bernoulli decoder's logits are clipped to ±8 before its sigmoid
(`INT8_LOGIT_CLIP`), which changes no probability by more than 3.4e-4 and
gives the logits a 4x finer int8 step.

Only priors whose draw is the portable normal itself (`Prior.noise_is_draw`:
`StandardNormal`) are exported this way: a mixture, a VampPrior or a learned
conditional prior needs its network or its weights in float to turn the noise
into z.
"""

import math
import os
import shutil
import tempfile
import warnings

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae.ops import random as portable_random

INT8_FULL = "int8-full"
DEFAULT_BATCH_SIZE = 1
# The largest |z| the portable normal draws: u1 is at least 2**-24, so
# sqrt(-2 log u1) <= sqrt(48 ln 2) ~ 5.77 (see `keras_vae.ops.random`).
NORMAL_BOUND = math.sqrt(48.0 * math.log(2.0))
# A mixture prior's extreme latents are repeated with the component-choosing
# uniform at the midpoints of this many equal strata of (0, 1), so every
# component whose weight is at least 1/16 gets its own extremes.
MIXTURE_STRATA = 16
# The logits of a Bernoulli likelihood are clipped here before the sigmoid in
# an int8-full file: sigmoid(-8) = 3.4e-4, below the image's int8 step of
# 1/256, and the logits' int8 step shrinks from about (49 + 11) / 255 (the
# MNIST model's calibrated range) to 16 / 255. Over 12,288 MNIST draws the
# images off by more than 0.05 from float32 went from 2,814 to 87.
INT8_LOGIT_CLIP = 8.0
# The tensor types an int8-full file may hold: int8 activations and weights,
# int32 biases and shape constants.
INTEGER_TYPES = ("INT8", "INT32")

_TYPE_NAMES = {code: name for name, code in vars(schema_fb.TensorType).items() if name.isupper()}


def check_int8_full(model, batch_sizes) -> int:
    """The fixed batch of `model`'s int8-full file; raises unless it can have one.

    Args:
        model: a `VAE` or `ConditionalVAE`, checked with `check_exportable`.
        batch_sizes: tuple of ints, as `check_batch_sizes` returns them:
            empty for the default batch (`DEFAULT_BATCH_SIZE`, 1), or one size.

    Returns:
        int. The batch of the `decode` signature.

    Raises:
        ValueError: for a prior the host cannot draw from, or more than one
            batch size.
    """
    if not model.prior_layer.noise_is_draw:
        raise ValueError(
            "Expected a model with the StandardNormal prior for quantize='int8-full' (the host "
            "draws z with the portable normal; this prior needs its network or weights in "
            f"float to draw z; export it with quantize='int8'). Received: "
            f"prior={type(model.prior_layer).__name__}"
        )
    if len(batch_sizes) > 1:
        raise ValueError(
            "Expected at most one batch size for quantize='int8-full' (its one decode "
            f"signature has a fixed batch). Received: batch_sizes={tuple(batch_sizes)}"
        )
    return int(batch_sizes[0]) if batch_sizes else DEFAULT_BATCH_SIZE


def extreme_latents(model, conditions=None, seed=0):
    """Latents at the edge of what the portable sampler draws, to calibrate int8 with.

    Row `2 i` of a typical draw has its noise coordinate `i` set to
    `+NORMAL_BOUND`, row `2 i + 1` to `-NORMAL_BOUND`, the other coordinates
    as drawn; the prior's `sample_from_noise` (temperature 1) turns the noise
    into z. Two extreme coordinates in one row are left out: a coordinate
    beyond 5 comes once in about 2 million draws. For a mixture prior (one
    that `uses_uniform`) the rows are repeated for `MIXTURE_STRATA` uniforms
    spread evenly over (0, 1), so each component with a weight of at least
    1/16 has its extremes; a smaller one (e.g. one of a VampPrior's 500
    pseudo-inputs) may be missed, and its draws beyond the calibrated range
    are clipped.

    Args:
        model: a `VAE` or `ConditionalVAE`.
        conditions: float32 array `[M, *condition_shape]` or `None` (a VAE).
        seed: int. Seed of the typical draw.

    Returns:
        A pair `(z, condition)`: float32 `[R, latent_dim]` and, for a
        ConditionalVAE, `[R, *condition_shape]` (conditions taken in turn), else
        `None`.
    """
    latent_dim = int(model.latent_dim)
    prior = model.prior_layer
    strata = MIXTURE_STRATA if prior.uses_uniform else 1
    rows = 2 * latent_dim * strata
    condition = None
    if conditions is not None:
        condition = np.take(conditions, np.arange(rows), axis=0, mode="wrap")
    leading = [rows, 1] if prior.conditional else [rows]
    noise = portable_random.normal([2 * latent_dim, latent_dim], seed).numpy()
    flat = np.tile(_with_bounds(noise), (strata, 1))
    uniform = None
    if prior.uses_uniform:
        midpoints = (np.arange(strata, dtype=np.float32) + 0.5) / strata
        uniform = tf.constant(np.repeat(midpoints, 2 * latent_dim).reshape(leading))
    z = prior.sample_from_noise(
        tf.constant(flat.reshape(*leading, latent_dim)),
        uniform,
        1.0,
        None if condition is None else tf.constant(condition),
    )
    return np.reshape(np.asarray(z), (rows, latent_dim)).astype(np.float32), condition


def _with_bounds(noise):
    """`noise` `[2 L, L]` with `noise[2 i, i] = +bound` and `noise[2 i + 1, i] = -bound`."""
    noise = np.array(noise, np.float32)
    index = np.arange(noise.shape[1])
    noise[2 * index, index] = NORMAL_BOUND
    noise[2 * index + 1, index] = -NORMAL_BOUND
    return noise


class _DecodeModule(tf.Module):
    """`decode(z[, condition]) -> {"image"}` with a static batch, for the converter.

    As `ServingModule`, the module tracks the plain variables the function
    reads, so the converter can freeze them.
    """

    def __init__(self, model, batch_size):
        super().__init__(name="keras_vae_int8_full")
        self.conditional = bool(model.conditional)
        self.latent_dim = int(model.latent_dim)
        self.condition_shape = tuple(model.condition_shape) if self.conditional else None
        self.data_shape = tuple(model.event_shape)
        self.batch_size = int(batch_size)
        self.function_names = ("decode",)
        self.batch_sizes = (self.batch_size,)
        specs = [tf.TensorSpec([batch_size, self.latent_dim], tf.float32, name="z")]
        if self.conditional:
            specs.append(
                tf.TensorSpec([batch_size, *self.condition_shape], tf.float32, name="condition")
            )
        data_shape = [batch_size, *self.data_shape]

        def decode(z, *condition):
            likelihood = model.decode(z, condition[0] if condition else None)
            return {"image": tf.reshape(_integer_mean(model, likelihood), data_shape)}

        self.decode = tf.function(decode, input_signature=specs)
        self.model_variables = list(self.decode.get_concrete_function().variables)


def _integer_mean(model, likelihood):
    """The likelihood's mean, with a binary one's logits clipped to `INT8_LOGIT_CLIP`."""
    if not model.likelihood.binary:
        return model.likelihood.portable_mean(likelihood)
    # An exportable binary likelihood is an IndependentBernoulli: Independent(Bernoulli).
    logits = likelihood.distribution.logits
    return tf.sigmoid(tf.clip_by_value(logits, -INT8_LOGIT_CLIP, INT8_LOGIT_CLIP))


def convert_int8_full(model, batch_size, calibration_latents):
    """The int8-full flatbuffer (without keras_vae metadata) and its module.

    Args:
        model: a float32 `VAE` or `ConditionalVAE` with a `StandardNormal`
            prior.
        batch_size: int. The fixed batch.
        calibration_latents: pairs `(z, condition)` of float32 arrays (the
            condition `None` for a VAE): rows to calibrate with.

    Returns:
        `(content, module)`: the bytes, and the `_DecodeModule` converted.
    """
    module = _DecodeModule(model, batch_size)
    z = np.concatenate([pair[0] for pair in calibration_latents])
    condition = None
    if module.conditional:
        condition = np.concatenate([pair[1] for pair in calibration_latents])
    batches = []
    for start in range(0, len(z), batch_size):
        rows = np.arange(start, start + batch_size) % len(z)
        inputs = {"z": z[rows]}
        if condition is not None:
            inputs["condition"] = condition[rows]
        batches.append(("decode", inputs))
    folder = tempfile.mkdtemp(prefix="keras_vae_int8_full_")
    try:
        saved_model = os.path.join(folder, "saved_model")
        tf.saved_model.save(
            module, saved_model, signatures={"decode": module.decode.get_concrete_function()}
        )
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=["decode"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter.representative_dataset = lambda: iter(batches)
        with warnings.catch_warnings():
            # The calibrator runs TF's own (deprecated) interpreter internally.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            content = converter.convert()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    non_integer = sorted(tensor_types(content) - set(INTEGER_TYPES))
    if non_integer:
        raise RuntimeError(
            f"Expected only {INTEGER_TYPES} tensors in the int8-full model. Received: "
            f"tensor types {non_integer}"
        )
    return content, module


def tensor_types(content) -> set[str]:
    """Names of the types of every tensor of a TFLite model (`"INT8"`, `"FLOAT32"`, ...)."""
    model = flatbuffer_utils.convert_bytearray_to_object(content)
    return {_TYPE_NAMES[t.type] for g in model.subgraphs for t in g.tensors}


def io_quantization(content) -> dict:
    """The quantization of each input and output of the `decode` signature.

    Returns:
        `{name: {"dtype": "int8", "scale": float, "zero_point": int}}` for
        `z`, `image` and, for a ConditionalVAE, `condition`: a real value `r`
        is stored as `round(r / scale) + zero_point`, clipped to int8.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(content)
    (signature,) = model.signatureDefs
    subgraph = model.subgraphs[signature.subgraphIndex]
    record = {}
    for entry in [*signature.inputs, *signature.outputs]:
        tensor = subgraph.tensors[entry.tensorIndex]
        quantization = tensor.quantization
        record[entry.name.decode()] = {
            "dtype": _TYPE_NAMES[tensor.type].lower(),
            "scale": float(quantization.scale[0]),
            "zero_point": int(quantization.zeroPoint[0]),
        }
    return record
