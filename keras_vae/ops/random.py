"""Counter-based, stateless random numbers that agree across every runtime.

`uniform` and `normal` give the same numbers for the same `(seed, counter)`
in numpy, TF eager, `tf.function`, XLA, a SavedModel served by TF Serving and a
TFLite model, so a user can reproduce an on-device VAE sample from its seed.

Why composite builtin ops and not a custom kernel:
    `tf.random.normal` freezes its seed when a model is converted to TFLite,
    and `tf.random.stateless_*` / `keras.random.*` lower to Flex ops that stock
    TFLite runtimes do not ship. A compiled custom-op kernel would fix the
    numbers, but stock TF Serving and stock TFLite runtimes would refuse to
    load a graph that names it. So the generator is written only with integer
    and float ops that have TFLite builtin kernels (ADD, MUL, FLOOR_MOD,
    FLOOR_DIV, RIGHT_SHIFT, BITWISE_XOR, CAST, RANGE, LOG, SQRT, COS), and
    the exported graph runs wherever TensorFlow or TFLite runs.
    TensorFlow Lite Micro lacks RIGHT_SHIFT, BITWISE_XOR, RANGE and
    REDUCE_PROD; inside `tflite_micro_ops()` the same words are computed from
    float32 ops it has, for static shapes (see there).

Algorithm (all words are unsigned 32-bit, arithmetic is modulo 2^32):

    mix(x):                           # "lowbias32", Wellons (2018)
        x = x ^ (x >> 16)
        x = x * 0x7FEB352D
        x = x ^ (x >> 15)
        x = x * 0x846CA68B
        x = x ^ (x >> 16)

    s = seed mod 2^32                 # the two's-complement bit pattern
    c = (counter_offset + i) mod 2^32 # i: row-major index of the element
    word_j(c) = mix(mix(c ^ mix(s ^ P[2j])) ^ mix(s ^ P[2j + 1]))

    P = (0x243F6A88, 0x85A308D3, 0x13198A2E,
         0x03707344, 0xA4093822, 0x299F31D0)   # hex digits of pi

    to_unit(w) = (2 * (w >> 9) + 1) * 2^-24   # the top 23 bits, centred

    uniform: to_unit(word_0(c))
    normal:  u1 = to_unit(word_1(c)), u2 = to_unit(word_2(c)),
             z = sqrt(2 * e) * cos(float32(2 * pi) * u2)   # all in float32
    where e = -log(u1), except for u1 > 7/8, where with v = 1 - u1 (exact)
             e = v * (1 + v * (1/2 + v * (1/3 + ... + v * (1/7 + v * 1/8))))

Each element depends on its own counter only. Two keyed rounds of `mix` make
the words of different seeds unrelated, not merely reindexings of one
sequence. `to_unit` returns odd multiples of 2^-24, so every uniform lies in
`[2^-24, 1 - 2^-24]`: never 0 (the log in Box-Muller stays finite) and never 1,
and the integer-to-float step is exact in float32. The normal uses the cosine
half of Box-Muller only, so element `i` needs nothing from element `i + 1`;
`|z|` is at most `sqrt(48 ln 2) ≈ 5.77`. `uniform` and `normal` use different
streams, so drawing both with one seed gives unrelated numbers. The series for
`-log(1 - v)` (truncation error below 1e-8 relative) replaces `log` near 1
because fast `log` kernels, such as the XNNPACK one TFLite runs by default, have
an absolute error of about 1e-7 there, which `sqrt` turns into an error of up to
1e-5 in small `|z|`; the series is plain multiply-adds.

How the integer stage stays bit-exact: TFLite has no unsigned 32-bit kernels
for most ops and no bitwise AND, OR or left shift, and int32 overflow is
undefined behaviour in the C++ kernels. So every 32-bit word is held as two
int32 limbs `(hi, lo)` in `[0, 2^16)`, and every product and sum in the hash
stays below 2^31: a multiplication by a 32-bit constant multiplies 16-bit limbs
by the constant's bytes (products below 2^24), masks are `floor_mod` by a power
of two, and left shifts are multiplications by a power of two. An eager call
does the same arithmetic on whole uint32 words in numpy (the same words, in
place of about 150 eager ops). Only the float stage (log, sqrt, cos) may
differ, by a few ulps: between runtimes, and even within one runtime, where
vectorised kernels can round a tensor's tail differently from its body.

Shapes are checked for negative entries when they are known statically; a
dynamic shape tensor is taken as it is.

Reference:
    Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011
    (counter-based generators); Wellons, "Prospecting for Hash Functions", 2018
    (`lowbias32`); Box & Muller, "A note on the generation of random normal
    deviates", 1958.
"""

