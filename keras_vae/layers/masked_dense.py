"""A Dense layer with a fixed connectivity mask (MADE)."""

import keras
import numpy as np

from keras_vae.networks.validation import check_positive_int


def made_degrees(num_inputs, hidden_units, reverse=False):
    """MADE degrees of the inputs and of each hidden layer.

    Input i (1-based, or counted from the end with `reverse`) has degree i;
    hidden units cycle through 1 .. num_inputs - 1, so every output can see
    some hidden unit. Output i must only see inputs of degree below i.

    Returns:
        list of int arrays: the input degrees, then one per hidden layer.
    """
    degrees = [np.arange(1, num_inputs + 1)]
    if reverse:
        degrees[0] = degrees[0][::-1].copy()
    span = max(num_inputs - 1, 1)
    for units in hidden_units:
        degrees.append(np.arange(units) % span + 1)
    return degrees


def made_masks(num_inputs, hidden_units, num_outputs_per_input, reverse=False):
    """The 0/1 masks of a MADE network: hidden layers, then the output layer.

    The output layer has `num_outputs_per_input` blocks of `num_inputs`
    units, each block in the inputs' order.

    Returns:
        list of float32 arrays `[fan_in, fan_out]`.
    """
    degrees = made_degrees(num_inputs, hidden_units, reverse)
    masks = [
        (degrees[i + 1][None, :] >= degrees[i][:, None]).astype("float32")
        for i in range(len(hidden_units))
    ]
    output_degrees = np.tile(degrees[0], num_outputs_per_input)
    masks.append((output_degrees[None, :] > degrees[-1][:, None]).astype("float32"))
    return masks


@keras.saving.register_keras_serializable(package="keras_vae")
class MaskedDense(keras.layers.Layer):
    """`activation(x @ (kernel * mask) + bias)` with a constant 0/1 mask.

    Args:
        units: int. Output width.
        mask: array-like `[fan_in, units]` of 0 and 1.
        activation: str or callable. Defaults to `None`.
        bias_initializer: Keras initializer. Defaults to `"zeros"`.
        **kwargs: Base layer keyword arguments.

    Example:

    >>> layer = MaskedDense(2, mask=[[1, 0], [1, 1]])
    >>> tuple(layer(np.ones((3, 2), "float32")).shape)
    (3, 2)

    Reference:
        Germain et al., *MADE: Masked Autoencoder for Distribution
        Estimation*, ICML 2015.
    """

    def __init__(self, units, mask, activation=None, bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.mask = np.asarray(mask, dtype="float32")
        if self.mask.ndim != 2 or self.mask.shape[1] != self.units:
            raise ValueError(
                f"Expected mask shaped [fan_in, {self.units}]. Received: mask.shape="
                f"{self.mask.shape}"
            )
        self.activation = keras.activations.get(activation)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        if input_shape[-1] != self.mask.shape[0]:
            raise ValueError(
                f"Expected inputs with {self.mask.shape[0]} features (the mask's fan-in). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.kernel = self.add_weight(
            shape=self.mask.shape, initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(
            shape=(self.units,), initializer=self.bias_initializer, name="bias"
        )

    def call(self, inputs):
        kernel = self.kernel * keras.ops.convert_to_tensor(self.mask, self.compute_dtype)
        return self.activation(keras.ops.matmul(inputs, kernel) + self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "mask": self.mask.tolist(),
                "activation": keras.activations.serialize(self.activation),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config
