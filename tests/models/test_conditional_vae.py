import io
import json
import math
import os
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import ConditionalVAE
from keras_vae.layers import GaussianLikelihood, IndependentBernoulli
from keras_vae.models.presets import build_cvae
from keras_vae.networks import mlp_decoder, mlp_encoder

tfd = tfp.distributions


def tiny_cvae(prior="standard", latent_dim=2, pixels=3, classes=2, **kwargs):
    encoder = keras.Sequential([keras.Input((pixels,)), keras.layers.Identity()])
    decoder = keras.Sequential([keras.Input((latent_dim + classes,)), keras.layers.Dense(pixels)])
    cvae = ConditionalVAE(
        encoder,
        decoder,
        latent_dim,
        likelihood=IndependentBernoulli(pixels),
        prior=prior,
        hidden_units=4,
        **kwargs,
    )
    cvae.build((None, classes))
    return cvae


def label_cvae(latent_dim=8, prior="standard", seed=0):
    return ConditionalVAE(
        mlp_encoder((28, 28, 1), hidden_units=(256,)),
        mlp_decoder(latent_dim + 10, (28, 28, 1), hidden_units=(256,)),
        latent_dim,
        likelihood=IndependentBernoulli((28, 28, 1)),
        prior=prior,
        condition_type="label",
        seed=seed,
    )


# Two (target, condition) pairs for the hand computations on `tiny_cvae`.
HAND_Y = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], "float32")
HAND_C = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")


def set_random_decoder(cvae, rng):
    """Random weights for `tiny_cvae`'s linear decoder; returns them."""
    w = rng.normal(size=(4, 3)).astype("float32")
    b = rng.normal(size=3).astype("float32")
    cvae.decoder.layers[-1].set_weights([w, b])
    return w, b


def bernoulli_log_likelihood(z, w, b):
    """log P(HAND_Y | z, HAND_C) under the linear decoder `w`, `b`, in numpy."""
    p = 1.0 / (1.0 + np.exp(-(np.concatenate([z, HAND_C], 1) @ w + b)))
    return np.sum(HAND_Y * np.log(p) + (1 - HAND_Y) * np.log(1 - p), axis=1)


