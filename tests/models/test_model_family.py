"""The model battery over every prior x posterior of `VAE` and the `ConditionalVAE`
conditions, then the arguments the family refuses when a model is made."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from model_battery import ModelBattery, ModelCase  # noqa: E402

from keras_vae import VAE, ConditionalVAE  # noqa: E402
from keras_vae.data import split_image  # noqa: E402
from keras_vae.layers import GaussianLikelihood, IndependentBernoulli, PixelCNNBernoulli  # noqa: E402
from keras_vae.networks import mlp_decoder, mlp_encoder  # noqa: E402
from keras_vae.posteriors import IAF, DiagonalNormal, FullCovarianceNormal  # noqa: E402
from keras_vae.priors import (  # noqa: E402
    ConditionalGaussian,
    MixtureOfGaussians,
    StandardNormal,
    VampPrior,
)

tfd = tfp.distributions

LATENT_DIM = 2
IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 3
BATCH = 6
HIDDEN = (16,)


def binary_images(n=BATCH, seed=0):
    return (np.random.default_rng(seed).random((n, *IMAGE_SHAPE)) < 0.4).astype("float32")


def labels(n=BATCH):
    return np.eye(NUM_CLASSES, dtype="float32")[np.arange(n) % NUM_CLASSES]


# Small components keep the battery fast: sizes are not what it checks.
PRIORS = {
    "standard": lambda: "standard",
    "mog": lambda: MixtureOfGaussians(num_components=3),
    "vamp": lambda: VampPrior(num_pseudo_inputs=4),
}
POSTERIORS = {
    "diagonal": lambda: "diagonal",
    "full": lambda: "full",
    "iaf": lambda: IAF(num_steps=2, hidden_units=(8,), context_units=4),
}
ANALYTIC = {("standard", "diagonal"), ("standard", "full"), ("learned", "diagonal"),
            ("learned", "full")}  # fmt: skip


def vae_case(prior, posterior, likelihood=None, data=None, params_shape=IMAGE_SHAPE):
    def make():
        return VAE(
            mlp_encoder(IMAGE_SHAPE, hidden_units=HIDDEN),
            mlp_decoder(LATENT_DIM, params_shape, hidden_units=HIDDEN),
            LATENT_DIM,
            likelihood=likelihood and likelihood(),
            prior=PRIORS[prior](),
            posterior=POSTERIORS[posterior](),
            seed=1,
        )

    return ModelCase(
        make=make,
        data=data or (lambda: (binary_images(), None)),
        kl_estimator="analytic" if (prior, posterior) in ANALYTIC else "monte_carlo",
        gaussian_draws=not (prior == "vamp" and posterior == "iaf"),
    )


def cvae_case(condition_type, prior, posterior):
    if condition_type == "label":
        target_shape, condition_size = IMAGE_SHAPE, NUM_CLASSES

        def data():
            return binary_images(), labels()
    else:
        target_shape, condition_size = (32,), 32

        def data():
            observed, missing = split_image(binary_images(), condition_type)
            return missing, observed

    def make():
        return ConditionalVAE(
            mlp_encoder(target_shape, hidden_units=HIDDEN),
            mlp_decoder(LATENT_DIM + condition_size, target_shape, hidden_units=HIDDEN),
            LATENT_DIM,
            likelihood=IndependentBernoulli(target_shape),
            prior=PRIORS[prior]() if prior in PRIORS else prior,
            posterior=POSTERIORS[posterior](),
            hidden_units=8,
            condition_type=condition_type,
            image_shape=None if condition_type == "label" else IMAGE_SHAPE,
            seed=1,
        )

    kl = "analytic" if (prior, posterior) in ANALYTIC else "monte_carlo"
    return ModelCase(make=make, data=data, kl_estimator=kl)


def continuous_images():
    return np.random.default_rng(0).random((BATCH, *IMAGE_SHAPE)).astype("float32"), None


CASES = {
    **{
        f"vae_{prior}_{posterior}": vae_case(prior, posterior)
        for prior in PRIORS
        for posterior in POSTERIORS
    },
    "vae_gaussian_likelihood": vae_case(
        "standard",
        "diagonal",
        likelihood=lambda: GaussianLikelihood(IMAGE_SHAPE, scale=0.3, trainable_scale=True),
        data=continuous_images,
    ),
    "vae_pixelcnn_likelihood": vae_case(
        "standard",
        "diagonal",
        likelihood=lambda: PixelCNNBernoulli(
            IMAGE_SHAPE, feature_channels=4, filters=8, num_layers=1, first_kernel_size=3
        ),
        params_shape=(8, 8, 4),
    ),
    "cvae_label_standard_diagonal": cvae_case("label", "standard", "diagonal"),
    "cvae_label_learned_diagonal": cvae_case("label", "learned", "diagonal"),
    "cvae_label_learned_full": cvae_case("label", "learned", "full"),
    "cvae_label_mog_iaf": cvae_case("label", "mog", "iaf"),
    "cvae_top_half_learned_full": cvae_case("top-half", "learned", "full"),
}


class TestModelFamily(ModelBattery):
    cases = CASES


# -- Names and bad arguments when a model is made --------------------------------


def tiny_vae(**kwargs):
    return VAE(
        mlp_encoder(IMAGE_SHAPE, hidden_units=(4,)),
        mlp_decoder(LATENT_DIM, IMAGE_SHAPE, hidden_units=(4,)),
        LATENT_DIM,
        **kwargs,
    )


def tiny_cvae(**kwargs):
    return ConditionalVAE(
        mlp_encoder(IMAGE_SHAPE, hidden_units=(4,)),
        mlp_decoder(LATENT_DIM + NUM_CLASSES, IMAGE_SHAPE, hidden_units=(4,)),
        LATENT_DIM,
        likelihood=IndependentBernoulli(IMAGE_SHAPE),
        hidden_units=4,
        **kwargs,
    )


MAKERS = {"vae": tiny_vae, "cvae": tiny_cvae}


@pytest.mark.parametrize(
    "kind, prior, expected",
    [
        ("vae", None, StandardNormal),
        ("vae", "standard", StandardNormal),
        ("vae", "mog", MixtureOfGaussians),
        ("vae", "vamp", VampPrior),
        ("cvae", "standard", StandardNormal),
        ("cvae", "learned", ConditionalGaussian),
        ("cvae", "mog", MixtureOfGaussians),
    ],
)
def test_priors_by_name(kind, prior, expected):
    model = MAKERS[kind](**({} if prior is None else {"prior": prior}))
    assert type(model.prior_layer) is expected
    assert model.prior_layer.latent_dim == LATENT_DIM


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize(
    "posterior, expected",
    [
        (None, DiagonalNormal),
        ("diagonal", DiagonalNormal),
        ("full", FullCovarianceNormal),
        ("iaf", IAF),
    ],
)
def test_posteriors_by_name(kind, posterior, expected):
    model = MAKERS[kind](**({} if posterior is None else {"posterior": posterior}))
    assert type(model.posterior_layer) is expected
    assert model.posterior_layer.latent_dim == LATENT_DIM


class OneAtATime(keras.layers.Layer):
    """An encoder that takes one example per call (its first axis must be 1)."""

    def call(self, x):
        tf.debugging.assert_equal(tf.shape(x)[0], 1, message="one example at a time")
        return keras.ops.reshape(x, (1, -1))


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: tiny_vae(prior=MixtureOfGaussians(latent_dim=3)),
            r"^Expected a prior over the model's latent_dim=2 latents\. "
            r"Received: MixtureOfGaussians with latent_dim=3$",
        ),
        (
            lambda: tiny_cvae(prior=ConditionalGaussian(latent_dim=5)),
            r"^Expected a prior over the model's latent_dim=2 latents\. "
            r"Received: ConditionalGaussian with latent_dim=5$",
        ),
        (
            lambda: tiny_vae(posterior=FullCovarianceNormal(latent_dim=3)),
            r"^Expected a posterior over the model's latent_dim=2 latents\. "
            r"Received: FullCovarianceNormal with latent_dim=3$",
        ),
        (
            lambda: tiny_cvae(posterior=IAF(latent_dim=4)),
            r"^Expected a posterior over the model's latent_dim=2 latents\. "
            r"Received: IAF with latent_dim=4$",
        ),
        (
            lambda: tiny_vae(prior=MixtureOfGaussians(num_components=0)),
            r"^Expected num_components to be a positive integer\. Received: num_components=0$",
        ),
        (
            lambda: tiny_vae(prior=VampPrior(num_pseudo_inputs=0)),
            r"^Expected num_pseudo_inputs to be a positive integer\. "
            r"Received: num_pseudo_inputs=0$",
        ),
        (
            lambda: tiny_vae(posterior=IAF(num_steps=0)),
            r"^Expected num_steps to be a positive integer\. Received: num_steps=0$",
        ),
        (
            lambda: tiny_vae(prior="nope"),
            r"^Expected prior to be one of \('standard', 'mog', 'vamp', 'learned'\) or a "
            r"keras_vae\.priors\.Prior\. Received: prior='nope'$",
        ),
        (
            lambda: tiny_vae(prior=tfd.Normal(0.0, 1.0)),
            r"^Expected prior to be one of .* Received: prior=<tfp\.distributions\.Normal",
        ),
        (
            lambda: tiny_cvae(prior="nope"),
            r"^Expected prior to be one of .* Received: prior='nope'$",
        ),
        (
            lambda: tiny_vae(posterior="nope"),
            r"^Expected posterior to be one of \('diagonal', 'full', 'iaf'\) or a "
            r"keras_vae\.posteriors\.Posterior\. Received: posterior='nope'$",
        ),
        (
            lambda: tiny_cvae(posterior="gaussian"),
            r"^Expected posterior to be one of .* Received: posterior='gaussian'$",
        ),
        (
            lambda: tiny_cvae(prior="vamp"),
            r"^Expected an unconditional model \(a VAE\) for VampPrior: .* "
            r"Received: model=ConditionalVAE$",
        ),
        (
            lambda: tiny_cvae(prior=VampPrior(num_pseudo_inputs=3)),
            r"^Expected an unconditional model \(a VAE\) for VampPrior: .* "
            r"Received: model=ConditionalVAE$",
        ),
        (
            lambda: tiny_vae(prior="learned"),
            r"^Expected a conditional model \(a ConditionalVAE\) for ConditionalGaussian, .* "
            r"Received: model=VAE$",
        ),
        (
            lambda: VAE(OneAtATime(), mlp_decoder(2, IMAGE_SHAPE), 2, prior=VampPrior(3)).build(
                (None, *IMAGE_SHAPE)
            ),
            r"^Expected pseudo-inputs shaped \(8, 8, 1\) to pass through the encoder\. "
            r"Received: InvalidArgumentError: ",
        ),
    ],
    ids=[
        "prior_latent_dim",
        "learned_prior_latent_dim",
        "posterior_latent_dim",
        "iaf_latent_dim",
        "mog_no_components",
        "vamp_no_pseudo_inputs",
        "iaf_no_steps",
        "unknown_prior",
        "tfd_prior",
        "cvae_unknown_prior",
        "unknown_posterior",
        "cvae_unknown_posterior",
        "vamp_in_cvae",
        "vamp_layer_in_cvae",
        "learned_in_vae",
        "vamp_pseudo_inputs_fail_the_encoder",
    ],
)
def test_refused_priors_and_posteriors(make, message):
    with pytest.raises(ValueError, match=message) as raised:
        make()
    assert len(str(raised.value).splitlines()) == 1


def built(kind):
    model = MAKERS[kind]()
    model.build((None, *(IMAGE_SHAPE if kind == "vae" else (NUM_CLASSES,))))
    return model


def test_a_condition_given_to_an_unconditional_model_is_refused():
    vae = built("vae")
    x, c, z = binary_images(2), labels(2), np.zeros((2, LATENT_DIM), "float32")
    message = (
        r"^Expected condition=None for the unconditional VAE\. "
        r"Received: condition of shape \(2, 3\)$"
    )
    for call in (
        lambda: vae.encode(x, c),
        lambda: vae.decode(z, c),
        lambda: vae.prior(c),
        lambda: vae.sample_latent(2, 0, condition=c),
        lambda: vae.sample(2, c, seed=0),
        lambda: vae.reconstruct(x, c),
    ):
        with pytest.raises(ValueError, match=message):
            call()


def test_a_conditional_model_without_its_condition_is_refused():
    cvae = built("cvae")
    x, z = binary_images(2), np.zeros((2, LATENT_DIM), "float32")
    message = (
        r"^Expected a condition for the conditional ConditionalVAE\. Received: condition=None$"
    )
    for call in (
        lambda: cvae.encode(x),
        lambda: cvae.decode(z),
        lambda: cvae.prior(),
        lambda: cvae.sample_latent(2, 0),
        lambda: cvae.sample(2, seed=0),
        lambda: cvae.reconstruct(x),
    ):
        with pytest.raises(ValueError, match=message):
            call()
