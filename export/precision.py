"""Float32 copies of models trained under a mixed-precision dtype policy."""

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
        key: FLOAT32
        if key == "dtype" and isinstance(value, str) and value.startswith("mixed_")
        else _float32_policies(value)
        for key, value in config.items()
    }


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
    with global_dtype_policy(FLOAT32):  # for layers the model creates itself
        copy = type(model).from_config(_float32_policies(model.get_config()))
        copy.build_from_config(model.get_build_config())
    copy.set_weights(model.get_weights())
    return copy