def test_conditional_elbo_equals_hand_computation():
    cvae = tiny_cvae(beta=0.5)
    rng = np.random.default_rng(0)
    # Posterior hidden layer: identity on [y, c] (5 -> 4 units would lose one,
    # so use a random but known map), near-zero posterior scale.
    h_kernel = rng.normal(size=(5, 4)).astype("float32")
    h_bias = rng.normal(size=4).astype("float32")
    cvae.posterior_hidden.set_weights([h_kernel, h_bias])
    p_kernel = np.concatenate([rng.normal(size=(4, 2)), np.zeros((4, 2))], axis=1).astype("float32")
    raw_scale = -30.0
    p_bias = np.array([0.1, -0.1, raw_scale, raw_scale], "float32")
    cvae.posterior_params.set_weights([p_kernel, p_bias])
    w, b = set_random_decoder(cvae, rng)
    terms = {k: v.numpy() for k, v in cvae.compute_terms(HAND_C, HAND_Y).items()}

    hidden = np.maximum(np.concatenate([HAND_Y, HAND_C], 1) @ h_kernel + h_bias, 0.0)
    loc = hidden @ p_kernel[:, :2] + p_bias[:2]
    scale = math.log1p(math.exp(raw_scale)) + 1e-5
    kl = 0.5 * np.sum(scale**2 + loc**2 - 1.0 - np.log(scale**2), axis=1)
    reconstruction = bernoulli_log_likelihood(loc, w, b)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(terms["reconstruction"], reconstruction, atol=1e-3)
    np.testing.assert_allclose(terms["loss"], 0.5 * kl - reconstruction, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_reconstruct_decodes_the_posterior_mean(prior):
    # A wide posterior (softplus(0) = 0.69): its mean, a draw and the prior mean differ.
    cvae = tiny_cvae(prior=prior)
    rng = np.random.default_rng(3)
    h_kernel, h_bias = rng.normal(size=(5, 4)), rng.normal(size=4)
    p_kernel = np.concatenate([rng.normal(size=(4, 2)), np.zeros((4, 2))], axis=1)
    p_bias = np.array([0.3, -0.4, 0.0, 0.0])
    cvae.posterior_hidden.set_weights([h_kernel.astype("float32"), h_bias.astype("float32")])
    cvae.posterior_params.set_weights([p_kernel.astype("float32"), p_bias.astype("float32")])
    w, b = set_random_decoder(cvae, rng)
    hidden = np.maximum(np.concatenate([HAND_Y, HAND_C], 1) @ h_kernel + h_bias, 0.0)
    loc = hidden @ p_kernel[:, :2] + p_bias[:2]
    expected = 1.0 / (1.0 + np.exp(-(np.concatenate([loc, HAND_C], 1) @ w + b)))
    np.testing.assert_allclose(cvae.reconstruct(HAND_C, HAND_Y), expected, rtol=1e-5)


def test_learned_prior_kl_matches_tfp():
    cvae = tiny_cvae(prior="learned")
    rng = np.random.default_rng(1)
    for layer in (cvae.prior_hidden, cvae.prior_params):
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    y = rng.integers(0, 2, (6, 3)).astype("float32")
    c = np.eye(2, dtype="float32")[rng.integers(0, 2, 6)]
    terms = cvae.compute_terms(c, y)
    q = cvae.encode(tf.constant(y), tf.constant(c))
    p = cvae.prior(tf.constant(c))
    assert p.batch_shape == [6]
    # Independent reference: KL of the two diagonal Gaussians built by hand.
    ref = tfd.kl_divergence(
        tfd.MultivariateNormalDiag(q.distribution.loc, q.distribution.scale),
        tfd.MultivariateNormalDiag(p.distribution.loc, p.distribution.scale),
    )
    np.testing.assert_allclose(terms["kl"].numpy(), ref.numpy(), rtol=1e-5)
    # The prior depends on the condition.
    assert not np.allclose(p.mean().numpy()[0], p.mean().numpy()[c[:, 0] != c[0, 0]][0])


def deterministic_hybrid_cvae(weight):
    """A learned-prior `tiny_cvae` whose posterior and prior draws are their means.

    Near-zero posterior and prior scales make both draws their means, so the
    hybrid loss (Sohn et al., 2015) can be computed by hand; beta=0 keeps the
    (then huge) KL out of the loss. Returns the model and, per example of
    `HAND_Y`, log P(Y|z, X) at the posterior's and at the prior's mean.
    """
    cvae = tiny_cvae(prior="learned", gsnn_weight=weight, beta=0.0)
    rng = np.random.default_rng(2)
    raw_scale = -30.0
    for hidden, params in (
        (cvae.posterior_hidden, cvae.posterior_params),
        (cvae.prior_hidden, cvae.prior_params),
    ):
        shapes = [w.shape for w in hidden.get_weights()]
        hidden.set_weights([rng.normal(size=shape).astype("float32") for shape in shapes])
        kernel = rng.normal(size=params.get_weights()[0].shape).astype("float32")
        kernel[:, 2:] = 0.0
        params.set_weights([kernel, np.array([0.2, -0.3, raw_scale, raw_scale], "float32")])
    w, b = set_random_decoder(cvae, rng)

    def mean(hidden, params, inputs):
        h = np.maximum(inputs @ hidden.get_weights()[0] + hidden.get_weights()[1], 0.0)
        return h @ params.get_weights()[0][:, :2] + params.get_weights()[1][:2]

    from_posterior = bernoulli_log_likelihood(
        mean(cvae.posterior_hidden, cvae.posterior_params, np.concatenate([HAND_Y, HAND_C], 1)),
        w,
        b,
    )
    from_prior = bernoulli_log_likelihood(mean(cvae.prior_hidden, cvae.prior_params, HAND_C), w, b)
    assert np.abs(from_posterior - from_prior).min() > 0.1  # the two terms are told apart
    return cvae, from_posterior, from_prior


def test_hybrid_loss_equals_hand_computation():
    weight = 0.3
    cvae, from_posterior, from_prior = deterministic_hybrid_cvae(weight)
    terms = {k: v.numpy() for k, v in cvae.compute_terms(HAND_C, HAND_Y).items()}
    np.testing.assert_allclose(terms["reconstruction"], from_posterior, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        terms["loss"], -(1 - weight) * from_posterior - weight * from_prior, rtol=1e-4, atol=1e-3
    )


@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_gsnn_weight_set_during_fit_takes_effect(jit_compile):
    # The compiled steps hold gsnn_weight as a constant: setting it (here from
    # a callback, as a schedule would) must trace them again, inside `fit`
    # and for a later `evaluate`. The learning rate is 0, so each epoch's
    # loss is the hand-computed hybrid loss at that epoch's weight.
    cvae, from_posterior, from_prior = deterministic_hybrid_cvae(0.0)
    cvae.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=jit_compile)
    weights = [0.0, 0.3, 0.6, 0.6]

    def set_weight(epoch, logs):
        cvae.gsnn_weight = weights[epoch]

    history = cvae.fit(
        HAND_C,
        HAND_Y,
        batch_size=2,
        epochs=len(weights),
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=set_weight)],
    )
    expected = [np.mean(-(1 - w) * from_posterior - w * from_prior) for w in weights]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-4, atol=1e-3)
    cvae.gsnn_weight = 0.2
    loss = cvae.evaluate(HAND_C, HAND_Y, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, np.mean(-0.8 * from_posterior - 0.2 * from_prior), rtol=1e-4)
    with pytest.raises(ValueError, match="Received: gsnn_weight=1.0"):
        cvae.gsnn_weight = 1
    assert cvae.gsnn_weight == 0.2


