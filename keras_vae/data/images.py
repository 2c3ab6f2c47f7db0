"""Image datasets for VAEs: loading from TFDS, scaling, binarization, `tf.data` pipelines."""

import difflib
import os
import socket

import numpy as np
import tensorflow as tf

# tensorflow_datasets is imported where a dataset is looked up, not here: a
# command that loads no dataset (sample, export) skips its 0.1-0.3 s.

BINARIZATIONS = ("dynamic", "static", None)
# Where TFDS fetches prepared datasets such as MNIST.
_DOWNLOAD_HOST = "storage.googleapis.com"


def load_images(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Loads a TFDS image dataset into memory, downloading it if needed.

    A dataset missing from the data folder is downloaded and prepared by TFDS
    when the download server answers. Offline, TFDS would retry for minutes,
    so a quick connection check comes first and a missing dataset then fails
    at once with a `ValueError` that says how to provide it.

    Args:
        name: str. TFDS dataset name, optionally with config and version
            (`"mnist"`, `"mnist:3.0.1"`). The dataset needs an `"image"`
            feature of fixed shape and dtype uint8 and a `"label"` class label.
        split: str. TFDS split, slicing allowed (`"train"`, `"test[:1000]"`,
            `"train[:90%]"`). Defaults to `"train"`.
        data_dir: str or `None`. TFDS data folder. Defaults to the
            `TFDS_DATA_DIR` environment variable, else TFDS's default
            (`~/tensorflow_datasets`).
        download: bool. Whether to download a missing dataset. Defaults to
            `True`.

    Returns:
        A tuple `(images, labels)`: uint8 array `[N, H, W, C]` with values in
        0..255 and int64 array `[N]`, in the order TFDS stores the split.

    Example:

    >>> images, labels = load_images("mnist", "test[:100]")
    >>> images.shape, images.dtype, labels.dtype
    ((100, 28, 28, 1), dtype('uint8'), dtype('int64'))
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"Expected name to be a non-empty TFDS dataset name string. Received: name={name!r}"
        )
    if not isinstance(split, str) or not split:
        raise ValueError(
            f"Expected split to be a non-empty TFDS split string. Received: split={split!r}"
        )
    import tensorflow_datasets as tfds

    data_dir = _resolve_data_dir(data_dir)
    builder = _tfds_builder(name, data_dir)
    _check_image_features(name, builder.info.features)
    if not builder.is_prepared() and download and _download_server_reachable():
        builder.download_and_prepare()
    if not builder.is_prepared():
        folder = data_dir or tfds.core.constants.get_default_data_dir()
        raise ValueError(
            f"Expected TFDS dataset {name!r} to be prepared in the data folder, but it was not "
            f"found there and could not be downloaded. Received: name={name!r}, "
            f"data_dir={folder!r}. Set TFDS_DATA_DIR (or pass data_dir) to a folder prepared "
            "with tfds, or run once with internet access so tfds can download it."
        )
    try:
        data = builder.as_dataset(split=split, batch_size=-1)
    except ValueError as error:
        splits = sorted(builder.info.splits.keys())
        raise ValueError(
            f"Expected split to select examples of {name!r} (one of {splits}, slicing such as "
            f"'train[:1000]' allowed). Received: split={split!r} ({_first_line(error)})"
        ) from None
    data = tfds.as_numpy(data)
    return data["image"], data["label"].astype(np.int64, copy=False)


def num_classes(name: str, data_dir: str | os.PathLike | None = None) -> int:
    """Number of classes of a TFDS image dataset's `"label"` feature.

    Read from the dataset's metadata, so the count does not depend on which
    labels a split happens to hold.

    Args:
        name: str. TFDS dataset name, as for `load_images`.
        data_dir: str, path or `None`. TFDS data folder (else `TFDS_DATA_DIR`).

    Returns:
        int, e.g. `10` for `"mnist"`.
    """
    builder = _tfds_builder(name, _resolve_data_dir(data_dir))
    _check_image_features(name, builder.info.features)
    return int(builder.info.features["label"].num_classes)


