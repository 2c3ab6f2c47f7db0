"""Ready-to-train VAEs and CVAEs built from the `keras_vae.networks` architectures."""

from keras_vae import posteriors, priors
from keras_vae.data import CONDITIONS, pixel_indices
from keras_vae.layers import GaussianLikelihood, IndependentBernoulli, PixelCNNBernoulli
from keras_vae.models.conditional_vae import ConditionalVAE
from keras_vae.models.vae import VAE
from keras_vae.models.validation import check_choice, check_positive_int
from keras_vae.networks import ARCHITECTURES, build_networks, conv_completion_networks

LIKELIHOODS = ("bernoulli", "gaussian", "pixelcnn")
# The learned prior's hidden widths for completion: those of the MLP decoder,
# so the prior can be as good a regressor of the missing part's digit as the
# decoder network is (see benchmarks/RESULTS.md, completion).
COMPLETION_PRIOR_UNITS = (256, 512)
# The priors that `prior_components` sizes, and the constructor argument it sets.
PRIOR_COMPONENTS = {"mog": "num_components", "vamp": "num_pseudo_inputs"}


def make_likelihood(likelihood: str, event_shape):
    """The likelihood layer called `likelihood` (one of `LIKELIHOODS`)."""
    check_choice("likelihood", likelihood, LIKELIHOODS)
    if likelihood == "bernoulli":
        return IndependentBernoulli(event_shape, name="likelihood")
    if likelihood == "pixelcnn":
        return PixelCNNBernoulli(event_shape, name="likelihood")
    return GaussianLikelihood(event_shape, scale=0.1, trainable_scale=True, name="likelihood")


def check_prior_components(prior, prior_components):
    """Returns `prior_components` (`None` or a positive int), or raises.

    Raises unless it is `None` or a positive integer, and unless `prior`
    names a prior that has components (`PRIOR_COMPONENTS`) when it is given.
    An unknown prior name is reported as such first.
    """
    if prior_components is None:
        return None
    prior_components = check_positive_int("prior_components", prior_components)
    if not (isinstance(prior, str) and prior in PRIOR_COMPONENTS):
        priors.get(prior)  # an unknown name: say so rather than blame prior_components
        raise ValueError(
            f"Expected prior_components=None unless prior is one of {tuple(PRIOR_COMPONENTS)} "
            "(the number of mixture components or VampPrior pseudo-inputs). "
            f"Received: prior_components={prior_components} with prior={prior!r}"
        )
    return prior_components


def make_prior(prior, prior_components=None):
    """`prior` for a model: a name or a `Prior` as is, or a mixture of `prior_components`.

    Args:
        prior: str or `keras_vae.priors.Prior`. A name of
            `keras_vae.priors.PRIORS` or a prior layer.
        prior_components: int or `None`. For `"mog"`, the number of
            Gaussians; for `"vamp"`, the number of pseudo-inputs. `None`
            keeps the prior's default (10 and 500).

    Returns:
        `prior` itself (the model resolves names), or the prior layer with
        `prior_components` components.
    """
    prior_components = check_prior_components(prior, prior_components)
    if prior_components is None:
        return prior
    return priors.PRIORS[prior](**{PRIOR_COMPONENTS[prior]: prior_components})


def build_vae(
    architecture: str = "mlp",
    input_shape=(28, 28, 1),
    latent_dim: int = 50,
    likelihood: str = "bernoulli",
    beta: float = 1.0,
    seed: int | None = None,
    objective: str = "elbo",
    num_samples: int = 1,
    prior: str | priors.Prior = "standard",
    posterior: str | posteriors.Posterior = "diagonal",
    prior_components: int | None = None,
) -> VAE:
    """A VAE with ready-made encoder and decoder networks.

    Args:
        architecture: str. `"mlp"` (784-512-256 style) or `"conv"`
            (stride-2 convolutions). Defaults to `"mlp"`.
        input_shape: tuple of ints. Shape of one image. Defaults to MNIST's.
        latent_dim: int. Number of latents. Defaults to `50`.
        likelihood: str. `"bernoulli"` for binary data, `"pixelcnn"` for
            binary images with an autoregressive `PixelCNNBernoulli` on top of
            the decoder (better log-likelihoods, slower sampling, not
            exportable), or `"gaussian"` (learned shared scale) for
            continuous data. Defaults to `"bernoulli"`.
        beta: float. KL weight. Defaults to `1.0`.
        seed: int or `None`. Training sample seed.
        objective: str. `"elbo"` or `"iwae"`. Defaults to `"elbo"`.
        num_samples: int. Latent samples per example in the objective.
            Defaults to `1`.
        prior: str or `keras_vae.priors.Prior`. P(z): `"standard"` (N(0, I)),
            `"mog"` (a learned mixture of Gaussians) or `"vamp"` (VampPrior).
            Defaults to `"standard"`.
        posterior: str or `keras_vae.posteriors.Posterior`. Q(z|x):
            `"diagonal"`, `"full"` (full covariance) or `"iaf"` (inverse
            autoregressive flow). Defaults to `"diagonal"`.
        prior_components: int or `None`. Gaussians of `"mog"` or
            pseudo-inputs of `"vamp"`; refused with other priors. `None`
            keeps the prior's default. Defaults to `None`.

    Returns:
        An unbuilt, uncompiled `VAE`.

    Example:

    >>> vae = build_vae("conv", (28, 28, 1), latent_dim=16)
    >>> vamp = build_vae(latent_dim=16, prior="vamp", prior_components=100, posterior="iaf")
    """
    check_choice("architecture", architecture, ARCHITECTURES)
    latent_dim = check_positive_int("latent_dim", latent_dim)
    prior = make_prior(prior, prior_components)
    input_shape = tuple(input_shape)
    likelihood_layer = make_likelihood(likelihood, input_shape)
    params_shape = getattr(likelihood_layer, "params_shape", input_shape)
    encoder, decoder = build_networks(architecture, input_shape, latent_dim, params_shape)
    return VAE(
        encoder,
        decoder,
        latent_dim,
        likelihood=likelihood_layer,
        prior=prior,
        posterior=posterior,
        beta=beta,
        objective=objective,
        num_samples=num_samples,
        seed=seed,
    )


