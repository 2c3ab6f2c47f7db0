"""Tests for the counter-based RNG in `keras_vae.ops.random`.

The reference below is written from the module docstring's spec with plain
numpy uint64 arithmetic masked to 32 bits, not from the limb implementation,
so agreement checks the limb arithmetic as well as the runtimes.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as tflite_schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from rng_reference import MASK32, ref_mix, ref_to_unit, ref_word
from scipy import stats

from keras_vae.ops import random

LATENT_DIM = 8
SEEDS = [0, 1, 42, -1, -(2**31), 2**31 - 1, 2**32 + 5, 987654321]


# --- numpy reference ---------------------------------------------------------


def ref_uniform(size, seed, counter_offset=0):
    return ref_to_unit(ref_word(seed, counter_offset + np.arange(size), 0))


def ref_normal(size, seed, counter_offset=0):
    counter = counter_offset + np.arange(size)
    u1 = ref_to_unit(ref_word(seed, counter, 1))
    u2 = ref_to_unit(ref_word(seed, counter, 2))
    # float32 throughout, as the spec says.
    v = np.float32(1.0) - u1
    series = np.float32(0.0)
    for k in range(8, 0, -1):
        series = series * v + np.float32(1.0 / k)
    minus_log = np.where(u1 > np.float32(7 / 8), v * series, -np.log(u1))
    return np.sqrt(np.float32(2.0) * minus_log) * np.cos(np.float32(2.0 * np.pi) * u2)


def assert_normal_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


def ref_unmix(x):
    """Wellons' published inverse of lowbias32, with its own constants."""
    x = np.asarray(x, np.uint64) & MASK32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x43021123)) & MASK32
    x ^= (x >> np.uint64(15)) ^ (x >> np.uint64(30))
    x = (x * np.uint64(0x1D69E2A5)) & MASK32
    x ^= x >> np.uint64(16)
    return x


def test_reference_mix_is_lowbias32():
    # Inverting with the independently published inverse pins the constants.
    x = np.concatenate([np.arange(1000), np.random.default_rng(0).integers(0, 2**32, 1000)])
    np.testing.assert_array_equal(ref_unmix(ref_mix(x)), x.astype(np.uint64))
    assert int(ref_mix(0)) == 0


# --- agreement between execution modes ----------------------------------------


def eager(fn):
    return fn


def graph(fn):
    return tf.function(fn)


def xla(fn):
    return tf.function(fn, jit_compile=True)


MODES = {"eager": eager, "tf_function": graph, "xla": xla}


@pytest.mark.parametrize("mode", MODES)
def test_uniform_bit_exact_with_reference(mode):
    run = MODES[mode](lambda seed: random.uniform([len(SEEDS), 50, 3], seed, counter_offset=7))
    for seed in SEEDS:
        actual = run(tf.constant(seed, tf.int64)).numpy()
        expected = ref_uniform(len(SEEDS) * 150, seed, 7).reshape(len(SEEDS), 50, 3)
        assert actual.dtype == np.float32
        # The float step is exact, so equal floats mean equal integer hashes.
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("mode", MODES)
def test_integer_hash_bit_exact_with_reference(mode):
    # All 32 bits of every stream's word, not just the 23 that reach a float.
    # Streams 2, 0, 1 drawn together: each row is its own stream's word.
    streams = [2, 0, 1]

    def words(seed, counter):
        return random._stream_words(random._split(seed), random._split(counter), streams)

    run = MODES[mode](words)
    counter = np.concatenate([np.arange(500), [2**31 - 1, -(2**31), -1]]).astype(np.int32)
    for seed in SEEDS:
        seed32 = tf.cast(tf.constant(seed, tf.int64), tf.int32)
        hi_rows, lo_rows = run(seed32, tf.constant(counter))
        for stream, hi, lo in zip(streams, hi_rows, lo_rows, strict=True):
            actual = hi.numpy().astype(np.uint64) * 65536 + lo.numpy().astype(np.uint64)
            np.testing.assert_array_equal(actual, ref_word(seed, counter, stream))


