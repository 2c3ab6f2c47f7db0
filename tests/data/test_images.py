"""Tests for keras_vae.data.images: TFDS loading, scaling, binarization, pipelines."""

import time

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.data import (
    binarize_static,
    dequantize,
    load_images,
    make_conditional_dataset,
    make_dataset,
    num_classes,
    scale_images,
)
from keras_vae.data.images import array_batches

# Class counts published with MNIST (yann.lecun.com/exdb/mnist), an independent reference.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _id_images(num_images, height=4, width=4):
    """uint8 images whose first two pixels encode the image index (recoverable after scaling)."""
    images = np.zeros((num_images, height, width, 1), np.uint8)
    ids = np.arange(num_images)
    images[:, 0, 0, 0] = ids % 256
    images[:, 0, 1, 0] = ids // 256
    return images


def _ids(batch):
    pixels = np.round(np.asarray(batch) * 255).astype(int)
    return pixels[:, 0, 0, 0] + 256 * pixels[:, 0, 1, 0]


def _epoch(ds, epoch=None, value=None):
    """One pass over `ds`; with `epoch`, a pass at epoch `value`."""
    if epoch is not None:
        epoch.assign(value)
    return np.concatenate([np.asarray(x) for x in ds])


def _assert_one_line_error(error, *parts):
    message = str(error.value)
    assert "Expected" in message and "Received" in message, message
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


# --- load_images on the real MNIST -----------------------------------------------------------


def test_load_mnist_shapes_and_dtypes(mnist_train, mnist_test):
    for (images, labels), n in ((mnist_train, 60000), (mnist_test, 10000)):
        assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64


def test_load_mnist_matches_published_statistics(mnist_train, mnist_test):
    train_images, train_labels = mnist_train
    # Mean training pixel 33.318 (0.1307 * 255, the usual MNIST normalisation constant).
    assert train_images.mean() == pytest.approx(33.318, abs=1e-3)
    np.testing.assert_array_equal(np.bincount(train_labels, minlength=10), MNIST_TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(mnist_test[1], minlength=10), MNIST_TEST_COUNTS)


def test_load_mnist_keeps_tfds_order(mnist_train, mnist_test):
    # TFDS shuffles examples (by hashed key) when it prepares a dataset, so its
    # order is not the IDX-file order (train 5 0 4 1 9..., test 7...). It is
    # fixed for a prepared copy, which is what reproducible splits rely on.
    np.testing.assert_array_equal(mnist_train[1][:5], [4, 1, 0, 7, 8])
    np.testing.assert_array_equal(mnist_test[1][:5], [2, 0, 4, 8, 7])


def test_load_split_slicing(mnist_dir, mnist_test):
    images, labels = load_images("mnist", "test[:1000]", data_dir=mnist_dir)
    np.testing.assert_array_equal(images, mnist_test[0][:1000])
    np.testing.assert_array_equal(labels, mnist_test[1][:1000])


def test_load_reads_data_dir_from_environment(mnist_dir, mnist_test, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", mnist_dir)
    images, labels = load_images("mnist", "test[:10]")
    np.testing.assert_array_equal(images, mnist_test[0][:10])
    np.testing.assert_array_equal(labels, mnist_test[1][:10])


class _Connection:
    def close(self):
        pass


@pytest.mark.parametrize("from_env", [False, True], ids=["argument", "environment"])
@pytest.mark.parametrize("online", [False, True], ids=["offline", "online"])
def test_load_missing_dataset_downloads_only_when_the_server_answers(
    tmp_path, monkeypatch, from_env, online
):
    # Offline, letting tfds try a download retries for minutes; this must not.
    # The network is simulated (this test timed the real one: a network that
    # drops packets instead of refusing them made the check itself take its
    # 3 s timeout), and a download attempt is recorded instead of made.
    from keras_vae.data import images as images_module

    timeouts, downloads = [], []

    def connect(address, timeout):
        timeouts.append(timeout)
        if not online:
            raise OSError("Network is unreachable")
        return _Connection()

    real_builder = images_module._tfds_builder

    def builder_without_downloads(name, data_dir):
        builder = real_builder(name, data_dir)
        builder.download_and_prepare = lambda *args, **kwargs: downloads.append(name)
        return builder

    monkeypatch.setattr(images_module.socket, "create_connection", connect)
    monkeypatch.setattr(images_module, "_tfds_builder", builder_without_downloads)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError) as error:
        load_images("mnist", data_dir=None if from_env else str(tmp_path))
    # One quick connection check, then a download only if the server answered.
    assert len(timeouts) == 1 and 0 < timeouts[0] <= 3.0
    assert downloads == (["mnist"] if online else [])
    _assert_one_line_error(error, "not found", "TFDS_DATA_DIR", "data_dir", repr(str(tmp_path)))


