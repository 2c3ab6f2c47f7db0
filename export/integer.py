"""Full-integer TFLite decoders (`quantize="int8-full"`) for Edge TPUs and NPUs.

An `int8-full` file holds one signature, `decode`, with int8 inputs (`z`,
`z_residual` where the decoder starts with a `Dense` layer, and for a
ConditionalVAE `condition`), an int8 output (`image`), a batch
fixed at export and only int8 builtin ops: no float tensor, no QUANTIZE or
DEQUANTIZE. The seeded draw of z cannot be int8 (an int8 uniform has 256
levels), so it happens on the host: the TF-free `litert_sampler.Sampler`
draws z with its numpy copy of the portable RNG, quantizes it with the `z`
(and `z_residual`) input's scale and zero point, runs the decoder and
dequantizes the image.
The file's `keras_vae` metadata records each input's and output's
quantization (`dtype`, `scale`, `zero_point`) and `"sampling": "host"`.

A Bernoulli decoder's logits are clipped to ±8 before its sigmoid
(`INT8_LOGIT_CLIP`), which changes no probability by more than 3.4e-4 and
gives the logits a 4x finer int8 step.

Three more measures keep the images near float32 Keras (the MNIST MLP of
`benchmarks/int8_clipping.py`, 86,016 draws: max |Δ| 0.037, 0.077 without
them):

- z in two int8 inputs. An int8 z has a step of 2 * 5.77 / 255 = 0.045,
  which alone moved MNIST images by up to 0.054. When the decoder starts
  with a `Dense` layer (relu or linear), the file takes `z` (z rounded to
  its int8 step) and `z_residual` (z minus the dequantized `z`, with a step
  255 times finer), and that first layer is computed as two
  FULLY_CONNECTED ops and an ADD (`_SplitFirstDense`). The host quantizes
  both (`litert_sampler.integer_inputs`).
- Calibration with wider draws. The hidden activations' int8 ranges are
  the calibration rows' extremes, so the rows hold `CALIBRATION_ROWS`
  typical draws, the same draws at temperature `WIDE_TEMPERATURE` and the
  `extreme_latents` (`calibration_latents`). Typical draws and extremes
  alone (512 and 100 rows) gave the first layer a range of 4.13, short of
  the 4.78 that 86,016 draws reach, and one image was off by 0.065.
- Weights rounded for the layer's inputs. The converter rounds each int8
  weight to nearest; the weights of every `Dense` layer after the first
  are instead rounded one input at a time, each rounding error compensated
  on the inputs not yet rounded, for the layer's float inputs over typical
  draws (GPTQ, `rounded_weights`), with the converter's scales. A
  subclassed decoder, whose layers' inputs cannot be read, keeps the
  converter's rounding.

Only priors whose draw is the portable normal itself (`Prior.noise_is_draw`:
`StandardNormal`) are exported this way: a mixture, a VampPrior or a learned
conditional prior needs its network or its weights in float to turn the noise
into z.
"""

import inspect
import math
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae.export.litert_sampler import dequantized, quantized
from keras_vae.export.serving_module import saving_traces
from keras_vae.export.validation import converted
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

# The wide calibration draws: `CALIBRATION_ROWS` draws of the prior at this
# temperature, each coordinate clipped to `NORMAL_BOUND`, so the hidden layers'
# int8 ranges reach activations rarer than the typical draws give. On the
# MNIST MLP the first layer's range went from 4.13 (512 draws and the
# extremes) to 5.75, above the 4.78 that 86,016 draws reach.
WIDE_TEMPERATURE = 1.3
# Typical draws (temperature 1) for the calibration and for the weights'
# rounding, and as many wide ones.
CALIBRATION_ROWS = 2048
# The seed of the calibration draws, apart from the seeds users sample with first.
CALIBRATION_SEED = 2**31 - 7
# The int8 step of z: its calibrated range is [-NORMAL_BOUND, NORMAL_BOUND].
Z_STEP = 2.0 * NORMAL_BOUND / 255.0
# Damping of GPTQ's Hessian, as a share of its mean diagonal (the paper's 1%).
GPTQ_DAMPING = 0.01

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
            "float to draw z; export it with quantize='int8' for LiteRT, or in float32 for "
            "TFLite Micro). Received: "
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


