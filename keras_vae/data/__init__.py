"""Image data for VAEs: TFDS loading, binarization and `tf.data` pipelines."""

from keras_vae.data.conditional import (
    CONDITIONS,
    make_conditional_dataset,
    make_conditional_pairs,
    merge_image,
    pixel_indices,
    split_image,
)
from keras_vae.data.images import (
    binarize_static,
    dequantize,
    load_images,
    make_dataset,
    num_classes,
    scale_images,
)

__all__ = [
    "CONDITIONS",
    "binarize_static",
    "dequantize",
    "load_images",
    "make_conditional_dataset",
    "make_conditional_pairs",
    "make_dataset",
    "merge_image",
    "num_classes",
    "pixel_indices",
    "scale_images",
    "split_image",
]
