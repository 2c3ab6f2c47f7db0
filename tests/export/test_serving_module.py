"""The `ServingModule` the exports are made from: its arguments."""

import numpy as np
import pytest
import tensorflow as tf

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


def test_sample_rows_draws_one_row_per_seed_as_sample_does(vae):
    module = ServingModule(vae, functions=("sample", "sample_rows"))
    seeds = [3, -7, 2**31 - 1, 3]
    rows = module.sample_rows(tf.constant(seeds, tf.int32))
    assert rows["z"].shape == (4, vae.latent_dim) and rows["image"].shape == (4, 28, 28, 1)
    for n, seed in enumerate(seeds):
        one = module.sample(tf.constant(seed, tf.int32), tf.constant(1, tf.int32))
        np.testing.assert_array_equal(rows["z"][n], one["z"][0])
        np.testing.assert_allclose(rows["image"][n], one["image"][0], atol=1e-6)
    assert module.sample_rows(tf.zeros([0], tf.int32))["image"].shape == (0, 28, 28, 1)


def test_sample_rows_refuses_more_rows_than_the_cap(vae):
    module = ServingModule(vae, functions=("sample_rows",))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected at most 4096 rows"):
        module.sample_rows(tf.zeros([4097], tf.int32))


def test_sample_rows_needs_a_condition_per_seed(cvae):
    module = ServingModule(cvae, functions=("sample_rows",))
    condition = tf.one_hot([1, 2], cvae.condition_shape[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected seed and condition with"):
        module.sample_rows(tf.constant([0, 1, 2], tf.int32), condition)
    rows = module.sample_rows(tf.constant([0, 1], tf.int32), condition)
    drawn = cvae.generate(condition[1:], 1, seed=1)  # row 1: seed 1, condition 1, one draw
    np.testing.assert_allclose(rows["image"][1], np.asarray(drawn)[0, 0], atol=1e-5)


def test_a_save_reuses_the_traces_of_the_module_and_its_signatures(vae, tmp_path):
    # A tf.function's traces are keyed by the save in progress too: traced
    # outside one, each function was traced again by the save, whose SavedModel
    # then held both graphs.
    module = ServingModule(vae, functions=("sample", "decode"))
    tf.saved_model.save(module, str(tmp_path), signatures=module.signatures(["sample", "decode"]))
    assert module.sample.experimental_get_tracing_count() == 1
    assert module.decode.experimental_get_tracing_count() == 1