@pytest.mark.parametrize(
    "name, split, parts",
    [
        ("mnits", "train", ["Expected a TFDS image dataset name", "name='mnits'", "'mnist'"]),
        ("imdb_reviews", "train", ["image", "name='imdb_reviews'"]),
        ("mnist:9.9.9", "train", ["name='mnist:9.9.9'"]),
        ("mnist/nope", "train", ["name='mnist/nope'"]),
        ("foo:bar", "train", ["name='foo:bar'"]),
        ("", "train", ["name=''"]),
        (3, "train", ["name=3"]),
        ("mnist", "valid", ["split='valid'", "['test', 'train']"]),
        ("mnist", "train[:abc]", ["split='train[:abc]'"]),
        ("mnist", "train[:0]", ["split='train[:0]'"]),
        ("mnist", "", ["split=''"]),
    ],
)
def test_load_bad_inputs(mnist_dir, name, split, parts):
    with pytest.raises(ValueError) as error:
        load_images(name, split, data_dir=mnist_dir)
    _assert_one_line_error(error, *parts)


# --- scale_images and binarize_static ------------------------------------------------------


def test_scale_uint8_matches_numpy_reference():
    images = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    scaled = scale_images(images)
    assert scaled.shape == (4, 8, 8, 1) and scaled.dtype == np.float32
    expected = (np.arange(256, dtype=np.float64) / 255.0).reshape(4, 8, 8, 1)
    np.testing.assert_array_equal(scaled, expected.astype(np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float64", "bool", "int64"])
def test_scale_accepts_numeric_dtypes(dtype):
    rng = np.random.default_rng(0)
    values = rng.random((3, 5, 5, 2))
    if dtype == "bool":
        images, expected = values < 0.5, (values < 0.5).astype(np.float32)
    elif dtype == "int64":
        images = np.round(values * 255).astype(np.int64)
        expected = (images / 255.0).astype(np.float32)
    else:
        images, expected = values.astype(dtype), values.astype(np.float32)
    scaled = scale_images(images)
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, expected)


@pytest.mark.parametrize(
    "images, part",
    [
        (np.array([["a"]] * 2), "images.dtype"),
        (np.full((2, 4, 4), 1.5), "max=1.5"),
        (np.full((2, 4, 4), -0.1), "min=-0.1"),
        (np.full((2, 4, 4), np.nan), "min=nan"),
        (np.full((2, 4, 4), 256), "max=256"),
        (np.full((2, 4, 4), -1), "min=-1"),
        (np.zeros((4, 4)), "images.shape=(4, 4)"),
        (np.zeros((1, 2, 3, 4, 5)), "images.shape=(1, 2, 3, 4, 5)"),
        (np.zeros((0, 4, 4)), "images.shape=(0, 4, 4, 1)"),
        (np.zeros((28, 28, 1), np.uint8), "add a batch axis: images[None]"),
    ],
)
def test_scale_bad_inputs(images, part):
    with pytest.raises(ValueError) as error:
        scale_images(images)
    _assert_one_line_error(error, part)


def test_binarize_static_is_a_seeded_bernoulli_draw():
    probs = np.linspace(0.0, 1.0, 11, dtype=np.float32)
    images = np.broadcast_to(probs, (2000, 1, 11)).copy()
    draw = binarize_static(images, seed=1)
    assert draw.shape == (2000, 1, 11, 1) and draw.dtype == np.float32
    assert set(np.unique(draw)) <= {0.0, 1.0}
    np.testing.assert_array_equal(draw, binarize_static(images, seed=1))
    assert not np.array_equal(draw, binarize_static(images, seed=2))
    # Per grey value: the frequency of ones is within 5 binomial standard deviations.
    frequency = draw.mean(axis=(0, 1, 3))
    tolerance = 5 * np.sqrt(probs * (1 - probs) / 2000)
    assert np.all(np.abs(frequency - probs) <= tolerance)
    assert frequency[0] == 0.0 and frequency[-1] == 1.0


# --- make_dataset --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_dataset_continuous_matches_scaled_images(mnist_test, dtype):
    images = mnist_test[0][:1000]
    if dtype == "float32":
        images = scale_images(images)
    ds = make_dataset(images, binarize=None, batch_size=128, shuffle=False)
    batches = [np.asarray(x) for x in ds]
    assert [len(b) for b in batches] == [128] * 7 + [104]
    assert all(b.dtype == np.float32 and b.shape[1:] == (28, 28, 1) for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), scale_images(mnist_test[0][:1000]))


