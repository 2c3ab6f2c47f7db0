"""Bad inputs at every exported entrance: a clear error or the right result, never a silent one.

Hypothesis draws latents and images of random shapes and values (NaN,
infinities, float32's extremes, values outside [0, 1]) and counts (negative,
zero, above the cap, beyond int32) for the SavedModel signatures, the raw
TFLite signature runners and the LiteRT `Sampler`. Valid inputs must give
Keras's result; invalid ones a run-time error naming what was expected
(TFLite, which has no run-time errors, refuses a wrongly shaped `z` when it
runs and clamps `num_samples`). The raw runners run in a child process with
a timeout, where a crash or a hang would end only that process.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import LATENT_DIM, binary_images
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

from keras_vae.export import MAX_NUM_SAMPLES
from keras_vae.export.litert_sampler import Sampler

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FLOAT32_MAX = float(np.finfo(np.float32).max)
IMAGE = (28, 28, 1)
BAD_X = r"Expected x|Shape of tensor x"


def float_arrays(width_shape, max_batch=3):
    """float32 arrays mostly shaped `[batch, *width_shape]`, with ordinary and extreme values."""
    shapes = st.one_of(
        st.integers(0, max_batch).map(lambda b: (b, *width_shape)),
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3),
    )
    elements = st.one_of(
        st.floats(0, 1, width=32),
        st.floats(-4, 4, width=32),
        st.floats(width=32),  # NaN, infinities, +-3.4e38
    )
    return hnp.arrays(np.float32, shapes, elements=elements)


def finite_batch(values, width_shape):
    return values.shape[1:] == tuple(width_shape) and bool(np.all(np.isfinite(values)))


def in_unit_interval(values):
    """Whether a graph's [0, 1] check passes `values`: TensorFlow's CPU kernels run
    with subnormals flushed to zero, so -1.4e-45 compares as 0, a valid pixel."""
    flushed = np.where(np.abs(values) < np.finfo(np.float32).tiny, 0.0, values)
    return bool(np.all((flushed >= 0) & (flushed <= 1)))


@pytest.fixture(scope="module")
def signatures(vae_saved_model):
    return tf.saved_model.load(vae_saved_model).signatures


@SETTINGS
@given(z=float_arrays((LATENT_DIM,)))
def test_saved_model_decode(vae, signatures, z):
    if not finite_batch(z, (LATENT_DIM,)):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected z|Shape of tensor z"):
            signatures["serving_default"](z=tf.constant(z))
        return
    image = signatures["serving_default"](z=tf.constant(z))["image"].numpy()
    assert image.shape == (len(z), *IMAGE)
    keras_image = vae.decode(z).mean().numpy() if np.abs(z).max(initial=0) < 1e30 else None
    if keras_image is not None:
        np.testing.assert_allclose(image, keras_image, atol=1e-5)
    assert np.all((image >= 0) & (image <= 1))


@SETTINGS
@given(
    x=st.one_of(
        st.integers(0, 3).map(binary_images),
        float_arrays(IMAGE, max_batch=2),
        st.sampled_from([np.full((1, *IMAGE), 255.0, np.float32)]),
    )
)
def test_saved_model_encode_and_reconstruct(vae, signatures, x):
    valid = finite_batch(x, IMAGE) and in_unit_interval(x)
    for name in ("encode", "reconstruct"):
        if not valid:
            with pytest.raises(
                tf.errors.InvalidArgumentError, match=r"Expected x|Shape of tensor x"
            ):
                signatures[name](x=tf.constant(x))
            continue
        out = signatures[name](x=tf.constant(x))
        expected = vae.encode(x).mean() if name == "encode" else vae.reconstruct(x)
        got = out["loc"] if name == "encode" else out["image"]
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_keras_and_the_saved_model_agree_on_pixels_just_below_zero(vae, signatures):
    # A negative subnormal is a 0 pixel to the signature's check (flushed to zero,
    # as hypothesis found); the model's own check takes it as one too. A negative
    # normal float32, however small, is refused by both.
    for value, valid in ((-6.4e-41, True), (-np.finfo(np.float32).tiny, False), (-1e-30, False)):
        x = binary_images(2)
        x[1, 5, 6, 0] = value
        if valid:
            got = signatures["encode"](x=tf.constant(x))["loc"].numpy()
            np.testing.assert_allclose(got, vae.encode(x).mean(), atol=1e-5)
            continue
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected x values in \[0, 1\]"):
            signatures["encode"](x=tf.constant(x))
        with pytest.raises(ValueError, match=r"^Expected x values in \[0, 1\]"):
            vae.encode(x)


def test_saved_model_refuses_non_finite_inputs_in_the_default_environment(signatures):
    # With oneDNN (TensorFlow's default on x86) these gave normal-looking images.
    assert os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
    for value in (np.nan, np.inf, -np.inf):
        z = np.zeros((2, LATENT_DIM), np.float32)
        z[1, 0] = value
        with pytest.raises(tf.errors.InvalidArgumentError, match="Expected z to hold finite"):
            signatures["serving_default"](z=tf.constant(z))
        x = binary_images(2)
        x[0, 3, 4, 0] = value
        for name in ("encode", "reconstruct"):
            with pytest.raises(tf.errors.InvalidArgumentError, match="Expected x to hold finite"):
                signatures[name](x=tf.constant(x))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected x values in \[0, 1\]"):
        signatures["encode"](x=tf.constant(np.full((1, *IMAGE), 255.0, np.float32)))


# --- the LiteRT Sampler -------------------------------------------------------


@pytest.fixture(scope="module")
def sampler(vae_tflite):
    return Sampler(vae_tflite[None])


@SETTINGS
@given(z=float_arrays((LATENT_DIM,)), batch_size=st.sampled_from([1, 2, 1024]))
def test_sampler_decode(vae, sampler, z, batch_size):
    if not finite_batch(z, (LATENT_DIM,)):
        with pytest.raises(ValueError, match=r"^Expected z (of|shaped) .* Received: ") as raised:
            sampler.decode(z, batch_size=batch_size)
        assert len(str(raised.value).splitlines()) == 1
        return
    images = sampler.decode(z, batch_size=batch_size)
    assert images.shape == (len(z), *IMAGE)
    np.testing.assert_allclose(images, vae.decode(z).mean().numpy(), atol=1e-5)


@SETTINGS
@given(
    num_samples=st.one_of(
        st.integers(-(2**40), 2**40), st.integers(-2, 6), st.sampled_from([2.0, "3", True, None])
    ),
    seed=st.one_of(
        st.integers(-(2**70), 2**70),
        st.integers(-(2**31) - 2, 2**32 + 1),
        st.sampled_from([1.5, None, "0"]),
    ),
)
def test_sampler_sample(vae, sampler, num_samples, seed):
    valid_count = (
        isinstance(num_samples, int)
        and not isinstance(num_samples, bool)
        and 1 <= num_samples <= MAX_NUM_SAMPLES
    )
    # A signed or unsigned 32-bit seed.
    valid_seed = isinstance(seed, int) and -(2**31) <= seed < 2**32
    if not (valid_count and valid_seed):
        with pytest.raises(ValueError, match=r"^Expected (num_samples|seed) .* Received: "):
            sampler.sample(seed, num_samples)
        return
    images = sampler.sample(seed, num_samples)
    assert images.shape == (num_samples, *IMAGE)
    if num_samples <= 8:
        keras_seed = seed % 2**32  # the same 32 bits
        np.testing.assert_allclose(images, vae.sample(num_samples, seed=keras_seed), atol=1e-5)


def test_sampler_decodes_in_chunks_the_same_images(sampler):
    z = np.random.default_rng(0).normal(size=(37, LATENT_DIM)).astype(np.float32)
    np.testing.assert_array_equal(sampler.decode(z, batch_size=5), sampler.decode(z))


def nan_weights(content):
    """A `.tflite` file's bytes with every float32 constant (the weights) set to NaN, and
    no weights checksum in its metadata (as a file of another exporter)."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            data = model.buffers[tensor.buffer].data
            if tensor.type == schema_fb.TensorType.FLOAT32 and data is not None and len(data):
                nan = np.full(len(data) // 4, np.nan, np.float32)
                model.buffers[tensor.buffer].data = nan.view(np.uint8)
    for entry in model.metadata:
        if entry.name == b"keras_vae":
            record = json.loads(bytes(model.buffers[entry.buffer].data).decode())
            del record["file_sha256"]
            model.buffers[entry.buffer].data = np.frombuffer(json.dumps(record).encode(), np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def flip_bit(content, position, bit):
    content = bytearray(content)
    content[position] ^= 1 << bit
    return bytes(content)


def test_sampler_refuses_a_model_whose_weights_changed(vae_tflite, tmp_path):
    content = open(vae_tflite[None], "rb").read()
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    largest = max(model.buffers, key=lambda b: 0 if b.data is None else len(b.data))
    # The first weight of the largest buffer, found in the file by its bytes.
    position = content.index(bytes(largest.data[:64])) + 2
    path = tmp_path / "flipped.tflite"
    path.write_bytes(flip_bit(content, position, 0))  # a mantissa bit: images stay finite
    with pytest.raises(ValueError, match=r"^Expected a TFLite model that matches") as raised:
        Sampler(path)
    assert "Received: model=" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.99])
