"""A VAE whose likelihood is the autoregressive PixelCNNBernoulli."""

import keras
import numpy as np
import pytest

from keras_vae.evaluation import log_likelihood
from keras_vae.export.validation import check_exportable
from keras_vae.layers import PixelCNNBernoulli
from keras_vae.models.conditional_vae import ConditionalVAE
from keras_vae.models.presets import build_cvae, build_vae
from keras_vae.networks import mlp_decoder, mlp_encoder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_test_images):
    """Conv VAEs with a PixelCNN and with a factorized Bernoulli likelihood, same budget."""
    images, _ = mnist_test_images
    rng = np.random.default_rng(0)
    x = (rng.random(images.shape) < images).astype("float32")
    train, test = x[:1500], x[1500:]
    models, elbos = {}, {}
    for likelihood in ("pixelcnn", "bernoulli"):
        keras.utils.set_random_seed(0)
        vae = build_vae("conv", (28, 28, 1), latent_dim=8, likelihood=likelihood, seed=0)
        vae.compile(optimizer=keras.optimizers.Adam(2e-3))
        vae.fit(train, epochs=2, batch_size=50, verbose=0)
        models[likelihood] = vae
        elbos[likelihood] = vae.evaluate(test, verbose=0, return_dict=True)["elbo"]
    return models, elbos, test


@pytest.mark.slow
def test_pixelcnn_likelihood_beats_the_factorized_one_on_mnist(trained):
    # Neighbouring pixels explain each other: the same encoder, decoder and
    # budget reach a much higher test ELBO.
    models, elbos, _ = trained
    assert isinstance(models["pixelcnn"].likelihood, PixelCNNBernoulli)
    assert elbos["pixelcnn"] > elbos["bernoulli"] + 50, elbos


@pytest.mark.slow
def test_importance_weighted_estimate_is_at_least_the_elbo(trained):
    models, elbos, test = trained
    result = log_likelihood(models["pixelcnn"], test[:100], num_samples=20, verbose=0)
    assert result["log_likelihood"] >= result["elbo"]
    assert result["log_likelihood"] < 0


@pytest.mark.slow
def test_sample_and_reconstruct(trained):
    vae = trained[0]["pixelcnn"]
    draws = vae.sample(3, seed=5, use_mean=False)
    assert draws.shape == (3, 28, 28, 1) and set(np.unique(draws)) == {0.0, 1.0}
    np.testing.assert_array_equal(draws, vae.sample(3, seed=5, use_mean=False))
    assert np.any(draws != vae.sample(3, seed=6, use_mean=False))
    # Only the seed's low 32 bits count, for the pixels as for z.
    np.testing.assert_array_equal(draws, vae.sample(3, seed=5 + 2**32, use_mean=False))
    # use_mean gives p(x_i = 1 | x_<i, z) along the same draw.
    probs = vae.sample(3, seed=5)
    assert np.all((probs > 0) & (probs < 1))
    z = vae.sample_latent(3, 5)
    expected = vae.decode(z).conditional_probs(draws)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    # Reconstructions are the conditionals at the input's own pixels, which
    # predict those pixels better than chance.
    x = trained[2][:16]
    recon = vae.reconstruct(x)
    assert recon.shape == x.shape
    assert np.mean(np.where(x == 1, recon, 1 - recon)) > 0.9


@pytest.mark.slow
def test_save_load_keeps_the_model(tmp_path, trained):
    vae, test = trained[0]["pixelcnn"], trained[2][:64]
    path = str(tmp_path / "pixelcnn.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.likelihood, PixelCNNBernoulli)
    np.testing.assert_array_equal(loaded.sample(2, seed=1), vae.sample(2, seed=1))
    for model in (vae, loaded):
        model.compile(optimizer="adam", jit_compile=False)
    before = vae.evaluate(test, verbose=0, return_dict=True)
    after = loaded.evaluate(test, verbose=0, return_dict=True)
    assert after["reconstruction"] == pytest.approx(before["reconstruction"], rel=1e-5)


def test_models_with_convolutions_or_pixelcnn_train_without_xla_by_default():
    vae = build_vae("mlp", (28, 28, 1), latent_dim=4, likelihood="pixelcnn")
    vae.compile()
    assert vae.jit_compile is False


@pytest.mark.slow
def test_cvae_and_export_refuse_the_pixelcnn_likelihood(trained):
    with pytest.raises(ValueError, match="Received: likelihood='pixelcnn'"):
        build_cvae("mlp", "label", likelihood="pixelcnn")
    with pytest.raises(ValueError, match="supported by VAE only. Received: likelihood="):
        ConditionalVAE(
            mlp_encoder((28, 28, 1)),
            mlp_decoder(18, (28, 28, 16)),
            8,
            likelihood=PixelCNNBernoulli((28, 28, 1)),
            condition_type="label",
        )
    with pytest.raises(ValueError, match="Received: likelihood=PixelCNNBernoulli"):
        check_exportable(trained[0]["pixelcnn"])