def test_dataset_drop_remainder():
    ds = make_dataset(_id_images(1000), batch_size=128, drop_remainder=True, seed=0)
    assert ds.element_spec.shape.as_list() == [128, 4, 4, 1]
    assert [x.shape[0] for x in ds] == [128] * 7


def test_dataset_shuffle_is_a_seeded_permutation_reshuffled_every_epoch():
    images = _id_images(500)
    ds = make_dataset(images, binarize=None, batch_size=64, seed=7)
    first, second = _ids(_epoch(ds)), _ids(_epoch(ds))
    np.testing.assert_array_equal(np.sort(first), np.arange(500))
    np.testing.assert_array_equal(np.sort(second), np.arange(500))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(500))
    # The same seed replays the same sequence of epochs; another seed does not.
    again = make_dataset(images, binarize=None, batch_size=64, seed=7)
    np.testing.assert_array_equal(_ids(_epoch(again)), first)
    np.testing.assert_array_equal(_ids(_epoch(again)), second)
    other = make_dataset(images, binarize=None, batch_size=64, seed=8)
    assert not np.array_equal(_ids(_epoch(other)), first)


def test_dataset_without_shuffle_keeps_order():
    ds = make_dataset(_id_images(300), binarize=None, batch_size=64, shuffle=False, cache=False)
    np.testing.assert_array_equal(_ids(_epoch(ds)), np.arange(300))


@pytest.mark.parametrize("keyed", [False, True], ids=["by-pass", "by-epoch"])
def test_dynamic_binarization_draws_afresh_every_epoch(mnist_test, keyed):
    images = mnist_test[0][:256]
    probs = scale_images(images)

    def dataset(source=images):
        epoch = tf.Variable(0, dtype=tf.int64) if keyed else None
        return make_dataset(source, batch_size=64, shuffle=False, seed=3, epoch=epoch), epoch

    ds, epoch = dataset()
    epochs = np.stack([_epoch(ds, epoch, value) for value in range(40)])
    assert epochs.dtype == np.float32 and epochs.shape == (40, *probs.shape)
    assert set(np.unique(epochs)) == {0.0, 1.0}
    assert not np.array_equal(epochs[0], epochs[1])
    # Black pixels are never on and white (255) pixels always are.
    assert not epochs[:, probs == 0.0].any() and epochs[:, probs == 1.0].all()
    # Calibration: within each band of grey values, the frequency of ones
    # matches the mean grey value (binomial standard error, 5 sigma).
    frequency = epochs.mean(axis=0)
    bands = np.digitize(probs, np.linspace(0.0, 1.0, 11)[1:-1])
    for band in np.unique(bands[(probs > 0) & (probs < 1)]):
        mask = (bands == band) & (probs > 0) & (probs < 1)
        p = probs[mask]
        sigma = np.sqrt((p * (1 - p)).sum() / 40) / mask.sum()
        assert abs(frequency[mask].mean() - p.mean()) < 5 * sigma + 1e-6, band
    # The batches of one epoch draw afresh too: copies of one image differ.
    twins, twins_epoch = dataset(np.repeat(images[:1], 128, axis=0))
    assert len(np.unique(_epoch(twins, twins_epoch, 0).reshape(128, -1), axis=0)) == 128
    # The same seed replays the same draws.
    replay, replay_epoch = dataset()
    np.testing.assert_array_equal(_epoch(replay, replay_epoch, 0), epochs[0])
    np.testing.assert_array_equal(_epoch(replay, replay_epoch, 1), epochs[1])


