import numpy as np
import pytest

from keras_vae.models.presets import build_cvae, build_vae
from keras_vae.posteriors import IAF, DiagonalNormal, FullCovarianceNormal
from keras_vae.priors import ConditionalGaussian, MixtureOfGaussians, StandardNormal, VampPrior


@pytest.mark.parametrize(
    "kwargs, prior, posterior, components",
    [
        ({}, StandardNormal, DiagonalNormal, None),
        ({"prior": "mog", "posterior": "full"}, MixtureOfGaussians, FullCovarianceNormal, 10),
        ({"prior": "mog", "prior_components": 3}, MixtureOfGaussians, DiagonalNormal, 3),
        ({"prior": "vamp", "posterior": "iaf"}, VampPrior, IAF, 500),
        ({"prior": "vamp", "prior_components": 4, "posterior": "iaf"}, VampPrior, IAF, 4),
        ({"prior": MixtureOfGaussians(2), "posterior": IAF(num_steps=1)},
         MixtureOfGaussians, IAF, 2),
    ],
)  # fmt: skip
def test_build_vae_makes_the_named_prior_and_posterior(kwargs, prior, posterior, components):
    vae = build_vae("mlp", (28, 28, 1), latent_dim=2, **kwargs)
    assert type(vae.prior_layer) is prior and type(vae.posterior_layer) is posterior
    if components is not None:
        count = "num_components" if prior is MixtureOfGaussians else "num_pseudo_inputs"
        assert getattr(vae.prior_layer, count) == components


def test_the_prior_components_size_the_weights_of_a_built_model():
    vamp = build_vae("mlp", (28, 28, 1), latent_dim=2, prior="vamp", prior_components=4)
    vamp(np.zeros((1, 28, 28, 1), "float32"))
    assert tuple(vamp.prior_layer.pseudo_inputs.shape) == (4, 28, 28, 1)
    mog = build_cvae("mlp", "label", latent_dim=2, prior="mog", prior_components=3)
    mog.build((None, 10))
    assert tuple(mog.prior_layer.means.shape) == (3, 2)


@pytest.mark.parametrize(
    "condition, kwargs, prior, posterior",
    [
        ("label", {"posterior": "iaf"}, StandardNormal, IAF),
        ("label", {"prior": "mog", "posterior": "full"}, MixtureOfGaussians, FullCovarianceNormal),
        ("top-half", {"prior": "learned", "posterior": "full"}, ConditionalGaussian,
         FullCovarianceNormal),
    ],
)  # fmt: skip
def test_build_cvae_makes_the_named_prior_and_posterior(condition, kwargs, prior, posterior):
    cvae = build_cvae("mlp", condition, latent_dim=2, **kwargs)
    assert type(cvae.prior_layer) is prior and type(cvae.posterior_layer) is posterior


def test_build_cvae_gives_a_learned_completion_prior_the_decoder_widths():
    cvae = build_cvae("mlp", "top-half", latent_dim=2, prior="learned", posterior="iaf")
    assert cvae.prior_layer.hidden_units == (256, 512)


@pytest.mark.parametrize(
    "build, kwargs, message",
    [
        (build_vae, {"prior": "nope"}, "Received: prior='nope'"),
        (build_vae, {"prior": "nope", "prior_components": 3}, "Received: prior='nope'"),
        (build_vae, {"posterior": "nope"}, "Received: posterior='nope'"),
        (build_vae, {"prior": "mog", "prior_components": 0},
         "Expected prior_components to be a positive integer. Received: prior_components=0"),
        (build_vae, {"prior": "vamp", "prior_components": 2.5}, "Received: prior_components=2.5"),
        (build_vae, {"prior_components": 5},
         "Expected prior_components=None unless prior is one of ('mog', 'vamp') "
         "(the number of mixture components or VampPrior pseudo-inputs). "
         "Received: prior_components=5 with prior='standard'"),
        (build_vae, {"prior": "learned"}, "Received: model=VAE"),
        (build_vae, {"prior": VampPrior(3), "prior_components": 3},
         "Received: prior_components=3 with prior=<VampPrior"),
        (build_cvae, {"prior": "vamp"}, "Received: model=ConditionalVAE"),
        (build_cvae, {"prior": "learned", "prior_components": 4},
         "Received: prior_components=4 with prior='learned'"),
        (build_cvae, {"posterior": "nope"}, "Received: posterior='nope'"),
    ],
)  # fmt: skip
def test_bad_priors_and_posteriors_are_one_line(build, kwargs, message):
    with pytest.raises(ValueError) as raised:
        build(latent_dim=2, **kwargs)
    text = str(raised.value)
    assert message in text and text.startswith("Expected") and len(text.splitlines()) == 1