import collections
import contextlib
import math
import numbers
import threading

import numpy as np
import tensorflow as tf

_LIMB = 1 << 16
_MIX_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)
_STREAM_KEYS = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0)
_UNIFORM_STREAM = 0
_NORMAL_STREAMS = (1, 2)
_TWO_PI = np.float32(2.0 * np.pi)
_MAX_ELEMENTS = 2**31 - 1
_LOG_SERIES_ABOVE = np.float32(0.875)
_LOG_SERIES_TERMS = 8
_BIT_WEIGHTS = np.float32(2.0 ** np.arange(16))
_op_set = threading.local()


@contextlib.contextmanager
def tflite_micro_ops():
    """Within this context, `uniform` and `normal` use only TFLite Micro's ops.

    TensorFlow Lite Micro has no RIGHT_SHIFT, BITWISE_XOR, RANGE or
    REDUCE_PROD, and its FLOOR_DIV, FLOOR_MOD, SUM and SELECT_V2 kernels take
    float32 (not int32) tensors. Inside this context the 16-bit limbs are held
    in float32, where every integer below 2^24 is exact, and every
    intermediate value is kept below 2^24: a right shift by `k` is
    `floor_div(x, 2^k)`, `x & (2^k - 1)` is `floor_mod(x, 2^k)`, an XOR is the
    weighted sum of the squared differences of the two limbs' 16 bits, and a
    product by a 32-bit constant is split by the constant's bytes, each
    partial product reduced mod 2^16 before it is added. The integer words,
    and so the uniforms, are bit-identical to the default op set's; only the
    graph differs. Shapes must be static (the counters become constants) and
    an int32 seed is split into limbs through an int16 cast, whose C++ kernel
    keeps the low 16 bits.

    Outside the context the default op set (int32 limbs, RIGHT_SHIFT,
    BITWISE_XOR) is used, so other exports are unchanged.

    Example:

    >>> with tflite_micro_ops():
    ...     u = uniform([2, 3], seed=7)
    >>> bool(tf.reduce_all(u == uniform([2, 3], seed=7)))
    True
    """
    previous = getattr(_op_set, "micro", False)
    _op_set.micro = True
    try:
        yield
    finally:
        _op_set.micro = previous


def uses_tflite_micro_ops():
    """Whether `tflite_micro_ops` is in effect (for callers with int32 ops of their own)."""
    return getattr(_op_set, "micro", False)


def uniform(shape, seed, counter_offset=0):
    """Draws uniform floats in the open interval (0, 1), reproducible by seed.

    Element `i` (row-major) is a pure function of `seed` and the counter
    `counter_offset + i`, identical in TF eager, `tf.function`, XLA, a
    SavedModel and a TFLite model (see the module docstring).

    Args:
        shape: list or tuple of ints (possibly scalar int tensors), or a 1-D
            integer tensor. Shape of the output.
        seed: int or integer scalar tensor. Only its low 32 bits are used, as a
            cast to int32 would.
        counter_offset: int in `[0, 2**32)` or integer scalar tensor. Counter of
            the first element; use it to continue a stream without overlap.
            Defaults to `0`.

    Returns:
        A float32 tensor of `shape` with values odd multiples of 2^-24 in
        `[2^-24, 1 - 2^-24]`.

    Example:

    >>> u = uniform([2, 3], seed=7)
    >>> u.shape
    TensorShape([2, 3])
    >>> bool(tf.reduce_all((u > 0.0) & (u < 1.0)))
    True
    """
    shape, seed, counter, ops = _prepare(shape, seed, counter_offset)
    return tf.reshape(ops.to_unit(_stream_words(seed, counter, [_UNIFORM_STREAM], ops)), shape)


