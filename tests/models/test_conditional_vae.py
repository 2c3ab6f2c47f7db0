"""What only the `ConditionalVAE` has: the hybrid (GSNN) loss, the learned prior's
network, the condition types and (condition, target) pairs.

The contract it shares with `VAE` is checked by `model_battery.py` (see
`test_model_family.py`), and the shared training machinery by `test_vae.py`,
whose tests run on both kinds.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import KINDS, LATENT_DIM

from keras_vae import ConditionalVAE
from keras_vae.layers import PixelCNNBernoulli

CVAE = KINDS["cvae"]


def deterministic_hybrid_cvae(weight):
    """A learned-prior tiny CVAE whose posterior and prior draws are their means.

    Scales of ~1e-5 make both draws their means, so the hybrid loss (Sohn et
    al., 2015) follows from the contract's distributions; beta=0 keeps the
    (then large) KL out of the loss. Returns the model and, per example,
    log P(Y|z, X) at the posterior's and at the prior's mean.
    """
    # The networks' initial weights come from Keras's global generator: seeded here, so
    # the setup does not depend on which tests ran before in the process.
    keras.utils.set_random_seed(0)
    cvae = CVAE.make_deterministic(prior="learned", gsnn_weight=weight, beta=0.0, seed=0)
    rng = np.random.default_rng(2)
    params = cvae.prior_layer.params
    kernel, bias = params.get_weights()
    kernel = rng.normal(size=kernel.shape).astype("float32")
    kernel[:, LATENT_DIM:], bias[LATENT_DIM:] = 0.0, -30.0
    bias[:LATENT_DIM] = [1.5, -1.5]  # away from the posterior means
    params.set_weights([kernel, bias])
    dense = cvae.decoder.layers[-1]
    dense.set_weights(
        [2.0 * rng.normal(size=w.shape).astype("float32") for w in dense.get_weights()]
    )
    y, c = CVAE.data(2, seed=3)
    from_posterior = cvae.decode(cvae.encode(y, c).mean(), c).log_prob(y).numpy()
    from_prior = cvae.decode(cvae.prior(c).mean(), c).log_prob(y).numpy()
    assert np.abs(from_posterior - from_prior).min() > 0.1  # the two terms are told apart
    return cvae, (c, y), from_posterior, from_prior


def test_hybrid_loss_mixes_the_elbo_with_the_reconstruction_from_prior_draws():
    weight = 0.3
    cvae, (c, y), from_posterior, from_prior = deterministic_hybrid_cvae(weight)
    terms = {k: v.numpy() for k, v in cvae.compute_terms(c, y).items()}
    np.testing.assert_allclose(terms["reconstruction"], from_posterior, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        terms["loss"], -(1 - weight) * from_posterior - weight * from_prior, rtol=1e-4, atol=1e-3
    )
    # The reported ELBO stays the conditional ELBO.
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_gsnn_weight_set_during_fit_takes_effect(jit_compile):
    # The compiled steps hold gsnn_weight as a constant: setting it (here from
    # a callback, as a schedule would) must trace them again, inside `fit`
    # and for a later `evaluate`. The learning rate is 0, so each epoch's
    # loss is the hybrid loss at that epoch's weight.
    cvae, (c, y), from_posterior, from_prior = deterministic_hybrid_cvae(0.0)
    cvae.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=jit_compile)
    weights = [0.0, 0.3, 0.6, 0.6]

    def set_weight(epoch, logs):
        cvae.gsnn_weight = weights[epoch]

    history = cvae.fit(
        c,
        y,
        batch_size=2,
        epochs=len(weights),
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=set_weight)],
    )
    expected = [np.mean(-(1 - w) * from_posterior - w * from_prior) for w in weights]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-4, atol=1e-3)
    cvae.gsnn_weight = 0.2
    loss = cvae.evaluate(c, y, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, np.mean(-0.8 * from_posterior - 0.2 * from_prior), rtol=1e-4)
    with pytest.raises(ValueError, match=r"^Expected gsnn_weight .* Received: gsnn_weight=1.0$"):
        cvae.gsnn_weight = 1
    assert cvae.gsnn_weight == 0.2


def test_hybrid_loss_trains_the_decoder_on_prior_draws():
    # With the standard prior, only the GSNN term feeds prior draws to the
    # decoder: its gradient differs from the ELBO's, and the weight is saved.
    y, c = CVAE.data(8, seed=4)
    gradients = {}
    for weight in (0.0, 0.5):
        keras.utils.set_random_seed(0)
        cvae = CVAE.make(gsnn_weight=weight, seed=0)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(cvae.compute_terms(c, y, training=True)["loss"])
        gradients[weight] = tape.gradient(loss, cvae.decoder.trainable_variables)[0].numpy()
    assert np.abs(gradients[0.5] - gradients[0.0]).max() > 1e-3
    config = cvae.get_config()
    assert config["gsnn_weight"] == 0.5
    assert ConditionalVAE.from_config(config).gsnn_weight == 0.5


@pytest.mark.parametrize("prior_hidden_units, widths", [(None, (4,)), ((5, 3), (5, 3))])
def test_prior_hidden_units_make_the_learned_prior_network(prior_hidden_units, widths):
    cvae = CVAE.make(prior="learned", prior_hidden_units=prior_hidden_units)
    prior = cvae.prior_layer
    assert prior.hidden_units == widths  # None: one layer as wide as hidden_units=4
    rng = np.random.default_rng(2)
    weights = []
    for layer in (*prior.hidden, prior.params):
        weights.append([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
        layer.set_weights(weights[-1])
    # P(z|c) is a numpy pass: ReLU layers, then the mean and softplus scale + 1e-5.
    _, c = CVAE.data(3)
    h = c
    for kernel, bias in weights[:-1]:
        h = np.maximum(h @ kernel + bias, 0.0)
    params = h @ weights[-1][0] + weights[-1][1]
    distribution = cvae.prior(c)
    np.testing.assert_allclose(distribution.mean(), params[:, :LATENT_DIM], rtol=1e-5, atol=1e-6)
    scale = np.log1p(np.exp(params[:, LATENT_DIM:])) + 1e-5
    np.testing.assert_allclose(distribution.stddev(), scale, rtol=1e-5, atol=1e-6)


def test_generate_is_sample_with_the_condition_first():
    cvae = CVAE.make(prior="learned")
    _, c = CVAE.data(2)
    np.testing.assert_array_equal(
        cvae.generate(c, num_samples=5, seed=3, temperature=0.5),
        cvae.sample(5, c, seed=3, temperature=0.5),
    )
    np.testing.assert_array_equal(
        cvae.generate(c, 5, seed=3, use_mean=False, batch_size=3),
        cvae.sample(5, c, seed=3, use_mean=False, batch_size=3),
    )


# -- Constructor arguments -------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"likelihood": None}, r"likelihood to be a keras_vae distribution layer .*None"),
        (
            {"likelihood": PixelCNNBernoulli((4, 4, 1))},
            r"a likelihood with a closed-form mean for a ConditionalVAE .*PixelCNNBernoulli.*",
        ),
        ({"gsnn_weight": 1.0}, r"gsnn_weight to be in \[0, 1\) .*Received: gsnn_weight=1.0"),
        ({"gsnn_weight": -0.1}, r"gsnn_weight to be a non-negative float.*gsnn_weight=-0.1"),
        ({"hidden_units": 0}, r"hidden_units to be a positive integer.*hidden_units=0"),
        (
            {"prior": "learned", "prior_hidden_units": (8, 0)},
            r"prior_hidden_units to be .* Received: prior_hidden_units=\(8, 0\)",
        ),
        (
            {"prior": "learned", "prior_hidden_units": 2.5},
            r"prior_hidden_units to be .* Received: prior_hidden_units=2.5",
        ),
        (
            {"prior": "learned", "prior_hidden_units": ()},
            r"prior_hidden_units to hold at least one .* Received: prior_hidden_units=\(\)",
        ),
        (
            {"prior_hidden_units": 8},
            r"prior_hidden_units=None unless prior='learned' .*prior_hidden_units=8",
        ),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"^Expected {message}$"):
        CVAE.make(build=False, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # A misspelt type was kept; `sample --label` and `complete` then refused the model.
        ({"condition_type": "lable"}, r"condition_type to be None or one of .*'lable'$"),
        ({"condition_type": "top-half"}, r"image_shape, .* Received: image_shape=None$"),
        (
            {"condition_type": "top-half", "image_shape": (4, 2)},
            r"a likelihood over the 4 missing pixels .* Received: likelihood event shape \(3,\)$",
        ),
        (
            {"condition_type": "center-column", "image_shape": (3, 1)},
            r"images at least 2 pixels wide .* Received: image_shape=\(3, 1\)$",
        ),
        (
            {"condition_type": "label", "image_shape": (28, 28, 1)},
            r"image_shape to be None or the target's shape .* for condition_type='label'\. "
            r"Received: image_shape=\(28, 28, 1\)$",
        ),
    ],
)
def test_condition_type_and_image_shape_are_checked_against_the_likelihood(kwargs, message):
    with pytest.raises(ValueError, match=f"^Expected {message}"):
        CVAE.make(build=False, **kwargs)


def test_a_completion_model_takes_the_observed_pixels_and_a_label_model_one_hot_rows():
    # Top half of a 2x3 image: 3 observed pixels, 3 missing.
    def completion(observed):
        decoder = keras.Sequential([keras.Input((LATENT_DIM + 3,)), keras.layers.Dense(3)])
        model = CVAE.make(
            build=False, decoder=decoder, condition_type="top-half", image_shape=(2, 3)
        )
        model.build((None, observed))
        return model

    assert completion(3).condition_shape == (3,)
    with pytest.raises(
        ValueError,
        match=r"^Expected conditions shaped \[B, 3\], the observed pixels of "
        r"condition_type='top-half' in an image shaped \(2, 3\)\. "
        r"Received: condition shape \(2,\)$",
    ):
        completion(2)
    with pytest.raises(
        ValueError,
        match=r"^Expected one-hot label conditions shaped \[B, num_classes\] for "
        r"condition_type='label'\. Received: condition shape \(1, 2\)$",
    ):
        CVAE.make(build=False, condition_type="label").build((None, 1, 2))


# -- (condition, target) pairs -----------------------------------------------------


def test_unpaired_conditions_and_targets_fail_in_one_line():
    cvae = CVAE.make()
    cvae.compile()
    y, c = CVAE.data(4)
    with pytest.raises(ValueError, match=r"^Expected condition shaped \[batch, 2\]"):
        cvae.sample(2, np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"^Expected target and condition with the same batch"):
        cvae.reconstruct(y[:3], c)
    with pytest.raises(ValueError, match=r"^Expected \(condition, target\) pairs: .*y=None$"):
        cvae.fit(c, verbose=0)
    pairs = r"^Expected as many conditions as targets\. Received: condition.shape=\(4, 2\), "
    with pytest.raises(ValueError, match=pairs + r"target.shape=\(3, 3\)$"):
        cvae.fit(c, y[:3], verbose=0)
    with pytest.raises(ValueError, match=pairs + r"target.shape=\(2, 3\)$"):
        cvae.evaluate(c, y[:2], verbose=0)
    with pytest.raises(ValueError, match=pairs + r"target.shape=\(2, 3\)$"):
        cvae.fit(c, y, verbose=0, validation_data=(c, y[:2]))


@pytest.mark.slow
def test_conv_completion_cvae_trains_completes_and_round_trips(mnist_test_images, tmp_path):
    from keras_vae.data import make_conditional_pairs, split_image
    from keras_vae.models.presets import build_cvae
    from keras_vae.tasks import complete_images

    images, labels = mnist_test_images
    binary = (np.random.default_rng(0).random(images.shape) < images).astype("float32")
    c, y = make_conditional_pairs(binary, labels, "top-half")
    keras.utils.set_random_seed(0)
    cvae = build_cvae("conv", "top-half", latent_dim=4, prior="learned", seed=0)
    cvae.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert cvae.jit_compile is False  # a convolutional model: no XLA on CPU
    before = cvae.evaluate(c[1500:], y[1500:], verbose=0, return_dict=True)["elbo"]
    cvae.fit(c[:1500], y[:1500], epochs=3, batch_size=64, verbose=0)
    after = cvae.evaluate(c[1500:], y[1500:], verbose=0, return_dict=True)["elbo"]
    assert after > before + 100
    completions = complete_images(cvae, images[:4], 3, seed=0)
    # complete_images binarizes the observed grey values with one draw seeded by `seed`.
    drawn = (np.random.default_rng(0).random(images[:4].shape) < images[:4]).astype("float32")
    observed = split_image(drawn, "top-half")[0]
    for k in range(3):
        np.testing.assert_array_equal(split_image(completions[:, k], "top-half")[0], observed)
    assert np.abs(completions[:, 0, 14:] - completions[:, 1, 14:]).max() > 1e-3
    cvae.save(tmp_path / "conv_cvae.keras")
    loaded = keras.saving.load_model(tmp_path / "conv_cvae.keras")
    np.testing.assert_array_equal(complete_images(loaded, images[:4], 3, seed=0), completions)
