"""TensorFlow Lite Micro export: one static-shape, float32 function per file."""

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as litert_schema
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae.export.integer import INT8_FULL, check_int8_full, convert_int8_full, io_quantization
from keras_vae.export.litert_sampler import dequantized, integer_inputs, quiet_stderr
from keras_vae.export.precision import float32_model
from keras_vae.export.serving_module import saving_traces
from keras_vae.export.tflite import METADATA_NAME, _metadata, _with_metadata, sealed, tflite_ops
from keras_vae.export.validation import (
    MAX_BATCH_SIZE,
    check_exportable,
    check_representative_conditions,
    check_tflite_path,
    converted,
)
from keras_vae.ops import random as portable_random
from keras_vae.utils.staged_path import write_bytes_atomically

MICRO_FUNCTIONS = ("sample", "decode")
# `None` is float32; "int8-full" is the full-integer decoder of `export_tflite`.
MICRO_QUANTIZE_MODES = (None, "int8-full")
# The builtin ops registered by tflite-micro's all-ops resolver (the Python
# interpreter's), read from its `Register_*` symbols. Having a kernel is not
# enough: several take float32 or int8 only (FLOOR_DIV, FLOOR_MOD, SUM and
# SELECT_V2 refuse int32), which is why the export also runs the file once in
# `tflite_micro` when it is installed.
TFLM_OPS = frozenset(
    """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL
    BATCH_TO_SPACE_ND BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION
    CONV_2D COS CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DETECTION_POSTPROCESS
    DIV ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD
    FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION
    L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC
    LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD
    PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE
    RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN
    SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE
    SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV
    UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE""".split()
)
# The largest |image difference| to Keras accepted when the export runs the
# file in tflite_micro (seed 0): float rounding in log, sqrt and cos only.
PARITY_TOLERANCE = 1e-4
# An int8-full file's images are int8 steps off float32: the MNIST MLP's reach 0.037
# (benchmarks/RESULTS.md); twice the 0.05 means a broken file.
INT8_PARITY_TOLERANCE = 0.1
# The arena recorded in the file: the smallest that allocates, plus this share.
ARENA_MARGIN = 0.1
# Bookkeeping of the interpreter, per tensor and in all, for the estimate
# made when `tflite_micro` is not installed.
_ESTIMATE_PER_TENSOR = 64
_ESTIMATE_BASE = 16 * 1024
MAX_ARENA = 1 << 30