def build_cvae(
    architecture: str = "mlp",
    condition: str = "label",
    image_shape=(28, 28, 1),
    latent_dim: int = 8,
    num_classes: int = 10,
    prior: str | priors.Prior = "standard",
    likelihood: str = "bernoulli",
    beta: float = 1.0,
    seed: int | None = None,
    gsnn_weight: float = 0.0,
    prior_hidden_units=None,
    posterior: str | posteriors.Posterior = "diagonal",
    prior_components: int | None = None,
    objective: str = "elbo",
    num_samples: int = 1,
) -> ConditionalVAE:
    """A ConditionalVAE for class-conditional generation or image completion.

    Args:
        architecture: str. `"mlp"` or `"conv"`. For the completion
            conditions, `"conv"` runs its networks on the image grid
            (`conv_completion_networks`). Defaults to `"mlp"`.
        condition: str. `"label"` (one-hot class -> image), `"center-column"`
            or `"top-half"` (observed pixels -> missing pixels).
        image_shape: tuple of ints. Shape of one image. Defaults to MNIST's.
        latent_dim: int. Number of latents. Defaults to `8`: the condition
            carries the class or the visible pixels, the latents the rest.
        num_classes: int. Classes of the `"label"` condition. Defaults to `10`.
        prior: str or `keras_vae.priors.Prior`. `"standard"` (N(0, I)),
            `"learned"` (a Gaussian network of the condition, P(z|X)) or
            `"mog"` (a learned mixture of Gaussians); the VampPrior is for
            `build_vae` only. Defaults to `"standard"`.
        likelihood: str. `"bernoulli"` or `"gaussian"` (`"pixelcnn"` is for
            `build_vae` only). Defaults to `"bernoulli"`.
        beta: float. KL weight. Defaults to `1.0`.
        seed: int or `None`. Training sample seed.
        gsnn_weight: float in [0, 1). Weight of the reconstruction from prior
            draws in the loss (Sohn et al.'s hybrid objective, see
            `ConditionalVAE`). Defaults to `0.0`.
        prior_hidden_units: int, sequence of ints or `None`. Hidden widths of
            the learned prior (see `ConditionalVAE`). `None` gives it
            `COMPLETION_PRIOR_UNITS`, the MLP decoder's widths, for the
            completion conditions (there it picks the digit the missing
            part shows) and one layer of 256 for `"label"`. Defaults to
            `None`.
        posterior: str or `keras_vae.posteriors.Posterior`. Q(z|Y, X):
            `"diagonal"`, `"full"` (full covariance) or `"iaf"` (inverse
            autoregressive flow). Defaults to `"diagonal"`.
        prior_components: int or `None`. Gaussians of `"mog"`; refused with
            other priors. `None` keeps the prior's default. Defaults to
            `None`.
        objective: str. `"elbo"` or `"iwae"`. Defaults to `"elbo"`.
        num_samples: int. Latent samples per example in the objective.
            Defaults to `1`.

    Returns:
        An unbuilt, uncompiled `ConditionalVAE`.

    Example:

    >>> cvae = build_cvae("mlp", "top-half", latent_dim=16)
    """
    check_choice("condition", condition, CONDITIONS)
    check_choice("architecture", architecture, ARCHITECTURES)
    check_choice("likelihood", likelihood, ("bernoulli", "gaussian"))
    latent_dim = check_positive_int("latent_dim", latent_dim)
    prior = make_prior(prior, prior_components)
    image_shape = tuple(image_shape)
    if condition == "label":
        condition_size = check_positive_int("num_classes", num_classes)
        target_shape = image_shape
    else:
        observed, missing = pixel_indices(condition, image_shape)
        condition_size, target_shape = len(observed), (len(missing),)
    if architecture == "conv" and condition != "label":
        encoder, decoder = conv_completion_networks(
            image_shape, missing, latent_dim + condition_size
        )
    else:
        encoder, decoder = build_networks(
            architecture, target_shape, latent_dim + condition_size, target_shape
        )
    if prior_hidden_units is None and prior == "learned" and condition != "label":
        prior_hidden_units = COMPLETION_PRIOR_UNITS
    return ConditionalVAE(
        encoder,
        decoder,
        latent_dim,
        likelihood=make_likelihood(likelihood, target_shape),
        prior=prior,
        posterior=posterior,
        prior_hidden_units=prior_hidden_units,
        condition_type=condition,
        image_shape=image_shape,
        beta=beta,
        gsnn_weight=gsnn_weight,
        seed=seed,
        objective=objective,
        num_samples=num_samples,
    )
