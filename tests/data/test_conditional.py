"""Tests for keras_vae.data.conditional: condition/target pairs and their pipeline."""

import numpy as np
import pytest
import tensorflow as tf

from keras_vae.data import (
    CONDITIONS,
    make_conditional_dataset,
    make_conditional_pairs,
    merge_image,
    pixel_indices,
    scale_images,
    split_image,
)

PIXEL_CONDITIONS = ("center-column", "top-half")


def _reference_split(images, condition):
    """Independent slicing reference of split_image on [N, H, W, C] images."""
    n, height, width, _ = images.shape
    if condition == "top-half":
        return images[:, : height // 2].reshape(n, -1), images[:, height // 2 :].reshape(n, -1)
    column = (width - 1) // 2
    observed = images[:, :, column : column + 1].reshape(n, -1)
    return observed, np.delete(images, column, axis=2).reshape(n, -1)


def _epoch(ds):
    conditions, targets = zip(*[(np.asarray(c), np.asarray(t)) for c, t in ds], strict=True)
    return np.concatenate(conditions), np.concatenate(targets)


def _assert_one_line_error(error, *parts):
    message = str(error.value)
    assert "Expected" in message and "Received" in message, message
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def test_conditions():
    assert CONDITIONS == ("label", "center-column", "top-half")


# --- make_conditional_pairs ----------------------------------------------------------------


def test_label_pairs_on_mnist(mnist_test):
    images, labels = mnist_test[0][:500], mnist_test[1][:500]
    condition, target = make_conditional_pairs(images, labels, "label")
    assert condition.shape == (500, 10) and condition.dtype == np.float32
    reference = np.zeros((500, 10), np.float32)
    for row, label in enumerate(labels):
        reference[row, label] = 1.0
    np.testing.assert_array_equal(condition, reference)
    np.testing.assert_array_equal(target, scale_images(images))


def test_label_pairs_num_classes():
    condition, _ = make_conditional_pairs(np.zeros((3, 4, 4)), np.array([0, 4, 2]), "label", 5)
    np.testing.assert_array_equal(condition, np.eye(5, dtype=np.float32)[[0, 4, 2]])


@pytest.mark.parametrize(
    "condition, observed_size, missing_size",
    [("center-column", 28, 27 * 28), ("top-half", 14 * 28, 14 * 28)],
)
def test_pixel_pairs_on_mnist(mnist_test, condition, observed_size, missing_size):
    images = mnist_test[0][:500]
    observed, missing = make_conditional_pairs(images, None, condition)
    assert observed.shape == (500, observed_size) and missing.shape == (500, missing_size)
    assert observed.dtype == missing.dtype == np.float32
    reference = _reference_split(scale_images(images), condition)
    np.testing.assert_array_equal(observed, reference[0])
    np.testing.assert_array_equal(missing, reference[1])
    assert 0.0 <= min(observed.min(), missing.min()) and max(observed.max(), missing.max()) <= 1


def test_center_column_is_the_middle_column():
    # Column 13 of 28, as Doersch's MNIST CVAE slices it (Slice at 13:14).
    images = np.zeros((1, 28, 28, 1), np.float32)
    images[0, :, 13, 0] = 1.0
    observed, missing = split_image(images, "center-column")
    assert observed.all() and not missing.any()


# --- split_image / merge_image -------------------------------------------------------------


@pytest.mark.parametrize("condition", PIXEL_CONDITIONS)
@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((4, 28, 28, 1), "float32"),
        ((3, 5, 7, 3), "float64"),
        ((2, 2, 2), "float32"),
        ((2, 9, 6, 2), "float16"),
    ],
)
def test_split_merge_round_trip(condition, shape, dtype):
    images = np.random.default_rng(0).random(shape).astype(dtype)
    observed, missing = split_image(images, condition)
    assert observed.dtype == missing.dtype == np.dtype(dtype)
    full = images if images.ndim == 4 else images[..., np.newaxis]
    reference = _reference_split(full, condition)
    np.testing.assert_array_equal(observed, reference[0])
    np.testing.assert_array_equal(missing, reference[1])
    merged = merge_image(observed, missing, condition, images.shape[1:])
    assert merged.dtype == images.dtype and merged.shape == images.shape
    np.testing.assert_array_equal(merged, images)


@pytest.mark.parametrize("condition", PIXEL_CONDITIONS)
@pytest.mark.parametrize("shape", [(28, 28, 1), (5, 6, 3), (4, 7)])
def test_pixel_indices_pick_what_split_image_returns(condition, shape):
    images = np.random.default_rng(0).random((3,) + shape)
    observed_idx, missing_idx = pixel_indices(condition, shape)
    observed, missing = split_image(images, condition)
    flat = images.reshape(3, -1)
    np.testing.assert_array_equal(flat[:, observed_idx], observed)
    np.testing.assert_array_equal(flat[:, missing_idx], missing)
    every = np.sort(np.concatenate([observed_idx, missing_idx]))
    np.testing.assert_array_equal(every, np.arange(flat.shape[1]))


