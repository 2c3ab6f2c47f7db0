"""The property battery every distribution layer is run through.

Each test file subclasses `DistributionLayerBattery`, names its layer, how
many parameters it takes per element, the constructor variants to try and how
to build the same distribution directly with TFP. The checks themselves live
here, so `IndependentNormal`, `IndependentBernoulli` and `GaussianLikelihood`
are held to exactly the same standard.

The reference never goes through the layer: the parameter layout is cut apart
with numpy slicing written from the documented contract (flat
`[..., k * prod(event_shape)]`, the k blocks one after the other; or shaped
`[..., *event_shape[:-1], k * event_shape[-1]]`, the k blocks stacked on the
last axis), and positive parameters go through a numpy softplus.
"""

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

tfd = tfp.distributions

EVENT_SHAPES = [3, (3,), (2, 3), (2, 2, 3)]
BATCH_SHAPES = [(), (5,), (4, 3)]
LAYOUTS = ["flat", "shaped"]

# event_shape -> number of elements, for the params_size closed form.
ELEMENT_COUNTS = [(1, 1), (3, 3), ((3,), 3), ((2, 3), 6), ((28, 28, 1), 784), ([4, 5], 20)]

BAD_EVENT_SHAPES = [
    0,
    -2,
    (),
    [],
    (2, 0),
    (3, -1),
    None,
    "abc",
    2.5,
    (2, None),
    (2.5,),
    (3, 1.5),
    "12",
]


def as_tuple(event_shape):
    return (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def random_params(rng, event_shape, k, batch_shape, layout):
    """Random parameters laid out `flat` or `shaped`."""
    if layout == "flat":
        shape = batch_shape + (k * math.prod(event_shape),)
    else:
        shape = batch_shape + event_shape[:-1] + (k * event_shape[-1],)
    return rng.normal(size=shape).astype("float32")


def split_params(params, event_shape, k, layout):
    """The k parameter blocks, each `[*batch, *event_shape]`, cut with numpy."""
    if layout == "flat":
        n = math.prod(event_shape)
        batch = params.shape[:-1]
        return [params[..., i * n : (i + 1) * n].reshape(batch + event_shape) for i in range(k)]
    last = event_shape[-1]
    return [params[..., i * last : (i + 1) * last] for i in range(k)]


def assert_same_distribution(actual, expected, data, rtol=1e-5, atol=1e-5):
    assert actual.batch_shape == expected.batch_shape
    assert actual.event_shape == expected.event_shape
    np.testing.assert_allclose(actual.log_prob(data), expected.log_prob(data), rtol, atol)
    np.testing.assert_allclose(actual.mean(), expected.mean(), rtol, atol)
    np.testing.assert_allclose(actual.stddev(), expected.stddev(), rtol, atol)


@keras.saving.register_keras_serializable(package="keras_vae_tests")
class LikelihoodModel(keras.Model):
    """A Dense layer feeding a distribution layer, trained by its NLL.

    `call` returns the mean and standard deviation side by side so a saved and
    reloaded model is compared on every parameter, the scale included.
    """

    def __init__(self, likelihood, **kwargs):
        super().__init__(**kwargs)
        if isinstance(likelihood, dict):
            likelihood = keras.saving.deserialize_keras_object(likelihood)
        self.likelihood = likelihood
        self.dense = keras.layers.Dense(
            likelihood.params_size(likelihood.event_shape), kernel_initializer="glorot_uniform"
        )
        self.nll_tracker = keras.metrics.Mean(name="nll")

    def build(self, input_shape):
        # A deserialized likelihood arrives built (its own build config rides along).
        for layer, shape in [
            (self.dense, input_shape),
            (self.likelihood, self.dense.compute_output_shape(input_shape)),
        ]:
            if not layer.built:
                layer.build(shape)
        self.built = True

    def distribution(self, x):
        return self.likelihood(self.dense(x))

    def call(self, x):
        dist = self.distribution(x)
        return tf.concat([dist.mean(), dist.stddev()], axis=-1)

    def nll(self, x, y):
        return -tf.reduce_mean(self.distribution(x).log_prob(y))

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.nll(x, y)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights, strict=True))
        self.nll_tracker.update_state(loss)
        return {"nll": self.nll_tracker.result()}

    @property
    def metrics(self):
        return [self.nll_tracker]

    def get_config(self):
        config = super().get_config()
        config["likelihood"] = keras.saving.serialize_keras_object(self.likelihood)
        return config


