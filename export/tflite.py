"""TFLite export with `decode` and `sample` signatures, builtin ops only."""

import hashlib
import json
import os
import shutil
import tempfile
import warnings

import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as litert_schema
from tensorflow.lite.python import convert as lite_convert
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

import keras_vae
from keras_vae import data
from keras_vae.export.integer import (
    INT8_FULL,
    check_int8_full,
    convert_int8_full,
    extreme_latents,
    io_quantization,
)
from keras_vae.export.precision import float32_model
from keras_vae.export.serving_module import MAX_NUM_SAMPLES, ServingModule, static_name
from keras_vae.export.validation import (
    check_batch_sizes,
    check_exportable,
    check_min_runtime,
    check_quantize,
    check_representative_conditions,
    check_tflite_path,
    converted,
)
from keras_vae.utils.staged_path import write_bytes_atomically

METADATA_NAME = "keras_vae"
TFLITE_SIGNATURES = ("decode", "sample")
CALIBRATION_BATCHES = 16
CALIBRATION_BATCH_SIZE = 32

_BUILTIN_NAMES = {
    code: name for name, code in vars(litert_schema.BuiltinOperator).items() if name.isupper()
}


def export_tflite(
    model,
    path: str,
    quantize: str | None = None,
    allow_untrained: bool = False,
    representative_conditions=None,
    batch_sizes=(),
    min_runtime: str | None = None,
) -> str:
    """Exports a VAE or ConditionalVAE's decoder and sampler as a `.tflite` file.

    The model has two signatures, with the names and shapes of the
    SavedModel's (see `export_saved_model`): `decode` (`z` [+ `condition`] ->
    `image`) and `sample` (`seed` int32, `num_samples` int32 [+ `condition`]
    -> `image`, `z`). Signature runners resize inputs, so batch sizes and
    `num_samples` are free at run time. TFLite drops TensorFlow's run-time
    asserts: the file clamps `num_samples` to `[0, 4096 // B]` (`B` the
    conditions, 1 for a VAE), and the runtime (`litert_sampler.Sampler`)
    refuses `num_samples` outside `[1, 4096]` and `B * num_samples > 4096`
    with an error.

    Conversion goes through a SavedModel in a temporary folder, with
    `supported_ops` restricted to TFLite builtins (plus the int8 builtins for
    `"int8"`): the file runs on a stock TFLite / LiteRT runtime, with no Flex
    or custom op. A JSON record named `keras_vae` in the model's metadata
    holds the latent size, shapes, condition type, quantization, the
    `num_samples` cap and the SHA-256 of the file (`file_sha256`, see
    `sealed`), which the LiteRT `Sampler` checks. The file is
    written to a temporary name beside `path` and renamed over it, so
    readers never see a partial file.

    Quantization (`quantize`):

    - `None`: float32. `sample(seed)` equals `model.sample(seed)` to float
      rounding (about 1e-6).
    - `"float16"`: float16 constants, float32 compute. Every float constant
      is stored in half precision, the sampler's (such as 2*pi) included,
      so z differs from the float32 draw by up to about 1e-2.
    - `"dynamic"`: int8 weights, float activations (dynamic range). For a
      convolutional model only with `batch_sizes`: LiteRT runs its
      dynamic-shape signatures far slower than float32 (a warning says so),
      its static ones faster.
    - `"int8"`: full integer quantization of the decoder with float32 inputs
      and outputs, calibrated on latents drawn from the prior with the
      portable RNG (the `sample` and `decode` signatures see the same
      calibration latents). For a VAE the two then give identical images;
      for a ConditionalVAE, whose decoder input also holds the condition,
      they can differ by a quantization step (about 4e-3). The sampler's
      ops (the integer hash, Box-Muller and, for a learned prior, the prior
      network) stay in int32/float32: an int8 uniform would have 256 levels.
      So z is exact and only the decoder is quantized. Dense layers get one
      scale per layer (convolutions one per channel), which keeps the file
      near a quarter of the float32 one. The calibration latents include,
      for each coordinate, draws at the sampler's extremes (the portable
      normal's bound, sqrt(48 ln 2) ~ 5.77, times the prior's scale), so
      no z the sampler draws is clipped (see `integer.extreme_latents`).
    - `"int8-full"`: for Edge TPUs and NPUs, a file with one signature,
      `decode`, whose inputs (`z` [+ `condition`]) and output (`image`)
      are int8, whose batch is fixed (`batch_sizes`: one size, default 1)
      and whose ops are all int8 builtins, with no float tensor. The host
      draws z (`litert_sampler.Sampler` has the portable RNG in numpy) and
      quantizes and dequantizes with the scales and zero points the
      metadata records (`quantization`, `"sampling": "host"`). Only the
      `StandardNormal` prior: the others need float weights to draw z.
      When the decoder starts with a relu or linear `Dense` layer, z comes
      in two int8 inputs, `z` and `z_residual` (z's int8 step, 0.045,
      alone moved MNIST images by up to 0.054); calibrated on typical,
      wide (temperature 1.3) and extreme draws, with the later `Dense`
      layers' weights rounded by GPTQ (see `keras_vae.export.integer`).

    Args:
        model: a built, trained `VAE` or `ConditionalVAE`. A model built
            under a mixed-precision policy is exported as its float32 copy
            (`keras_vae.export.precision.float32_model`).
        path: str or path. Output file, ending in `.tflite`; an existing file
            is replaced.
        quantize: `None`, `"float16"`, `"dynamic"`, `"int8"` or
            `"int8-full"`. Defaults to `None`.
        allow_untrained: bool. Export a built model whose optimizer never
            stepped. Defaults to `False`.
        representative_conditions: array `[M, *condition_shape]` or `None`.
            Conditions to calibrate a ConditionalVAE's int8 decoder with.
            Defaults to every one-hot label for `condition_type="label"`;
            required for other conditions (the completion ones), and only
            accepted with `quantize="int8"` and a ConditionalVAE.
        batch_sizes: sequence of positive ints (or a string `"1,64"`).
            For each `B`, two more signatures with static shapes:
            `decode_b{B}` (`z` `[B, L]` [+ `condition` `[B, *C]`]) and
            `sample_b{B}` (`seed` [+ one `condition` `[1, *C]`], the
            draws of `sample` with `num_samples=B`). Their op graphs hold
            no shape computed at run time: a transposed convolution's
            output shape is a constant, which makes a convolutional
            decoder about 3x faster in LiteRT (and lets LiteRT's
            `CompiledModel` run it). The `Sampler` uses them when a call's
            batch matches, and the metadata lists them (`batch_sizes`).
            Defaults to `()`, the dynamic signatures only. For
            `"int8-full"`: at most one size, the batch of its `decode`
            signature (default 1); the `Sampler` pads the last chunk.
        min_runtime: str or `None`. The oldest TFLite runtime the file must
            run on (`"2.14"`): the metadata's `min_runtime_version`, the
            converter's record of the newest op version the file uses, is
            then at most this. Below 2.17, `"dynamic"` quantizes dense
            weights per tensor instead of per channel (FULLY_CONNECTED
            version 12, per-channel hybrid weights, came with 2.17). A file
            that still needs a newer runtime is refused with a `ValueError`.
            Defaults to `None`: whatever the converter chooses.

    Returns:
        The path written.

    Raises:
        ValueError: for an unknown `quantize`, a bad `path`, an unbuilt or
            untrained model, missing or misshapen calibration conditions, or
            networks with ops that TFLite's builtins lack.

    Example:

    >>> export_tflite(vae, "runs/mnist-mlp/model.tflite", quantize="int8")  # doctest: +SKIP
    'runs/mnist-mlp/model.tflite'
    """
    check_quantize(quantize)
    path = check_tflite_path(path)
    check_exportable(model, allow_untrained)
    conditions = check_representative_conditions(model, quantize, representative_conditions)
    batch_sizes = check_batch_sizes(batch_sizes)
    check_min_runtime(min_runtime)
    if quantize == INT8_FULL:
        check_int8_full(model, batch_sizes)
    content = convert_tflite(float32_model(model), quantize, conditions, batch_sizes, min_runtime)
    write_bytes_atomically(path, content)
    return path