def normal(shape, seed, counter_offset=0):
    """Draws standard normal floats, reproducible by seed.

    Box-Muller (cosine half) on two uniforms of the element's own counter; see
    the module docstring for the exact formula.

    Args:
        shape: list or tuple of ints (possibly scalar int tensors), or a 1-D
            integer tensor. Shape of the output.
        seed: int or integer scalar tensor. Only its low 32 bits are used, as a
            cast to int32 would.
        counter_offset: int in `[0, 2**32)` or integer scalar tensor. Counter of
            the first element. Defaults to `0`.

    Returns:
        A float32 tensor of `shape` with N(0, 1) draws (all within ±5.77).

    Example:

    >>> z = normal([4, 2], seed=0)
    >>> z.shape
    TensorShape([4, 2])
    >>> bool(tf.reduce_all(normal([4, 2], seed=0) == z))
    True
    """
    shape, seed, counter, ops = _prepare(shape, seed, counter_offset)
    # One pass of the hash for both streams: rows of a [2, size] word.
    u1, u2 = tf.split(ops.to_unit(_stream_words(seed, counter, _NORMAL_STREAMS, ops)), 2)
    z = tf.sqrt(2.0 * _minus_log(u1, ops.select)) * tf.cos(_TWO_PI * u2)
    return tf.reshape(z, shape)


def _prepare(shape, seed, counter_offset):
    """Validates the arguments; returns the shape, seed and counter words and the op set."""
    shape, size = _shape_and_size(shape)
    seed = _int32_scalar(seed, "seed")
    if isinstance(counter_offset, numbers.Integral) and not isinstance(counter_offset, bool):
        if not 0 <= counter_offset < 2**32:
            raise ValueError(
                "Expected counter_offset to be an integer in [0, 2**32). "
                f"Received: counter_offset={counter_offset}"
            )
    offset = _int32_scalar(counter_offset, "counter_offset")
    if uses_tflite_micro_ops():
        return _prepare_micro(shape, size, seed, offset)
    if tf.executing_eagerly():
        return _prepare_eager(shape, size, seed, offset)
    index = tf.range(size)
    counter = _add(_split(offset), _split(index))
    return shape, _split(seed), counter, _INT32_OPS


def _prepare_micro(shape, size, seed, offset):
    """`_prepare`'s result with TFLite Micro's ops: static shape, float32 limbs."""
    static_shape = _static_value(shape)
    if static_shape is None:
        raise ValueError(
            "Expected a static shape for TFLite Micro (fix num_samples and the condition "
            f"batch at export). Received: shape={shape}"
        )
    static_shape = np.asarray(static_shape, np.int64).reshape(-1)
    if (static_shape < 0).any() or math.prod(static_shape.tolist()) > _MAX_ELEMENTS:
        raise ValueError(
            "Expected a shape with non-negative entries and fewer than 2**31 elements. "
            f"Received: shape={static_shape.tolist()}"
        )
    size = math.prod(static_shape.tolist())
    index = np.arange(size, dtype=np.int64)
    index_limbs = (
        tf.constant(np.float32(index >> 16)),
        tf.constant(np.float32(index & 0xFFFF)),
    )
    counter = _micro_add(_micro_split(offset), index_limbs)
    shape = tf.constant(static_shape.astype(np.int32))
    return shape, _micro_split(seed), counter, _MICRO_OPS


def _prepare_eager(shape, size, seed, offset):
    """`_prepare`'s result for an eager call: whole uint32 words in numpy.

    The hash is integer arithmetic modulo 2^32, which numpy's uint32 does
    directly, so the words (and the uniforms, formed exactly) are the ones
    the limb ops compute, in a few array operations instead of about 150
    eager TensorFlow ops. The float stage of `normal` stays in TensorFlow,
    so eager and graph draws run the same float kernels.
    """
    counter = np.uint32(int(offset) & 0xFFFFFFFF) + np.arange(int(size), dtype=np.uint32)
    return shape, np.uint32(int(seed) & 0xFFFFFFFF), counter, _NUMPY_OPS


