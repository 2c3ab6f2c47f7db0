"""TensorFlow imported without its C++ start-up lines, for the command line."""

import contextlib
import os
import sys


@contextlib.contextmanager
def stderr_silenced():
    """Points file descriptor 2 at the null device meanwhile, then back.

    At the descriptor, not `sys.stderr`: TensorFlow's start-up lines come from
    C++ (absl logging before it is initialized, which `TF_CPP_MIN_LOG_LEVEL`
    does not reach).
    """
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def import_tensorflow_quietly():
    """Imports TensorFlow and probes its devices with stderr silenced; errors after show.

    The device probe is where a CPU-only machine logs a failed CUDA
    initialization (`E0000 ... failed call to cuInit`), which reads like a
    failure although TensorFlow goes on on the CPU. Python-level absl logging
    (TFDS's deprecation notes) is limited to errors.
    """
    if "tensorflow" in sys.modules:
        return
    with stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