def test_split_integer_images_gives_float32():
    images = np.arange(2 * 4 * 4).reshape(2, 4, 4, 1)
    observed, missing = split_image(images, "top-half")
    assert observed.dtype == missing.dtype == np.float32
    np.testing.assert_array_equal(merge_image(observed, missing, "top-half", (4, 4, 1)), images)


@pytest.mark.parametrize(
    "call, parts",
    [
        (lambda: split_image(np.zeros((2, 4, 4)), "bottom-half"), ["condition='bottom-half'"]),
        (lambda: split_image(np.zeros((2, 4, 4)), "label"), ["condition='label'"]),
        (lambda: split_image(np.zeros((2, 1, 28, 1)), "top-half"), ["2 pixels high", "(1, 28, 1)"]),
        (lambda: split_image(np.zeros((2, 28, 1)), "center-column"), ["2 pixels wide", "(28, 1)"]),
        (lambda: split_image(np.zeros((2, 4)), "top-half"), ["images.shape=(2, 4)"]),
        (lambda: split_image(np.zeros((0, 4, 4)), "top-half"), ["images.shape=(0, 4, 4)"]),
        (lambda: split_image(np.array([[["a"]]]), "top-half"), ["images.dtype"]),
        (
            lambda: merge_image(np.zeros((2, 8)), np.zeros((2, 7)), "top-half", (4, 4)),
            ["missing", "[N, 8]", "missing.shape=(2, 7)"],
        ),
        (
            lambda: merge_image(np.zeros((2, 4)), np.zeros((2, 12)), "top-half", (4, 4)),
            ["observed", "[N, 8]", "observed.shape=(2, 4)"],
        ),
        (
            lambda: merge_image(np.zeros((2, 8)), np.zeros((3, 8)), "top-half", (4, 4)),
            ["len(observed)=2, len(missing)=3"],
        ),
        (
            lambda: merge_image(np.zeros((2, 8)), np.zeros((2, 8)), "top-half", (16,)),
            ["image_shape=(16,)"],
        ),
        (
            lambda: merge_image(np.zeros((2, 8)), np.zeros((2, 8)), "top-half", (4, 0)),
            ["image_shape=(4, 0)"],
        ),
        (
            lambda: merge_image(np.zeros((2, 1)), np.zeros((2, 1)), "top-half", (1, 2)),
            ["2 pixels high"],
        ),
        (lambda: pixel_indices("top-half", (4, 0)), ["image_shape=(4, 0)"]),
        (lambda: pixel_indices("top-half", 784), ["image_shape=784"]),
        (lambda: pixel_indices("left-half", (4, 4)), ["condition='left-half'"]),
    ],
)
def test_split_merge_bad_inputs(call, parts):
    with pytest.raises(ValueError) as error:
        call()
    _assert_one_line_error(error, *parts)


@pytest.mark.parametrize(
    "labels, condition, num_classes, parts",
    [
        (np.array([0, 1]), "bottom-half", 10, [str(CONDITIONS), "condition='bottom-half'"]),
        (None, "label", 10, ["labels=None"]),
        (np.array([0, 10]), "label", 10, ["[0, 10)", "max=10"]),
        (np.array([-1, 3]), "label", 10, ["min=-1"]),
        (np.array([0, 1, 2]), "label", 10, ["labels.shape=(3,)"]),
        (np.array([0.0, 1.0]), "label", 10, ["labels.dtype=float64"]),
        (np.array([0, 1]), "label", 0, ["num_classes=0"]),
        (np.array([0, 1]), "label", 2.0, ["num_classes=2.0"]),
    ],
)
def test_pairs_bad_inputs(labels, condition, num_classes, parts):
    with pytest.raises(ValueError) as error:
        make_conditional_pairs(np.zeros((2, 4, 4)), labels, condition, num_classes)
    _assert_one_line_error(error, *parts)


def test_pairs_validate_images():
    with pytest.raises(ValueError) as error:
        make_conditional_pairs(np.full((2, 4, 4), 2.0), None, "top-half")
    _assert_one_line_error(error, "max=2.0")


# --- make_conditional_dataset --------------------------------------------------------------