def export_tflite_micro(
    model,
    path: str,
    num_samples: int = 16,
    function: str = "sample",
    batch_size: int | None = None,
    allow_untrained: bool = False,
    arena_limit: int | None = None,
    quantize: str | None = None,
    representative_conditions=None,
) -> str:
    """Exports a VAE or ConditionalVAE for TensorFlow Lite Micro, as a `.tflite` file.

    TFLite Micro runs a file's first subgraph, with every shape fixed when the
    arena is planned. So the file holds one function, with fixed shapes:

    - `function="sample"` (the default): `sample(seed[, condition])`, `seed`
      an int32 scalar and, for a ConditionalVAE, `condition` float32
      `[1, *condition_shape]` -> `image` `[num_samples, *data_shape]` and
      `z` `[num_samples, latent_dim]`. The whole seeded sampler runs on the
      device: the portable RNG is built from ops TFLite Micro has
      (`keras_vae.ops.random.tflite_micro_ops`), with integer words
      bit-identical to the other exports', so `sample(seed)` gives
      `model.sample(num_samples, seed=seed)` (or `model.generate(condition,
      num_samples, seed=seed)`) up to float rounding in log, sqrt and cos.
    - `function="decode"`: `decode(z[, condition])` with `batch_size` rows
      -> `image`, for a host that draws z itself (the LiteRT `Sampler`'s RNG
      gives the same z).

    Float32, or with `quantize="int8-full"` (`function="decode"` only) the
    full-integer decoder of `export_tflite(..., quantize="int8-full")`: int8
    `z`, `z_residual` (and `condition`) in, int8 `image` out, int8 ops only,
    z drawn and quantized on the host (`litert_sampler.integer_inputs`; the
    metadata's `quantization` gives each input's and output's scale and
    zero point). The MNIST MLP's needs 26 KiB of arena at batch 1. The
    JSON record `keras_vae` in the file's metadata is the
    one `export_tflite` writes, with `signatures` the one function, plus
    `runtime: "tflite-micro"`, `sampling` (`"in-model"` for the sampler, `"host"`
    for decode), `num_samples` or `batch_size`, and `arena_bytes` with
    `arena_source`: `"measured"` is the smallest arena with which
    `tflite_micro`'s interpreter allocates the model (found by bisection,
    then run once), plus 10%, rounded up to 1 KiB; `"estimated"` (when
    `tflite_micro` is not installed) adds up the bytes of every tensor that is
    not a constant, as if none shared memory, plus 64 bytes per tensor and
    16 KiB, an upper bound. The interpreter's own bookkeeping is counted
    for a 64-bit host, so a 32-bit microcontroller needs a little less.

    Args:
        model: a built, trained `VAE` or `ConditionalVAE` whose prior samples
            with static shapes (a mixture's component choice or a network
            may use ops that TFLite Micro lacks: the export then fails,
            naming them).
        path: str or path. Output file, ending in `.tflite`.
        num_samples: int in `[1, 4096]`. Draws per `sample` call. Defaults
            to `16`.
        function: `"sample"` or `"decode"`. Defaults to `"sample"`.
        batch_size: int in `[1, 4096]` or `None`. Rows of `decode`; `None`
            takes `num_samples`.
        allow_untrained: bool. Export a built model whose optimizer never
            stepped. Defaults to `False`.
        arena_limit: int or `None`. The arena the target device has, in
            bytes: a model that needs more (`arena_bytes`) is refused.
            Defaults to `None` (no limit).
        quantize: `None` (float32) or `"int8-full"`. Defaults to `None`.
        representative_conditions: for `"int8-full"`, a ConditionalVAE's
            calibration conditions, as `export_tflite` takes them. Defaults
            to `None` (every one-hot label for a label CVAE).

    Returns:
        The path written.

    Raises:
        ValueError: for a bad argument, an unexportable model, or a model
            whose graph needs ops or dynamic shapes TFLite Micro lacks
            (nothing is written then).

    Example:

    >>> export_tflite_micro(vae, "runs/mlp/micro.tflite", num_samples=4)  # doctest: +SKIP
    'runs/mlp/micro.tflite'
    """
    path, content = tflite_micro_file(
        model, path, num_samples, function, batch_size, allow_untrained, arena_limit, quantize,
        representative_conditions,
    )  # fmt: skip
    write_bytes_atomically(path, content)
    return path


def tflite_micro_file(
    model,
    path: str,
    num_samples: int = 16,
    function: str = "sample",
    batch_size: int | None = None,
    allow_untrained: bool = False,
    arena_limit: int | None = None,
    quantize: str | None = None,
    representative_conditions=None,
) -> tuple:
    """`export_tflite_micro`'s checks and conversion, without writing the file.

    Takes `export_tflite_micro`'s arguments. An export that writes other
    files too (`keras-vae export --tflite-micro`) converts first, so that a
    refusal (an arena past `arena_limit`, a model TFLite Micro cannot run)
    comes before anything is written.

    Returns:
        A tuple `(path, content)`: the checked path and the file's bytes.
    """
    path, num_samples, batch_size, arena_limit = check_micro_arguments(
        path, num_samples, function, batch_size, arena_limit, quantize
    )
    check_exportable(model, allow_untrained)
    conditions = None
    if quantize == INT8_FULL:
        check_int8_full(model, (batch_size,))
        conditions = check_representative_conditions(model, quantize, representative_conditions)
    content = convert_tflite_micro(
        float32_model(model), function, num_samples, batch_size, quantize, conditions
    )
    record = read_micro_record(content)
    if arena_limit is not None and record["arena_bytes"] > arena_limit:
        raise ValueError(
            f"Expected a model that fits in arena_limit={arena_limit} bytes. Received: a model "
            f"needing {record['arena_bytes']} bytes of arena ({record['arena_source']})"
        )
    return path, content