def convert_tflite(
    model,
    quantize: str | None = None,
    representative_conditions=None,
    batch_sizes=(),
    min_runtime: str | None = None,
) -> bytes:
    """The content of `export_tflite`'s file, for a float32 model, without writing it.

    Args:
        model: a float32 `VAE` or `ConditionalVAE`, checked with
            `check_exportable`.
        quantize: one of `QUANTIZE_MODES`.
        representative_conditions: what `check_representative_conditions`
            returns for `model` and `quantize`.
        batch_sizes: tuple of ints, as `check_batch_sizes` returns them.
        min_runtime: str or `None`: see `export_tflite`.

    Returns:
        The bytes of the `.tflite` file, metadata included.
    """
    target = check_min_runtime(min_runtime)
    if quantize == INT8_FULL:
        content = _convert_int8_full(model, representative_conditions, batch_sizes)
        return _runs_on(content, target, min_runtime)
    module = ServingModule(
        model, functions=TFLITE_SIGNATURES, empty_batches=False, batch_sizes=batch_sizes
    )
    calibration = None
    if quantize == "int8":
        calibration = _calibration_data(model, module, representative_conditions)
        rows = len(calibration[0][1]["z"])
        calibration += _extreme_calibration_data(model, module, representative_conditions, rows)
        calibration += _static_calibration_data(module, calibration)
    content = _convert(
        module, quantize, calibration, per_tensor_dense=target is not None and target < (2, 17, 0)
    )
    ops = tflite_ops(content)
    non_builtin = sorted(op for op in ops if op.startswith(("CUSTOM", "UNKNOWN")))
    if non_builtin:
        raise RuntimeError(f"Expected builtin TFLite ops only. Received: ops={non_builtin}")
    if quantize == "dynamic" and not batch_sizes and ops & {"CONV_2D", "TRANSPOSE_CONV"}:
        warnings.warn(SLOW_DYNAMIC_CONV, stacklevel=3)
    record = {**_metadata(model, module, quantize), "file_sha256": "0" * 64}
    return _runs_on(sealed(_with_metadata(content, record)), target, min_runtime)