def test_dataset_continuous_matches_pairs_and_keeps_them_aligned(mnist_test):
    images, labels = mnist_test[0][:300], mnist_test[1][:300]
    observed, missing = make_conditional_pairs(images, labels, "center-column")
    ds = make_conditional_dataset(observed, missing, binarize=None, shuffle=False, batch_size=64)
    batches = list(ds)
    assert [len(c) for c, _ in batches] == [64] * 4 + [44]
    c, t = _epoch(ds)
    assert c.dtype == t.dtype == np.float32
    np.testing.assert_array_equal(c, observed)
    np.testing.assert_array_equal(t, missing)
    # Shuffled: every (condition, target) pair still merges into one of the images.
    shuffled = make_conditional_dataset(observed, missing, binarize=None, batch_size=64, seed=1)
    c, t = _epoch(shuffled)
    merged = merge_image(c, t, "center-column", (28, 28, 1))
    originals = scale_images(images)
    order = [int(np.flatnonzero((originals == m).all(axis=(1, 2, 3)))[0]) for m in merged]
    assert sorted(order) == list(range(300)) and order != list(range(300))


@pytest.mark.parametrize("keyed", [False, True], ids=["by-pass", "by-epoch"])
def test_dataset_label_condition_keeps_labels_with_images(keyed):
    # Row 0 of each image is black but for a white pixel at its label, which
    # every draw keeps (p=0 never fires, p=1 always does); the rest is grey.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=256)
    images = rng.integers(1, 255, size=(256, 12, 12), dtype=np.uint8)
    images[:, 0] = 0
    images[np.arange(256), 0, labels] = 255
    one_hot, target = make_conditional_pairs(images, labels, "label")
    epoch = tf.Variable(4, dtype=tf.int64) if keyed else None
    ds = make_conditional_dataset(one_hot, target, batch_size=32, seed=2, epoch=epoch)
    condition, drawn = _epoch(ds)
    assert not np.array_equal(condition.argmax(axis=1), labels)  # shuffled
    assert condition.shape == (256, 10) and drawn.shape == (256, 12, 12, 1)
    # A one-hot label is left as it is by the draw; the image is binarized.
    np.testing.assert_array_equal(np.sort(condition.argmax(axis=1)), np.sort(labels))
    assert set(np.unique(condition)) == {0.0, 1.0} and (condition.sum(axis=1) == 1).all()
    assert set(np.unique(drawn)) == {0.0, 1.0}
    np.testing.assert_array_equal(drawn[:, 0, :10, 0], condition)


def _passes(ds, count, epoch):
    """`count` passes over `ds`; with `epoch`, at epochs 0, 1, ..."""
    passes = []
    for value in range(count):
        if epoch is not None:
            epoch.assign(value)
        passes.append(_epoch(ds))
    return passes


@pytest.mark.parametrize("keyed", [False, True], ids=["by-pass", "by-epoch"])
@pytest.mark.parametrize("condition", PIXEL_CONDITIONS)
def test_dynamic_binarization_of_both_parts(mnist_test, condition, keyed):
    images = mnist_test[0][:200]
    observed, missing = make_conditional_pairs(images, None, condition)

    def dataset():
        epoch = tf.Variable(0, dtype=tf.int64) if keyed else None
        pipeline = make_conditional_dataset(
            observed, missing, shuffle=False, batch_size=50, seed=4, epoch=epoch
        )
        return pipeline, epoch

    ds, epoch = dataset()
    epochs = _passes(ds, 10, epoch)
    for part, probs in ((0, observed), (1, missing)):
        draws = np.stack([epoch[part] for epoch in epochs])
        assert set(np.unique(draws)) == {0.0, 1.0}
        assert not np.array_equal(draws[0], draws[1])
        assert not draws[:, probs == 0].any() and draws[:, probs == 1].all()
        # Frequency of ones matches the grey values (binomial standard error, 5 sigma).
        grey = (probs > 0) & (probs < 1)
        p = probs[grey]
        sigma = np.sqrt((p * (1 - p)).sum() / len(epochs)) / grey.sum()
        assert abs(draws.mean(axis=0)[grey].mean() - p.mean()) < 5 * sigma
    # The merged draw is one draw of the whole image: a binarized MNIST digit.
    merged = merge_image(*epochs[0], condition, (28, 28, 1))
    assert merged.shape == (200, 28, 28, 1)
    assert not merged[scale_images(images) == 0].any()
    # The same seed replays the same draws.
    for part, value in enumerate(_epoch(dataset()[0])):
        np.testing.assert_array_equal(value, epochs[0][part])