def test_eager_words_in_numpy_are_bit_exact_with_reference():
    # An eager call hashes whole uint32 words in numpy instead of the limbs:
    # all 32 bits of every stream's word, at counters that wrap.
    streams = [2, 0, 1]
    counter = np.concatenate([np.arange(500), [2**31 - 1, 2**31, 2**32 - 1]]).astype(np.uint32)
    for seed in SEEDS:
        words = random._stream_words(
            np.uint32(seed & 0xFFFFFFFF), counter, streams, random._NUMPY_OPS
        )
        assert words.dtype == np.uint32
        for stream, row in zip(streams, words, strict=True):
            np.testing.assert_array_equal(row, ref_word(seed, counter, stream))


def test_eager_draws_equal_graph_draws_bit_for_bit():
    # Eager calls take the numpy words; the float stage is the same TensorFlow
    # ops on the same shapes, so a tf.function gives the same bits.
    @tf.function
    def draw(seed, offset):
        return random.uniform([7, 30], seed, offset), random.normal([7, 30], seed, offset)

    for seed, offset in zip(SEEDS, [0, 3, 2**32 - 100, 2**31, 5, 0, 17, 2**32 - 1], strict=True):
        eager_draws = (
            random.uniform([7, 30], seed, offset),
            random.normal([7, 30], tf.constant(seed, tf.int64), tf.constant(offset, tf.int64)),
        )
        graph_draws = draw(tf.constant(seed, tf.int64), tf.constant(offset, tf.int64))
        for eager_draw, graph_draw in zip(eager_draws, graph_draws, strict=True):
            np.testing.assert_array_equal(eager_draw, graph_draw)


@pytest.mark.parametrize("mode", MODES)
def test_normal_matches_reference(mode):
    run = MODES[mode](lambda seed: random.normal([40, 25], seed, counter_offset=3))
    for seed in SEEDS:
        actual = run(tf.constant(seed, tf.int64)).numpy()
        assert actual.dtype == np.float32
        assert_normal_close(actual, ref_normal(1000, seed, 3).reshape(40, 25))


@pytest.mark.parametrize("seed", SEEDS)
def test_python_seed_equals_tensor_seed(seed):
    from_python = random.uniform([20], seed).numpy()
    from_int64 = random.uniform([20], tf.constant(seed, tf.int64)).numpy()
    from_int32 = random.uniform([20], tf.cast(tf.constant(seed, tf.int64), tf.int32)).numpy()
    np.testing.assert_array_equal(from_python, from_int64)
    np.testing.assert_array_equal(from_python, from_int32)
    np.testing.assert_array_equal(from_python, ref_uniform(20, seed))


def test_counter_offset_continues_the_stream():
    whole_u = random.uniform([30], 5).numpy()
    whole_z = random.normal([30], 5).numpy()
    np.testing.assert_array_equal(random.uniform([20], 5, counter_offset=10), whole_u[10:])
    # Eigen's vectorised log/cos may round a tensor's tail differently from its
    # body, so the same counter can differ by an ulp at another position.
    assert_normal_close(random.normal([20], 5, counter_offset=10), whole_z[10:])
    offset = tf.constant(10)
    np.testing.assert_array_equal(random.uniform([20], 5, counter_offset=offset), whole_u[10:])


def test_counter_wraps_modulo_2_32():
    actual = random.uniform([6], 11, counter_offset=2**32 - 3).numpy()
    expected = ref_to_unit(ref_word(11, [2**32 - 3, 2**32 - 2, 2**32 - 1, 0, 1, 2], 0))
    np.testing.assert_array_equal(actual, expected)


def test_dynamic_shape_in_tf_function():
    @tf.function(input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])
    def sample(seed, num_samples):
        return random.normal([num_samples, LATENT_DIM], seed)

    concrete = sample.get_concrete_function()
    assert concrete.structured_outputs.shape.as_list() == [None, LATENT_DIM]
    actual = sample(tf.constant(9), tf.constant(5)).numpy()
    assert actual.shape == (5, LATENT_DIM)
    assert_normal_close(actual, ref_normal(5 * LATENT_DIM, 9).reshape(5, LATENT_DIM))
    shape_tensor = tf.constant([5, LATENT_DIM], tf.int64)
    np.testing.assert_array_equal(random.normal(shape_tensor, 9), actual)


@pytest.mark.parametrize("shape", [[], [0], [3, 0, 2], (2, 3)])
def test_static_shapes(shape):
    for fn in (random.uniform, random.normal):
        out = fn(shape, 1)
        assert out.shape == tuple(shape)
        assert out.dtype == tf.float32


# --- SavedModel in a fresh process and TFLite -------------------------------


