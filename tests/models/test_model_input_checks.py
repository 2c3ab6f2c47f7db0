"""The models' public entrances answer any array right or refuse it in one line.

Hypothesis draws arrays of random shapes and dtypes holding NaN, infinities,
values beyond float32 and values outside [0, 1], and hands them to `encode`,
`decode`, `reconstruct`, `sample` / `generate` and `log_likelihood` of the
tiny models (Bernoulli likelihood over 3 pixels, 2 latents). Every call must
end in a one-line `ValueError` ("Expected ... Received: ...") exactly when
the input is invalid, and otherwise in the result of an independent numpy
reference (the tiny VAE's networks are an identity and two Dense layers).
"""

import warnings

import numpy as np
import pytest
import scipy.special
import tensorflow as tf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tiny_models import CLASSES, KINDS, LATENT_DIM, PIXELS

from keras_vae.evaluation import log_likelihood
from keras_vae.utils import cpu

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ERROR = r"^Expected .+ Received: .+"
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.uint8, np.bool_]


@st.composite
def arrays(draw, width):
    """Arrays mostly shaped `[batch, width]`, of any dtype, with ordinary and extreme values."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(
        st.one_of(
            st.tuples(st.integers(0, 4), st.just(width)),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        )
    )
    if dtype.kind == "f":
        bits = 8 * dtype.itemsize
        elements = st.one_of(
            st.floats(0, 1, width=bits),
            st.floats(width=bits),  # NaN, infinities and the extremes included
            st.sampled_from([0.0, 1.0, -0.0]),
        )
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        info = np.iinfo(dtype)
        elements = st.one_of(st.integers(0, 1), st.integers(int(info.min), int(info.max)))
    return draw(hnp.arrays(dtype, shape, elements=elements))


def is_valid(values, width, unit_interval):
    if values.ndim != 2 or values.shape[1] != width:
        return False
    wide = values.astype(np.float64)
    if not np.all(np.isfinite(wide)) or np.any(np.abs(wide) > FLOAT32_MAX):
        return False
    # A negative value of smaller magnitude than float32's smallest normal is a 0
    # pixel, as in the exported signatures (TensorFlow flushes subnormals to zero).
    return not unit_interval or bool(np.all((wide > -FLOAT32_TINY) & (wide <= 1)))


@pytest.mark.parametrize("scalar", [np.float32(0.5), 0.5, 1, np.int64(0)])
def test_scalars_are_refused_by_shape(models, scalar):
    model = models["vae"]
    refused_in_one_line(lambda: model.encode(scalar))
    refused_in_one_line(lambda: model.decode(scalar))


def refused_in_one_line(call):
    with pytest.raises(ValueError, match=ERROR) as raised:
        call()
    assert len(str(raised.value).splitlines()) == 1


@pytest.fixture(scope="module")
def models():
    return {name: kind.make() for name, kind in KINDS.items()}


def sigmoid(logits):
    return scipy.special.expit(logits)  # no overflow warning at large negative logits


def reference_decode(model, z):
    """The tiny VAE's P(x|z) mean in float64: sigmoid(z W + b)."""
    kernel, bias = model.decoder.layers[-1].get_weights()
    return sigmoid(z.astype(np.float64) @ kernel + bias)


def reference_loc(model, x):
    """The tiny VAE's posterior mean in float64: the identity encoder, then the Dense layer."""
    kernel, bias = model.posterior_layer.params.get_weights()
    return (x.astype(np.float64) @ kernel + bias)[:, :LATENT_DIM]


@SETTINGS
@given(x=arrays(PIXELS))
def test_vae_encode_and_reconstruct(models, x):
    model = models["vae"]
    if not is_valid(x, PIXELS, unit_interval=True):
        refused_in_one_line(lambda: model.encode(x))
        refused_in_one_line(lambda: model.reconstruct(x))
        if x.dtype.kind == "f" and x.ndim == 2 and x.shape[1] == PIXELS:
            refused_in_one_line(lambda: model.encode(tf.constant(x)))  # eager tensors too
        return
    loc = model.encode(x).mean().numpy()
    np.testing.assert_allclose(loc, reference_loc(model, x), atol=1e-5)
    expected = reference_decode(model, reference_loc(model, x))
    np.testing.assert_allclose(model.reconstruct(x), expected, atol=1e-5)