def _static_value(tensor):
    """The value of a shape tensor computed from constants only, or `None`.

    `tf.get_static_value` stops at a Reshape or Mul, which the priors use to
    build a shape from `num_samples` (`tf.reshape(num_samples, [1])`).
    """
    if not isinstance(tensor, tf.Tensor):
        return np.asarray(tensor)
    value = tf.get_static_value(tensor)
    if value is not None or not hasattr(tensor, "op") or tensor.op is None:
        return value
    op = tensor.op
    if op.type == "Shape":
        shape = op.inputs[0].shape
        return np.array(shape.as_list(), np.int32) if shape.is_fully_defined() else None
    inputs = [_static_value(t) for t in op.inputs]
    if op.type in ("Const", "Placeholder") or any(v is None for v in inputs):
        return None
    if op.type in ("Identity", "Cast"):
        return inputs[0].astype(tensor.dtype.as_numpy_dtype)
    if op.type == "Reshape":
        return np.reshape(inputs[0], inputs[1])
    if op.type == "ConcatV2":
        return np.concatenate([np.reshape(v, [-1]) for v in inputs[:-1]], axis=int(inputs[-1]))
    if op.type == "Pack":
        return np.stack(inputs, axis=op.get_attr("axis"))
    if op.type == "StridedSlice":  # a conditional prior's `tf.shape(condition)[0]`
        return _static_slice(op, *inputs)
    if op.type == "Mul":
        return inputs[0] * inputs[1]
    if op.type == "AddV2":
        return inputs[0] + inputs[1]
    return None


def _shape_and_size(shape):
    """Returns `shape` as a 1-D int32 tensor and its number of elements."""
    if isinstance(shape, tf.TensorShape):
        if not shape.is_fully_defined():
            raise ValueError(f"Expected a fully defined shape. Received: shape={shape}")
        shape = shape.as_list()
    if isinstance(shape, (list, tuple)):
        dims = []
        for dim in shape:
            if isinstance(dim, numbers.Integral) and not isinstance(dim, bool):
                if dim < 0:
                    raise ValueError(
                        f"Expected shape to have non-negative entries. Received: shape={shape}"
                    )
                dims.append(int(dim))
            elif _is_integer_scalar_tensor(dim):
                dims.append(tf.cast(dim, tf.int32))
            else:
                raise ValueError(f"Expected shape entries to be integers. Received: shape={shape}")
        if all(isinstance(dim, int) for dim in dims):
            size = math.prod(dims)
            if size > _MAX_ELEMENTS:
                raise ValueError(
                    f"Expected shape to have fewer than 2**31 elements. Received: shape={shape}"
                )
            return tf.constant(dims, tf.int32), size
        shape = tf.stack([tf.constant(d, tf.int32) if isinstance(d, int) else d for d in dims])
    else:
        shape = tf.convert_to_tensor(shape)
        if not shape.dtype.is_integer or shape.shape.rank not in (None, 1):
            raise ValueError(
                f"Expected shape to be a 1-D integer tensor or a list of ints. Received: "
                f"shape={shape}"
            )
        shape = tf.cast(shape, tf.int32)
        static = tf.get_static_value(shape)
        if static is not None and (static < 0).any():
            raise ValueError(
                f"Expected shape to have non-negative entries. Received: shape={static.tolist()}"
            )
    return shape, tf.reduce_prod(shape)


def _is_integer_scalar_tensor(value):
    if not isinstance(value, (tf.Tensor, tf.Variable, np.ndarray)):
        return False
    rank = tf.TensorShape(value.shape).rank
    return tf.as_dtype(value.dtype).is_integer and rank in (None, 0)


def int32_bits(value: int) -> int:
    """The signed int32 holding an integer's low 32 bits (`2**32 - 1` gives `-1`).

    How a Python seed in [0, 2**32) reaches int32 tensors: the exported
    signatures' `seed` input and a model's sampler state.
    """
    low = int(value) & 0xFFFFFFFF
    return low - 2**32 if low >= 2**31 else low


