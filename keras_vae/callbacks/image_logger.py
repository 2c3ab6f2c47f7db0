"""A callback that draws samples and reconstructions after every epoch."""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_vae.data import scale_images
from keras_vae.models.validation import check_positive_int
from keras_vae.visualize.model_inputs import model_inputs
from keras_vae.visualize.plot_reconstructions import plot_reconstructions
from keras_vae.visualize.plot_samples import plot_samples
from keras_vae.visualize.save_png import save_png

# Samples per picture by default, as `keras-vae train`'s samples.png shows them.
_DEFAULT_SAMPLES = {None: 64, "label": 8}
_DEFAULT_COMPLETIONS = 6


class ImageLogger(keras.callbacks.Callback):
    """Writes the model's samples and reconstructions to TensorBoard and PNG files.

    After every epoch it draws two pictures of `keras_vae.visualize`:

    - `samples` (`plot_samples`): prior samples of a `VAE`, a row per class
      of a label `ConditionalVAE`, or completions of `images` by a completion
      `ConditionalVAE`;
    - `reconstructions` (`plot_reconstructions`): `images` beside their
      reconstructions.

    Each goes to TensorBoard as an image summary named after it (step: the
    0-based epoch) in `log_dir`, and to `png_dir` as
    `<name>_epoch_<epoch>.png` (epoch from 1). The draws are seeded with
    `seed`, the same each epoch (so the pictures show the same latents
    learning), and never touch the model's own noise or the global seed:
    training runs as it would without the callback.

    Args:
        images: array `[N, H, W(, C)]`, uint8 or float in [0, 1]. The images
            to reconstruct (and, for a completion CVAE, to complete).
        labels: int array `[N]` or `None`. Their classes, needed by a label
            CVAE. Defaults to `None`.
        log_dir: str or `None`. TensorBoard folder. Defaults to `None`.
        png_dir: str or `None`. Folder of the PNG files. Defaults to `None`.
        num_samples: int or `None`. Samples (per class, or completions per
            image). Defaults to 64 for a `VAE`, 8 per class, 6 completions.
        num_images: int. Images of `images` used. Defaults to `8`.
        seed: int. Seed of the draws. Defaults to `0`.
        zoom: int. Pixels per image pixel. Defaults to `3`.

    Example:

    ```python
    logger = keras_vae.callbacks.ImageLogger(
        x_test[:8], log_dir="logs/images", png_dir="previews", seed=0
    )
    vae.fit(x_train, epochs=10, callbacks=[logger])
    # previews/samples_epoch_001.png ... and the same in TensorBoard's Images tab
    ```
    """

    def __init__(
        self,
        images,
        labels=None,
        log_dir=None,
        png_dir=None,
        num_samples=None,
        num_images=8,
        seed=0,
        zoom=3,
    ):
        super().__init__()
        if log_dir is None and png_dir is None:
            raise ValueError(
                "Expected log_dir or png_dir (or both) for the pictures. "
                "Received: log_dir=None and png_dir=None"
            )
        self.num_images = check_positive_int("num_images", num_images)
        self.images = scale_images(images)[: self.num_images]
        self.labels = None if labels is None else np.asarray(labels)[: self.num_images]
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.png_dir = None if png_dir is None else os.fspath(png_dir)
        self.num_samples = (
            None if num_samples is None else check_positive_int("num_samples", num_samples)
        )
        self.seed = seed
        self.zoom = check_positive_int("zoom", zoom)
        self._writer = None

    def on_train_begin(self, logs=None):
        # Refuses images of another shape, or a label CVAE without labels,
        # before the first epoch rather than after it.
        model_inputs(self.model, self.images, self.labels, self.seed)

    def pictures(self):
        """The epoch's pictures, by name: uint8 arrays `[H, W, C]`."""
        model = self.model
        kind = model.condition_type
        completion = kind not in (None, "label")
        num_samples = self.num_samples or (
            _DEFAULT_COMPLETIONS if completion else _DEFAULT_SAMPLES.get(kind, 8)
        )
        return {
            "samples": plot_samples(
                model,
                num_samples,
                self.seed,
                images=self.images if completion else None,
                zoom=self.zoom,
            ),
            "reconstructions": plot_reconstructions(
                model, self.images, self.labels, seed=self.seed, zoom=self.zoom
            ),
        }

    def on_epoch_end(self, epoch, logs=None):
        pictures = self.pictures()
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for name, picture in pictures.items():
                    tf.summary.image(name, picture[None], step=epoch)
            self._writer.flush()
        if self.png_dir is not None:
            for name, picture in pictures.items():
                save_png(picture, os.path.join(self.png_dir, f"{name}_epoch_{epoch + 1:03d}.png"))

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