def check_micro_arguments(
    path, num_samples=16, function="sample", batch_size=None, arena_limit=None, quantize=None
):
    """`export_tflite_micro`'s arguments, checked before a model is loaded.

    Returns:
        `(path, num_samples, batch_size, arena_limit)`, with `batch_size`
        defaulted to `num_samples`.

    Raises:
        ValueError: for a bad argument, in one line.
    """
    num_samples = _check_count("num_samples", num_samples)
    batch_size = num_samples if batch_size is None else _check_count("batch_size", batch_size)
    if arena_limit is not None:
        arena_limit = _check_count("arena_limit", arena_limit, MAX_ARENA)
    if function not in MICRO_FUNCTIONS:
        raise ValueError(
            f"Expected function to be one of {MICRO_FUNCTIONS}. Received: function={function!r}"
        )
    if quantize not in MICRO_QUANTIZE_MODES:
        raise ValueError(
            f"Expected quantize to be one of {MICRO_QUANTIZE_MODES}. "
            f"Received: quantize={quantize!r}"
        )
    if quantize == INT8_FULL and function != "decode":
        raise ValueError(
            "Expected function='decode' with quantize='int8-full' (an int8 uniform has 256 "
            f"levels, so z is drawn on the host). Received: function={function!r}"
        )
    return check_tflite_path(path), num_samples, batch_size, arena_limit


def convert_tflite_micro(
    model, function: str, num_samples: int, batch_size: int, quantize=None, conditions=None
) -> bytes:
    """The content of `export_tflite_micro`'s file, for a float32 model, without writing it."""
    quantization = None
    if quantize == INT8_FULL:
        content, module = convert_int8_full(model, batch_size, conditions)
        quantization = io_quantization(content)
    else:
        module = _MicroModule(model, function, num_samples, batch_size)
        content = _convert(module)
    missing = sorted(tflite_ops(content) - TFLM_OPS)
    if missing:
        raise ValueError(
            "Expected a model whose graph uses only ops TensorFlow Lite Micro has. Received: "
            f"{type(model.prior_layer).__name__} prior and "
            f"{type(model).__name__} needing ops={missing}"
        )
    arena, source = measure_arena(content)
    parity = None
    if arena is None:
        arena, source = estimate_arena(content), "estimated"
    else:
        parity = _parity(content, arena, model, function, num_samples, batch_size, quantization)
        tolerance = PARITY_TOLERANCE if quantize is None else INT8_PARITY_TOLERANCE
        if not parity <= tolerance:
            raise RuntimeError(
                f"Expected the TFLite Micro file to reproduce the Keras model within "
                f"{tolerance}. Received: max |difference|={parity}"
            )
    record = {
        **_metadata(model, module, quantize),
        "signatures": [function],
        "runtime": "tflite-micro",
        "sampling": "in-model" if function == "sample" else "host",
        "arena_bytes": arena,
        "arena_source": source,
        "parity_max_abs_diff": parity,
        "file_sha256": "0" * 64,
    }
    if quantization is not None:
        record["quantization"] = quantization
    if function == "sample":
        record.update(num_samples=num_samples, max_num_samples=num_samples)
    else:
        record["batch_size"] = batch_size
    return sealed(_with_metadata(content, record))