def test_hybrid_loss_trains_the_decoder_on_prior_draws():
    # With the standard prior, only the GSNN term feeds prior draws to the
    # decoder: its gradient differs from the ELBO's, and the weight is saved.
    c = np.eye(2, dtype="float32")[np.arange(8) % 2]
    y = (np.arange(24).reshape(8, 3) % 2).astype("float32")
    gradients = {}
    for weight in (0.0, 0.5):
        keras.utils.set_random_seed(0)
        cvae = tiny_cvae(gsnn_weight=weight, seed=0)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(cvae.compute_terms(c, y, training=True)["loss"])
        gradients[weight] = tape.gradient(loss, cvae.decoder.trainable_variables)[0].numpy()
    assert np.abs(gradients[0.5] - gradients[0.0]).max() > 1e-3
    config = cvae.get_config()
    assert config["gsnn_weight"] == 0.5
    assert ConditionalVAE.from_config(config).gsnn_weight == 0.5


@pytest.mark.parametrize("condition", ["label", "top-half"])
def test_conv_cvae_on_an_empty_batch_gives_empty_outputs(condition):
    # With oneDNN, TF 2.21's convolutions gave 0 rows the wrong shape.
    cvae = build_cvae("conv", condition, latent_dim=4, seed=0)
    condition_shape = (10,) if condition == "label" else (392,)
    cvae.build((None, *condition_shape))
    c = np.zeros((0, *condition_shape), "float32")
    y = np.zeros((0, *cvae.target_shape), "float32")
    assert cvae.decode(np.zeros((0, 4), "float32"), c).mean().shape == (0, *cvae.target_shape)
    assert cvae.encode(y, c).mean().shape == (0, 4)
    assert cvae.generate(c, num_samples=3, seed=0).shape == (0, 3, *cvae.target_shape)


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_generate_shape_and_seed(prior):
    cvae = tiny_cvae(prior=prior)
    c = np.eye(2, dtype="float32")
    a = cvae.generate(c, num_samples=5, seed=3)
    assert a.shape == (2, 5, 3)
    np.testing.assert_array_equal(a, cvae.generate(c, num_samples=5, seed=3))
    assert np.abs(a - cvae.generate(c, num_samples=5, seed=4)).max() > 1e-4
    # The k-th draw does not depend on how many conditions are in the batch.
    np.testing.assert_allclose(cvae.generate(c[:1], num_samples=5, seed=3)[0], a[0], atol=1e-6)
    z = cvae.sample_latent(tf.constant(c), 5, 3)
    assert z.shape == (2, 5, 2)
    # Decoding in chunks bounds memory and changes nothing, draws included.
    for use_mean in (True, False):
        whole = cvae.generate(c, num_samples=5, seed=3, use_mean=use_mean)
        chunked = cvae.generate(c, num_samples=5, seed=3, use_mean=use_mean, batch_size=3)
        np.testing.assert_allclose(chunked, whole, atol=1e-6)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        cvae.generate(c, num_samples=5, seed=3, batch_size=0)


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_target_draws_follow_the_seed_at_zero_temperature(prior):
    # Temperature 0: every seed decodes the same z, the prior mean, so only
    # the likelihood's draws can tell two seeds apart.
    cvae = tiny_cvae(prior=prior)
    set_random_decoder(cvae, np.random.default_rng(0))
    c = np.eye(2, dtype="float32")
    a = cvae.generate(c, num_samples=400, seed=5, use_mean=False, temperature=0)
    np.testing.assert_array_equal(
        a, cvae.generate(c, num_samples=400, seed=5, use_mean=False, temperature=0)
    )
    assert np.any(a != cvae.generate(c, num_samples=400, seed=6, use_mean=False, temperature=0))
    np.testing.assert_allclose(a.mean(axis=1), cvae.predict(c, verbose=0), atol=0.1)


