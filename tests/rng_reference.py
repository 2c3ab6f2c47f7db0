"""A numpy reference of `keras_vae.ops.random`'s integer hash, shared by the tests.

Written from the algorithm in the module's docstring, in uint64 masked to 32
bits, not from its int32-limb TensorFlow code.
"""

import numpy as np

MASK32 = 0xFFFFFFFF
PI_WORDS = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0)


def ref_mix(x):
    x = np.asarray(x, np.uint64) & MASK32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & MASK32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & MASK32
    x ^= x >> np.uint64(16)
    return x


def ref_word(seed, counter, stream):
    """word_j(c); `seed` and `counter` broadcast, Python ints or arrays."""
    s = np.asarray(seed, np.int64).astype(np.uint64) & MASK32
    c = np.asarray(counter, np.int64).astype(np.uint64) & MASK32
    inner = ref_mix(s ^ np.uint64(PI_WORDS[2 * stream]))
    outer = ref_mix(s ^ np.uint64(PI_WORDS[2 * stream + 1]))
    return ref_mix(ref_mix(c ^ inner) ^ outer)


def ref_to_unit(word):
    return (2 * (word >> np.uint64(9)) + 1).astype(np.float32) * np.float32(2.0**-24)