def micro_io(path_or_bytes) -> tuple[list[str], list[str]]:
    """The names of a micro file's inputs and outputs, in TFLite Micro's index order.

    TFLite Micro addresses tensors by index (`set_input(value, index)`,
    `get_output(index)`), in the order of the first subgraph, which need not
    be the signature's: read the names here.

    Args:
        path_or_bytes: str or path of a `.tflite` file, or its bytes.

    Returns:
        `(input_names, output_names)`, e.g. `(["seed"], ["image", "z"])`.

    Example:

    >>> micro_io("model-micro.tflite")  # doctest: +SKIP
    (['seed'], ['z', 'image'])
    """
    model = litert_schema.Model.GetRootAs(_read(path_or_bytes), 0)
    if model.SignatureDefsLength() == 0:
        raise ValueError(
            "Expected a .tflite file with a signature naming its inputs and outputs. "
            "Received: a file without signatures"
        )
    subgraph = model.Subgraphs(0)
    signature = model.SignatureDefs(0)

    def names(tensor_maps, length, indices):
        by_index = {}
        for i in range(length):
            entry = tensor_maps(i)
            by_index[entry.TensorIndex()] = entry.Name().decode()
        return [by_index[int(index)] for index in indices]

    inputs = names(signature.Inputs, signature.InputsLength(), subgraph.InputsAsNumpy())
    outputs = names(signature.Outputs, signature.OutputsLength(), subgraph.OutputsAsNumpy())
    return inputs, outputs


def read_micro_record(path_or_bytes) -> dict:
    """The `keras_vae` metadata record of a `.tflite` file (e.g. its `arena_bytes`).

    Args:
        path_or_bytes: str or path of a `.tflite` file, or its bytes.

    Returns:
        The record, a dict.

    Raises:
        ValueError: if the file has no `keras_vae` record.
    """
    content = _read(path_or_bytes)
    model = litert_schema.Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_NAME.encode():
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    raise ValueError(
        f"Expected a .tflite file with a {METADATA_NAME} metadata record. Received: a file "
        "without one"
    )


def _read(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return bytes(path_or_bytes)
    with open(path_or_bytes, "rb") as f:
        return f.read()


def measure_arena(content: bytes) -> tuple[int | None, str]:
    """The arena `content` needs in `tflite_micro`, plus the margin, or `None`.

    The smallest arena that allocates is found by bisection in a child
    process: `tflite_micro` (the 2026 builds at least) can crash with a
    segmentation fault, instead of failing, for some arenas that are too
    small; a probe that crashes counts as one that failed.

    Returns:
        `(bytes, "measured")`, or `(None, "estimated")` when `tflite_micro` is
        not installed.

    Raises:
        ValueError: if the model does not allocate or run in `tflite_micro`
            with up to 1 GiB of arena.
    """
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        return None, "estimated"
    with tempfile.TemporaryDirectory(prefix="keras_vae_tflite_micro_") as folder:
        model_path = os.path.join(folder, "model.tflite")
        with open(model_path, "wb") as f:
            f.write(content)
        smallest = _smallest_arena(model_path, max(estimate_arena(content), 4096))
    arena = math.ceil(smallest * (1 + ARENA_MARGIN) / 1024) * 1024
    with quiet_stderr():
        interpreter = runtime.Interpreter.from_bytes(content, arena_size=arena)
    _run_once(interpreter, content)
    return arena, "measured"


# Bisects the arena of the file argv[1] in (argv[2], argv[3]], doubling the
# upper end first while it fails; prints "try N" before each probe and
# "ok N" / "fail N" after it, so a probe that crashes the process is known.
_PROBE = """
import sys
from tflite_micro.python.tflite_micro import runtime
content = open(sys.argv[1], "rb").read()
# Each Interpreter parses the whole file in Python to count its resource
# variables, nearly all of a probe's time: counted once, for every probe.
resource_variables = runtime.count_resource_variables(content)
runtime.count_resource_variables = lambda model: resource_variables
low, high, limit = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def allocates(size):
    print("try", size, flush=True)
    try:
        runtime.Interpreter.from_bytes(content, arena_size=size)
    except RuntimeError:
        print("fail", size, flush=True)
        return False
    print("ok", size, flush=True)
    return True
while high <= limit and not allocates(high):
    low, high = high, high * 2
while high <= limit and high - low > 64:
    middle = (low + high) // 2
    if allocates(middle):
        high = middle
    else:
        low = middle
print("done", low, high, flush=True)
"""


def _smallest_arena(model_path, start):
    """The smallest arena (to 64 bytes) that allocates the model, probed in child processes."""
    low, high, confirmed = 0, start, False
    while True:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE, model_path, str(low), str(high), str(MAX_ARENA)],
            capture_output=True,
            text=True,
            check=False,
        )
        trying = None
        for line in result.stdout.splitlines():
            word, _, value = line.partition(" ")
            if word == "try":
                trying = int(value)
            elif word == "ok":
                high, confirmed, trying = int(value), True, None
            elif word == "fail":
                low, trying = int(value), None
                high = max(high, 2 * low) if not confirmed else high
            elif word == "done":
                if not confirmed or high > MAX_ARENA:
                    break
                return high
        if result.returncode == 0 or trying is None:
            break
        # The probe crashed: that arena does not allocate either.
        low = trying
        if not confirmed:
            high = 2 * trying
    raise ValueError(
        "Expected a model that TensorFlow Lite Micro allocates. Received: a model that "
        f"fails to allocate in up to {MAX_ARENA} bytes of arena"
    )