@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_temperature_scales_the_spread_of_the_prior_draws(prior):
    cvae = tiny_cvae(prior=prior)
    c = tf.constant(np.eye(2, dtype="float32"))
    mean = cvae._prior_for_batch(c).mean().numpy()[:, None]
    z1 = cvae.sample_latent(c, 4, seed=5).numpy()
    z_half = cvae.sample_latent(c, 4, seed=5, temperature=0.5).numpy()
    np.testing.assert_allclose(z_half - mean, 0.5 * (z1 - mean), atol=1e-6)
    # Temperature 0 decodes the prior mean: every draw is `predict`'s output.
    cold = cvae.generate(c.numpy(), num_samples=3, seed=5, temperature=0.0)
    np.testing.assert_allclose(
        cold, np.repeat(cvae.predict(c, verbose=0)[:, None], 3, 1), atol=1e-6
    )
    with pytest.raises(ValueError, match="Expected temperature to be a non-negative float"):
        cvae.generate(c.numpy(), temperature=-1.0)


def test_training_on_mnist_labels_raises_the_conditional_elbo(mnist_test_images):
    images, labels = mnist_test_images
    rng = np.random.default_rng(0)
    y = (rng.random(images.shape) < images).astype("float32")
    c = np.eye(10, dtype="float32")[labels]
    keras.utils.set_random_seed(0)
    cvae = label_cvae(prior="learned")
    cvae.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = cvae.evaluate(c[1500:], y[1500:], verbose=0, return_dict=True)["elbo"]
    cvae.fit(c[:1500], y[:1500], epochs=3, batch_size=64, verbose=0)
    after = cvae.evaluate(c[1500:], y[1500:], verbose=0, return_dict=True)["elbo"]
    assert after > before + 200


@pytest.mark.slow
@pytest.mark.parametrize("prior", ["standard", "learned"])
def test_mixed_bfloat16_training_keeps_the_objective_in_float32(
    mixed_bfloat16, prior, mnist_test_images
):
    images, labels = mnist_test_images
    y = (images[:512] > 0.5).astype("float32")
    c = np.eye(10, dtype="float32")[labels[:512]]
    cvae = label_cvae(prior=prior)
    cvae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = cvae.fit(c, y, epochs=2, batch_size=64, verbose=0)
    assert cvae.decoder.compute_dtype == "bfloat16"
    terms = cvae.compute_terms(tf.constant(c[:8]), tf.constant(y[:8]))
    assert all(value.dtype == tf.float32 for value in terms.values())
    assert history.history["elbo"][1] > history.history["elbo"][0]
    assert cvae.generate(c[:2], num_samples=3, seed=0).shape == (2, 3, 28, 28, 1)


def test_dataset_of_pairs_and_predict():
    cvae = tiny_cvae()
    cvae.compile(optimizer="adam")
    c = np.eye(2, dtype="float32")[np.arange(32) % 2]
    y = (np.arange(96).reshape(32, 3) % 2).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((c, y)).batch(8)
    history = cvae.fit(ds, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "elbo", "reconstruction", "kl"}
    assert cvae.predict(c, verbose=0).shape == (32, 3)
    assert cvae.reconstruct(c, y).shape == (32, 3)


def assert_prior_is_hand_pass(cvae, weights):
    """P(z | HAND_C) equals a numpy pass: ReLU layers, then loc and softplus scale + 1e-5.

    `weights` holds the `[kernel, bias]` of each hidden layer, then of the head.
    """
    h = HAND_C
    for kernel, bias in weights[:-1]:
        h = np.maximum(h @ kernel + bias, 0.0)
    params = h @ weights[-1][0] + weights[-1][1]
    prior = cvae.prior(tf.constant(HAND_C))
    np.testing.assert_allclose(prior.mean().numpy(), params[:, :2], rtol=1e-5, atol=1e-6)
    scale = np.log1p(np.exp(params[:, 2:])) + 1e-5
    np.testing.assert_allclose(prior.stddev().numpy(), scale, rtol=1e-5, atol=1e-6)


