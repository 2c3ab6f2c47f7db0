"""The `ServingModule` the exports are made from: its arguments."""

import pytest

from keras_vae.export import ServingModule
from keras_vae.models.presets import build_vae


def test_builds_the_functions_asked_for(vae):
    module = ServingModule(vae, functions=("decode", "sample"))
    assert module.function_names == ("decode", "sample")
    assert set(module.signatures(("serving_default", "sample"))) == {"serving_default", "sample"}


@pytest.mark.parametrize("functions", [("decode", "sampl"), "decode"], ids=repr)
def test_unknown_function(vae, functions):
    with pytest.raises(ValueError, match=r"^Expected functions to be a sequence of names among "):
        ServingModule(vae, functions=functions)


def test_unknown_signature(vae):
    module = ServingModule(vae, functions=("decode", "sample"))
    with pytest.raises(ValueError, match=r"Received: names=\('serving_default', 'encode'\)$"):
        module.signatures(("serving_default", "encode"))


@pytest.mark.parametrize(
    "model, received",
    [(object(), "model=object"), (build_vae("mlp", latent_dim=4), "an unbuilt VAE")],
    ids=["not a model", "unbuilt"],
)
def test_not_an_exportable_model(model, received):
    with pytest.raises(ValueError, match=rf"^Expected .*Received: {received}$"):
        ServingModule(model)