def needed_runtime(content: bytes) -> str | None:
    """The converter's `min_runtime_version` of a `.tflite` file, or `None`."""
    model = litert_schema.Model.GetRootAs(content, 0)  # lazy: reads only what is asked
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"min_runtime_version":
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return bytes(data).rstrip(b"\0").decode()
    return None


# The converter dates a TRANSPOSE_CONV with int8 weights and float input (dynamic
# quantization of a transposed convolution) to TFLite 2.13, but tflite-runtime
# 2.14 fails to prepare it ("weights->type != input->type"); LiteRT 2.3 runs it.
# 2.15 and 2.16 were not tried, so targets below 2.17 are refused.
HYBRID_TRANSPOSE_CONV_RUNTIME = (2, 17, 0)


def _runs_on(content, target, min_runtime):
    """`content`, unless it needs a runtime newer than `target`."""
    if target is None:
        return content
    needs = needed_runtime(content)
    if needs is not None and check_min_runtime(needs) > target:
        raise ValueError(
            f"Expected a .tflite file that runs on TFLite {min_runtime}; this model's needs "
            f"TFLite {needs} (an op version {min_runtime} lacks). Received: "
            f"min_runtime={min_runtime!r}"
        )
    if target < HYBRID_TRANSPOSE_CONV_RUNTIME and _has_hybrid_transpose_conv(content):
        raise ValueError(
            f"Expected a .tflite file that runs on TFLite {min_runtime}; dynamic quantization "
            "gives this model's transposed convolutions int8 weights with float inputs, which "
            "tflite-runtime 2.14 cannot run (export float32, float16 or int8 for it). "
            f"Received: min_runtime={min_runtime!r}"
        )
    return content


def _has_hybrid_transpose_conv(content):
    """Whether a TRANSPOSE_CONV of `content` reads int8 weights and a float input."""
    model = flatbuffer_utils.convert_bytearray_to_object(content)
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if _BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode)) != (
                "TRANSPOSE_CONV"
            ):
                continue
            types = {subgraph.tensors[i].type for i in op.inputs if i >= 0}
            if {schema_fb.TensorType.INT8, schema_fb.TensorType.FLOAT32} <= types:
                return True
    return False