def test_static_binarization_is_one_fixed_draw(mnist_test):
    images = mnist_test[0][:300]
    ds = make_dataset(images, binarize="static", batch_size=100, shuffle=False, seed=5)
    first, second = _epoch(ds), _epoch(ds)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, binarize_static(images, seed=5))
    assert set(np.unique(first)) == {0.0, 1.0}


def test_dataset_iterates_mnist_train_quickly(mnist_train):
    ds = make_dataset(mnist_train[0], batch_size=128, seed=0)
    durations = []
    for _ in range(3):
        start = time.perf_counter()
        count = sum(int(x.shape[0]) for x in ds)
        durations.append(time.perf_counter() - start)
    assert count == 60000
    # About 0.3-0.6 s per epoch on 2 CPU cores; generous for shared machines.
    assert min(durations) < 3.0, durations


@pytest.mark.parametrize("keyed", [False, True])
def test_pipelines_run_without_tf_data_autotuning(keyed):
    # Keras deletes the iterator of every epoch, and deleting an autotuned one
    # waits for its tuning thread (up to seconds of idle cores per epoch).
    epoch = tf.Variable(0, dtype=tf.int64) if keyed else None
    images = _id_images(10)
    pipelines = [
        make_dataset(images, batch_size=4, seed=0, epoch=epoch),
        make_conditional_dataset(
            np.eye(10, dtype="float32"), images, batch_size=4, seed=0, epoch=epoch,
            binarize_condition=False,
        ),
    ]  # fmt: skip
    for ds in pipelines:
        assert ds.options().autotune.enabled is False
        sizes = [tf.nest.flatten(batch)[0].shape[0] for batch in ds]
        assert sum(sizes) == 10


def test_array_batches_gather_every_row_once_per_pass_in_a_new_order():
    tf.random.set_seed(0)
    x = np.arange(10, dtype="float32")[:, None]
    data = (x, 2 * x[:, 0], np.arange(10, dtype="int64"))  # rows stay aligned across parts
    ds = array_batches(data, batch_size=4)
    assert ds.options().autotune.enabled is False
    orders = []
    for _ in range(3):
        batches = [tuple(part.numpy() for part in batch) for batch in ds]
        assert [len(batch[0]) for batch in batches] == [4, 4, 2]
        rows = np.concatenate([batch[2] for batch in batches])
        np.testing.assert_array_equal(np.sort(rows), np.arange(10))
        for batch in batches:
            np.testing.assert_array_equal(batch[0][:, 0], batch[2])
            np.testing.assert_array_equal(batch[1], 2 * batch[2])
        orders.append(tuple(rows))
    assert len(set(orders)) == 3
    in_order = np.concatenate([b.numpy()[:, 0] for b in array_batches(x, 3, shuffle=False)])
    np.testing.assert_array_equal(in_order, x[:, 0])


# --- make_dataset(epoch=...): passes keyed by the epoch ----------------------------------------