def test_deeper_learned_prior_equals_a_hand_forward_pass():
    cvae = tiny_cvae(prior="learned", prior_hidden_units=(5, 3))
    layers = [cvae.prior_hidden, *cvae.prior_deeper, cvae.prior_params]
    assert [layer.units for layer in layers] == [5, 3, 4]
    rng = np.random.default_rng(2)
    weights = []
    for layer in layers:
        weights.append([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
        layer.set_weights(weights[-1])
    assert_prior_is_hand_pass(cvae, weights)


def test_build_cvae_gives_a_completion_prior_the_decoder_widths():
    completion = build_cvae("mlp", "top-half", latent_dim=2, prior="learned")
    assert completion.prior_hidden_units == (256, 512)
    assert [layer.units for layer in [completion.prior_hidden, *completion.prior_deeper]] == [
        256,
        512,
    ]
    label = build_cvae("mlp", "label", latent_dim=2, prior="learned")
    assert label.prior_hidden_units is None and label.prior_deeper == []
    assert build_cvae("mlp", "top-half", prior="standard").prior_hidden_units is None


@pytest.mark.parametrize("prior_hidden_units", [None, (5, 3)])
def test_save_load_round_trip_keeps_the_prior_network(tmp_path, prior_hidden_units):
    cvae = tiny_cvae(prior="learned", prior_hidden_units=prior_hidden_units)
    rng = np.random.default_rng(3)
    for layer in cvae.layers:
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    path = str(tmp_path / "cvae.keras")
    cvae.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.prior_hidden_units == prior_hidden_units
    expected = cvae.prior(tf.constant(HAND_C))
    got = loaded.prior(tf.constant(HAND_C))
    np.testing.assert_allclose(got.mean().numpy(), expected.mean().numpy(), rtol=1e-6)
    np.testing.assert_allclose(got.stddev().numpy(), expected.stddev().numpy(), rtol=1e-6)


def test_a_file_saved_before_prior_hidden_units_loads_with_its_one_layer_prior():
    # Written by keras-vae f231fa0: `tiny_cvae(prior="learned")`'s layout, built,
    # untrained; no "prior_hidden_units" in its config. Keras saves the model's
    # Dense layers by creation order: `prior_hidden` is the third, `prior_params`
    # the fourth.
    path = os.path.join(os.path.dirname(__file__), "data", "cvae_before_prior_hidden_units.keras")
    with (
        zipfile.ZipFile(path) as archive,
        h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as f,
    ):
        assert "prior_hidden_units" not in json.loads(archive.read("config.json"))["config"]
        hidden = [f[f"layers/dense_2/vars/{i}"][()] for i in range(2)]
        params = [f[f"layers/dense_3/vars/{i}"][()] for i in range(2)]
    loaded = keras.saving.load_model(path)
    assert loaded.prior_hidden_units is None and loaded.prior_deeper == []
    assert_prior_is_hand_pass(loaded, [hidden, params])


@pytest.mark.parametrize("prior", ["standard", pytest.param("learned", marks=pytest.mark.slow)])
def test_save_load_round_trip(tmp_path, prior):
    cvae = tiny_cvae(prior=prior, condition_type="label")
    cvae.compile(optimizer="adam")
    c = np.eye(2, dtype="float32")[np.arange(16) % 2]
    y = (np.arange(48).reshape(16, 3) % 2).astype("float32")
    cvae.fit(c, y, epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "cvae.keras")
    cvae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ConditionalVAE) and loaded.condition_type == "label"
    np.testing.assert_allclose(loaded.predict(c, verbose=0), cvae.predict(c, verbose=0), atol=1e-6)
    np.testing.assert_allclose(
        loaded.generate(c, 3, seed=1), cvae.generate(c, 3, seed=1), atol=1e-6
    )
    assert int(loaded.optimizer.iterations) == 2
    loaded.fit(c, y, epochs=1, batch_size=8, verbose=0)
    assert int(loaded.optimizer.iterations) == 4


def constructor_arguments(**kwargs):
    """Valid `ConditionalVAE` arguments for 3-pixel targets, updated with `kwargs`."""
    return {
        "encoder": keras.layers.Flatten(),
        "decoder": keras.layers.Dense(3),
        "latent_dim": 2,
        "likelihood": IndependentBernoulli(3),
        **kwargs,
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_dim": -1}, "latent_dim"),
        ({"prior": "mixture"}, "prior"),
        ({"likelihood": None}, "likelihood"),
        ({"decoder": 3}, "decoder"),
        ({"gsnn_weight": 1.0}, "gsnn_weight"),
        ({"gsnn_weight": -0.1}, "gsnn_weight"),
        ({"prior": "learned", "prior_hidden_units": (8, 0)}, "prior_hidden_units"),
        ({"prior": "learned", "prior_hidden_units": 2.5}, "prior_hidden_units"),
        ({"prior": "learned", "prior_hidden_units": ()}, "prior_hidden_units"),
        ({"prior_hidden_units": 8}, "prior_hidden_units"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=f"Expected {message}.*Received: {message}="):
        ConditionalVAE(**constructor_arguments(**kwargs))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # A misspelt type was kept; `sample --label` and `complete` then refused the model.
        ({"condition_type": "lable"}, r"condition_type to be None or one of .*'lable'"),
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
        ConditionalVAE(**constructor_arguments(**kwargs))


def test_a_completion_model_takes_the_observed_pixels_and_a_label_model_one_hot_rows():
    # Top half of a 2x3 image: 3 observed pixels, 3 missing.
    completion = tiny_cvae(condition_type="top-half", image_shape=(2, 3), classes=3)
    assert completion.condition_shape == (3,)
    with pytest.raises(
        ValueError,
        match=r"^Expected conditions shaped \[B, 3\], the observed pixels of "
        r"condition_type='top-half' in an image shaped \(2, 3\)\. "
        r"Received: condition shape \(2,\)$",
    ):
        tiny_cvae(condition_type="top-half", image_shape=(2, 3), classes=2)
    with pytest.raises(
        ValueError,
        match=r"^Expected one-hot label conditions shaped \[B, num_classes\] for "
        r"condition_type='label'\. Received: condition shape \(1, 2\)$",
    ):
        tiny_cvae(condition_type="label").build((None, 1, 2))
    assert tiny_cvae(condition_type="label", classes=4).condition_shape == (4,)


def test_bad_condition_and_target_shapes():
    cvae = tiny_cvae()
    cvae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"Expected condition shaped \[batch, 2\]"):
        cvae.generate(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"^Expected target and condition with the same batch"):
        cvae.reconstruct(np.eye(2, dtype="float32"), np.zeros((3, 3), "float32"))
    with pytest.raises(ValueError, match=r"Expected target shaped \[batch, 3\]"):
        cvae.fit(np.zeros((4, 2), "float32"), np.zeros((4, 5), "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"Expected target values in \[0, 1\]"):
        cvae.fit(np.zeros((4, 2), "float32"), np.full((4, 3), 2.0, "float32"), verbose=0)
    with pytest.raises(ValueError, match="Expected .*pairs"):
        cvae.fit(np.zeros((4, 2), "float32"), verbose=0)


def test_decoder_output_unlike_the_likelihood_parameters_fails_in_one_line():
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    decoder = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(3), keras.layers.Reshape((1, 3))]
    )
    cvae = ConditionalVAE(encoder, decoder, 2, likelihood=GaussianLikelihood(3), hidden_units=4)
    cvae.compile()
    # A likelihood of batch [batch, 1] made log P(Y|z, X) [batch, batch], silently.
    with pytest.raises(
        ValueError,
        match=r"^Expected the decoder to output GaussianLikelihood parameters shaped "
        r"\[batch, 3\]\. Received: decoder_output.shape=\(1, 1, 3\)$",
    ):
        cvae.fit(np.zeros((4, 1), "float32"), np.zeros((4, 3), "float32"), verbose=0)


def test_decoder_that_does_not_take_the_condition_fails_in_one_line():
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    decoder = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])  # z alone
    cvae = ConditionalVAE(encoder, decoder, 2, likelihood=GaussianLikelihood(3), hidden_units=4)
    with pytest.raises(
        ValueError,
        match=r"^Expected the decoder to take inputs shaped \[batch, 6\] \(\[z, flattened "
        r"condition\]: latent_dim=2 \+ condition size 4\)\. Received: "
        r"decoder.input_shape=\(None, 2\)$",
    ):
        cvae.fit(np.zeros((4, 2, 2), "float32"), np.zeros((4, 3), "float32"), verbose=0)