# Measured in benchmarks/export_latency.py (--architecture conv; RESULTS.md): LiteRT
# runs the hybrid (int8-weight) convolutions of a run-time shape without XNNPACK.
SLOW_DYNAMIC_CONV = (
    "quantize='dynamic' makes a convolutional model's dynamic-shape signatures far slower "
    "than float32 in LiteRT (decode of 64 with the conv preset: 1.9 s against 27 ms); pass "
    "batch_sizes (--batch-sizes) for static signatures, which are not slower, or keep float32"
)

# How the digest appears in the metadata's JSON (`json.dumps`'s separators).
SHA256_FIELD = b'"file_sha256": "'


def sealed(content: bytes) -> bytes:
    """`content` with its metadata's `file_sha256` set to the SHA-256 of the whole file.

    The digest is taken with its own 64 characters as zeros, then written in
    their place: every other byte of the file (weights, graph, signatures,
    metadata) is covered. The LiteRT `Sampler` recomputes it the same way and
    refuses a file that changed (a flipped bit in a weight or an op's
    options can leave images finite but wrong).

    Args:
        content: bytes of a `.tflite` file whose metadata holds
            `"file_sha256": "000...0"` once.

    Returns:
        The sealed bytes.
    """
    placeholder = SHA256_FIELD + b"0" * 64
    if content.count(placeholder) != 1:
        raise RuntimeError("Expected one file_sha256 placeholder in the TFLite metadata.")
    digest = hashlib.sha256(content).hexdigest().encode()
    return content.replace(placeholder, SHA256_FIELD + digest)