def _int32_scalar(value, name):
    """Converts an integer or integer scalar tensor to an int32 scalar (low 32 bits)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return tf.constant(int32_bits(value), tf.int32)
    if _is_integer_scalar_tensor(value):
        return tf.cast(value, tf.int32)
    raise ValueError(f"Expected {name} to be an integer. Received: {name}={value!r}")


# 32-bit words are (hi, lo) pairs of int32 tensors holding 16-bit limbs.


def _split(x):
    """The two's-complement bit pattern of an int32 tensor as (hi, lo) limbs.

    Only non-negative numbers are shifted and reduced: tf2onnx lowers a right
    shift to a logical one and `floor_mod` through a division that truncates,
    which differ from TensorFlow's for negative numbers. A negative `x` is
    lifted by 2**31 (its low 31 bits unchanged) and its sign bit put back in
    `hi`.
    """
    negative = tf.cast(x < 0, tf.int32)
    lifted = x - negative * tf.constant(-(2**31), tf.int32)  # in [0, 2**31)
    hi = tf.bitwise.right_shift(lifted, 16) + negative * (1 << 15)
    return hi, tf.math.floormod(lifted, _LIMB)


def _const(value):
    """The (hi, lo) limbs of a non-negative int or int64 array below 2**32, as int32."""
    if isinstance(value, np.ndarray):
        return (value >> 16).astype(np.int32), (value & 0xFFFF).astype(np.int32)
    return value >> 16, value & 0xFFFF


def _xor(a, b):
    return tf.bitwise.bitwise_xor(a[0], b[0]), tf.bitwise.bitwise_xor(a[1], b[1])


def _add(a, b):
    lo = a[1] + b[1]
    hi = a[0] + b[0] + tf.bitwise.right_shift(lo, 16)
    return tf.math.floormod(hi, _LIMB), tf.math.floormod(lo, _LIMB)


def _xor_shift(x, shift):
    """`x ^ (x >> shift)` for 0 < shift <= 16."""
    hi, lo = x
    if shift == 16:
        return hi, tf.bitwise.bitwise_xor(lo, hi)
    # hi * 2**(16 - shift) < 2**31, so the carried bits never overflow.
    shifted_lo = tf.math.floormod(hi * (1 << (16 - shift)), _LIMB) + tf.bitwise.right_shift(
        lo, shift
    )
    return _xor(x, (tf.bitwise.right_shift(hi, shift), shifted_lo))


def _mul(x, constant):
    """`x * constant mod 2**32` with every partial product below 2**24."""
    hi, lo = x
    c0, c1, c2, c3 = (constant >> (8 * k) & 0xFF for k in range(4))
    lo_c1 = lo * c1
    low = lo * c0 + tf.math.floormod(lo_c1, 256) * 256
    high = (
        tf.bitwise.right_shift(low, 16)
        + tf.bitwise.right_shift(lo_c1, 8)
        + lo * c2
        + tf.math.floormod(lo * c3, 256) * 256
        + hi * c0
        + tf.math.floormod(hi * c1, 256) * 256
    )
    return tf.math.floormod(high, _LIMB), tf.math.floormod(low, _LIMB)


def _mix(x, ops=None):
    """Wellons' `lowbias32` integer hash, a bijection of 32-bit words."""
    ops = ops or _INT32_OPS
    x = ops.xor_shift(x, 16)
    x = ops.mul(x, _MIX_MULTIPLIERS[0])
    x = ops.xor_shift(x, 15)
    x = ops.mul(x, _MIX_MULTIPLIERS[1])
    return ops.xor_shift(x, 16)