def test_static_binarization_is_one_fixed_draw(mnist_test):
    observed, missing = make_conditional_pairs(mnist_test[0][:200], None, "top-half")

    def dataset(seed):
        return make_conditional_dataset(
            observed, missing, binarize="static", shuffle=False, batch_size=64, seed=seed
        )

    ds = dataset(0)
    first, second = _epoch(ds), _epoch(ds)
    for part in (0, 1):
        assert set(np.unique(first[part])) == {0.0, 1.0}
        np.testing.assert_array_equal(first[part], second[part])
        np.testing.assert_array_equal(_epoch(dataset(0))[part], first[part])
        assert not np.array_equal(_epoch(dataset(1))[part], first[part])


def test_binarize_condition_false_keeps_the_condition():
    rng = np.random.default_rng(0)
    condition, target = rng.normal(size=(40, 3)).astype(np.float32), rng.random((40, 8))
    ds = make_conditional_dataset(
        condition, target, shuffle=False, batch_size=16, binarize_condition=False
    )
    c, t = _epoch(ds)
    np.testing.assert_array_equal(c, condition)
    assert set(np.unique(t)) <= {0.0, 1.0}


def test_dataset_drop_remainder():
    ds = make_conditional_dataset(
        np.zeros((100, 3)), np.zeros((100, 8)), batch_size=32, drop_remainder=True, seed=0
    )
    assert [(c.shape[0], t.shape[0]) for c, t in ds] == [(32, 32)] * 3


@pytest.mark.parametrize(
    "condition, target, kwargs, parts",
    [
        (np.zeros((5, 3)), np.zeros((4, 8)), {}, ["len(condition_array)=5, len(target)=4"]),
        (np.full((4, 3), 2.0), np.zeros((4, 8)), {}, ["binarize_condition=False", "max=2.0"]),
        (np.full((4, 3), np.nan), np.zeros((4, 8)), {}, ["non-finite"]),
        (np.zeros(4), np.zeros((4, 8)), {}, ["condition_array.shape=(4,)"]),
        (np.array([["a"]] * 4), np.zeros((4, 8)), {}, ["condition_array.dtype"]),
        (np.zeros((4, 3)), np.full((4, 8), 1.5), {}, ["target", "max=1.5"]),
        (np.zeros((4, 3)), np.zeros(4), {}, ["target.shape=(4,)"]),
        (np.zeros((4, 3)), np.zeros((4, 8)), {"binarize": "yes"}, ["binarize='yes'"]),
        (np.zeros((4, 3)), np.zeros((4, 8)), {"batch_size": -1}, ["batch_size=-1"]),
        (np.zeros((4, 3)), np.zeros((4, 8)), {"epoch": 0}, ["tf.Variable", "epoch=0"]),
    ],
)
def test_dataset_bad_inputs(condition, target, kwargs, parts):
    with pytest.raises(ValueError) as error:
        make_conditional_dataset(condition, target, **kwargs)
    _assert_one_line_error(error, *parts)


@pytest.mark.parametrize(
    ("binarize", "keyed"),
    [("dynamic", False), ("dynamic", True), ("static", False)],
    ids=["dynamic-by-pass", "dynamic-by-epoch", "static"],
)
def test_condition_and_target_pixels_are_drawn_independently(binarize, keyed):
    # Grey images split into equal halves: a draw of the whole image gives each
    # observed pixel and the missing pixel at the same offset independent values,
    # so they agree half the time (noise shared by the two parts would make them equal).
    images = np.full((64, 4, 4), 128, np.uint8)
    observed, missing = make_conditional_pairs(images, None, "top-half")
    epoch = tf.Variable(0, dtype=tf.int64) if keyed else None
    ds = make_conditional_dataset(
        observed, missing, binarize=binarize, shuffle=False, batch_size=64, seed=3, epoch=epoch
    )
    condition, target = _epoch(ds)
    assert condition.shape == target.shape == (64, 8)
    p = 128 / 255
    agreement = np.mean(condition == target)
    expected = p**2 + (1 - p) ** 2
    sigma = np.sqrt(expected * (1 - expected) / condition.size)
    assert abs(agreement - expected) < 5 * sigma, agreement


@pytest.mark.parametrize("binarize", ["static", "dynamic"])
def test_uint8_targets_are_drawn_with_their_grey_value_as_probability(binarize):
    # A uint8 target k is a pixel of grey k / 255: its draws are ones at that rate.
    condition = np.zeros((500, 1), np.float32)
    target = np.full((500, 8), 64, np.uint8)
    ds = make_conditional_dataset(
        condition, target, binarize=binarize, shuffle=False, batch_size=100, seed=2
    )
    draws = _epoch(ds)[1]
    assert set(np.unique(draws)) == {0.0, 1.0}
    p = 64 / 255
    assert abs(draws.mean() - p) < 5 * np.sqrt(p * (1 - p) / draws.size)
