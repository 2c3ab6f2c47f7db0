"""Argument checks shared by the network builders.

Kept apart from `keras_vae.models.validation` because networks sit below
models in the import order: models import networks, never the other way.
"""

import keras
import numpy as np


def is_positive_int(value):
    """Whether `value` is a positive Python or numpy integer (not a bool)."""
    return (
        not isinstance(value, (bool, np.bool_))
        and isinstance(value, (int, np.integer))
        and value > 0
    )


def check_positive_int(name, value):
    """Returns `value` as an `int`, or raises unless it is a positive integer."""
    if not is_positive_int(value):
        raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")
    return int(value)


def check_units(name, value, allow_empty=False):
    """Returns `value` (an int or a sequence of positive ints) as a tuple.

    Args:
        name: str. How the error message calls the argument.
        value: int or sequence of ints.
        allow_empty: bool. Whether an empty sequence is valid.

    Returns:
        tuple of ints.
    """
    units = (value,) if is_positive_int(value) else value
    try:
        units = tuple(units)
    except TypeError:
        units = None
    if units is None or not all(is_positive_int(u) for u in units):
        raise ValueError(
            f"Expected {name} to be a positive integer or a sequence of positive "
            f"integers. Received: {name}={value!r}"
        )
    if not units and not allow_empty:
        raise ValueError(
            f"Expected {name} to hold at least one positive integer. Received: {name}={value!r}"
        )
    return tuple(int(u) for u in units)


def check_shape(name, value, min_rank=1, max_rank=None, description=None):
    """Returns `value` (an int or a sequence of positive ints) as a tuple.

    Args:
        name: str. How the error message calls the argument.
        value: int or sequence of ints. An int means a rank-1 shape.
        min_rank: int. Smallest accepted number of dimensions.
        max_rank: int or `None`. Largest accepted number of dimensions.
        description: str or `None`. What the shape should look like, for the
            error message. Defaults to a description of the rank bounds.

    Returns:
        tuple of ints.
    """
    if description is None:
        if max_rank is None:
            description = f"a tuple of at least {min_rank} positive integers"
        elif min_rank == max_rank:
            description = f"a tuple of {min_rank} positive integers"
        else:
            description = f"a tuple of {min_rank} to {max_rank} positive integers"
    shape = (value,) if is_positive_int(value) else value
    try:
        shape = tuple(shape)
    except TypeError:
        shape = ()
    valid = (
        all(is_positive_int(d) for d in shape)
        and len(shape) >= min_rank
        and (max_rank is None or len(shape) <= max_rank)
    )
    if not valid:
        raise ValueError(f"Expected {name} to be {description}. Received: {name}={value!r}")
    return tuple(int(d) for d in shape)


def check_activation(activation):
    """Returns `activation` unchanged, or raises unless Keras can resolve it."""
    try:
        keras.activations.get(activation)
    except (TypeError, ValueError):
        raise ValueError(
            "Expected activation to be None, a callable or the name of a Keras "
            f"activation such as 'relu'. Received: activation={activation!r}"
        ) from None
    return activation


def check_name(name):
    """Returns `name`, or raises unless it is a non-empty string."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"Expected name to be a non-empty string. Received: name={name!r}")
    return name