def estimate_arena(content: bytes) -> int:
    """Bytes of every non-constant tensor of `content`, as if none shared memory, plus overhead."""
    model = litert_schema.Model.GetRootAs(content, 0)
    total = _ESTIMATE_BASE
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for i in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(i)
            total += _ESTIMATE_PER_TENSOR
            buffer = model.Buffers(tensor.Buffer())
            if buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0):
                continue
            elements = (
                math.prod(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1
            )
            total += elements * _TYPE_BYTES.get(tensor.Type(), 4)
    return total


_TYPE_BYTES = {
    litert_schema.TensorType.FLOAT32: 4,
    litert_schema.TensorType.INT32: 4,
    litert_schema.TensorType.INT16: 2,
    litert_schema.TensorType.INT8: 1,
    litert_schema.TensorType.UINT8: 1,
    litert_schema.TensorType.BOOL: 1,
    litert_schema.TensorType.INT64: 8,
}


def _run_once(interpreter, content):
    """Invokes a TFLite Micro interpreter once on zero inputs (a kernel may refuse a type)."""
    inputs = litert_schema.Model.GetRootAs(content, 0).Subgraphs(0).InputsLength()
    try:
        for index in range(inputs):
            details = interpreter.get_input_details(index)
            interpreter.set_input(np.zeros(details["shape"], details["dtype"]), index)
        with quiet_stderr():
            interpreter.invoke()
    except RuntimeError as e:
        raise ValueError(
            "Expected a model that TensorFlow Lite Micro runs. Received: a model that fails "
            f"to run in tflite_micro ({e})"
        ) from None


def _parity(content, arena, model, function, num_samples, batch_size, quantization=None):
    """Max |image difference| between the file in tflite_micro and Keras, for seed 0.

    A ConditionalVAE gets the all-zero condition; `decode` gets the prior's
    draws for seed 0 (quantized with `quantization`, an int8-full file's
    record, as the host sampler quantizes them).
    """
    from tflite_micro.python.tflite_micro import runtime

    rows = num_samples if function == "sample" else batch_size
    condition = None
    if model.conditional:
        condition = np.zeros([1, *model.condition_shape], np.float32)
    if function == "sample":
        if condition is None:
            expected = model.sample(num_samples, seed=0)
        else:
            expected = model.generate(condition, num_samples, seed=0)
        inputs = {"seed": np.int32(0), "condition": condition}
    else:
        z = model.sample_latent(rows, 0, condition=condition)
        z = np.asarray(z).reshape(rows, int(model.latent_dim))
        if condition is not None:
            condition = np.repeat(condition, rows, axis=0)
        expected = model.likelihood.portable_mean(model.decode(z, condition))
        inputs = {"z": z}
        if condition is not None:
            inputs["condition"] = condition
        if quantization is not None:
            inputs = integer_inputs(inputs, quantization)
    interpreter = runtime.Interpreter.from_bytes(content, arena_size=arena)
    input_names, output_names = micro_io(content)
    for index, name in enumerate(input_names):
        interpreter.set_input(np.asarray(inputs[name]), index)
    with quiet_stderr():
        interpreter.invoke()
    image = interpreter.get_output(output_names.index("image"))
    if quantization is not None:
        image = dequantized(image, quantization["image"])
    expected = np.reshape(np.asarray(expected), image.shape)
    return float(np.max(np.abs(image - expected)))


class _MicroModule(tf.Module):
    """One static-shape function of a model (see `export_tflite_micro`), named `function`."""

    def __init__(self, model, function, num_samples, batch_size):
        super().__init__(name="keras_vae_micro")
        self.conditional = bool(model.conditional)
        self.latent_dim = int(model.latent_dim)
        self.condition_shape = tuple(model.condition_shape) if self.conditional else None
        self.data_shape = tuple(model.event_shape)
        self.function_name = function
        self.function_names = (function,)
        self.batch_sizes = (num_samples if function == "sample" else batch_size,)
        build = _sample_function if function == "sample" else _decode_function
        self.function = build(model, self, num_samples, batch_size)
        # Plain tf.Variables only (see ServingModule): Keras's wrappers do not freeze.
        with saving_traces():  # the trace the converter's save reuses (see `saving_traces`)
            self.model_variables = list(self.function.get_concrete_function().variables)


def _sample_function(model, module, num_samples, batch_size):
    del batch_size
    specs = [tf.TensorSpec([], tf.int32, name="seed")]
    if module.conditional:
        specs.append(tf.TensorSpec([1, *module.condition_shape], tf.float32, name="condition"))

    def sample(seed, *condition):
        condition = condition[0] if condition else None
        with portable_random.tflite_micro_ops():
            z = model.sample_latent(num_samples, seed, condition=condition)
        z = tf.reshape(z, [num_samples, module.latent_dim])
        if condition is not None:
            # One condition per call: BROADCAST_TO (TFLite Micro has no TILE).
            condition = tf.broadcast_to(condition, [num_samples, *module.condition_shape])
        image = model.likelihood.portable_mean(model.decode(z, condition))
        return {"image": tf.reshape(image, [num_samples, *module.data_shape]), "z": z}

    # Without autograph, a ValueError raised while tracing (a shape that stays
    # dynamic) reaches the caller as it was raised, in one line.
    return tf.function(sample, input_signature=specs, autograph=False)


def _decode_function(model, module, num_samples, batch_size):
    del num_samples
    specs = [tf.TensorSpec([batch_size, module.latent_dim], tf.float32, name="z")]
    if module.conditional:
        specs.append(
            tf.TensorSpec([batch_size, *module.condition_shape], tf.float32, name="condition")
        )

    def decode(z, *condition):
        image = model.likelihood.portable_mean(model.decode(z, condition[0] if condition else None))
        return {"image": tf.reshape(image, [batch_size, *module.data_shape])}

    return tf.function(decode, input_signature=specs, autograph=False)


def _convert(module):
    with saving_traces():
        concrete = module.function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    content = converted(converter, module.function_name)
    # The converter names a lone function's signature `serving_default`.
    model = flatbuffer_utils.convert_bytearray_to_object(content)
    for signature in model.signatureDefs or []:
        signature.signatureKey = module.function_name.encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _check_count(name, value, largest=MAX_BATCH_SIZE):
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or not 1 <= value <= largest
    ):
        raise ValueError(
            f"Expected {name} to be an integer in [1, {largest}]. Received: {name}={value!r}"
        )
    return int(value)