class Sampler(tf.Module):
    @tf.function(
        input_signature=[
            tf.TensorSpec([], tf.int32, name="seed"),
            tf.TensorSpec([], tf.int32, name="num_samples"),
        ]
    )
    def sample(self, seed, num_samples):
        shape = [num_samples, LATENT_DIM]
        return {"uniform": random.uniform(shape, seed), "normal": random.normal(shape, seed)}


@pytest.fixture(scope="module")
def sampler():
    return Sampler()


def test_saved_model_in_fresh_process(sampler, tmp_path):
    path = tmp_path / "sampler"
    tf.saved_model.save(sampler, str(path), signatures={"serving_default": sampler.sample})
    # The child never imports keras_vae: the SavedModel must stand on its own.
    script = textwrap.dedent(
        f"""
        import json, tensorflow as tf
        loaded = tf.saved_model.load({str(path)!r})
        serve = loaded.signatures["serving_default"]
        out = {{}}
        for seed in (3, -7):
            result = serve(seed=tf.constant(seed), num_samples=tf.constant(6))
            out[seed] = {{k: v.numpy().tolist() for k, v in result.items()}}
        print(json.dumps(out))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for seed in (3, -7):
        uniform = np.asarray(out[str(seed)]["uniform"], np.float32)
        normal = np.asarray(out[str(seed)]["normal"], np.float32)
        assert uniform.shape == normal.shape == (6, LATENT_DIM)
        np.testing.assert_array_equal(uniform.ravel(), ref_uniform(6 * LATENT_DIM, seed))
        assert_normal_close(normal.ravel(), ref_normal(6 * LATENT_DIM, seed))


@pytest.fixture(scope="module")
def tflite_model(sampler):
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [sampler.sample.get_concrete_function()], sampler
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def test_tflite_uses_builtin_ops_only(tflite_model):
    model = tflite_schema.Model.GetRootAs(tflite_model, 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    builtin = [max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) for code in codes]
    assert tflite_schema.BuiltinOperator.CUSTOM not in builtin
    assert not [code.CustomCode() for code in codes if code.CustomCode()]
    interpreter = Interpreter(model_content=tflite_model)
    op_names = {op["op_name"] for op in interpreter._get_ops_details()}
    builtin_names = {name for name in vars(tflite_schema.BuiltinOperator) if name.isupper()}
    assert op_names <= builtin_names - {"CUSTOM", "DELEGATE"}, op_names
    assert not [name for name in op_names if name.startswith("Flex")]


# The default resolver runs float ops through XNNPACK (LOG, COS and SQRT a few
# ulps off); the other runs TFLite's own reference kernels.
RESOLVERS = {
    "xnnpack": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
}


@pytest.mark.parametrize("resolver", RESOLVERS)
@pytest.mark.parametrize("num_samples", [1, 4096])
def test_tflite_matches_reference(tflite_model, num_samples, resolver):
    interpreter = Interpreter(
        model_content=tflite_model, experimental_op_resolver_type=RESOLVERS[resolver]
    )
    runner = interpreter.get_signature_runner()
    results = {}
    for seed in (3, 4, -(2**31)):
        out = runner(seed=np.int32(seed), num_samples=np.int32(num_samples))
        size = num_samples * LATENT_DIM
        assert out["uniform"].shape == (num_samples, LATENT_DIM)
        np.testing.assert_array_equal(out["uniform"].ravel(), ref_uniform(size, seed))
        assert_normal_close(out["normal"].ravel(), ref_normal(size, seed))
        results[seed] = out["normal"]
    assert not np.allclose(results[3], results[4])


# --- statistics ---------------------------------------------------------------

N = 100_000


@pytest.fixture(scope="module")
def draws():
    return random.uniform([N], 2024).numpy(), random.normal([N], 2024).numpy()


def test_uniform_distribution(draws):
    u, _ = draws
    assert u.min() > 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / N)
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / N)
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_normal_distribution(draws):
    _, z = draws
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1.0) < 5 * np.sqrt(2 / N)
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_normal_accuracy_against_float64():
    # Independent of the float32 reference: Box-Muller in float64 on the same
    # uniforms (and the same float32 angle the spec prescribes).
    counter = np.arange(N)
    u1 = ref_to_unit(ref_word(2024, counter, 1)).astype(np.float64)
    u2 = ref_to_unit(ref_word(2024, counter, 2))
    angle = (np.float32(2.0 * np.pi) * u2).astype(np.float64)
    exact = np.sqrt(-2.0 * np.log(u1)) * np.cos(angle)
    assert_normal_close(random.normal([N], 2024).numpy(), exact)


def test_log_series_is_as_accurate_as_log():
    # Above u1 = 7/8 a series replaces log (module docstring); its truncation must stay
    # below float32 rounding. Divided by the exact radius, the error is float32's (about
    # 2e-7 here, the cosine's included); five terms instead of eight give 3e-6.
    counter = np.arange(N)
    u1 = ref_to_unit(ref_word(2024, counter, 1)).astype(np.float64)
    u2 = ref_to_unit(ref_word(2024, counter, 2))
    angle = (np.float32(2.0 * np.pi) * u2).astype(np.float64)
    radius = np.sqrt(-2.0 * np.log(u1))
    error = np.abs(random.normal([N], 2024).numpy() - radius * np.cos(angle)) / radius
    series = u1 > 0.875
    assert np.sum(series) > 0.1 * N
    assert error[series].max() < 5e-7


def test_uniforms_stay_inside_open_interval_at_extremes():
    # The smallest and largest hashes map strictly inside (0, 1).
    extremes = ref_to_unit(np.array([0, MASK32], np.uint64))
    np.testing.assert_array_equal(extremes, np.float32([2.0**-24, 1 - 2.0**-24]))
    assert 0.0 < extremes[0] and extremes[1] < 1.0


@pytest.mark.parametrize("lag", [1, 2, 7])
def test_neighbouring_counters_uncorrelated(draws, lag):
    for x in draws:
        assert abs(np.corrcoef(x[:-lag], x[lag:])[0, 1]) < 5 / np.sqrt(N)


@pytest.mark.parametrize("seeds", [(0, 1), (41, 42), (-1, 0), (2**31 - 1, -(2**31))])
def test_neighbouring_seeds_uncorrelated(seeds):
    a, b = (random.uniform([N], s).numpy() for s in seeds)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / np.sqrt(N)
    za, zb = (random.normal([N], s).numpy() for s in seeds)
    assert abs(np.corrcoef(za, zb)[0, 1]) < 5 / np.sqrt(N)


def test_uniform_and_normal_streams_uncorrelated(draws):
    u, z = draws
    assert abs(np.corrcoef(u, z)[0, 1]) < 5 / np.sqrt(N)
    assert abs(np.corrcoef(u, np.abs(z))[0, 1]) < 5 / np.sqrt(N)


def test_first_draw_across_consecutive_seeds():
    # One draw per seed, as a sampler called with seeds 0, 1, 2, ... would make.
    # Uses the reference, which the tests above pin to the TF graph bit for bit.
    u = ref_to_unit(ref_word(np.arange(N), 0, 0))
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(N)


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "seed",
    [1.5, "3", None, True, np.float32(2.0), tf.constant(1.0), tf.constant([1, 2])],
    ids=["float", "str", "none", "bool", "np_float", "tf_float", "tf_vector"],
)
@pytest.mark.parametrize("fn", [random.uniform, random.normal], ids=["uniform", "normal"])
def test_bad_seed(fn, seed):
    with pytest.raises(ValueError, match=r"^Expected seed to be an integer\. Received: seed="):
        fn([2], seed)


def test_bad_seed_message_echoes_value():
    with pytest.raises(ValueError) as info:
        random.uniform([2], 1.5)
    assert str(info.value) == "Expected seed to be an integer. Received: seed=1.5"


@pytest.mark.parametrize("shape", [[-1, 2], (3, -4), tf.constant([2, -1])])
@pytest.mark.parametrize("fn", [random.uniform, random.normal], ids=["uniform", "normal"])
def test_negative_shape(fn, shape):
    with pytest.raises(ValueError, match=r"^Expected shape to have non-negative entries"):
        fn(shape, 0)


@pytest.mark.parametrize("shape", [[2.0, 3], tf.constant([2.0, 3.0]), [[2, 3]]])
def test_non_integer_shape(shape):
    with pytest.raises(ValueError, match=r"^Expected shape"):
        random.uniform(shape, 0)


@pytest.mark.parametrize("offset", [-1, 2**32, 0.5])
def test_bad_counter_offset(offset):
    with pytest.raises(ValueError, match=r"^Expected counter_offset"):
        random.uniform([2], 0, counter_offset=offset)