def tflite_ops(path_or_bytes) -> set[str]:
    """Names of the operators of a TFLite model, over all its subgraphs.

    Builtin operators are named as in TFLite's schema (`"FULLY_CONNECTED"`);
    custom operators, Flex (TensorFlow) ops included, as `"CUSTOM:<code>"`,
    e.g. `"CUSTOM:FlexSoftplus"`.

    Args:
        path_or_bytes: str or path of a `.tflite` file, or its bytes.

    Returns:
        A set of operator names.

    Example:

    >>> "CUSTOM:FlexCos" in tflite_ops("model.tflite")  # doctest: +SKIP
    False
    """
    if isinstance(path_or_bytes, (bytes, bytearray)):
        content = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            content = f.read()
    model = litert_schema.Model.GetRootAs(content, 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    names = set()
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for i in range(subgraph.OperatorsLength()):
            code = codes[subgraph.Operators(i).OpcodeIndex()]
            # Codes above 127 live in the wider field; older files use the deprecated one.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == litert_schema.BuiltinOperator.CUSTOM:
                custom = code.CustomCode()
                names.add(f"CUSTOM:{custom.decode() if custom else ''}")
            else:
                names.add(_BUILTIN_NAMES.get(builtin, f"UNKNOWN:{builtin}"))
    return names


def _convert(module, quantize, calibration, per_tensor_dense=False):
    folder = tempfile.mkdtemp(prefix="keras_vae_tflite_")
    try:
        saved_model = os.path.join(folder, "saved_model")
        names = module.function_names
        tf.saved_model.save(module, saved_model, signatures=module.signatures(names))
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model, signature_keys=list(names)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        # Per-tensor dense weights keep dynamic quantization's FULLY_CONNECTED
        # at version 9 (TFLite 2.13) instead of 12 (2.17).
        converter._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor_dense
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize != "int8":
            return converted(converter)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
        converter.representative_dataset = lambda: iter(calibration)
        # Calibrate, then quantize with the sampler's ops left out: the public
        # path would quantize the RNG's float stage too. This is what
        # `tf.lite.experimental.QuantizationDebugger` does for denylisted
        # nodes, without its single-signature debug run.
        converter._experimental_calibrate_only = True
        with warnings.catch_warnings():
            # The calibrator runs TF's own (deprecated) interpreter internally.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            calibrated = converted(converter)
        return _quantize_int8(_with_decode_latent_range(calibrated))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _quantize_int8(calibrated):
    """Full-integer quantization of a calibrated model, the sampler left in float.

    The sampler is every op `z` depends on in the `sample` signature (the RNG
    and, for a learned prior, the prior network): its output tensors are
    denylisted by name. The quantizer may still quantize ops that keep their
    input's scale (such as SPLIT) from their consumers; their types are then
    denylisted as well, and the result is checked.
    """
    # One scale per dense layer rather than one per output unit: per-unit
    # scales and zero points, stored for each signature's copy of the graph,
    # add 3-4% of the float32 file size, for about 0.05 nats of test ELBO on
    # MNIST (benchmarks/export_latency.py).
    options = {
        "denylisted_nodes": _sampler_tensors(calibrated),
        "disable_per_channel_for_dense_layers": True,
    }
    quantized = lite_convert.mlir_quantize(calibrated, **options)
    op_types = _quantized_sampler_ops(quantized)
    if op_types:
        quantized = lite_convert.mlir_quantize(
            calibrated, denylisted_ops=sorted(op_types), **options
        )
        remaining = _quantized_sampler_ops(quantized)
        if remaining:
            raise RuntimeError(
                "Expected the int8 model's sampler to stay in float. Received: int8 ops "
                f"{sorted(remaining)} in the sampler"
            )
    return quantized


def _sampler_ops(model):
    """(subgraph, op) pairs of the ops `z` depends on in the `sample` signature."""
    for signature in model.signatureDefs:
        if signature.signatureKey.decode().split("_b")[0] != "sample":
            continue
        subgraph = model.subgraphs[signature.subgraphIndex]
        producers = {index: op for op in subgraph.operators for index in op.outputs}
        pending = [o.tensorIndex for o in signature.outputs if o.name.decode() == "z"]
        seen = set()
        while pending:
            index = pending.pop()
            if index in seen or index not in producers:
                continue
            seen.add(index)
            op = producers[index]
            pending.extend(i for i in op.inputs if i >= 0)
            yield subgraph, op


def _sampler_tensors(content):
    """Names of the sampler's tensors, z included (see `_quantize_int8`)."""
    model = flatbuffer_utils.convert_bytearray_to_object(content)
    names = []
    for subgraph, op in _sampler_ops(model):
        names.extend(subgraph.tensors[i].name.decode() for i in op.outputs)
    return names


def _quantized_sampler_ops(content):
    """Types of the sampler's ops that compute in int8 or read int8 tables.

    QUANTIZE and DEQUANTIZE aside. An int8 input counts too: a mixture
    prior's table of component means, quantized with a zero point, made an
    EMBEDDING_LOOKUP that LiteRT refuses to prepare (it takes symmetric
    tables only).
    """
    model = flatbuffer_utils.convert_bytearray_to_object(content)
    types = set()
    for subgraph, op in _sampler_ops(model):
        code = model.operatorCodes[op.opcodeIndex]
        name = _BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        tensors = [i for i in (*op.inputs, *op.outputs) if i >= 0]
        int8 = any(subgraph.tensors[i].type == schema_fb.TensorType.INT8 for i in tensors)
        if int8 and name not in ("QUANTIZE", "DEQUANTIZE"):
            types.add(name)
    return types


def _calibration_data(model, module, conditions):
    """(signature, inputs) pairs for the int8 calibration, from the prior.

    `conditions` are a ConditionalVAE's, as `check_representative_conditions`
    returns them.
    """
    data = []
    per_batch = max(1, CALIBRATION_BATCH_SIZE // 4)
    for seed in range(CALIBRATION_BATCHES):
        if module.conditional:
            start = (seed * per_batch) % len(conditions)
            condition = np.take(conditions, range(start, start + per_batch), axis=0, mode="wrap")
            num_samples = 4
        else:
            condition, num_samples = None, CALIBRATION_BATCH_SIZE
        z = model.sample_latent(num_samples, seed, condition=condition)
        z = tf.reshape(z, [-1, module.latent_dim]).numpy()
        decode_inputs = {"z": z}
        sample_inputs = {"seed": np.int32(seed), "num_samples": np.int32(num_samples)}
        if condition is not None:
            decode_inputs["condition"] = np.repeat(condition, num_samples, axis=0)
            sample_inputs["condition"] = condition
        data.append(("decode", decode_inputs))
        data.append(("sample", sample_inputs))
    return data


def _extreme_calibration_data(model, module, conditions, rows):
    """`decode` calibration pairs of latents at the sampler's extremes (`extreme_latents`).

    In batches of `rows` rows, as the other `decode` batches (the calibrator
    fails to resize a conditional decoder's inputs to another batch).

    `decode`'s ranges then cover every z the sampler draws; the `sample`
    signatures, whose z the calibration seeds draw, get them afterwards
    (`_with_decode_latent_range`).
    """
    z, condition = extreme_latents(model, conditions)
    data = []
    for start in range(0, len(z), rows):
        index = np.arange(start, start + rows) % len(z)
        inputs = {"z": z[index]}
        if module.conditional:
            inputs["condition"] = condition[index]
        data.append(("decode", inputs))
    return data


def _with_decode_latent_range(calibrated):
    """`calibrated` with each `sample` signature's decoder ranges widened to `decode`'s.

    The calibrated ranges of a `sample` signature are those of the
    calibration seeds' draws (z in about [-4.3, 3.9] for 512 draws of 50
    latents), while the sampler draws up to 5.77: an int8 z clipped there
    changed some images by 0.3. `decode` was calibrated with the extremes
    too, so each tensor of the decoder in a `sample` signature gets the
    union of its range and that of its counterpart in `decode`, found by
    walking both graphs from z through the ops that consume it.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    decode = _signature_tensor(model, "decode", "inputs", "z")
    for signature in model.signatureDefs:
        if signature.signatureKey.decode().split("_b")[0] != "sample":
            continue
        sample = _signature_tensor(model, signature.signatureKey.decode(), "outputs", "z")
        z_range = _calibrated_range(decode[0].tensors[decode[1]].quantization)
        # The quantizer reads z's range where z is made: before the RESHAPE
        # that gives it its shape, so the tensors z is reshaped from too.
        for tensor in _reshaped_from(model, *sample):
            _widen_to(tensor.quantization, z_range)
        for tensor, counterpart in _matching_tensors(model, decode, sample):
            _widen_to(counterpart.quantization, _calibrated_range(tensor.quantization))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _signature_tensor(model, key, side, name):
    """(subgraph, tensor index) of the input or output `name` of signature `key`."""
    for signature in model.signatureDefs:
        if signature.signatureKey.decode() == key:
            for entry in getattr(signature, side):
                if entry.name.decode() == name:
                    return model.subgraphs[signature.subgraphIndex], entry.tensorIndex
    raise RuntimeError(f"Expected a {name} in the {key} signature. Received: none")


def _matching_tensors(model, first, second):
    """Pairs of tensors computed alike from `first` and `second`, (subgraph, index) each.

    From the pair itself, the outputs of consumers of the same op type at
    the same input position are paired, in op order, as far as both graphs go.
    """
    (graph_a, start_a), (graph_b, start_b) = first, second
    consumers_a, consumers_b = _consumers(graph_a), _consumers(graph_b)
    pending, seen = [(start_a, start_b)], set()
    while pending:
        a, b = pending.pop()
        if (a, b) in seen:
            continue
        seen.add((a, b))
        yield graph_a.tensors[a], graph_b.tensors[b]
        unmatched = list(consumers_b.get(b, []))
        for op_a, position in consumers_a.get(a, []):
            key = (model.operatorCodes[op_a.opcodeIndex].builtinCode, position)
            for candidate in unmatched:
                op_b, position_b = candidate
                if (model.operatorCodes[op_b.opcodeIndex].builtinCode, position_b) == key:
                    unmatched.remove(candidate)
                    pending.extend(zip(op_a.outputs, op_b.outputs, strict=False))
                    break


def _reshaped_from(model, subgraph, index):
    """The tensor at `index` and those it is reshaped from, through RESHAPE ops."""
    producers = {i: op for op in subgraph.operators for i in op.outputs}
    yield subgraph.tensors[index]
    while index in producers:
        op = producers[index]
        code = model.operatorCodes[op.opcodeIndex]
        name = _BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        index = op.inputs[0]
        if name != "RESHAPE" or index < 0:
            return
        yield subgraph.tensors[index]


def _consumers(subgraph):
    """Tensor index -> [(op, input position)] in op order."""
    consumers = {}
    for op in subgraph.operators:
        for position, index in enumerate(op.inputs):
            if index >= 0:
                consumers.setdefault(index, []).append((op, position))
    return consumers


def _calibrated_range(quantization):
    if quantization is None or quantization.min is None or quantization.max is None:
        return None
    if len(quantization.min) != 1 or len(quantization.max) != 1:
        return None
    return float(quantization.min[0]), float(quantization.max[0])


def _widen_to(quantization, wider):
    found = _calibrated_range(quantization)
    if found is not None and wider is not None:
        quantization.min = [min(found[0], wider[0])]
        quantization.max = [max(found[1], wider[1])]


def _static_calibration_data(module, calibration):
    """Calibration pairs for the static signatures, from the dynamic ones' pairs.

    Each `decode_b{B}` sees the rows of each `decode` batch, repeated or cut
    to `B`; each `sample_b{B}` the seeds of `sample` (with its first
    condition).
    """
    data = []
    for batch in module.batch_sizes:
        for name, inputs in calibration:
            if name == "decode":
                rows = np.arange(batch) % len(inputs["z"])
                data.append((static_name(name, batch), {k: v[rows] for k, v in inputs.items()}))
            else:
                fixed = {"seed": inputs["seed"]}
                if "condition" in inputs:
                    fixed["condition"] = inputs["condition"][:1]
                data.append((static_name(name, batch), fixed))
    return data


def _convert_int8_full(model, conditions, batch_sizes):
    """`convert_tflite` for `"int8-full"`: the decoder alone, int8 in and out."""
    batch_size = check_int8_full(model, batch_sizes)
    content, module = convert_int8_full(model, batch_size, conditions)
    record = {
        **_metadata(model, module, INT8_FULL),
        "sampling": "host",
        "quantization": io_quantization(content),
        "file_sha256": "0" * 64,
    }
    return sealed(_with_metadata(content, record))


def _metadata(model, module, quantize):
    condition_type = model.condition_type
    layout = {}
    if condition_type in ("center-column", "top-half") and model.image_shape:
        # A device rebuilds images from the flat observed and missing pixels.
        observed, missing = data.pixel_indices(condition_type, model.image_shape)
        layout = {
            "full_image_shape": list(model.image_shape),
            "observed_pixels": observed.tolist(),
            "missing_pixels": missing.tolist(),
        }
    return {
        **layout,
        "format": "keras_vae",
        "keras_vae_version": keras_vae.__version__,
        "model": type(model).__name__,
        "prior": type(model.prior_layer).__name__,
        "posterior": type(model.posterior_layer).__name__,
        "latent_dim": module.latent_dim,
        "data_shape": list(module.data_shape),
        "condition_shape": None if module.condition_shape is None else list(module.condition_shape),
        "condition_type": condition_type,
        "quantize": quantize,
        "seed_dtype": "int32",
        "max_num_samples": MAX_NUM_SAMPLES,
        "signatures": list(module.function_names),
        "batch_sizes": list(module.batch_sizes),
    }


def _with_metadata(content, record):
    """`content` with `record` as JSON in the model metadata named `keras_vae`."""
    # The converter's own record of the oldest TFLite runtime that has every
    # op version the file uses (e.g. 2.17.0 for dynamic quantization's
    # FULLY_CONNECTED v12), repeated where the sampler and users read.
    needs = needed_runtime(content)
    if needs is not None:
        record = {**record, "min_runtime_version": needs}
    model = flatbuffer_utils.convert_bytearray_to_object(content)
    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(json.dumps(record, sort_keys=True).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema_fb.MetadataT()
    entry.name = METADATA_NAME.encode()
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != entry.name] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