def scale_images(images: np.ndarray) -> np.ndarray:
    """Scales images to float32 values in [0, 1].

    Integer images are read as 0..255 pixel values and divided by 255; float
    images must already lie in [0, 1]; booleans become 0 and 1.

    Args:
        images: numeric array `[N, H, W]` or `[N, H, W, C]`, integer with
            values in 0..255, or float with values in [0, 1]. A rank-3 array
            whose last axis is 1 is refused: it is one `[H, W, 1]` image
            without its batch axis (pass `images[None]`).

    Returns:
        float32 array `[N, H, W, C]` in [0, 1] (a channel axis of size 1 is
        added to `[N, H, W]` input).

    Example:

    >>> scale_images(np.array([[[0, 255]]], dtype="uint8"))[..., 0]
    array([[[0., 1.]]], dtype=float32)
    """
    pixels = _as_pixels(images, "images", image_ranks=True)
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    return pixels


def binarize_static(images: np.ndarray, seed: int | None = 0) -> np.ndarray:
    """Draws one fixed Bernoulli sample per pixel, with the grey value as probability.

    Args:
        images: numeric array `[N, H, W]` or `[N, H, W, C]`, accepted as in
            `scale_images`.
        seed: int or `None`. Seed of the draw. Defaults to `0`; `None` draws
            fresh entropy.

    Returns:
        float32 array `[N, H, W, C]` of 0s and 1s.

    Example:

    >>> binarize_static(np.full((2, 28, 28), 0.5), seed=0).mean().round(1)
    np.float32(0.5)
    """
    probs = scale_images(images)
    return _bernoulli(probs, np.random.default_rng(_check_seed(seed))).astype(np.float32)


