"""Base class for Keras 3 layers that turn parameters into a distribution."""

import math
import operator

import keras
import tensorflow as tf

from keras_vae.utils.checks import check_positive_float  # noqa: F401 (re-exported)


def _validate_event_shape(event_shape):
    received = event_shape
    try:
        if isinstance(event_shape, (str, bytes, bool)):
            raise TypeError
        if not hasattr(event_shape, "__iter__"):
            event_shape = (event_shape,)
        if any(isinstance(d, bool) for d in event_shape):
            raise TypeError
        event_shape = tuple(operator.index(d) for d in event_shape)
        valid = len(event_shape) > 0 and all(d > 0 for d in event_shape)
    except TypeError:
        valid = False
    if not valid:
        raise ValueError(
            "Expected event_shape to be a positive integer or a non-empty tuple of "
            f"positive integers. Received: event_shape={received!r}"
        )
    return event_shape


class DistributionLayer(keras.layers.Layer):
    """A layer whose `call(params)` returns a `tfp.distributions.Distribution`.

    The Keras 3 counterpart of `tfp.layers.DistributionLambda`, which is a
    Keras 2 layer. Subclasses implement `params_size(event_shape)` (how many
    parameters per example) and `_make_distribution(params)`, where `params`
    arrive as `[..., params_size]`.

    Parameters may come flat (`[..., params_size]`) or shaped like the event
    with the parameters stacked on the last axis (`[..., *event_shape[:-1],
    params_per_element * event_shape[-1]]`), which is what a convolutional
    decoder produces.

    Args:
        event_shape: int or tuple of ints. Shape of one draw.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    # Capabilities, which models, evaluation and export read instead of
    # asking for a class. `binary`: the layer models binary data (inputs are
    # checked to lie in [0, 1] and scored on one fixed binarization).
    # `closed_form_mean`: the distribution has a `mean()`. `exportable`: the
    # SavedModel and TFLite exports can decode with it. `prefers_graph_mode`:
    # the model trains faster without XLA (`compile(jit_compile="auto")`).
    binary = False
    closed_form_mean = True
    exportable = True
    prefers_graph_mode = False

    def __init__(self, event_shape, **kwargs):
        # Distributions are built in float32 even under a mixed-precision
        # policy: log-probabilities summed over hundreds of pixels need it.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.event_shape = _validate_event_shape(event_shape)

    @staticmethod
    def params_size(event_shape):
        raise NotImplementedError

    @property
    def params_shapes(self):
        """Shapes of one example's parameters that `call` takes: flat, then stacked.

        Stacked parameters with a last axis of 1 are also taken without it: a
        decoder built for grey `[H, W]` images then serves data `[H, W, 1]`,
        as `keras_vae.data.make_dataset` gives.
        """
        size = self.params_size(self.event_shape)
        stacked = self.event_shape[:-1] + (size // self.event_size * self.event_shape[-1],)
        shapes = [(size,), stacked]
        if len(stacked) > 1 and stacked[-1] == 1:
            shapes.append(stacked[:-1])
        return tuple(dict.fromkeys(shapes))

    def expected_value(self, distribution, x):
        """The per-element expected value that reconstructions and samples show.

        The mean; a likelihood without a closed-form mean (autoregressive)
        overrides it with its conditional expectations along `x`.
        """
        del x
        return distribution.mean()

    def portable_mean(self, distribution):
        """`distribution.mean()` in ops that every runtime computes alike.

        The exports (SavedModel, TFLite) return this as their image; a
        layer overrides it where a runtime's kernel departs from
        TensorFlow's on some inputs.
        """
        return distribution.mean()

    def _make_distribution(self, params):
        raise NotImplementedError

    def _split_params(self, params, num):
        """Splits `params` into `num` tensors shaped `[..., *event_shape]`."""
        params = tf.cast(tf.convert_to_tensor(params), self.compute_dtype)
        size = self.params_size(self.event_shape)
        num_event = len(self.event_shape)
        stacked = self.event_shape[:-1] + (num * self.event_shape[-1],)
        static = tuple(params.shape)
        # [batch, size] reads as flat even when it also has the stacked shape,
        # as [1, n] does for an event shape (1, n).
        if static[-1:] == (size,) and (len(static) == 2 or static[-num_event:] != stacked):
            batch_shape = tf.shape(params)[:-1]
            parts = tf.split(params, num, axis=-1)
        elif static[-num_event:] == stacked:
            batch_shape = tf.shape(params)[:-num_event]
            parts = tf.split(params, num, axis=-1) if num > 1 else [params]
        elif num_event > 1 and stacked[-1] == 1 and static[1 - num_event :] == stacked[:-1]:
            batch_shape = tf.shape(params)[: 1 - num_event]  # grey [H, W] for [H, W, 1]
            parts = [params]
        else:
            shapes = " or ".join(
                f"[..., {', '.join(map(str, shape))}]" for shape in self.params_shapes
            )
            raise ValueError(
                f"Expected {type(self).__name__} parameters shaped {shapes}. "
                f"Received: params.shape={static}"
            )
        full_shape = tf.concat([batch_shape, self.event_shape], axis=0)
        return [tf.reshape(p, full_shape) for p in parts]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:1]) + self.event_shape

    def get_config(self):
        config = super().get_config()
        config.update({"event_shape": self.event_shape})
        return config

    @property
    def event_size(self):
        return math.prod(self.event_shape)
