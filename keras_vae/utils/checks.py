"""Argument checks shared by the library and the command line (no TensorFlow needed)."""

import math
import numbers
import os
import zipfile

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


# What every `.keras` archive holds, whatever its weights format.
KERAS_MEMBERS = ("metadata.json", "config.json")


def keras_archive_problem(path):
    """Why `path` is not a readable `.keras` archive (`"model=..."` and the reason), or `None`.

    `None` for a whole zip archive with the members every `.keras` file holds,
    each passing its checksum: Keras reports most of these problems as
    "File not found", or fails later in many ways.
    """
    if not os.path.exists(path):
        return f"model={path!r} (file not found)"
    if os.path.isdir(path):
        return f"model={path!r} (a folder)"
    try:
        if not zipfile.is_zipfile(path):
            return (
                f"model={path!r}, not a valid .keras file (not a zip archive: truncated, or "
                "another format)"
            )
        with zipfile.ZipFile(path) as archive:
            missing = [name for name in KERAS_MEMBERS if name not in archive.namelist()]
            if missing:
                return f"model={path!r}, not a valid .keras file (no {', '.join(missing)})"
            damaged = archive.testzip()  # reads every member and checks its CRC
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        return f"model={path!r}, not a valid .keras file ({str(e) or type(e).__name__})"
    if damaged is not None:
        return f"model={path!r}, not a valid .keras file ({damaged} is damaged: checksum fails)"
    return None


def keras_error_cause(error):
    """The line of a Keras saving error that names its cause, for a one-line message.

    Keras wraps a nested layer's failure in "could not be deserialized"
    messages with the configs between them; the innermost "Exception
    encountered:" line holds the cause (an unregistered class, say), without
    the layer's config that follows it.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    prefix = "Exception encountered:"
    causes = [line[len(prefix) :].strip() for line in lines if line.startswith(prefix)]
    causes = [cause for cause in causes if cause]  # an exception without a message
    cause = (causes or lines or [type(error).__name__])[-1 if causes else 0]
    return cause.split(" Full object config:")[0]  # the config of the layer, at length
