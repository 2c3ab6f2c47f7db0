import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_vae import VAE, ConditionalVAE
from keras_vae.callbacks import ImageLogger
from keras_vae.layers import IndependentBernoulli
from keras_vae.visualize import plot_reconstructions, plot_samples

SHAPE = (4, 4, 1)


def tiny_model(condition_type=None):
    """An untrained model of 4x4 images (a label CVAE of 3 classes with `"label"`)."""
    keras.utils.set_random_seed(0)
    extra = 3 if condition_type else 0
    encoder = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten()])
    decoder = keras.Sequential(
        [keras.Input((2 + extra,)), keras.layers.Dense(16), keras.layers.Reshape(SHAPE)]
    )
    if condition_type is None:
        model = VAE(encoder, decoder, 2, likelihood=IndependentBernoulli(SHAPE), seed=0)
    else:
        model = ConditionalVAE(
            encoder, decoder, 2, likelihood=IndependentBernoulli(SHAPE), hidden_units=4,
            condition_type=condition_type, seed=0,
        )  # fmt: skip
    model.compile(optimizer="adam", run_eagerly=True)  # tiny data: tracing costs more
    return model


def data(n=32):
    rng = np.random.default_rng(0)
    return (rng.random((n, *SHAPE)) < 0.5).astype("float32"), rng.integers(0, 3, n)


def logged_images(folder):
    """`{(tag, step): uint8 image}` of a TensorBoard folder's image summaries."""
    images = {}
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                _, _, png = tf.make_ndarray(value.tensor)
                images[value.tag, event.step] = tf.io.decode_png(png).numpy()
    return images


def test_each_epoch_writes_samples_and_reconstructions(tmp_path):
    x, _ = data()
    model = tiny_model()
    logger = ImageLogger(x[:4], log_dir=tmp_path / "logs", png_dir=tmp_path / "png", seed=5)
    model.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=[logger])
    logged = logged_images(tmp_path / "logs")
    assert sorted(logged) == [
        ("reconstructions", 0), ("reconstructions", 1), ("samples", 0), ("samples", 1)
    ]  # fmt: skip
    assert sorted(os.listdir(tmp_path / "png")) == [
        "reconstructions_epoch_001.png", "reconstructions_epoch_002.png",
        "samples_epoch_001.png", "samples_epoch_002.png",
    ]  # fmt: skip
    # The last epoch's pictures are those of the trained model.
    expected = {
        "samples": plot_samples(model, 64, seed=5),
        "reconstructions": plot_reconstructions(model, x[:4]),
    }
    for name, picture in expected.items():
        np.testing.assert_array_equal(logged[name, 1], picture)
        png = np.asarray(Image.open(tmp_path / "png" / f"{name}_epoch_002.png"))
        np.testing.assert_array_equal(png, picture[..., 0])
    assert not np.array_equal(logged["reconstructions", 0], logged["reconstructions", 1])


def test_logging_leaves_training_as_it_is(tmp_path):
    x, _ = data()
    trained = []
    for callbacks in ([], [ImageLogger(x[:4], png_dir=tmp_path)]):
        model = tiny_model()
        model.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
        trained.append(model.get_weights())
    for before, after in zip(*trained, strict=True):
        np.testing.assert_array_equal(before, after)


def test_a_label_cvae_logs_class_rows_of_the_given_labels(tmp_path):
    x, labels = data()
    model = tiny_model("label")
    condition = np.eye(3, dtype="float32")[labels]
    logger = ImageLogger(x, labels, png_dir=tmp_path, num_samples=2, num_images=4)
    model.fit(condition, x, epochs=1, batch_size=16, verbose=0, callbacks=[logger])
    pictures = logger.pictures()
    np.testing.assert_array_equal(pictures["samples"], plot_samples(model, 2, seed=0))
    np.testing.assert_array_equal(
        pictures["reconstructions"], plot_reconstructions(model, x[:4], labels[:4])
    )


def test_nowhere_to_write_is_one_line():
    with pytest.raises(ValueError, match="^Expected log_dir or png_dir.*Received: "):
        ImageLogger(np.zeros((2, *SHAPE), "float32"))


def test_a_label_cvae_without_labels_is_refused_before_the_first_epoch():
    x, labels = data()
    model = tiny_model("label")
    logger = ImageLogger(x, log_dir="unused")
    with pytest.raises(ValueError, match="^Expected labels.*Received: labels=None$"):
        model.fit(np.eye(3, dtype="float32")[labels], x, epochs=1, verbose=0, callbacks=[logger])
    assert model.optimizer.iterations.numpy() == 0
