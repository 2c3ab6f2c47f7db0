"""Eager checks of user data, so bad input fails with one clear line."""

import keras
import numpy as np
import tensorflow as tf

from keras_vae.utils.checks import check_choice, check_positive_int  # noqa: F401 (re-exported)

_FLOAT32_MAX = float(np.finfo(np.float32).max)
# The smallest normal float32. TensorFlow's CPU kernels flush smaller magnitudes
# to zero, so the exported signatures' [0, 1] check takes -1e-40 as a 0 pixel.
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def _shape_str(shape):
    return "[batch, " + ", ".join(str(d) for d in shape) + "]"


def shape_of(value):
    """The shape of an array, a tensor, a `KerasTensor` or nested lists, as a tuple."""
    return tuple(value.shape) if hasattr(value, "shape") else np.shape(value)


def lists_as_arrays(*values):
    """`values` with every Python list turned into a numpy array (one example per row).

    Keras reads a list as several model inputs; these models take one array.
    """
    return tuple(np.asarray(v) if isinstance(v, list) else v for v in values)


def checked_array(name, value, event_shape, unit_interval=False):
    """`value` for `encode`, `decode` and the other public methods: checked when concrete.

    A numpy array (or list) is checked for dtype, shape `[batch, *event_shape]`
    (when `event_shape` is known) and values (`check_values`), so a missing
    batch axis or a NaN fails in one line instead of deep inside the network
    or in a silent NaN. An eager tensor gets the value check and a check of
    its trailing axes: its leading ones may be the model's own (`[K, B, d]`
    draws of z). Symbolic
    tensors pass as they are: the model itself calls these methods in its
    compiled steps, where a check would cost every step (and XLA compiles no
    host check).
    """
    if isinstance(value, (list, tuple, np.generic, int, float)):
        value = np.asarray(value)  # a scalar then fails the shape check
    if isinstance(value, np.ndarray):
        if event_shape is not None:
            check_data(name, value, event_shape, unit_interval)
        else:
            check_values(name, value, unit_interval)
    elif is_eager_tensor(value):
        if event_shape is not None:
            event_shape, shape = tuple(event_shape), tuple(value.shape)
            if len(shape) <= len(event_shape) or shape[len(shape) - len(event_shape) :] != (
                event_shape
            ):
                raise ValueError(
                    f"Expected {name} shaped {_shape_str(event_shape)} (or with more leading "
                    f"axes). Received: {name}.shape={shape}"
                )
        check_values(name, value, unit_interval)
    return value


def check_same_batch(name, value, condition, event_rank):
    """Raises unless `value` `[B, ...]` and `condition` have the same known batch size.

    Only when `value` has the single batch axis of `event_rank`-dimensional
    examples: draws `[K, B, d]` pair with conditions tiled to `[K * B, ...]`.
    """
    if condition is None or len(value.shape) != event_rank + 1:
        return
    shape, condition_shape = tuple(value.shape), tuple(condition.shape)
    if shape[0] is not None and condition_shape[:1] != (None,) and shape[0] != condition_shape[0]:
        raise ValueError(
            f"Expected {name} and condition with the same batch size. Received: "
            f"{name}.shape={shape}, condition.shape={condition_shape}"
        )


def is_eager_tensor(value):
    """Whether `value` is a TensorFlow tensor with a value (not a graph's symbol)."""
    return isinstance(value, tf.Tensor) and hasattr(value, "numpy") and tf.executing_eagerly()


