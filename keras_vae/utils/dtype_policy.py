"""Keras's global dtype policy, set for a while."""

import contextlib

import keras


@contextlib.contextmanager
def global_dtype_policy(name):
    """Sets Keras's global dtype policy meanwhile, then puts the previous one back.

    Layers take the global policy when they are made, so a model built in
    this block computes under `name` without changing what code after it sees.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