def _stream_words(seed, counter, streams, ops=None):
    """`word_j(c)` of the module docstring for each stream `j` in `streams`.

    The streams share one pass of the hash: the seed's keys of every stream
    are mixed as one `[2 * m, 1]` word and the counter's as one `[m, size]`
    word (m streams), so the graph holds three `mix`es however many streams
    are drawn, and every element gets the same integer ops as alone. With
    TFLite Micro's ops each stream has its own pass: the whole graph shares
    one arena, and the `[m, size, 16]` bits of a shared XOR made the MNIST
    MLP's 16-sample arena 508 KiB instead of 330 (`benchmarks/tflite_micro.py`).

    Args:
        seed: (hi, lo) limbs of a scalar word (a numpy uint32 with the numpy
            op set).
        counter: (hi, lo) limbs of a 1-D word `[size]` (a uint32 array with
            the numpy op set).
        streams: sequence of ints. The stream indices j.
        ops: `_LimbOps`. Defaults to the int32 op set.

    Returns:
        (hi, lo) limbs `[len(streams), size]`, or a uint32 array with the
        numpy op set; row `k` is stream `streams[k]`.
    """
    ops = ops or _INT32_OPS
    if ops is _NUMPY_OPS:
        keys = np.array([_STREAM_KEYS[2 * j : 2 * j + 2] for j in streams], np.uint32)
        keys = _mix(seed ^ keys, ops)  # [m, 2]: each stream's inner and outer key
        return _mix(_mix(counter ^ keys[:, :1], ops) ^ keys[:, 1:], ops)
    if ops is _MICRO_OPS and len(streams) > 1:
        words = [_stream_words(seed, counter, [j], ops) for j in streams]
        # Rows of the same [m, size] word as the shared pass gives.
        return tuple(tf.concat(limbs, 0) for limbs in zip(*words, strict=True))
    keys = [_STREAM_KEYS[2 * j] for j in streams] + [_STREAM_KEYS[2 * j + 1] for j in streams]
    keys = _mix(ops.xor(seed, _const(np.array(keys, np.int64)[:, None])), ops)
    inner_key, outer_key = zip(*(tf.split(limb, 2) for limb in keys), strict=True)
    return _mix(ops.xor(_mix(ops.xor(counter, inner_key), ops), outer_key), ops)


def _to_unit(word):
    """`(2 * (word >> 9) + 1) * 2**-24`: exact in float32, inside (0, 1)."""
    hi, lo = word
    odd = hi * 256 + tf.bitwise.right_shift(lo, 9) * 2 + 1
    return tf.cast(odd, tf.float32) * np.float32(2.0**-24)


def _minus_log(u, select=tf.where):
    """`-log(u)`, through its Taylor series where `u > 7/8`.

    Near 1, `log` kernels that are accurate in absolute terms lose relative
    accuracy; `1 - u` is exact there (Sterbenz), and eight terms of
    `-log(1 - v) = v + v^2/2 + ...` are within 1e-8 relative for `v < 1/8`.
    """
    v = 1.0 - u
    series = np.float32(1.0 / _LOG_SERIES_TERMS)
    for k in range(_LOG_SERIES_TERMS - 1, 0, -1):
        series = np.float32(1.0 / k) + v * series
    return select(u > _LOG_SERIES_ABOVE, v * series, -tf.math.log(u))


def _static_slice(op, value, begin, end, strides):
    """A StridedSlice of a 1-D static value, or `None` for the masks it does not handle."""
    if value.ndim != 1 or op.get_attr("ellipsis_mask") or op.get_attr("new_axis_mask"):
        return None
    start = None if op.get_attr("begin_mask") & 1 else int(begin[0])
    if op.get_attr("shrink_axis_mask") & 1:
        return value[start or 0]
    stop = None if op.get_attr("end_mask") & 1 else int(end[0])
    return value[start : stop : int(strides[0])]


# The same limb arithmetic in float32 for TFLite Micro (see `tflite_micro_ops`):
# every value is an integer below 2^24, so every float op is exact.


def _micro_split(x):
    """The bit pattern of an int32 tensor as float32 (hi, lo) limbs.

    The int16 cast keeps the low 16 bits, as a signed `low`. `x - low` is a
    multiple of 2^16 that int32 may not hold (2^31 for `x = 2^31 - 1`), so it
    is formed in float32 instead: `float32(x)` is off by at most 64, which
    rounding `(float32(x) - low) / 2^16` to the nearest integer removes.
    """
    low = tf.cast(tf.cast(x, tf.int16), tf.float32)
    scale = np.float32(1.0 / _LIMB)
    high = tf.math.floor((tf.cast(x, tf.float32) - low) * scale + np.float32(0.5))
    # A negative `low` borrowed 2^16 from the high limb.
    high = high + tf.math.floordiv(low, np.float32(_LIMB))
    return tf.math.floormod(high, np.float32(_LIMB)), tf.math.floormod(low, np.float32(_LIMB))


def _micro_bits(x):
    """The 16 bits of a float32 limb along a new last axis."""
    return tf.math.floormod(tf.math.floordiv(tf.expand_dims(x, -1), _BIT_WEIGHTS), 2.0)