def check_values(name, values, unit_interval=False, why="for a Bernoulli likelihood"):
    """Raises unless the numbers of `values` are finite (and, when `unit_interval`, in [0, 1]).

    One pass each for the minimum and the maximum, which are NaN if any value
    is and infinite if any value is: about 20 us for a batch of 100 MNIST
    images, against about 1 ms for the MLP encoder it guards.

    Args:
        name: str. How the error message calls the values, e.g. `"z"`.
        values: numpy array or eager tensor of numbers.
        unit_interval: bool. Whether values must lie in [0, 1], the range of
            a Bernoulli likelihood's data (negative values above -1.2e-38,
            float32's smallest normal, count as 0).
        why: str. Why values must lie in [0, 1], for the error message.

    Raises:
        ValueError: naming what was expected and what was received.
    """
    values = values.numpy() if isinstance(values, tf.Tensor) else np.asarray(values)
    if values.size == 0 or (values.dtype.kind not in "fc" and not unit_interval):
        return  # integers and booleans are finite
    low, high = np.min(values), np.max(values)
    if not (np.isfinite(low) and np.isfinite(high)):
        nan, infinite = int(np.sum(np.isnan(values))), int(np.sum(np.isinf(values)))
        raise ValueError(
            f"Expected {name} to hold finite values. Received: {name} with {nan} NaN and "
            f"{infinite} infinite values"
        )
    # Only floats can pass float32's range (int64 cannot, and -min(int64) overflows).
    if values.dtype.kind in "fc" and values.dtype.itemsize > 4 and max(-low, high) > _FLOAT32_MAX:
        # The networks compute in float32, where these would be infinite.
        raise ValueError(
            f"Expected {name} to hold values finite in float32 (|value| <= {_FLOAT32_MAX:.3g}). "
            f"Received: {name} values in [{float(low):g}, {float(high):g}]"
        )
    # A negative value of smaller magnitude than float32's smallest normal counts as
    # 0, as in the exported signatures' check (a subnormal, flushed to zero there).
    # Compared as Python floats: in float16, -_FLOAT32_TINY would round to -0.0.
    if unit_interval and not (float(low) > -_FLOAT32_TINY and float(high) <= 1):
        raise ValueError(
            f"Expected {name} values in [0, 1] {why}. "
            f"Received: {name} values in [{float(low):g}, {float(high):g}]"
        )


def check_network_output(network, outputs, name, inputs):
    """Raises if a network's eager `outputs` are not finite for its finite `inputs`.

    Finite inputs of extreme size (|z| near float32's largest value) make
    the networks overflow, and the result would be a silent NaN. Symbolic
    tensors are not checked (see `checked_array`).

    Args:
        network: str. `"encoder"` or `"decoder"`.
        outputs: tensor. What the network gave.
        name: str. The inputs' name, e.g. `"z"`.
        inputs: tensor or array. The network's inputs, for the message.
    """
    if not is_eager_tensor(outputs):
        return
    values = outputs.numpy()
    if values.size and not (np.isfinite(np.min(values)) and np.isfinite(np.max(values))):
        largest = float(np.max(np.abs(np.asarray(inputs)))) if np.size(inputs) else 0.0
        raise ValueError(
            f"Expected the {network} to give finite values for {name}. Received: NaN or "
            f"infinite {network} outputs for {name} with |values| up to {largest:g} (too large "
            "for float32 arithmetic)"
        )


def call_network(network, inputs, training=False):
    """`network(inputs, training=training)`, shaped right for an empty batch too.

    With oneDNN, TensorFlow's default on x86 CPUs, TF 2.21's convolutions
    give 0 rows the wrong shape: a Conv2D returns (in graphs) its input's
    shape, and a convolutional decoder's `[0, 28, 28, 32]` then reads as
    wrong decoder output. An input whose batch is statically 0 (an eager
    call on no rows) therefore runs one row of zeros, and none of its output
    is kept. Other batches, and the training step's dynamic batch, go
    straight through.
    """
    if inputs.shape[0] == 0:
        row = tf.zeros([1, *inputs.shape[1:]], inputs.dtype)
        return keras.tree.map_structure(lambda t: t[:0], network(row, training=training))
    return network(inputs, training=training)