class DistributionLayerBattery:
    """Checks shared by every distribution layer; subclass as `Test<Layer>`.

    Subclasses set `layer_cls`, `params_per_element` and `variants` (a dict of
    id -> constructor kwargs), and implement `reference` and `random_data`.
    """

    layer_cls = None
    params_per_element = None
    variants = {"default": {}}

    def reference(self, parts, event_ndims, **kwargs):
        """The distribution built directly with TFP from the numpy `parts`."""
        raise NotImplementedError

    def random_data(self, rng, shape):
        raise NotImplementedError

    def pytest_generate_tests(self, metafunc):
        if "variant" in metafunc.fixturenames:
            metafunc.parametrize("variant", list(self.variants.values()), ids=list(self.variants))

    def make_layer(self, event_shape, variant, **kwargs):
        return self.layer_cls(event_shape, **variant, **kwargs)

    def move_weights(self, layer):
        """Shifts every weight, so a copy that only matches the initial state fails."""
        for weight in layer.weights:
            weight.assign(weight + 0.37)

    # Parameter count.

    @pytest.mark.parametrize("event_shape, count", ELEMENT_COUNTS)
    def test_params_size(self, event_shape, count):
        expected = self.params_per_element * count
        assert self.layer_cls.params_size(event_shape) == expected
        assert self.layer_cls(event_shape).params_size(event_shape) == expected

    # The distribution agrees with TFP built directly.

    @pytest.mark.parametrize("layout", LAYOUTS)
    @pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
    @pytest.mark.parametrize("event_shape", EVENT_SHAPES, ids=str)
    def test_matches_tfp(self, event_shape, batch_shape, layout, variant):
        rng = np.random.default_rng(0)
        shape = as_tuple(event_shape)
        k = self.params_per_element
        params = random_params(rng, shape, k, batch_shape, layout)
        dist = self.make_layer(event_shape, variant)(params)
        expected = self.reference(split_params(params, shape, k, layout), len(shape), **variant)

        assert dist.batch_shape == batch_shape
        assert dist.event_shape == shape
        data = self.random_data(rng, batch_shape + shape)
        assert dist.log_prob(data).shape == batch_shape
        assert_same_distribution(dist, expected, data)
        # A leading sample dimension broadcasts against the batch.
        data = self.random_data(rng, (2,) + batch_shape + shape)
        np.testing.assert_allclose(dist.log_prob(data), expected.log_prob(data), 1e-5, 1e-5)
        sample = dist.sample(7, seed=1)
        assert sample.shape == (7,) + batch_shape + shape
        assert np.all(np.isfinite(dist.log_prob(sample)))

    def test_dtype_follows_layer_policy(self, variant):
        rng = np.random.default_rng(0)
        layer = self.make_layer((2, 3), variant, dtype="float64")
        params = random_params(rng, (2, 3), self.params_per_element, (4,), "flat")
        dist = layer(params.astype("float64"))
        assert dist.log_prob(self.random_data(rng, (4, 2, 3))).dtype == tf.float64
        assert dist.mean().dtype == tf.float64

    # Serialization.

    def test_registered(self):
        name = f"keras_vae>{self.layer_cls.__name__}"
        assert keras.saving.get_registered_object(name) is self.layer_cls
        assert keras.saving.get_registered_name(self.layer_cls) == name

    def test_config_round_trip(self, variant):
        rng = np.random.default_rng(0)
        layer = self.make_layer((2, 3), variant, name="likelihood")
        params = random_params(rng, (2, 3), self.params_per_element, (4,), "flat")
        dist = layer(params)
        self.move_weights(layer)
        config = layer.get_config()
        assert config["event_shape"] == (2, 3)
        assert config["name"] == "likelihood"
        for key, value in variant.items():
            assert config[key] == value
        clone = self.layer_cls.from_config(config)
        assert clone.get_config() == config
        clone.build(params.shape)
        clone.set_weights(layer.get_weights())
        assert_same_distribution(clone(params), layer(params), self.random_data(rng, (4, 2, 3)))
        if layer.weights:  # the moved weights are what the copy reproduces
            assert not np.allclose(dist.stddev(), layer(params).stddev())

    def test_save_load(self, variant, tmp_path):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(5, 4)).astype("float32")
        model = LikelihoodModel(self.make_layer((2, 3), variant))
        model(x)
        self.move_weights(model.likelihood)
        path = tmp_path / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert type(loaded.likelihood) is self.layer_cls
        assert loaded.likelihood.get_config() == model.likelihood.get_config()
        np.testing.assert_array_equal(loaded(x), model(x))

    # Training.

    def test_fit_reduces_nll(self, variant):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 4)).astype("float32")
        y = self.random_data(rng, (32, 2, 3))
        model = LikelihoodModel(self.make_layer((2, 3), variant))
        model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=False)
        model(x)
        before_weights = [w.numpy().copy() for w in model.trainable_weights]
        before = float(model.nll(x, y))
        history = model.fit(x, y, batch_size=32, epochs=5, verbose=0)
        after = float(model.nll(x, y))
        assert np.all(np.isfinite(history.history["nll"]))
        assert after < before - 0.05
        for old, new in zip(before_weights, model.trainable_weights, strict=True):
            assert not np.array_equal(old, new.numpy()), new.path

    # Bad input.

    @pytest.mark.parametrize("event_shape", BAD_EVENT_SHAPES, ids=repr)
    def test_rejects_bad_event_shape(self, event_shape):
        with pytest.raises(ValueError, match=r"Expected event_shape.*Received: event_shape="):
            self.layer_cls(event_shape)

    @pytest.mark.parametrize(
        "event_shape, expected",
        [
            (np.array([2, 3]), (2, 3)),
            ((np.int64(2), np.int32(3)), (2, 3)),
            (np.int64(3), (3,)),
        ],
        ids=repr,
    )
    def test_accepts_numpy_integer_event_shape(self, event_shape, expected):
        layer = self.layer_cls(event_shape)
        assert layer.event_shape == expected
        assert all(type(d) is int for d in layer.get_config()["event_shape"])

    def test_grey_params_without_their_channel_axis(self, variant):
        # A decoder for grey [2, 3] images serves data [2, 3, 1] when it has one
        # parameter per pixel; with more, [2, 3] cannot be the event's parameters.
        k = self.params_per_element
        layer = self.make_layer((2, 3, 1), variant)
        params = np.random.default_rng(0).normal(size=(4, 2, 3 * k)).astype("float32")
        if k > 1:
            with pytest.raises(ValueError, match=r"Received: params.shape=\(4, 2, 3\)"):
                layer(params[..., :3])
            return
        assert (2, 3) in layer.params_shapes
        grey, channel = layer(params), layer(params[..., None])
        y = self.random_data(np.random.default_rng(1), (4, 2, 3, 1))
        assert grey.event_shape == (2, 3, 1)
        np.testing.assert_array_equal(grey.log_prob(y), channel.log_prob(y))
        np.testing.assert_array_equal(grey.mean(), channel.mean())

    @pytest.mark.parametrize(
        "params_shape",
        [
            lambda size, k: (4, size + 1),
            lambda size, k: (4, size - 1),
            lambda size, k: (4, 3, 2 * k),  # event (2, 3) with its axes swapped
            lambda size, k: (4, 2, 3 * k + 1),
            lambda size, k: (4, 3 * k),  # the leading event axis missing
        ],
        ids=["flat_plus_one", "flat_minus_one", "axes_swapped", "last_axis", "missing_axis"],
    )
    def test_rejects_wrong_params_shape(self, params_shape):
        k = self.params_per_element
        shape = params_shape(6 * k, k)
        layer = self.layer_cls((2, 3))
        with pytest.raises(ValueError, match=r"Expected .*Received: params.shape="):
            layer(np.zeros(shape, "float32"))
