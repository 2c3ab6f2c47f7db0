# keras_vae first, before any benchmark imports TensorFlow: its import-time
# defaults for TensorFlow (oneDNN kernels on x86, see keras_vae/__init__.py)
# then apply to the benchmarks as they do to the `keras-vae` command.
import keras_vae  # noqa: F401
