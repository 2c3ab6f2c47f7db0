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
of two, and left shifts are multiplications by a power of two. Only the float
stage (log, sqrt, cos) may differ, by a few ulps: between runtimes, and even
within one runtime, where vectorised kernels can round a tensor's tail
differently from its body.

Shapes are checked for negative entries when they are known statically; a
dynamic shape tensor is taken as it is.

Reference:
    Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011
    (counter-based generators); Wellons, "Prospecting for Hash Functions", 2018
    (`lowbias32`); Box & Muller, "A note on the generation of random normal
    deviates", 1958.
"""

import math
import numbers

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
    shape, seed, counter = _prepare(shape, seed, counter_offset)
    return tf.reshape(_to_unit(_stream_word(seed, counter, _UNIFORM_STREAM)), shape)


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
    shape, seed, counter = _prepare(shape, seed, counter_offset)
    radius_stream, angle_stream = _NORMAL_STREAMS
    u1 = _to_unit(_stream_word(seed, counter, radius_stream))
    u2 = _to_unit(_stream_word(seed, counter, angle_stream))
    z = tf.sqrt(2.0 * _minus_log(u1)) * tf.cos(_TWO_PI * u2)
    return tf.reshape(z, shape)


def _prepare(shape, seed, counter_offset):
    """Validates the arguments; returns the shape, seed word and counter words."""
    shape, size = _shape_and_size(shape)
    seed = _int32_scalar(seed, "seed")
    if isinstance(counter_offset, numbers.Integral) and not isinstance(counter_offset, bool):
        if not 0 <= counter_offset < 2**32:
            raise ValueError(
                "Expected counter_offset to be an integer in [0, 2**32). "
                f"Received: counter_offset={counter_offset}"
            )
    offset = _int32_scalar(counter_offset, "counter_offset")
    index = tf.range(size)
    counter = _add(_split(offset), _split(index))
    return shape, _split(seed), counter


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


def _int32_scalar(value, name):
    """Converts an integer or integer scalar tensor to an int32 scalar (low 32 bits)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        low = int(value) & 0xFFFFFFFF
        return tf.constant(low - 2**32 if low >= 2**31 else low, tf.int32)
    if _is_integer_scalar_tensor(value):
        return tf.cast(value, tf.int32)
    raise ValueError(f"Expected {name} to be an integer. Received: {name}={value!r}")


# 32-bit words are (hi, lo) pairs of int32 tensors holding 16-bit limbs.


def _split(x):
    """The two's-complement bit pattern of an int32 tensor as (hi, lo) limbs."""
    return tf.math.floormod(tf.bitwise.right_shift(x, 16), _LIMB), tf.math.floormod(x, _LIMB)


def _const(value):
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


def _mix(x):
    """Wellons' `lowbias32` integer hash, a bijection of 32-bit words."""
    x = _xor_shift(x, 16)
    x = _mul(x, _MIX_MULTIPLIERS[0])
    x = _xor_shift(x, 15)
    x = _mul(x, _MIX_MULTIPLIERS[1])
    return _xor_shift(x, 16)


def _stream_word(seed, counter, stream):
    """`word_j(c)` of the module docstring for stream `j`."""
    inner_key = _mix(_xor(seed, _const(_STREAM_KEYS[2 * stream])))
    outer_key = _mix(_xor(seed, _const(_STREAM_KEYS[2 * stream + 1])))
    return _mix(_xor(_mix(_xor(counter, inner_key)), outer_key))


def _to_unit(word):
    """`(2 * (word >> 9) + 1) * 2**-24`: exact in float32, inside (0, 1)."""
    hi, lo = word
    odd = hi * 256 + tf.bitwise.right_shift(lo, 9) * 2 + 1
    return tf.cast(odd, tf.float32) * np.float32(2.0**-24)


def _minus_log(u):
    """`-log(u)`, through its Taylor series where `u > 7/8`.

    Near 1, `log` kernels that are accurate in absolute terms lose relative
    accuracy; `1 - u` is exact there (Sterbenz), and eight terms of
    `-log(1 - v) = v + v^2/2 + ...` are within 1e-8 relative for `v < 1/8`.
    """
    v = 1.0 - u
    series = np.float32(1.0 / _LOG_SERIES_TERMS)
    for k in range(_LOG_SERIES_TERMS - 1, 0, -1):
        series = np.float32(1.0 / k) + v * series
    return tf.where(u > _LOG_SERIES_ABOVE, v * series, -tf.math.log(u))