def test_fit_refuses_unpaired_arrays_and_validation_weights_in_one_line():
    cvae = tiny_cvae()
    cvae.compile()
    c, y = np.eye(2, dtype="float32")[[0, 1, 0, 1]], np.ones((4, 3), "float32")
    pairs = r"^Expected as many conditions as targets\. Received: condition.shape=\(4, 2\), "
    with pytest.raises(ValueError, match=pairs + r"target.shape=\(3, 3\)$"):
        cvae.fit(c, y[:3], verbose=0)
    with pytest.raises(ValueError, match=pairs + r"target.shape=\(2, 3\)$"):
        cvae.evaluate(c, y[:2], verbose=0)
    with pytest.raises(ValueError, match=pairs + r"target.shape=\(2, 3\)$"):
        cvae.fit(c, y, verbose=0, validation_data=(c, y[:2]))
    with pytest.raises(ValueError, match=r"^Expected sample_weight shaped \[4\] or \[4, 1\]"):
        cvae.fit(c, y, verbose=0, validation_data=(c, y, np.ones(3)))


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


@pytest.mark.slow
def test_lists_and_py_datasets_of_pairs():
    conditions = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    targets = (np.random.default_rng(0).random((4, 4, 4, 1)) < 0.5).astype("float32")

    class Pairs(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return conditions[2 * index : 2 * index + 2], targets[2 * index : 2 * index + 2]

    for data in ((conditions.tolist(), targets.tolist()), (Pairs(), None)):
        cvae = build_cvae("mlp", "label", (4, 4, 1), latent_dim=2, num_classes=3, seed=0)
        cvae.compile(steps_per_execution=1)
        cvae.fit(*data, epochs=1, verbose=0)
        assert np.isfinite(cvae.evaluate(*data, verbose=0, return_dict=True)["elbo"])
    with pytest.raises(ValueError, match="Expected a dataset of .condition, target. pairs"):
        build_cvae("mlp", "label", (4, 4, 1), num_classes=3).fit(Batch(conditions), verbose=0)


def test_predict_takes_a_list_of_conditions_and_refuses_a_bad_shape_in_one_line():
    cvae = tiny_cvae()
    c = np.eye(2, dtype="float32")
    typical = cvae.predict(c, verbose=0)
    # A list holds one condition per row, as for fit and evaluate (not one input per item).
    np.testing.assert_array_equal(cvae.predict(c.tolist(), verbose=0), typical)
    for bad in (c[0], np.zeros((2, 3), "float32")):
        with pytest.raises(ValueError, match=r"^Expected condition shaped \[batch, 2\]\. Received"):
            cvae.predict(bad, verbose=0)


def test_encode_and_decode_take_lists_and_check_shapes_in_one_line():
    cvae = tiny_cvae()
    c, y, z = np.eye(2), HAND_Y, np.random.default_rng(0).normal(size=(2, 2))
    np.testing.assert_array_equal(
        cvae.encode(y.tolist(), c.tolist()).mean(), cvae.encode(y, c).mean()
    )
    np.testing.assert_array_equal(
        cvae.decode(z.tolist(), c.tolist()).mean(), cvae.decode(z, c).mean()
    )
    with pytest.raises(ValueError, match=r"^Expected target shaped \[batch, 3\]\. Received"):
        cvae.encode(y[0], c)
    with pytest.raises(ValueError, match=r"^Expected condition shaped \[batch, 2\]\. Received"):
        cvae.decode(z, c[0])


class Batch(keras.utils.PyDataset):
    """One batch of `x` alone, with no target."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.x


def test_sample_weight_must_hold_one_weight_per_pair():
    cvae = tiny_cvae()
    cvae.compile(optimizer="adam")
    conditions = np.eye(2, dtype="float32")[[0, 1, 0, 1]]
    targets = np.zeros((4, 3), "float32")
    for call in (cvae.fit, cvae.evaluate):
        with pytest.raises(ValueError, match=r"Received: sample_weight.shape=\(4, 2\)$"):
            call(conditions, targets, sample_weight=np.ones((4, 2)), verbose=0)
    # One weight per pair, as [N] or [N, 1], is accepted; a batch of zero weights steps by zero.
    before = [w.numpy() for w in cvae.trainable_weights]
    cvae.fit(conditions, targets, sample_weight=np.zeros((4, 1)), batch_size=4, verbose=0)
    for old, new in zip(before, cvae.trainable_weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