def test_epoch_keyed_passes_depend_on_seed_and_epoch_alone():
    images = _id_images(500)
    epoch = tf.Variable(0, dtype=tf.int64)
    ds = make_dataset(images, binarize=None, batch_size=64, seed=7, epoch=epoch)
    assert ds.cardinality() == 8
    passes = [_ids(_epoch(ds, epoch, value)) for value in (0, 1, 0)]
    for order in passes:
        np.testing.assert_array_equal(np.sort(order), np.arange(500))
    assert not np.array_equal(passes[0], passes[1])
    assert not np.array_equal(passes[0], np.arange(500))
    np.testing.assert_array_equal(passes[2], passes[0])
    # A new pipeline started at epoch 1, as a resumed run is, replays epoch 1.
    resumed_epoch = tf.Variable(1, dtype=tf.int32)
    resumed = make_dataset(images, binarize=None, batch_size=64, seed=7, epoch=resumed_epoch)
    np.testing.assert_array_equal(_ids(_epoch(resumed)), passes[1])
    other = make_dataset(images, binarize=None, batch_size=64, seed=8, epoch=epoch)
    assert not np.array_equal(_ids(_epoch(other, epoch, 0)), passes[0])


def test_epoch_is_read_when_the_pass_starts_not_when_its_iterator_is_made():
    epoch = tf.Variable(0, dtype=tf.int64)
    ds = make_dataset(_id_images(300), binarize=None, batch_size=64, seed=1, epoch=epoch)
    at_three = _ids(_epoch(ds, epoch, 3))
    epoch.assign(0)
    iterator = iter(ds)  # as Keras makes the next epoch's iterator at the end of an epoch
    epoch.assign(3)  # then `on_epoch_begin`
    np.testing.assert_array_equal(_ids(np.concatenate(list(iterator))), at_three)


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_epoch_keyed_pass_without_shuffle_keeps_order_and_batches(drop_remainder):
    epoch = tf.Variable(5, dtype=tf.int64)
    ds = make_dataset(
        _id_images(300), binarize=None, batch_size=64, shuffle=False, seed=0, epoch=epoch,
        drop_remainder=drop_remainder,
    )  # fmt: skip
    assert ds.element_spec.shape.as_list() == [64 if drop_remainder else None, 4, 4, 1]
    sizes = [64] * 4 + ([] if drop_remainder else [44])
    assert [len(x) for x in ds] == sizes and ds.cardinality() == len(sizes)
    np.testing.assert_array_equal(_ids(_epoch(ds)), np.arange(sum(sizes)))


@pytest.mark.parametrize(
    "kwargs, parts",
    [
        ({"binarize": "sometimes"}, ["'dynamic', 'static' or None", "binarize='sometimes'"]),
        ({"binarize": "none"}, ["binarize='none'"]),
        ({"batch_size": 0}, ["batch_size=0"]),
        ({"batch_size": 2.5}, ["batch_size=2.5"]),
        ({"batch_size": True}, ["batch_size=True"]),
        ({"seed": "0"}, ["seed='0'"]),
        ({"seed": -1}, ["non-negative", "seed=-1"]),
        ({"seed": -1, "binarize": "static"}, ["non-negative", "seed=-1"]),
        # TensorFlow's seeds wrap at 2**31 - 1: seed 2**31 - 1 would replay seed 0.
        ({"seed": 2**31 - 1}, ["below 2**31 - 1", f"seed={2**31 - 1}"]),
        ({"seed": 2**31 - 1, "binarize": "static"}, ["below 2**31 - 1"]),
        ({"seed": 2**63, "epoch": tf.Variable(0)}, ["below 2**63", f"seed={2**63}"]),
        ({"labels": np.zeros(10, np.int64)}, ["labels=None", "make_conditional_pairs"]),
        ({"epoch": 3}, ["scalar integer tf.Variable", "epoch=3"]),
        ({"epoch": tf.Variable(0.0)}, ["epoch=tf.Variable(dtype=float32, shape=())"]),
        ({"epoch": tf.Variable([0, 1])}, ["epoch=tf.Variable(dtype=int32, shape=(2,))"]),
    ],
)
def test_dataset_bad_arguments(kwargs, parts):
    with pytest.raises(ValueError) as error:
        make_dataset(np.zeros((10, 4, 4), np.uint8), **kwargs)
    _assert_one_line_error(error, *parts)