def calibration_latents(model, conditions=None):
    """The rows an int8-full decoder is calibrated with: typical, wide and extreme draws.

    Args:
        model: a `VAE` or `ConditionalVAE` with a `StandardNormal` prior.
        conditions: float32 array `[M, *condition_shape]` or `None` (a VAE),
            taken in turn.

    Returns:
        Three pairs `(z, condition)`, as `extreme_latents` returns them:
        `CALIBRATION_ROWS` draws of the prior, the same draws at
        `WIDE_TEMPERATURE` (each coordinate clipped to `NORMAL_BOUND`), and
        the `extreme_latents`.
    """
    latent_dim = int(model.latent_dim)
    noise = portable_random.normal([CALIBRATION_ROWS, latent_dim], CALIBRATION_SEED).numpy()
    condition = None
    if conditions is not None:
        condition = np.take(conditions, np.arange(CALIBRATION_ROWS), axis=0, mode="wrap")
    wide = np.clip(WIDE_TEMPERATURE * noise, -NORMAL_BOUND, NORMAL_BOUND)
    return [(noise, condition), (wide, condition), extreme_latents(model, conditions)]


class _SplitFirstDense:
    """A decoder network whose first `Dense` layer takes z as `z` plus `z_residual`.

    `relu(x K + b)` with `x = [z, condition]` is computed as
    `relu(relu(x_c K + b + c) + (r K_z - c))`, where `x_c` holds the z the
    int8 input can hold, `r` the rest, `K_z` the kernel's z rows and `c`
    bounds `|r K_z|`. The two equal: where `x_c K + b + c < 0`, `x K + b`
    is negative too. The shift gives the coarse part an int8 range from 0
    (its pre-activation reaches -40 on MNIST, which would make its step 8
    times the hidden layer's). A linear first layer is `x_c K + b + r K_z`.
    """

    def __init__(self, dense, rest, latent_dim):
        self.dense = dense
        self.rest = rest
        self.latent_dim = int(latent_dim)
        self.relu = dense.activation is keras.activations.relu
        kernel = np.asarray(dense.kernel)[: self.latent_dim]
        # |r| is at most half of z's int8 step: the shift is twice the bound of |r K_z|.
        self.shift = float(Z_STEP * np.abs(kernel).sum(axis=0).max())

    def __call__(self, inputs, z_residual):
        kernel = tf.convert_to_tensor(self.dense.kernel)
        bias = tf.convert_to_tensor(self.dense.bias) if self.dense.use_bias else 0.0
        fine = tf.matmul(z_residual, kernel[: self.latent_dim])
        if self.relu:
            # The shifts are added as bias vectors, which the converter folds into
            # the FULLY_CONNECTED ops (a subtraction would stay a SUB op).
            shift = tf.fill([self.dense.units], self.shift)
            coarse = tf.nn.relu(tf.matmul(inputs, kernel) + (bias + shift))
            hidden = tf.nn.relu(coarse + (fine + -shift))
        else:
            hidden = tf.matmul(inputs, kernel) + bias + fine
        return self.rest(hidden)


