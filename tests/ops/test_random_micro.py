"""The TFLite Micro op set of `keras_vae.ops.random` (`tflite_micro_ops`).

Checked bit for bit against the numpy reference written from the module's
spec (`rng_reference.py`), in TensorFlow and in `tflite_micro` itself.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from rng_reference import ref_to_unit, ref_word

from keras_vae.export.tflite import tflite_ops
from keras_vae.export.tflite_micro import TFLM_OPS
from keras_vae.ops import random

INT32 = st.integers(-(2**31), 2**31 - 1)
# Seeds near the int16 and int32 edges, where the seed's limb split carries.
EDGE_SEEDS = [0, 1, -1, 32767, -32768, 32768, 65535, 65536, -65537, 2**31 - 1, -(2**31)]
EDGE_SEEDS += [2**31 - 32768, 2**31 - 65536, 987654321]
SHAPE = (3, 7)


def words_to_uint(limbs):
    hi, lo = (np.asarray(limb) for limb in limbs)
    return hi.astype(np.uint64) * 65536 + lo.astype(np.uint64)


@tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([64], tf.int32)])
def micro_words(seed, counter):
    seed, counter = random._micro_split(seed), random._micro_split(counter)
    hi, lo = random._stream_words(seed, counter, [0, 1, 2], random._MICRO_OPS)
    return list(zip(tf.unstack(hi), tf.unstack(lo), strict=True))


@settings(max_examples=40, deadline=None, database=None)
@given(seed=INT32, counters=st.lists(INT32, min_size=64, max_size=64))
def test_micro_integer_hash_bit_exact_with_reference(seed, counters):
    # All 32 bits of every stream's word, for any seed and counter.
    counter = np.array(counters, np.int32)
    for stream, word in enumerate(micro_words(np.int32(seed), counter)):
        np.testing.assert_array_equal(words_to_uint(word), ref_word(seed, counter, stream))


@pytest.mark.parametrize("seed", EDGE_SEEDS)
def test_micro_split_is_the_bit_pattern(seed):
    hi, lo = random._micro_split(tf.constant(seed, tf.int32))
    assert int(hi) * 65536 + int(lo) == seed % 2**32


@settings(max_examples=15, deadline=None, database=None)
@given(seed=INT32, offset=st.integers(0, 2**32 - 1))
def test_micro_uniform_bit_exact_and_normal_equal_to_default(seed, offset):
    with random.tflite_micro_ops():
        micro_u = random.uniform(SHAPE, seed, counter_offset=offset)
        micro_n = random.normal(SHAPE, seed)
    size = np.prod(SHAPE)
    expected = ref_to_unit(ref_word(seed, (offset + np.arange(size)) % 2**32, 0))
    np.testing.assert_array_equal(micro_u.numpy().ravel(), expected)
    # Same uniforms, same float ops: the normals equal the default op set's.
    np.testing.assert_array_equal(micro_n.numpy(), random.normal(SHAPE, seed).numpy())


def test_context_restores_the_default_op_set():
    def graph_ops():
        graph = tf.function(lambda seed: random.uniform([4], seed))
        concrete = graph.get_concrete_function(tf.TensorSpec([], tf.int32))
        return {op.type for op in concrete.graph.get_operations()}

    with random.tflite_micro_ops():
        micro = graph_ops()
    default = graph_ops()
    assert {"BitwiseXor", "RightShift"} <= default
    assert not {"BitwiseXor", "RightShift", "Range"} & micro


def test_micro_refuses_a_dynamic_shape():
    def draw(n):
        with random.tflite_micro_ops():
            return random.normal(tf.stack([n, 2]), 0)

    graph = tf.function(draw, input_signature=[tf.TensorSpec([], tf.int32)])
    with pytest.raises(ValueError, match="Expected a static shape for TFLite Micro"):
        graph.get_concrete_function()


def test_micro_shapes_from_reshape_and_condition_batch():
    # The priors build shapes with tf.reshape(num_samples, [1]) and tf.shape(condition)[0].
    @tf.function(input_signature=[tf.TensorSpec([5, 3], tf.float32)])
    def draw(condition):
        leading = tf.stack([tf.shape(condition)[0], tf.reshape(tf.cast(2, tf.int32), [])])
        with random.tflite_micro_ops():
            return random.normal(tf.concat([leading, [4]], 0), 9)

    np.testing.assert_array_equal(draw(tf.zeros([5, 3])).numpy(), random.normal([5, 2, 4], 9))


@pytest.fixture(scope="module")
def micro_rng_file():
    # Uniforms only: the normals' float stage is checked against Keras through the
    # exported sampler's z (tests/export/test_tflite_micro.py), and each stream
    # adds seconds of conversion.
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def draws(seed):
        with random.tflite_micro_ops():
            return random.uniform([6, 8], seed, counter_offset=2**32 - 20)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([draws.get_concrete_function()])
    return converter.convert()


def test_micro_rng_uses_tflite_micro_ops_only(micro_rng_file):
    ops = tflite_ops(micro_rng_file)
    assert ops <= TFLM_OPS, ops - TFLM_OPS
    assert not {"BITWISE_XOR", "RIGHT_SHIFT", "RANGE", "REDUCE_PROD", "SELECT"} & ops


def test_micro_rng_bit_exact_in_tflite_micro(micro_rng_file):
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    interpreter = runtime.Interpreter.from_bytes(micro_rng_file, arena_size=1 << 20)
    assert tuple(interpreter.get_output_details(0)["shape"]) == (6, 8)
    counter = (2**32 - 20 + np.arange(48)) % 2**32  # wraps past 2**32
    for seed in EDGE_SEEDS:
        interpreter.set_input(np.array(seed, np.int32), 0)
        interpreter.invoke()
        uniform = ref_to_unit(ref_word(seed, counter, 0)).reshape(6, 8)
        np.testing.assert_array_equal(interpreter.get_output(0), uniform)
