"""Every prior and posterior exports the same way: SavedModel and TFLite against Keras."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import schema_py_generated as litert_schema
from export_helpers import BUILTIN_OPS, LATENT_DIM, NUM_CLASSES, binary_images, one_hot

from keras_vae.export import Sampler, export_model, export_tflite, tflite_ops
from keras_vae.models.presets import build_cvae, build_vae

SEED, NUM_SAMPLES = 7, 5
# kind -> (prior, prior_components, posterior, the encode signature's outputs).
MODELS = {
    "vae-mog-full": ("mog", 3, "full", {"loc", "scale_tril"}),
    "vae-vamp-iaf": ("vamp", 4, "iaf", {"loc"}),
    "cvae-mog-iaf": ("mog", 3, "iaf", {"loc"}),
}
CLASS_NAMES = {
    "mog": "MixtureOfGaussians",
    "vamp": "VampPrior",
    "full": "FullCovarianceNormal",
    "iaf": "IAF",
}


def tflite_metadata(path):
    """The `keras_vae` JSON record of a `.tflite` file, read with the flatbuffer schema."""
    with open(path, "rb") as f:
        model = litert_schema.Model.GetRootAs(f.read(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"keras_vae":
            return json.loads(bytes(model.Buffers(entry.Buffer()).DataAsNumpy()).decode())
    raise AssertionError(f"no keras_vae metadata in {path}")


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request, tmp_path_factory):
    """(kind, model, export_model's report) for each kind of model.

    The model is built, not fitted: every trainable weight (the prior's and the
    flow's included) is moved by a random 1e-3, as far as one Adam step would
    move it, so that no bias is zero. It is exported with `allow_untrained`;
    that a fitted model exports is checked on the session's `vae` and `cvae`,
    and that these models fit, in tests/models/test_model_family.py. Tracing
    the training step took most of this fixture's time.
    """
    kind = request.param
    prior, components, posterior, _ = MODELS[kind]
    keras.utils.set_random_seed(3)
    if kind.startswith("cvae"):
        model = build_cvae(
            "mlp", "label", latent_dim=LATENT_DIM, prior=prior, prior_components=components,
            posterior=posterior, seed=0,
        )  # fmt: skip
        model.build((None, NUM_CLASSES))  # built from its one-hot conditions
    else:
        model = build_vae(
            "mlp", (28, 28, 1), latent_dim=LATENT_DIM, prior=prior, prior_components=components,
            posterior=posterior, seed=0,
        )  # fmt: skip
        model.build((None, 28, 28, 1))
    rng = np.random.default_rng(3)
    for weight in model.trainable_weights:
        weight.assign(weight + 1e-3 * rng.choice([-1.0, 1.0], size=weight.shape))
    folder = tmp_path_factory.mktemp(kind)
    report = export_model(
        model,
        saved_model_base=str(folder / "sm"),
        tflite_path=str(folder / "m.tflite"),
        allow_untrained=True,
    )
    return kind, model, report


def test_exports_sample_like_keras(exported):
    kind, model, report = exported
    prior, _, posterior, outputs = MODELS[kind]
    assert report["ok"] and report["written"]
    assert type(model.prior_layer).__name__ == CLASS_NAMES[prior]
    assert type(model.posterior_layer).__name__ == CLASS_NAMES[posterior]
    condition = one_hot([3, 8]) if model.conditional else None
    given = {} if condition is None else {"condition": tf.constant(condition)}
    rows = NUM_SAMPLES * (1 if condition is None else len(condition))
    images = model.sample(NUM_SAMPLES, condition, seed=SEED).reshape(rows, 28, 28, 1)
    z = tf.reshape(model.sample_latent(NUM_SAMPLES, SEED, condition=condition), [rows, -1])

    signatures = tf.saved_model.load(report["saved_model"]["path"]).signatures
    served = signatures["sample"](
        seed=tf.constant(SEED), num_samples=tf.constant(NUM_SAMPLES), **given
    )
    np.testing.assert_allclose(served["image"], images, atol=1e-5, rtol=0)
    np.testing.assert_allclose(served["z"], z, atol=1e-5, rtol=0)

    path = report["tflite"]["path"]
    lite_images, lite_z = Sampler(path).sample(SEED, NUM_SAMPLES, condition, return_latent=True)
    np.testing.assert_allclose(lite_images, images, atol=1e-5, rtol=0)
    np.testing.assert_allclose(lite_z, z, atol=1e-5, rtol=0)
    ops = tflite_ops(path)
    assert ops <= BUILTIN_OPS, sorted(ops - BUILTIN_OPS)
    metadata = tflite_metadata(path)
    assert metadata["prior"] == CLASS_NAMES[prior]
    assert metadata["posterior"] == CLASS_NAMES[posterior]

    # encode returns what describes the posterior: its Cholesky factor for a full
    # covariance, the point alone for a flow; reconstruct decodes the point.
    x = binary_images(2, seed=4)
    data = {model.data_name: tf.constant(x)}
    if condition is not None:
        data["condition"] = tf.constant(condition)
    encoded = signatures["encode"](**data)
    assert set(encoded) == outputs
    q = model.encode(x, condition)
    np.testing.assert_allclose(encoded["loc"], model.posterior_layer.point(q), atol=1e-5)
    if "scale_tril" in outputs:
        np.testing.assert_allclose(encoded["loc"], q.mean(), atol=1e-5)
        tril = encoded["scale_tril"].numpy()
        np.testing.assert_array_equal(tril, np.tril(tril))
        covariance = tril @ np.swapaxes(tril, -1, -2)
        np.testing.assert_allclose(covariance, q.covariance(), atol=1e-5)
    reconstructed = signatures["reconstruct"](**data)["image"]
    np.testing.assert_allclose(reconstructed, model.reconstruct(x, condition), atol=1e-5)


def test_int8_files_load_and_sample_near_keras(exported, tmp_path):
    # A mixture's component parameters used to become an int8 EMBEDDING_LOOKUP
    # table with a zero point, which LiteRT refused to prepare.
    kind, model, _ = exported
    condition = one_hot([3, 8]) if model.conditional else None
    path = export_tflite(model, tmp_path / "int8.tflite", quantize="int8", allow_untrained=True)
    images, z = Sampler(path).sample(SEED, NUM_SAMPLES, condition, return_latent=True)
    rows = NUM_SAMPLES * (1 if condition is None else len(condition))
    expected = model.sample(NUM_SAMPLES, condition, seed=SEED).reshape(rows, 28, 28, 1)
    latents = tf.reshape(model.sample_latent(NUM_SAMPLES, SEED, condition=condition), [rows, -1])
    np.testing.assert_allclose(z, latents, atol=1e-5, rtol=0)  # the sampler stays float
    assert np.abs(images - expected).max() < 0.05  # the decoder is int8
