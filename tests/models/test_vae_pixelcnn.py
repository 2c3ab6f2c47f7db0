"""A VAE whose likelihood is the autoregressive PixelCNNBernoulli, trained on MNIST.

The contract with this likelihood (seeded samples that show the conditionals
along a draw, reconstructions at the input's own pixels, `.keras` files) is
checked by the battery's `vae_pixelcnn_likelihood` case in
`test_model_family.py`; these tests are about what training buys.
"""

import keras
import numpy as np
import pytest

from keras_vae.evaluation import log_likelihood
from keras_vae.export.validation import check_exportable
from keras_vae.layers import PixelCNNBernoulli
from keras_vae.models.presets import build_cvae, build_vae


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
def test_trained_reconstructions_predict_the_pixels(trained):
    # The conditionals at the input's own pixels predict those pixels better than chance.
    vae, x = trained[0]["pixelcnn"], trained[2][:16]
    recon = vae.reconstruct(x)
    assert np.mean(np.where(x == 1, recon, 1 - recon)) > 0.9


@pytest.mark.xla  # the real "auto", which the suite otherwise resolves to graph mode
def test_models_with_convolutions_or_pixelcnn_train_without_xla_by_default():
    vae = build_vae("mlp", (28, 28, 1), latent_dim=4, likelihood="pixelcnn")
    vae.compile()
    assert vae.jit_compile is False


def test_cvae_presets_and_export_refuse_the_pixelcnn_likelihood():
    # ConditionalVAE itself refuses it: see test_conditional_vae.py.
    with pytest.raises(
        ValueError, match=r"^Expected likelihood to be one of .*Received: likelihood='pixelcnn'$"
    ):
        build_cvae("mlp", "label", likelihood="pixelcnn")
    vae = build_vae("mlp", (28, 28, 1), latent_dim=4, likelihood="pixelcnn")
    vae.build((None, 28, 28, 1))
    with pytest.raises(
        ValueError, match=r"^Expected an exportable likelihood .*PixelCNNBernoulli$"
    ):
        check_exportable(vae, allow_untrained=True)