def test_dataset_seeds_up_to_the_bound_give_their_own_passes():
    images = _id_images(100)
    first = _ids(_epoch(make_dataset(images, binarize=None, batch_size=10, seed=0)))
    largest = _ids(_epoch(make_dataset(images, binarize=None, batch_size=10, seed=2**31 - 2)))
    assert not np.array_equal(largest, first)
    epoch = tf.Variable(0, dtype=tf.int64)
    keyed = make_dataset(images, binarize=None, batch_size=10, seed=2**63 - 1, epoch=epoch)
    np.testing.assert_array_equal(np.sort(_ids(_epoch(keyed))), np.arange(100))


def test_a_model_for_grey_images_trains_on_make_dataset_batches():
    # make_dataset gives [B, H, W, 1]; a decoder built for grey [H, W] images serves them.
    import keras

    from keras_vae import VAE
    from keras_vae.networks import mlp_decoder, mlp_encoder

    keras.utils.set_random_seed(0)
    vae = VAE(mlp_encoder((6, 5), hidden_units=(8,)), mlp_decoder(2, (6, 5), (8,)), 2)
    vae.compile(optimizer=keras.optimizers.Adam(0.01), jit_compile=False)
    images = np.random.default_rng(0).integers(0, 256, (40, 6, 5), dtype=np.uint8)
    history = vae.fit(make_dataset(images, batch_size=20, seed=0), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert vae.sample(3, seed=0).shape == (3, 6, 5, 1)


def test_make_dataset_refuses_one_image_without_its_batch_axis():
    image = np.zeros((28, 28, 1), np.uint8)
    with pytest.raises(ValueError) as error:
        make_dataset(image)
    _assert_one_line_error(error, "images.shape=(28, 28, 1)", "images[None]")
    # With the batch axis it is one image, and a rank-3 [N, H, W] batch still works.
    assert [tuple(b.shape) for b in make_dataset(image[None], binarize=None)] == [(1, 28, 28, 1)]
    batches = make_dataset(np.zeros((3, 28, 28), np.uint8), binarize=None, batch_size=2)
    assert [tuple(b.shape) for b in batches] == [(2, 28, 28, 1), (1, 28, 28, 1)]


def test_dataset_yields_tensors_for_fit():
    ds = make_dataset(_id_images(10), batch_size=4, seed=0)
    assert isinstance(ds, tf.data.Dataset)
    assert ds.element_spec == tf.TensorSpec([None, 4, 4, 1], tf.float32)


def test_num_classes_comes_from_the_dataset_metadata(mnist_dir):
    assert num_classes("mnist", data_dir=mnist_dir) == 10
    with pytest.raises(ValueError) as error:
        num_classes("no_such_dataset", data_dir=mnist_dir)
    _assert_one_line_error(error, "name='no_such_dataset'")


def test_dequantized_8_bit_images_fall_in_their_bins():
    images = np.arange(256, dtype="uint8").reshape(1, 16, 16)
    values = dequantize(images, seed=3)
    assert values.dtype == np.float32
    assert np.all(values >= images / 256) and np.all(values < (images + 1.0) / 256)
    offsets = values * 256 - images
    assert 0.4 < offsets.mean() < 0.6  # uniform within each bin, not pinned to an edge
    assert values.shape == images.shape
    np.testing.assert_array_equal(values, dequantize(images, seed=3))
    with pytest.raises(
        ValueError, match=r"Expected a non-empty integer .* Received: pixels.dtype="
    ):
        dequantize(images / 255.0)
    with pytest.raises(ValueError, match=r"Received: pixels with min=0, max=256"):
        dequantize(np.arange(257))