def dequantize(pixels: np.ndarray, seed: int | None = 0) -> np.ndarray:
    """Spreads 8-bit pixels uniformly over their bins: `(k + u) / 256`, u ~ U[0, 1).

    A density p(x) on [0, 1] gives each 8-bit image k the probability
    P(k) = ∫ p(x) dx over its bin, and by Jensen's inequality
    log P(k) >= E_u[log p((k + u) / 256)] - D ln 256. So a continuous
    likelihood's log p on these values, minus D ln 256, is a lower bound on
    the log-probability of the 8-bit images: pass them to
    `keras_vae.evaluation.log_likelihood(..., bins=256)`.

    Args:
        pixels: integer array of any shape (images `[N, H, W, C]`, flat
            pixel vectors, ...) with values in 0..255.
        seed: int or `None`. Seed of the uniform noise. Defaults to `0`;
            `None` draws fresh entropy.

    Returns:
        float32 array of the same shape, in [0, 1).

    Example:

    >>> x = dequantize(np.array([0, 255], dtype="uint8"), seed=0)
    >>> bool(np.all((x >= [0, 255 / 256]) & (x < [1 / 256, 1])))
    True
    """
    array = _numeric_array(pixels, "pixels")
    if not np.issubdtype(array.dtype, np.integer) or array.size == 0:
        raise ValueError(
            "Expected a non-empty integer array of 8-bit pixel values to dequantize. "
            f"Received: pixels.dtype={array.dtype}, pixels.shape={array.shape}"
        )
    if array.min() < 0 or array.max() > 255:
        raise ValueError(
            "Expected pixel values in 0..255. "
            f"Received: pixels with min={array.min()}, max={array.max()}"
        )
    levels = array.astype(np.float32)
    noise = np.random.default_rng(_check_seed(seed)).random(array.shape, dtype=np.float32)
    # float32 rounding can lift (255 + u) / 256 to 1.0; keep every value inside its bin.
    upper = np.nextafter((levels + 1) / np.float32(256.0), np.float32(0.0))
    return np.minimum((levels + noise) / np.float32(256.0), upper)


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    binarize: str | None = "dynamic",
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int | None = None,
    cache: bool = True,
    drop_remainder: bool = False,
    epoch: tf.Variable | None = None,
) -> tf.data.Dataset:
    """Builds a `tf.data` pipeline of image batches for an unconditional VAE.

    The images are validated and kept in memory once (uint8 input stays uint8,
    a quarter of the float32 size); the pipeline caches, shuffles with a
    buffer of the whole dataset (a new order every epoch), batches, then
    scales each batch to [0, 1] and, for `"dynamic"`, replaces it with a fresh
    Bernoulli draw of every pixel, and prefetches. Dynamic draws use
    stateless random ops keyed by `tf.data.Dataset.random(seed,
    rerandomize_each_iteration=True)`, so each epoch (each new iterator, as in
    `model.fit`) gets new draws, reproducible for a given `seed`.

    Args:
        images: numeric array `[N, H, W]` or `[N, H, W, C]`, uint8 0..255 or
            float in [0, 1], accepted as in `scale_images`.
        labels: must be `None`. Unconditional VAEs train on images alone;
            use `make_conditional_pairs` and `make_conditional_dataset` for a
            label-conditioned model.
        binarize: str or `None`. `"dynamic"` (a fresh draw of each pixel
            every time an image is used, the standard for MNIST
            likelihoods), `"static"` (one fixed draw, made once) or `None`
            (grey values). Defaults to `"dynamic"`.
        batch_size: int. Images per batch. Defaults to `128`.
        shuffle: bool. Reshuffle the whole dataset every epoch. Defaults to
            `True`.
        seed: int or `None`. Seed of the shuffle and of the binarization
            draws, below 2**31 - 1 (below 2**63 with `epoch`). Defaults to
            `None` (not reproducible).
        cache: bool. Cache the in-memory elements ahead of the shuffle.
            Defaults to `True`.
        drop_remainder: bool. Drop the last, smaller batch. Defaults to
            `False`.
        epoch: scalar integer `tf.Variable` or `None`. When given, the order
            and the draws of a pass are a function of `seed` and of the value
            `epoch` holds when the pass starts, instead of the number of
            passes made before. Set it in `on_epoch_begin` (e.g.
            `keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs:
            epoch.assign(e))`): a run resumed at epoch `k` (`fit(...,
            initial_epoch=k)`, Keras's `BackupAndRestore`) then sees the data
            of an uninterrupted run. `cache` does not apply. Defaults to
            `None`.

    Returns:
        A `tf.data.Dataset` yielding float32 batches `[B, H, W, C]` in [0, 1].

    Example:

    >>> ds = make_dataset(np.zeros((10, 28, 28), "uint8"), batch_size=4, seed=0)
    >>> [tuple(x.shape) for x in ds]
    [(4, 28, 28, 1), (4, 28, 28, 1), (2, 28, 28, 1)]
    """
    if labels is not None:
        raise ValueError(
            "Expected labels=None: unconditional datasets yield images only (use "
            "make_conditional_pairs and make_conditional_dataset for a label-conditioned "
            f"model). Received: labels with shape {np.shape(labels)}"
        )
    _check_pipeline_args(binarize, batch_size, seed, epoch)
    pixels = _as_pixels(images, "images", image_ranks=True)
    if binarize == "static":
        draw = _bernoulli(_unit_float(pixels), np.random.default_rng(seed))
        pixels = draw.astype(np.uint8) * np.uint8(255)
    return _pipeline(
        (pixels,),
        (binarize == "dynamic",),
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        cache=cache,
        drop_remainder=drop_remainder,
        epoch=epoch,
    )