def check_decoder_output(params, likelihood):
    """Raises unless the decoder's output `params` is one tensor `[batch, *shape]` that
    `likelihood` reads as one example's parameters per row.

    A distribution layer reads extra leading axes as batch axes: a decoder
    output `[batch, 1, 12]` for an event shape `(12,)` gives a likelihood of
    batch shape `[batch, 1]`, whose log-probability of `[batch, 12]` data
    broadcasts to `[batch, batch]`, and the ELBO would silently score every x
    under every z. Checked here, in one line, rather than inside the
    likelihood's `call`, whose errors Keras reports over several lines.
    Static shapes only: unknown dimensions pass.
    """
    shape = getattr(params, "shape", None)
    if shape is None:
        raise ValueError(
            "Expected the decoder to output one tensor of likelihood parameters. "
            f"Received: a decoder output of type {type(params).__name__}"
        )
    shape = tuple(shape)
    expected = likelihood.params_shapes
    if len(shape) >= 1 and None not in shape[1:] and shape[1:] not in expected:
        raise ValueError(
            f"Expected the decoder to output {type(likelihood).__name__} parameters shaped "
            f"{' or '.join(_shape_str(s) for s in expected)}. "
            f"Received: decoder_output.shape={shape}"
        )
    return params


def check_network_input(name, network, expected_shape, description):
    """Raises unless `network` takes `[batch, *expected_shape]`, if it declares its input.

    A network built on a `keras.Input` fails on its first call with Keras's
    multi-line report of the layer that refused the shape; this names the
    network and what it should take in one line. Networks that declare no
    single input shape (a layer, a `Sequential` without `keras.Input`, several
    inputs) are left to that call, and so are shapes Keras adjusts itself (a
    last axis of size 1 added or dropped).

    Args:
        name: str. `"encoder"` or `"decoder"`.
        network: Keras layer or model.
        expected_shape: tuple of ints. What the model will feed it, per example.
        description: str. What those inputs are, e.g. `"z, latent_dim=2"`.
    """
    try:
        declared = network.input_shape
    except (AttributeError, ValueError):
        return
    if not isinstance(declared, tuple) or not all(
        d is None or isinstance(d, int) for d in declared
    ):
        return

    def squeezed(shape):
        return shape[:-1] if shape[-1:] == (1,) else shape

    received, expected = squeezed(declared[1:]), squeezed(tuple(expected_shape))
    if len(received) != len(expected) or any(
        r is not None and r != e for r, e in zip(received, expected, strict=True)
    ):
        raise ValueError(
            f"Expected the {name} to take inputs shaped {_shape_str(expected_shape)} "
            f"({description}). "
            f"Received: {name}.input_shape={declared}"
        )


def first_batch(data):
    """What can be checked of data given to `fit`, `evaluate` or `predict`.

    Returns a `tf.data.Dataset`'s element spec (and raises if a part of it has
    an unknown rank), a `keras.utils.PyDataset`'s
    first batch (the tuple of its parts, if it yields tuples), `None` for an
    iterator or a generator (which cannot be read ahead without consuming it)
    and anything else (arrays, tensors, lists) as it is.
    """
    if isinstance(data, tf.data.Dataset):
        if any(
            isinstance(spec, tf.TensorSpec) and spec.shape.rank is None
            for spec in tf.nest.flatten(data.element_spec)
        ):
            # Keras's own layers fail on such tensors, in a multi-line report.
            raise ValueError(
                "Expected a tf.data.Dataset whose elements have a known number of dimensions "
                "(tf.py_function and from_generator without shapes lose it: restore it with "
                f"tf.ensure_shape). Received: element_spec={data.element_spec}"
            )
        return data.element_spec
    if isinstance(data, keras.utils.PyDataset):
        return data[0]
    if hasattr(data, "__next__"):
        return None
    return data