def test_the_smallest_int64_is_refused_without_a_numpy_warning(models):
    # -min(int64) overflows: the float32-range check is for floats only.
    x = np.array([[np.iinfo(np.int64).min, 0, 1][:PIXELS]], np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refused_in_one_line(lambda: models["vae"].encode(x))


@SETTINGS
@given(z=arrays(LATENT_DIM))
def test_vae_decode(models, z):
    model = models["vae"]
    if not is_valid(z, LATENT_DIM, unit_interval=False):
        refused_in_one_line(lambda: model.decode(z))
        return
    try:
        mean = model.decode(z).mean().numpy()
    except ValueError as error:
        # Finite latents so large that the decoder overflows float32.
        assert np.abs(z.astype(np.float64)).max() > 1e36, error
        assert str(error).startswith("Expected the decoder to give finite values")
        return
    assert mean.shape == (len(z), PIXELS) and np.all((mean >= 0) & (mean <= 1))
    if np.abs(z.astype(np.float64)).max(initial=0) < 1e6:  # beyond, float32 rounding rules
        np.testing.assert_allclose(mean, reference_decode(model, z), atol=1e-5)


@SETTINGS
@given(target=arrays(PIXELS), condition=arrays(CLASSES))
def test_cvae_entrances(models, target, condition):
    model = models["cvae"]
    valid_condition = is_valid(condition, CLASSES, unit_interval=False)
    z = np.zeros((len(condition) if condition.ndim else 0, LATENT_DIM), "float32")
    if not valid_condition:
        refused_in_one_line(lambda: model.generate(condition, 2, seed=0))
        refused_in_one_line(lambda: model.prior(condition))
        if condition.ndim == 2:
            refused_in_one_line(lambda: model.decode(z, condition))
        return
    images = model.generate(condition, 2, seed=0)
    assert images.shape == (len(condition), 2, PIXELS) and np.all(np.isfinite(images))
    np.testing.assert_array_equal(images, model.generate(condition, 2, seed=0))
    pair_ok = is_valid(target, PIXELS, unit_interval=True) and len(target) == len(condition)
    if not pair_ok:
        refused_in_one_line(lambda: model.reconstruct(target, condition))
        return
    reconstruction = model.reconstruct(target, condition)
    assert reconstruction.shape == target.shape and np.all(np.isfinite(reconstruction))


@SETTINGS
@given(
    num_samples=st.one_of(
        st.integers(-3, 40), st.sampled_from([2.0, True, "4", None, 2**30, 2**31 + 1, 2**62])
    ),
    seed=st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([None, 1.5, "0"])),
    temperature=st.one_of(st.floats(0, 3), st.floats(), st.sampled_from([True, "1", -1])),
)
def test_vae_sample(models, num_samples, seed, temperature):
    model = models["vae"]
    valid = (
        isinstance(num_samples, int)
        and not isinstance(num_samples, bool)
        and 0 < num_samples * LATENT_DIM < 2**31  # the portable RNG's int32 counters
        and (seed is None or (isinstance(seed, int) and 0 <= seed < 2**32))
        and isinstance(temperature, float)
        and np.isfinite(temperature)
        and temperature >= 0
    )
    if not valid:
        refused_in_one_line(lambda: model.sample(num_samples, seed=seed, temperature=temperature))
        return
    try:
        images = model.sample(num_samples, seed=seed, temperature=temperature)
    except ValueError as error:
        # A spread so wide that z, or the decoder's output, is infinite in float32.
        messages = ("Expected a temperature whose", "Expected the decoder to give finite")
        assert temperature > 1e30 and str(error).startswith(messages), error
        return
    assert images.shape == (num_samples, PIXELS)
    assert np.all((images >= 0) & (images <= 1))
    if seed is not None:  # the seed's low 32 bits
        again = model.sample(num_samples, seed=seed % 2**32, temperature=temperature)
        np.testing.assert_array_equal(images, again)


def test_sample_refuses_samples_past_the_machines_memory(models, monkeypatch):
    # On a machine of 1 MiB, float32 samples of PIXELS values: the most that
    # fit are drawn; one more, per condition too, is refused before drawing.
    monkeypatch.setattr(cpu, "physical_memory", lambda: 2**20)
    fits = 2**20 // (4 * PIXELS)
    assert models["vae"].sample(fits, seed=0).shape == (fits, PIXELS)
    refused_in_one_line(lambda: models["vae"].sample(fits + 1, seed=0))
    conditions = np.eye(CLASSES, dtype="float32")
    per_condition = fits // CLASSES
    images = models["cvae"].generate(conditions, per_condition, seed=0)
    assert images.shape == (CLASSES, per_condition, PIXELS)
    refused_in_one_line(lambda: models["cvae"].generate(conditions, per_condition + 1, seed=0))


# Arbitrary pixels in [0, 1] are not binary: the warning that says so is expected.
@pytest.mark.filterwarnings("ignore:The data are not binary")
@settings(SETTINGS, max_examples=10)
@given(data=arrays(PIXELS))
# Below 0 as given, -0 in float32: a 0 pixel, as for encode (found by this test).
@example(data=np.full((1, PIXELS), -3.7e-118))
# float16's 0 against float32's smallest normal, which is -0 in float16: valid.
@example(data=np.zeros((1, PIXELS), np.float16))
def test_log_likelihood(models, data):
    model = models["vae"]
    if not is_valid(data, PIXELS, unit_interval=True) or len(data) == 0:
        refused_in_one_line(lambda: log_likelihood(model, data, num_samples=2, verbose=0))
        dataset = tf.data.Dataset.from_tensors(data) if data.ndim == 2 else None
        if dataset is not None and data.shape[1] == PIXELS and len(data):
            refused_in_one_line(lambda: log_likelihood(model, dataset, num_samples=2, verbose=0))
        return
    metrics = log_likelihood(model, data, num_samples=2, verbose=0)
    assert np.all(np.isfinite(metrics["per_example"])) and metrics["num_examples"] == len(data)
