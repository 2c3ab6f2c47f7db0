"""Constants, data and an independent RNG reference shared by the export tests."""

import numpy as np

LATENT_DIM = 4
NUM_CLASSES = 10
QUANTIZE = [None, "float16", "dynamic", "int8"]
QUANTIZE_IDS = ["float32", "float16", "dynamic", "int8"]


def binary_images(n, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.5).astype("float32")


def one_hot(labels):
    return np.eye(NUM_CLASSES, dtype="float32")[np.asarray(labels)]


# --- an independent reference for the latents -------------------------------
# Written from `keras_vae.ops.random`'s docstring in numpy uint64 and float64,
# not from its int32-limb TF code: z of the standard-normal prior is the
# normal draw itself, row-major over [num_samples, latent_dim].

MASK32 = 0xFFFFFFFF
PI_WORDS = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0)


def _mix(x):
    x = np.asarray(x, np.uint64) & MASK32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & MASK32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & MASK32
    x ^= x >> np.uint64(16)
    return x


def _unit(seed, counter, stream):
    s = np.uint64(seed & MASK32)
    inner = _mix(s ^ np.uint64(PI_WORDS[2 * stream]))
    outer = _mix(s ^ np.uint64(PI_WORDS[2 * stream + 1]))
    word = _mix(_mix(np.asarray(counter, np.uint64) ^ inner) ^ outer)
    return (2.0 * (word >> np.uint64(9)).astype(np.float64) + 1.0) * 2.0**-24


def reference_normal(shape, seed):
    """Standard normal draws of the portable RNG, in float64."""
    counter = np.arange(int(np.prod(shape)))
    angle = (np.float32(2.0 * np.pi) * _unit(seed, counter, 2).astype(np.float32)).astype(float)
    z = np.sqrt(-2.0 * np.log(_unit(seed, counter, 1))) * np.cos(angle)
    return z.reshape(shape)