def _split_first_dense(model, probe):
    """A `_SplitFirstDense` of `model`'s decoder, or `None` if it does not start with a
    relu or linear `Dense` that reads the decoder's input alone.

    `probe`: decoder inputs on which the split must give the decoder's output.
    """
    decoder = model.decoder
    layers = [layer for layer in decoder.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(getattr(decoder, "inputs", None) or []) != 1 or len(layers) < 2:
        return None
    dense = layers[0]
    linear_or_relu = (keras.activations.relu, keras.activations.linear)
    if not isinstance(dense, keras.layers.Dense) or dense.activation not in linear_or_relu:
        return None
    try:
        rest = keras.Model(dense.output, decoder.output)
    except (ValueError, AttributeError):
        return None
    split = _SplitFirstDense(dense, rest, model.latent_dim)
    expected = np.asarray(decoder(probe))
    zero = np.zeros([len(probe), split.latent_dim], np.float32)
    found = np.asarray(split(tf.constant(probe), tf.constant(zero)))
    if not np.allclose(found, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()):
        return None
    return split


def split_latent(z):
    """`(z, z_residual)` as calibration rows: z, and z minus z on an int8 grid of step
    `Z_STEP` (the host computes the residual with the file's own scale)."""
    grid = {"dtype": "int8", "scale": Z_STEP, "zero_point": 0}
    z = np.asarray(z, np.float32)
    return z, z - dequantized(quantized(z, grid), grid)


class _DecodeModule(tf.Module):
    """`decode(z[, z_residual][, condition]) -> {"image"}` with a static batch, for the
    converter.

    As `ServingModule`, the module tracks the plain variables the function
    reads, so the converter can freeze them. With `split` (a
    `_SplitFirstDense`), z comes in two parts.
    """

    def __init__(self, model, batch_size, split=None):
        super().__init__(name="keras_vae_int8_full")
        self.conditional = bool(model.conditional)
        self.latent_dim = int(model.latent_dim)
        self.condition_shape = tuple(model.condition_shape) if self.conditional else None
        self.data_shape = tuple(model.event_shape)
        self.batch_size = int(batch_size)
        self.function_names = ("decode",)
        self.batch_sizes = (self.batch_size,)
        self.split = split
        latent = [batch_size, self.latent_dim]
        specs = [tf.TensorSpec(latent, tf.float32, name="z")]
        if split is not None:
            specs.append(tf.TensorSpec(latent, tf.float32, name="z_residual"))
        if self.conditional:
            specs.append(
                tf.TensorSpec([batch_size, *self.condition_shape], tf.float32, name="condition")
            )
        data_shape = [batch_size, *self.data_shape]

        def decode(z, *more):
            if split is None:
                likelihood = model.decode(z, more[0] if more else None)
            else:
                condition = more[1] if len(more) > 1 else None
                params = split(model.decoder_inputs(z, condition), more[0])
                likelihood = model.likelihood(params)
            return {"image": tf.reshape(_integer_mean(model, likelihood), data_shape)}

        # Traced without AutoGraph, as the serving module's functions are.
        self.decode = tf.function(decode, input_signature=specs, autograph=False)
        with saving_traces():  # the trace the save reuses (see `saving_traces`)
            self.model_variables = list(self.decode.get_concrete_function().variables)


def _integer_mean(model, likelihood):
    """The likelihood's mean, with a binary one's logits clipped to `INT8_LOGIT_CLIP`."""
    if not model.likelihood.binary:
        return model.likelihood.portable_mean(likelihood)
    # An exportable binary likelihood is an IndependentBernoulli: Independent(Bernoulli).
    logits = likelihood.distribution.logits
    return tf.sigmoid(tf.clip_by_value(logits, -INT8_LOGIT_CLIP, INT8_LOGIT_CLIP))


def convert_int8_full(model, batch_size, conditions=None):
    """The int8-full flatbuffer (without keras_vae metadata) and its module.

    Calibrated on `calibration_latents`; the weights of the decoder's `Dense`
    layers after the first are then rounded by `rounded_weights`.

    Args:
        model: a float32 `VAE` or `ConditionalVAE` with a `StandardNormal`
            prior.
        batch_size: int. The fixed batch.
        conditions: float32 array `[M, *condition_shape]` (a ConditionalVAE's
            calibration conditions) or `None`.

    Returns:
        `(content, module)`: the bytes, and the `_DecodeModule` converted.
    """
    latents = calibration_latents(model, conditions)
    z = np.concatenate([pair[0] for pair in latents]).astype(np.float32)
    condition = None
    if model.conditional:
        condition = np.concatenate([pair[1] for pair in latents]).astype(np.float32)
    typical = latents[0]
    typical_inputs = np.asarray(
        model.decoder_inputs(
            tf.constant(typical[0]), None if typical[1] is None else tf.constant(typical[1])
        )
    )
    split = _split_first_dense(model, typical_inputs[:64])
    module = _DecodeModule(model, batch_size, split)
    columns = {"z": z}
    if split is not None:
        columns["z"], columns["z_residual"] = split_latent(z)
    if condition is not None:
        columns["condition"] = condition
    batches = []
    for start in range(0, len(z), batch_size):
        rows = np.arange(start, start + batch_size) % len(z)
        batches.append(("decode", {name: value[rows] for name, value in columns.items()}))
    folder = tempfile.mkdtemp(prefix="keras_vae_int8_full_")
    try:
        saved_model = os.path.join(folder, "saved_model")
        with saving_traces():
            signatures = {"decode": module.decode.get_concrete_function()}
        tf.saved_model.save(module, saved_model, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=["decode"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter.representative_dataset = lambda: iter(batches)
        with warnings.catch_warnings():
            # The calibrator runs TF's own (deprecated) interpreter internally.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            content = converted(converter)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    non_integer = sorted(tensor_types(content) - set(INTEGER_TYPES))
    if non_integer:
        raise ValueError(
            f"Expected only {INTEGER_TYPES} tensors in the int8-full model (the converter "
            "left an op of the decoder or of its likelihood's mean in float; quantize='int8' "
            f"keeps such ops in float). Received: tensor types {non_integer}"
        )
    skip = None if split is None else split.dense
    return rounded_weights(content, model, typical_inputs, skip=skip), module


def _dense_inputs(decoder, layers, decoder_inputs):
    """What each of `layers` (`Dense` layers of `decoder`) reads for `decoder_inputs`.

    From the functional graph of a functional decoder, or layer by layer for
    a `keras.Sequential` one (whose graph Keras does not keep when it was
    built by a call). `None` for a subclassed decoder, whose layers' inputs
    cannot be read.

    Returns:
        A list of float64 arrays, one per layer, or `None`.
    """
    if isinstance(decoder, keras.Sequential):
        wanted, inputs, x = {id(layer) for layer in layers}, {}, decoder_inputs
        for layer in decoder.layers:
            if id(layer) in wanted:
                inputs[id(layer)] = x
            x = layer(x, training=False) if _takes_training(layer) else layer(x)
        return [np.asarray(inputs[id(layer)], np.float64) for layer in layers]
    try:
        probe = keras.Model(decoder.input, [layer.input for layer in layers])
    except (AttributeError, ValueError):  # not a graph of layers
        return None
    outputs = probe(decoder_inputs)
    return [np.asarray(x, np.float64) for x in (outputs if len(layers) > 1 else [outputs])]


def _takes_training(layer):
    return "training" in inspect.signature(layer.call).parameters


def rounded_weights(content, model, decoder_inputs, skip=None) -> bytes:
    """`content` with the int8 weights of the decoder's `Dense` layers rounded by GPTQ.

    Each FULLY_CONNECTED op whose int8 weights are the round-to-nearest of
    a `Dense` kernel of the decoder (other than `skip`) gets
    `gptq_rounding` of that kernel, with the file's per-channel scales and
    the layer's float inputs for `decoder_inputs`. Scales, zero points and
    biases stay as they are.

    Args:
        content: bytes of an int8-full `.tflite` file.
        model: the `VAE` or `ConditionalVAE` it was converted from.
        decoder_inputs: float32 array `[N, ...]`: what the decoder network
            reads for N typical draws.
        skip: a `Dense` layer to leave as converted, or `None`.

    Returns:
        The new bytes.
    """
    decoder = model.decoder
    layers = [
        layer
        for layer in decoder.layers
        if isinstance(layer, keras.layers.Dense) and layer is not skip
    ]
    inputs = _dense_inputs(decoder, layers, decoder_inputs) if layers else None
    if inputs is None:
        return content  # rounded to nearest, as converted
    kernels = [np.asarray(layer.kernel, np.float64) for layer in layers]
    flat = flatbuffer_utils.convert_bytearray_to_object(content)
    done = set()
    for subgraph in flat.subgraphs:
        for op in subgraph.operators:
            code = flat.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != (
                schema_fb.BuiltinOperator.FULLY_CONNECTED
            ):
                continue
            tensor = subgraph.tensors[op.inputs[1]]
            buffer = flat.buffers[tensor.buffer]
            if tensor.type != schema_fb.TensorType.INT8 or buffer.data is None:
                continue
            weights = np.frombuffer(bytes(buffer.data), np.int8).reshape(tensor.shape)
            scale = np.asarray(tensor.quantization.scale, np.float64)[:, None]
            for k, kernel in enumerate(kernels):
                if k in done or kernel.T.shape != weights.shape:
                    continue
                # The converter's round-to-nearest, up to float32 rounding at halves.
                if np.abs(weights - kernel.T / scale).max() <= 0.5 + 1e-3:
                    rounded = gptq_rounding(kernel, scale[:, 0], inputs[k])
                    buffer.data = np.ascontiguousarray(rounded.T).view(np.uint8).ravel()
                    done.add(k)
                    break
    return bytes(flatbuffer_utils.convert_object_to_bytearray(flat))


def gptq_rounding(kernel, scale, inputs):
    """Symmetric int8 weights for a dense `kernel`, rounded input by input (GPTQ).

    Rounding weight `i` of an output to the int8 grid of `scale` errs by
    `e`; the weights of the inputs after `i` are then moved to cancel
    `e * x_i` as far as the inputs' correlations allow (least squares over
    `inputs`), before they are rounded in turn. For inputs `x` like
    `inputs`, `x @ (q * scale)` is closer to `x @ kernel` than with
    round-to-nearest.

    Args:
        kernel: float array `[in, out]`.
        scale: float array `[out]`: each output's int8 step.
        inputs: float array `[N, in]`: the layer's inputs.

    Returns:
        int8 array `[in, out]` in [-127, 127].

    Reference:
        Frantar et al., "GPTQ: Accurate Post-Training Quantization for
        Generative Pre-trained Transformers", ICLR 2023.
    """
    weights = np.array(kernel, np.float64)
    hessian = inputs.T @ inputs / len(inputs)
    dead = np.diag(hessian) == 0
    hessian[dead, dead] = 1.0
    hessian += GPTQ_DAMPING * np.mean(np.diag(hessian)) * np.eye(len(hessian))
    # The upper Cholesky factor of the inverse Hessian gives each step's update.
    factor = np.linalg.cholesky(np.linalg.inv(hessian)).T
    rounded = np.zeros(weights.shape, np.int8)
    for i in range(len(weights)):
        q = np.clip(np.round(weights[i] / scale), -127, 127)
        rounded[i] = q
        error = (weights[i] - q * scale) / factor[i, i]
        weights[i + 1 :] -= np.outer(factor[i, i + 1 :], error)
    return rounded


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
