"""Float32 copies of models trained under a mixed-precision dtype policy."""

from keras.src.saving.serialization_lib import SafeModeScope

from keras_vae.utils.checks import keras_error_cause
from keras_vae.utils.dtype_policy import global_dtype_policy

FLOAT32 = "float32"


def _float32_policies(config):
    """`config` with every dtype policy in it replaced by float32."""
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(
        config.get("config"), dict
    ):
        return dict(config, config=dict(config["config"], name=FLOAT32))
    return {
        key: FLOAT32 if key == "dtype" and _sixteen_bit(value) else _float32_policies(value)
        for key, value in config.items()
    }


def _sixteen_bit(dtype):
    """Whether a config's `dtype` string is a mixed policy or a 16-bit float.

    An `InputLayer` that Keras made for a network built by its first call
    under a mixed policy holds `"bfloat16"` or `"float16"`: left so, the
    float32 copy would round its inputs (z, x) to 16 bits.
    """
    return isinstance(dtype, str) and (dtype.startswith("mixed_") or dtype in SIXTEEN_BIT)


SIXTEEN_BIT = ("float16", "bfloat16")


def computes_in_float32(model) -> bool:
    """Whether every layer of `model` computes in float32."""
    return all(layer.compute_dtype == FLOAT32 for layer in model._flatten_layers())


def float32_model(model):
    """`model` itself if it computes in float32, else a float32 copy.

    A model built under a policy such as `mixed_bfloat16` keeps float32
    weights but runs its networks in bfloat16, which TFLite's builtin ops do
    not support. Exports use this copy instead: the same class and config
    with every layer's policy set to float32, built the same way, holding the
    same weights (the sampler state included). It has no optimizer.
    """
    if computes_in_float32(model):
        return model
    try:
        # Unsafe mode: the config is the model's own, in memory (its Lambda layers too).
        with global_dtype_policy(FLOAT32), SafeModeScope(False):
            copy = type(model).from_config(_float32_policies(model.get_config()))
            copy.build_from_config(model.get_build_config())
    except Exception as e:  # Keras's many ways to fail a rebuild
        raise ValueError(
            "Expected networks that rebuild from their configs (a model of a mixed dtype "
            "policy exports a float32 copy made by from_config: register custom layers with "
            "keras.saving.register_keras_serializable and give them get_config). Received: "
            f"{keras_error_cause(e)}"
        ) from None
    copy.set_weights(model.get_weights())
    return copy