def _download_server_reachable(timeout: float = 3.0) -> bool:
    """Whether TFDS's download host answers; offline machines fail this at once."""
    try:
        socket.create_connection((_DOWNLOAD_HOST, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _resolve_data_dir(data_dir):
    if data_dir is None:
        return os.environ.get("TFDS_DATA_DIR") or None
    return os.fspath(data_dir)


def _tfds_builder(name, data_dir):
    """Looks up a TFDS builder, turning TFDS's lookup errors into one-line `ValueError`s."""
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name.split(":")[0].split("/")[0].lower(), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            "Expected a TFDS image dataset name such as 'mnist' (see tfds.list_builders()). "
            f"Received: name={name!r}{hint}"
        ) from None
    except (ValueError, AssertionError, ImportError) as error:
        raise ValueError(
            "Expected a TFDS image dataset name of the form 'name[/config][:version]'. "
            f"Received: name={name!r} ({_first_line(error)})"
        ) from None


def _check_image_features(name, features):
    import tensorflow_datasets as tfds

    image = features["image"] if "image" in features else None
    label = features["label"] if "label" in features else None
    shape = getattr(image, "shape", None)
    if (
        not isinstance(image, tfds.features.Image)
        or not isinstance(label, tfds.features.ClassLabel)
        or image.np_dtype != np.uint8
        or None in shape
    ):
        received = {key: repr(value).split("(")[0] for key, value in features.items()}
        raise ValueError(
            "Expected a TFDS image dataset name (a dataset with a fixed-shape uint8 'image' "
            f"feature and a 'label' class label). Received: name={name!r} with features "
            f"{received}" + (f", image shape {shape}" if image is not None else "")
        )


def _first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _numeric_array(array, name):
    """`array` as numpy, booleans as float32; raises unless integer or float."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.float32)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(
            f"Expected {name} to be a numeric (integer or float) array. "
            f"Received: {name}.dtype={array.dtype}"
        )
    return array


def _as_pixels(array, name, image_ranks=False):
    """Validates pixel data; returns uint8 (values 0..255) or float32 (values in [0, 1]).

    With `image_ranks`, accepts `[N, H, W]` (adding a channel axis) or
    `[N, H, W, C]`; otherwise any array `[N, ...]` of rank >= 2.
    """
    array = _numeric_array(array, name)
    if image_ranks:
        if array.ndim == 3 and array.shape[-1] == 1:
            # [N, H, W] would read it as N images one pixel wide: almost surely
            # one [H, W, 1] image that lacks its batch axis.
            raise ValueError(
                f"Expected {name} shaped [N, H, W] or [N, H, W, C]; a rank-3 array with a "
                "last axis of 1 would be images one pixel wide (for one [H, W, 1] image, add "
                f"a batch axis: {name}[None]). Received: {name}.shape={array.shape}"
            )
        if array.ndim == 3:
            array = array[..., np.newaxis]
        if array.ndim != 4 or 0 in array.shape:
            raise ValueError(
                f"Expected {name} shaped [N, H, W] or [N, H, W, C] with every dimension "
                f"positive. Received: {name}.shape={array.shape}"
            )
    elif array.ndim < 2 or 0 in array.shape:
        raise ValueError(
            f"Expected {name} shaped [N, ...] with rank >= 2 and every dimension positive. "
            f"Received: {name}.shape={array.shape}"
        )
    low, high = array.min(), array.max()
    if np.issubdtype(array.dtype, np.integer):
        if low < 0 or high > 255:
            raise ValueError(
                f"Expected integer {name} with pixel values in 0..255. "
                f"Received: {name} with min={low}, max={high}"
            )
        return array.astype(np.uint8, copy=False)
    if not (low >= 0.0 and high <= 1.0):
        raise ValueError(
            f"Expected float {name} with values in [0, 1] (pass uint8 for 0..255 pixels). "
            f"Received: {name} with min={low}, max={high}"
        )
    return array.astype(np.float32, copy=False)


def _unit_float(pixels):
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / np.float32(255.0)
    return pixels


def _bernoulli(probs, rng):
    """One Bernoulli draw per entry: `uniform < p` (never 1 for p=0, always 1 for p=1)."""
    return rng.random(probs.shape, dtype=np.float32) < probs


def _check_seed(seed):
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(
            f"Expected seed to be a non-negative integer or None. Received: seed={seed!r}"
        )
    return seed


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")


def _check_pipeline_args(binarize, batch_size, seed, epoch):
    if binarize not in BINARIZATIONS:
        raise ValueError(
            f"Expected binarize to be one of 'dynamic', 'static' or None. "
            f"Received: binarize={binarize!r}"
        )
    _check_positive_int("batch_size", batch_size)
    _check_seed(seed)
    # TensorFlow takes an op seed modulo 2**31 - 1, so a larger seed would
    # repeat a smaller one's shuffle and draws; the stateless draws keyed by
    # `epoch` take the seed as an int64.
    bound, bound_text = (2**63, "2**63") if epoch is not None else (2**31 - 1, "2**31 - 1")
    if seed is not None and seed >= bound:
        raise ValueError(
            f"Expected seed below {bound_text} (TensorFlow's seeds wrap there). "
            f"Received: seed={seed!r}"
        )
    if epoch is not None and not (
        isinstance(epoch, tf.Variable) and epoch.dtype.is_integer and epoch.shape.rank == 0
    ):
        if isinstance(epoch, tf.Variable):
            received = f"tf.Variable(dtype={epoch.dtype.name}, shape={tuple(epoch.shape)})"
        else:
            received = repr(epoch)
        raise ValueError(
            f"Expected epoch to be None or a scalar integer tf.Variable. Received: epoch={received}"
        )


def _pipeline(arrays, dynamic, *, batch_size, shuffle, seed, cache, drop_remainder, epoch=None):
    """Cache -> shuffle -> batch -> scale and binarize per batch -> prefetch.

    Args:
        arrays: tuple of arrays `[N, ...]` from `_as_pixels` (uint8 pixels are
            divided by 255 per batch) or float32 arrays used as they are.
        dynamic: tuple of bools, one per array: draw a fresh Bernoulli sample
            of that array for every batch.
        epoch: a scalar integer `tf.Variable` or `None`: see `_epoch_pipeline`.
    """
    if epoch is not None:
        return _epoch_pipeline(
            arrays, dynamic, batch_size=batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
            drop_remainder=drop_remainder,
        )  # fmt: skip
    num_examples = len(arrays[0])
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(num_examples, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)

    if any(dynamic):
        # Stateless draws keyed per batch: a stateful op seeded inside the map
        # function would restart its stream with every iterator, i.e. repeat
        # the same draws every epoch.
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, keys))

        def fn(batch, key):
            return _draw(batch, dynamic, lambda index: tf.stack([key, index]))

    else:

        def fn(*batch):
            return _draw(batch, dynamic, None)

    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    return _without_autotuning(ds.prefetch(tf.data.AUTOTUNE))


def _epoch_pipeline(arrays, dynamic, *, batch_size, shuffle, seed, epoch, drop_remainder):
    """A pass whose order and draws are a function of `seed` and `epoch`'s value.

    `epoch` is read when a pass yields its first batch, not when the iterator
    is made: Keras makes iterators ahead of the epoch they serve, but
    `on_epoch_begin` runs before the first batch.
    """
    if seed is None:  # stateless draws need one: fixed for the pipeline's lifetime
        seed = int(np.random.default_rng().integers(2**31))
    num_examples = len(arrays[0])
    batch_size = int(batch_size)
    if drop_remainder:
        num_batches = num_examples // batch_size
    else:
        num_batches = -(-num_examples // batch_size)
    tensors = tuple(tf.constant(array) for array in arrays)

    def one_pass(epoch_value):
        key = tf.random.experimental.stateless_fold_in(
            tf.constant([seed, 0], tf.int64), epoch_value
        )
        order = tf.range(num_examples, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=key)

        def fn(index):
            rows = order[index * batch_size : tf.minimum((index + 1) * batch_size, num_examples)]
            if drop_remainder:  # a static batch size, as `Dataset.batch` gives
                rows = tf.ensure_shape(rows, [batch_size])
            batch = tuple(tf.gather(tensor, rows) for tensor in tensors)
            batch_key = tf.random.experimental.stateless_fold_in(key, index)
            return _draw(
                batch,
                dynamic,
                lambda position: tf.random.experimental.stateless_fold_in(batch_key, position),
            )

        return tf.data.Dataset.range(num_batches).map(fn, num_parallel_calls=tf.data.AUTOTUNE)

    passes = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(
        lambda _: tf.cast(epoch.read_value(), tf.int64)
    )
    ds = passes.flat_map(one_pass).apply(tf.data.experimental.assert_cardinality(num_batches))
    return _without_autotuning(ds.prefetch(tf.data.AUTOTUNE))


def array_batches(data, batch_size, shuffle=True):
    """Batches of in-memory arrays, as Keras's `fit` makes them, without tf.data autotuning.

    `VAE.fit` feeds arrays through this instead of Keras's own array pipeline,
    whose autotuned iterators stall every epoch (`_without_autotuning`). Like
    Keras's, it gathers each batch from a permutation of the rows, new every
    pass when `shuffle` (from the global seed, so `keras.utils.set_random_seed`
    makes it reproducible), and keeps the last, smaller batch.

    Args:
        data: a nest of numpy arrays with the same number of rows, e.g.
            Keras's `(x, y, sample_weight)`.
        batch_size: int. Rows per batch.
        shuffle: bool. A new order of the rows every pass. Defaults to `True`.

    Returns:
        A `tf.data.Dataset` of batches with `data`'s structure.
    """
    tensors = tf.nest.map_structure(tf.convert_to_tensor, data)
    num_rows = int(tf.nest.flatten(tensors)[0].shape[0])
    batch_size = int(batch_size)
    num_batches = -(-num_rows // batch_size)
    rows = tf.range(num_rows, dtype=tf.int64)
    if shuffle:
        orders = (
            tf.data.Dataset.random(rerandomize_each_iteration=True)
            .take(1)
            .map(
                lambda key: tf.random.experimental.stateless_shuffle(
                    rows, seed=tf.stack([key, tf.constant(0, tf.int64)])
                )
            )
        )
    else:
        orders = tf.data.Dataset.from_tensors(rows)

    def one_pass(order):
        def batch(index):
            taken = order[index * batch_size : tf.minimum((index + 1) * batch_size, num_rows)]
            return tf.nest.map_structure(lambda tensor: tf.gather(tensor, taken), tensors)

        return tf.data.Dataset.range(num_batches).map(batch, num_parallel_calls=tf.data.AUTOTUNE)

    ds = orders.flat_map(one_pass).apply(tf.data.experimental.assert_cardinality(num_batches))
    # As Keras does for arrays: the rewrites would serialize the arrays with
    # the pipeline's graph for every iterator.
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return _without_autotuning(ds.prefetch(tf.data.AUTOTUNE).with_options(options))


def _without_autotuning(ds):
    """`ds` with tf.data's autotuning turned off.

    Keras makes a new iterator every epoch, and deleting the old one waits
    for its autotuning thread: on 2 cores, 0.1 to 2 s at the start of an
    epoch with the cores idle, so that a 1.9 s MNIST epoch took 2.5 s at
    random (`benchmarks/RESULTS.md`, training throughput). These pipelines
    do light work per batch (a gather, a cast, a uniform draw); without
    autotuning they still yield MNIST batches more than five times faster
    than the MLP VAE trains on them.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def _draw(batch, dynamic, seed_of):
    """Scales a batch's arrays to [0, 1] and draws the `dynamic` ones, with `seed_of(index)`."""
    out = []
    for index, (x, draw) in enumerate(zip(batch, dynamic, strict=True)):
        if x.dtype == tf.uint8:
            x = tf.cast(x, tf.float32) / 255.0
        if draw:
            noise = tf.random.stateless_uniform(
                tf.shape(x), seed=seed_of(tf.constant(index, tf.int64))
            )
            x = tf.cast(noise < x, tf.float32)
        out.append(x)
    return tuple(out) if len(out) > 1 else out[0]