def test_sampler_refuses_a_truncated_file(vae_tflite, tmp_path, fraction):
    content = open(vae_tflite[None], "rb").read()
    path = tmp_path / "truncated.tflite"
    path.write_bytes(content[: int(fraction * len(content))])
    with pytest.raises(ValueError, match=r"^Expected a (whole|loadable) TFLite model") as raised:
        Sampler(path)
    assert "\n" not in str(raised.value)


def test_sampler_refuses_a_model_that_draws_non_finite_images(vae_tflite, tmp_path):
    path = tmp_path / "nan.tflite"
    path.write_bytes(nan_weights(open(vae_tflite[None], "rb").read()))
    with pytest.raises(ValueError, match=r"^Expected a model that draws finite images\. Received"):
        Sampler(path)
    script = sys.modules[Sampler.__module__].__file__
    output = tmp_path / "x.png"
    process = subprocess.run(
        [sys.executable, script, str(path), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode != 0 and process.stdout == ""
    # LiteRT itself logs the delegate it creates ("INFO: Created ... XNNPACK delegate").
    errors = [line for line in process.stderr.splitlines() if not line.startswith("INFO: ")]
    assert len(errors) == 1 and "draws finite images" in errors[0], process.stderr
    assert not output.exists()


# --- the raw TFLite signature runners, in a child process ------------------------

RAW_RUNNERS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from hypothesis import given, settings, strategies as st
    from hypothesis.extra import numpy as hnp

    path, latent_dim, cap, examples = sys.argv[1], *map(int, sys.argv[2:5])
    interpreter = Interpreter(model_path=path)
    decode = interpreter.get_signature_runner("decode")
    sample = interpreter.get_signature_runner("sample")
    counts = {"refused": 0, "right": 0}

    @settings(max_examples=examples, deadline=None, database=None)
    @given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=9))
    def wrong_or_right_shapes(shape):
        z = np.zeros(shape, np.float32)
        right = len(shape) == 2 and shape[1] == latent_dim
        try:
            image = decode(z=z)["image"]
        except (RuntimeError, ValueError):
            assert not right, shape
            counts["refused"] += 1
            return
        # A z whose size is another multiple of latent_dim would be other rows.
        assert image.shape[0] == shape[0] and z.size == shape[0] * latent_dim, shape
        counts["right"] += 1

    @settings(max_examples=examples, deadline=None, database=None)
    @given(n=st.integers(-(2**31), 2**31 - 1))
    def bounded_counts(n):
        try:
            out = sample(seed=np.int32(0), num_samples=np.int32(n))
        except (RuntimeError, ValueError):  # zero rows: "Invalid tensor size"
            assert n <= 0, n
            return
        rows = max(0, min(n, cap))  # n <= 0 gives no rows (or the error above)
        assert len(out["image"]) == rows and len(out["z"]) == rows, n

    wrong_or_right_shapes()
    bounded_counts()
    for n in (cap + 1, 2**31 - 1):
        assert len(sample(seed=np.int32(1), num_samples=np.int32(n))["image"]) == cap
    print(json.dumps(counts))
    """
)


FLIPPED_FILES = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from hypothesis import given, settings, strategies as st
    from keras_vae.export.litert_sampler import Sampler

    path, examples = sys.argv[1], int(sys.argv[2])
    content = open(path, "rb").read()
    expected = Sampler(path).sample(0, 4)
    counts = {"refused": 0, "same": 0}

    @settings(max_examples=examples, deadline=None, database=None)
    @given(position=st.integers(0, len(content) - 1), bit=st.integers(0, 7))
    def flipped(position, bit):
        damaged = bytearray(content)
        damaged[position] ^= 1 << bit
        open(path + ".flipped.tflite", "wb").write(bytes(damaged))
        try:
            images = Sampler(path + ".flipped.tflite").sample(0, 4)
        except ValueError as error:
            assert str(error).startswith("Expected") and "\\n" not in str(error), error
            counts["refused"] += 1
            return
        assert np.array_equal(images, expected), (position, bit)  # a byte nothing reads
        counts["same"] += 1

    flipped()
    print(json.dumps(counts))
    """
)


@pytest.mark.slow
def test_any_flipped_bit_of_a_tflite_file_is_refused_or_harmless(vae_tflite, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(open(vae_tflite[None], "rb").read())
    process = subprocess.run(
        [sys.executable, "-c", FLIPPED_FILES, str(path), "300"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert json.loads(process.stdout.strip().splitlines()[-1])["refused"] > 0


def run_raw_runners(path, examples):
    process = subprocess.run(
        [sys.executable, "-c", RAW_RUNNERS, str(path), str(LATENT_DIM), str(MAX_NUM_SAMPLES),
         str(examples)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_raw_tflite_runners_refuse_wrong_shapes_and_clamp_counts(vae_tflite):
    counts = run_raw_runners(vae_tflite[None], examples=15)
    assert counts["refused"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("quantize", [None, "int8"])
def test_raw_tflite_runners_fuzzed(vae_tflite, quantize):
    counts = run_raw_runners(vae_tflite[quantize], examples=300)
    assert counts["refused"] > 0 and counts["right"] > 0