def _micro_xor_limb(a, b):
    if not isinstance(a, tf.Tensor) and not isinstance(b, tf.Tensor):
        return np.float32(int(a) ^ int(b))
    a, b = tf.convert_to_tensor(a, tf.float32), tf.convert_to_tensor(b, tf.float32)
    differences = tf.math.squared_difference(_micro_bits(a), _micro_bits(b))
    return tf.reduce_sum(differences * _BIT_WEIGHTS, axis=-1)


def _micro_xor(a, b):
    return _micro_xor_limb(a[0], b[0]), _micro_xor_limb(a[1], b[1])


def _micro_add(a, b):
    lo = a[1] + b[1]
    hi = a[0] + b[0] + tf.math.floordiv(lo, np.float32(_LIMB))
    return tf.math.floormod(hi, np.float32(_LIMB)), tf.math.floormod(lo, np.float32(_LIMB))


def _micro_mod(x, power):
    return tf.math.floormod(x, np.float32(1 << power))


def _micro_shift(x, shift):
    return tf.math.floordiv(x, np.float32(1 << shift))


def _micro_xor_shift(x, shift):
    """`x ^ (x >> shift)` for 0 < shift <= 16."""
    hi, lo = x
    if shift == 16:
        return hi, _micro_xor_limb(lo, hi)
    # The bits of hi that move into lo, masked before they are scaled.
    shifted_lo = _micro_mod(hi, shift) * np.float32(1 << (16 - shift)) + _micro_shift(lo, shift)
    return _micro_xor(x, (_micro_shift(hi, shift), shifted_lo))


def _micro_mul(x, constant):
    """`x * constant mod 2**32`; every partial product and sum below 2**24."""
    hi, lo = x
    c0, c1, c2, c3 = (np.float32(constant >> (8 * k) & 0xFF) for k in range(4))
    lo_c0 = lo * c0
    lo_c1 = lo * c1
    low_sum = _micro_mod(lo_c0, 16) + _micro_mod(lo_c1, 8) * np.float32(256)
    high = (
        _micro_shift(lo_c0, 16)
        + _micro_shift(low_sum, 16)
        + _micro_shift(lo_c1, 8)
        + _micro_mod(lo * c2, 16)
        + _micro_mod(lo * c3, 8) * np.float32(256)
        + _micro_mod(hi * c0, 16)
        + _micro_mod(hi * c1, 8) * np.float32(256)
    )
    return _micro_mod(high, 16), _micro_mod(low_sum, 16)


def _micro_to_unit(word):
    hi, lo = word
    odd = hi * np.float32(256) + _micro_shift(lo, 9) * np.float32(2) + np.float32(1)
    return odd * np.float32(2.0**-24)


def _blend(condition, x, y):
    """`tf.where(condition, x, y)` for finite `x` and `y`, as a 0/1 blend.

    TFLite Micro has no SELECT, which `tf.where` becomes; with a mask of
    exactly 0 or 1 the blend equals the selection bit for bit.
    """
    mask = tf.cast(condition, tf.float32)
    return mask * x + (np.float32(1.0) - mask) * y


# Whole uint32 words in numpy, for eager calls (see `_prepare_eager`); array
# products wrap modulo 2^32, as the algorithm's do.


def _numpy_xor_shift(x, shift):
    return x ^ (x >> np.uint32(shift))


def _numpy_mul(x, constant):
    return x * np.uint32(constant)


def _numpy_to_unit(word):
    odd = (word >> np.uint32(9)).astype(np.int32) * 2 + 1
    return odd.astype(np.float32) * np.float32(2.0**-24)


_LimbOps = collections.namedtuple("_LimbOps", "xor xor_shift mul to_unit select")
_INT32_OPS = _LimbOps(_xor, _xor_shift, _mul, _to_unit, tf.where)
_MICRO_OPS = _LimbOps(_micro_xor, _micro_xor_shift, _micro_mul, _micro_to_unit, _blend)
_NUMPY_OPS = _LimbOps(np.bitwise_xor, _numpy_xor_shift, _numpy_mul, _numpy_to_unit, tf.where)
