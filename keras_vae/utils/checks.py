"""Argument checks shared by the library and the command line (no TensorFlow needed)."""

import math
import numbers

import numpy as np


def check_positive_int(name, value, allow_zero=False):
    """Returns `value` as an int, or raises unless it is a positive (or, with
    `allow_zero`, non-negative) Python or numpy integer."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or not (value >= 0 if allow_zero else value > 0):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"Expected {name} to be a {kind} integer. Received: {name}={value!r}")
    return int(value)


def check_positive_float(name, value, allow_zero=False):
    """Returns `value` as a float, or raises unless it is a positive finite real number."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not (value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"Expected {name} to be a {kind} float. Received: {name}={value!r}")
    return float(value)


def check_seed(name, value):
    """Returns `value` as an int, or raises unless it is an integer in [0, 2**32).

    The portable generator (`keras_vae.ops.random`) and the exported samplers
    key their draws by 32 bits: a larger or negative seed would repeat
    another's draws.
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or not 0 <= value < 2**32:
        raise ValueError(
            f"Expected {name} to be an integer in [0, 2**32). Received: {name}={value!r}"
        )
    return int(value)


def check_choice(name, value, choices):
    """Raises unless `value` is one of `choices`, listing them."""
    if value not in choices:
        raise ValueError(f"Expected {name} to be one of {choices}. Received: {name}={value!r}")
    return value