def check_data(name, data, event_shape, unit_interval=False):
    """Checks an array or a `tf.data` element spec against `event_shape`.

    Numpy arrays and eager tensors are checked in full: numeric dtype, shape
    `[batch, *event_shape]`, finite values and, when `unit_interval`, values
    in [0, 1] (`check_values`).
    Symbolic inputs (a dataset's element spec) are checked for dtype and
    shape only: their values are not seen, so integers are refused where
    values must lie in [0, 1] (8-bit images would pass as 0..255).

    Args:
        name: str. How the error messages call the data, e.g. `"x"`.
        data: numpy array, tensor, `tf.TensorSpec` or `None` (not checked).
        event_shape: tuple of ints. Expected shape of one example.
        unit_interval: bool. Whether values must lie in [0, 1].

    Raises:
        ValueError: naming what was expected and what was received.
    """
    if data is None:
        return
    if isinstance(data, tf.TensorSpec):
        dtype, shape = data.dtype, tuple(data.shape)
        numeric = dtype.is_floating or dtype.is_integer or dtype.is_bool
    else:
        if not isinstance(data, (np.ndarray, tf.Tensor)):
            try:
                data = np.asarray(data)
            except (TypeError, ValueError):
                data = np.asarray(data, dtype=object)
        dtype = data.dtype
        shape = tuple(data.shape)
        if isinstance(data, tf.Tensor):
            numeric = dtype.is_floating or dtype.is_integer or dtype.is_bool
        else:
            # Real numbers, as for tensors (a complex array's imaginary part would be dropped).
            numeric = any(
                np.issubdtype(dtype, kind) for kind in (np.floating, np.integer, np.bool_)
            )
    if not numeric:
        raise ValueError(f"Expected {name} to hold real numbers. Received: {name}.dtype={dtype}")
    if isinstance(data, tf.TensorSpec) and unit_interval and dtype.is_integer:
        # A dataset's values are not seen: 8-bit images (0..255) would train without a word.
        raise ValueError(
            f"Expected a dataset's {name} of floats or booleans in [0, 1] for a Bernoulli "
            f"likelihood (map 8-bit images with tf.cast(images, 'float32') / 255, as "
            f"keras_vae.data.make_dataset does). Received: {name}.dtype={dtype.name}"
        )
    event_shape = tuple(event_shape)
    actual = shape[1:]
    if len(shape) != len(event_shape) + 1 or any(
        a is not None and a != e for a, e in zip(actual, event_shape, strict=False)
    ):
        raise ValueError(
            f"Expected {name} shaped {_shape_str(event_shape)}. Received: {name}.shape={shape}"
        )
    if isinstance(data, np.ndarray) or is_eager_tensor(data):
        check_values(name, data, unit_interval)


def check_sample_weight(sample_weight, x):
    """Raises unless `sample_weight` holds one number per example of `x`: `[N]` or `[N, 1]`.

    Nothing to check without weights, or for data without a length (a
    dataset or a generator, beside which Keras itself refuses weights).
    """
    if sample_weight is None or not hasattr(x, "shape"):
        return
    num_examples = int(np.shape(x)[0])
    shape = tuple(np.shape(sample_weight))
    if shape not in ((num_examples,), (num_examples, 1)):
        raise ValueError(
            f"Expected sample_weight shaped [{num_examples}] or [{num_examples}, 1] (one weight "
            f"per example). Received: sample_weight.shape={shape}"
        )


def check_no_class_weight(class_weight):
    """Raises for a `class_weight`: the targets are data, not classes."""
    if class_weight is not None:
        raise ValueError(
            "Expected class_weight=None: a VAE's targets are data, not classes (weight "
            f"examples with sample_weight). Received: class_weight={class_weight!r}"
        )


# What every model of the family answers (see `VAE`): evaluation and export
# need nothing else, so they check for these rather than for a class.
MODEL_CONTRACT = (
    "encode",
    "decode",
    "prior",
    "sample_latent",
    "sample",
    "reconstruct",
    "posterior_layer",
    "prior_layer",
    "conditional",
    "event_shape",
    "condition_shape",
)


def follows_model_contract(obj):
    """Whether `obj` answers the VAE family's contract (`MODEL_CONTRACT`)."""
    return all(hasattr(obj, name) for name in MODEL_CONTRACT)
