"""Constants, data and an independent RNG reference shared by the export tests."""

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as litert_schema
from rng_reference import ref_to_unit, ref_word

LATENT_DIM = 4
NUM_CLASSES = 10
QUANTIZE = [None, "float16", "dynamic", "int8"]
QUANTIZE_IDS = ["float32", "float16", "dynamic", "int8"]
# The fixed batches of the `static_tflite` fixture's files (`batch_sizes`).
STATIC_BATCH_SIZES = (1, 64)
# TFLite's builtin operators: a file with only these runs on a stock runtime.
BUILTIN_OPS = {name for name in vars(litert_schema.BuiltinOperator) if name.isupper()} - {
    "CUSTOM",
    "DELEGATE",
}


def binary_images(n, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28, 1)) < 0.5).astype("float32")


def one_hot(labels):
    return np.eye(NUM_CLASSES, dtype="float32")[np.asarray(labels)]


# --- an independent reference for the latents -------------------------------
# Written from `keras_vae.ops.random`'s docstring in numpy uint64 and float64,
# not from its int32-limb TF code: z of the standard-normal prior is the
# normal draw itself, row-major over [num_samples, latent_dim].


def _unit(seed, counter, stream):
    return ref_to_unit(ref_word(seed, counter, stream))


def reference_normal(shape, seed):
    """Standard normal draws of the portable RNG, in float64."""
    counter = np.arange(int(np.prod(shape)))
    angle = (np.float32(2.0 * np.pi) * _unit(seed, counter, 2)).astype(float)
    z = np.sqrt(-2.0 * np.log(_unit(seed, counter, 1).astype(float))) * np.cos(angle)
    return z.reshape(shape)


def earlier_export(vae_tflite):
    """The bytes of an earlier keras-vae `.tflite` file (the float16 one), which an export of
    the float32 file replaces: other bytes than the export writes."""
    with open(vae_tflite["float16"], "rb") as f:
        return f.read()


class MatrixInverse(keras.layers.Layer):
    """A layer of an op TFLite's builtins lack (TF Select's MatrixInverse), for 2 inputs."""

    def call(self, z):
        return tf.reduce_sum(tf.linalg.inv(tf.eye(2) + 0.1 * z[:, :, None] * z[:, None, :]), -1)
