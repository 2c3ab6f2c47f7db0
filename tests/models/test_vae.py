import io
import math
import os
import re
import warnings
import zipfile

import h5py
import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

from keras_vae import VAE
from keras_vae.layers import GaussianLikelihood, IndependentBernoulli, IndependentNormal
from keras_vae.models.presets import build_vae
from keras_vae.models.priors import standard_normal
from keras_vae.ops import random as portable_random

tfd = tfp.distributions


def tiny_vae(latent_dim=2, pixels=3, kernel_regularizer=None, **kwargs):
    encoder = keras.Sequential([keras.Input((pixels,)), keras.layers.Identity()])
    decoder = keras.Sequential(
        [
            keras.Input((latent_dim,)),
            keras.layers.Dense(pixels, kernel_regularizer=kernel_regularizer),
        ]
    )
    vae = VAE(encoder, decoder, latent_dim, likelihood=IndependentBernoulli(pixels), **kwargs)
    vae.build((None, pixels))
    return vae


def mlp_vae(latent_dim=8, seed=0, **kwargs):
    return build_vae("mlp", (28, 28, 1), latent_dim=latent_dim, seed=seed, **kwargs)


def set_fixed_weights(vae, raw_scale):
    # Posterior: loc = A x + a, raw scale = constant; decoder: logits = z W + b.
    a_mat = np.array([[0.5, -1.0], [0.25, 0.75], [-0.5, 0.1]], "float32")
    kernel = np.concatenate([a_mat, np.zeros((3, 2), "float32")], axis=1)
    bias = np.array([0.1, -0.2, raw_scale, raw_scale], "float32")
    vae.posterior_params.set_weights([kernel, bias])
    w = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]], "float32")
    b = np.array([0.2, 0.1, -0.3], "float32")
    vae.decoder.layers[-1].set_weights([w, b])
    return a_mat, np.array([0.1, -0.2], "float32"), w, b


def test_elbo_equals_hand_computation():
    vae = tiny_vae(beta=0.5)
    # A near-zero posterior scale makes the one-sample estimate deterministic.
    raw_scale = -30.0
    a_mat, a_bias, w, b = set_fixed_weights(vae, raw_scale)
    x = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], "float32")
    terms = {k: v.numpy() for k, v in vae.compute_terms(tf.constant(x)).items()}

    loc = x @ a_mat + a_bias
    scale = math.log1p(math.exp(raw_scale)) + 1e-5
    kl = 0.5 * np.sum(scale**2 + loc**2 - 1.0 - np.log(scale**2), axis=1)
    p = 1.0 / (1.0 + np.exp(-(loc @ w + b)))
    reconstruction = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(terms["reconstruction"], reconstruction, atol=1e-3)
    np.testing.assert_allclose(terms["elbo"], reconstruction - kl, rtol=1e-4)
    np.testing.assert_allclose(terms["loss"], 0.5 * kl - reconstruction, rtol=1e-4)


def test_evaluate_reports_batch_means_of_the_terms():
    vae = tiny_vae(beta=0.5)
    set_fixed_weights(vae, raw_scale=-30.0)
    vae.compile(optimizer="adam")
    x = np.random.default_rng(1).integers(0, 2, (64, 3)).astype("float32")
    terms = vae.compute_terms(tf.constant(x))
    logs = vae.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    for name in ("loss", "elbo", "reconstruction", "kl"):
        np.testing.assert_allclose(logs[name], terms[name].numpy().mean(), rtol=1e-4)


def test_evaluate_weights_the_terms_by_sample_weight():
    vae = tiny_vae(beta=0.5)
    set_fixed_weights(vae, raw_scale=-30.0)
    vae.compile(optimizer=keras.optimizers.SGD(0.0))
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2, (48, 3)).astype("float32")
    weights = rng.uniform(0.0, 3.0, 48).astype("float32")
    terms = vae.compute_terms(tf.constant(x))
    expected = {
        name: np.sum(terms[name].numpy() * weights) / np.sum(weights)
        for name in ("loss", "elbo", "reconstruction", "kl")
    }
    logs = vae.evaluate(x, sample_weight=weights, batch_size=16, verbose=0, return_dict=True)
    history = vae.fit(
        x, validation_data=(x, None, weights), batch_size=16, epochs=1, verbose=0
    ).history
    for name, value in expected.items():
        np.testing.assert_allclose(logs[name], value, rtol=1e-4)
        np.testing.assert_allclose(history[f"val_{name}"][0], value, rtol=1e-4)
    assert abs(expected["kl"] - np.mean(terms["kl"].numpy())) > 1e-2  # the weights matter


def test_examples_of_zero_weight_do_not_move_the_weights():
    x = np.random.default_rng(3).integers(0, 2, (8, 3)).astype("float32")
    changed = x.copy()
    changed[1:] = 1.0 - changed[1:]
    weights = np.eye(8, dtype="float32")[0]
    trained = []
    for data in (x, changed):
        keras.utils.set_random_seed(0)
        vae = tiny_vae(seed=4)
        vae.compile(optimizer=keras.optimizers.SGD(0.1))
        vae.fit(data, sample_weight=weights, batch_size=8, epochs=3, verbose=0)
        trained.append(vae.get_weights())
    for before, after in zip(*trained, strict=True):
        np.testing.assert_array_equal(before, after)


def test_training_minimises_the_weighted_mean_so_scaling_the_weights_changes_nothing():
    # sum(w * loss) / sum(w) does not change when every weight is tripled; a
    # loss divided by the batch size instead would take a step three times as long.
    x = np.random.default_rng(5).integers(0, 2, (8, 3)).astype("float32")
    weights = np.array([1, 2, 0, 1, 3, 1, 0, 2], "float32")
    trained = []
    for scale in (1.0, 3.0):
        keras.utils.set_random_seed(0)
        vae = tiny_vae(seed=2)
        before = vae.get_weights()
        vae.compile(optimizer=keras.optimizers.SGD(0.1))
        vae.fit(x, sample_weight=scale * weights, batch_size=8, shuffle=False, verbose=0)
        trained.append(vae.get_weights())
    assert any(not np.allclose(b, a) for b, a in zip(before, trained[0], strict=True))
    for one, three in zip(*trained, strict=True):
        np.testing.assert_allclose(one, three, rtol=1e-5, atol=1e-6)


def test_a_batch_of_zero_weights_leaves_the_weights_alone():
    x = np.random.default_rng(4).integers(0, 2, (8, 3)).astype("float32")
    weights = np.r_[np.zeros(4), np.ones(4)].astype("float32")
    vae = tiny_vae(seed=1)
    vae.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [w.numpy() for w in vae.trainable_weights]
    # The first batch weighs nothing: its step is zero, not NaN (0 / 0).
    vae.fit(x[:4], sample_weight=weights[:4], batch_size=4, shuffle=False, verbose=0)
    for old, new in zip(before, vae.trainable_weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    history = vae.fit(x, sample_weight=weights, batch_size=4, shuffle=False, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert all(np.isfinite(w).all() for w in vae.get_weights())


def test_class_weight_is_refused():
    vae = tiny_vae()
    vae.compile(optimizer="adam")
    with pytest.raises(
        ValueError, match=r"^Expected class_weight=None: .* class_weight=\{0: 1.0\}$"
    ):
        vae.fit(np.zeros((4, 3), "float32"), class_weight={0: 1.0}, verbose=0)


@pytest.mark.parametrize("shape", [(8, 3), (7,), ()])
def test_sample_weight_of_the_wrong_shape(shape):
    vae = tiny_vae()
    vae.compile(optimizer="adam")
    x = np.zeros((8, 3), "float32")
    message = (
        r"^Expected sample_weight shaped \[8\] or \[8, 1\] .* Received: "
        rf"sample_weight.shape={re.escape(str(shape))}$"
    )
    for call in (vae.fit, vae.evaluate):
        with pytest.raises(ValueError, match=message):
            call(x, sample_weight=np.ones(shape, "float32"), verbose=0)


def test_gradients_reach_the_encoder_through_the_sample():
    vae = tiny_vae()
    set_fixed_weights(vae, raw_scale=0.0)
    x = tf.constant([[1.0, 0.0, 1.0]])
    with tf.GradientTape() as tape:
        reconstruction = vae.compute_terms(x)["reconstruction"]
    kernel_grad = tape.gradient(reconstruction, vae.posterior_params.kernel).numpy()
    # The reconstruction term depends on the posterior parameters only through
    # z = loc + scale * eps: nonzero gradients on both halves prove it.
    assert np.abs(kernel_grad[:, :2]).sum() > 0
    assert np.abs(kernel_grad[:, 2:]).sum() > 0


def test_output_shapes_and_distributions():
    vae = mlp_vae(latent_dim=6)
    x = np.zeros((5, 28, 28, 1), "float32")
    posterior = vae.encode(x)
    assert isinstance(posterior, tfd.Distribution)
    assert posterior.batch_shape == [5] and posterior.event_shape == [6]
    likelihood = vae.decode(tf.zeros([5, 6]))
    assert likelihood.batch_shape == [5] and likelihood.event_shape == [28, 28, 1]
    assert vae(x).shape == (5, 28, 28, 1)
    assert vae.reconstruct(x).shape == (5, 28, 28, 1)


def test_reconstructions_are_the_likelihood_mean_at_the_posterior_mean():
    # A wide posterior (softplus(0) = 0.69), so its mean, a draw and the prior mean differ.
    vae = tiny_vae()
    a_mat, a_bias, w, b = set_fixed_weights(vae, raw_scale=0.0)
    x = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]], "float32")
    expected = 1.0 / (1.0 + np.exp(-((x @ a_mat + a_bias) @ w + b)))
    np.testing.assert_allclose(vae(x), expected, rtol=1e-5)
    np.testing.assert_allclose(vae.reconstruct(x), expected, rtol=1e-5)
    vae.compile(steps_per_execution=1)
    np.testing.assert_allclose(vae.predict(x, verbose=0), expected, rtol=1e-5)


def test_encode_and_decode_take_lists_and_refuse_a_missing_batch_axis_in_one_line():
    vae = mlp_vae(latent_dim=6)
    x = np.random.default_rng(0).random((2, 28, 28, 1))
    z = np.random.default_rng(1).normal(size=(2, 6))
    # A list holds one example per row, as for fit, predict and reconstruct.
    np.testing.assert_array_equal(vae.encode(x.tolist()).mean(), vae.encode(x).mean())
    np.testing.assert_array_equal(vae.decode(z.tolist()).mean(), vae.decode(z).mean())
    with pytest.raises(ValueError, match=r"^Expected x shaped \[batch, 28, 28, 1\]\. Received: x"):
        vae.encode(x[0])
    with pytest.raises(ValueError, match=r"^Expected z shaped \[batch, 6\]\. Received: z.shape"):
        vae.decode(z[0])


def test_conv_model_on_an_empty_batch_gives_empty_outputs():
    # With oneDNN, TF 2.21's convolutions gave 0 rows the wrong shape: the
    # conv decoder's output [0, 28, 28, 32] failed the decoder-output check.
    vae = build_vae("conv", (28, 28, 1), latent_dim=4, seed=0)
    vae.build((None, 28, 28, 1))
    x, z = np.zeros((0, 28, 28, 1), "float32"), np.zeros((0, 4), "float32")
    assert vae.decode(z).mean().shape == (0, 28, 28, 1)
    assert vae.encode(x).mean().shape == (0, 4)
    assert vae.reconstruct(x).shape == (0, 28, 28, 1)
    # One row is unaffected.
    one = np.random.default_rng(0).normal(size=(1, 4)).astype("float32")
    np.testing.assert_allclose(
        vae.decode(one).mean(), vae.decode(np.concatenate([one, one])).mean()[:1], atol=1e-6
    )


def test_sample_is_seeded_and_in_unit_interval():
    vae = mlp_vae(latent_dim=4)
    vae.build((None, 28, 28, 1))
    a, b, c = vae.sample(3, seed=7), vae.sample(3, seed=7), vae.sample(3, seed=8)
    assert a.shape == (3, 28, 28, 1)
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    drawn = vae.sample(3, seed=7, use_mean=False)
    assert set(np.unique(drawn)) <= {0.0, 1.0}
    # Decoding in chunks bounds memory and changes nothing, draws included.
    np.testing.assert_allclose(vae.sample(3, seed=7, batch_size=2), a, atol=1e-6)
    np.testing.assert_array_equal(vae.sample(3, seed=7, use_mean=False, batch_size=2), drawn)


def test_sample_latent_follows_the_prior():
    vae = mlp_vae(latent_dim=4)
    z = vae.sample_latent(20000, seed=3).numpy()
    assert z.shape == (20000, 4)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.04)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.04)


def test_temperature_scales_the_prior_draws_and_zero_decodes_the_mean():
    vae = mlp_vae(latent_dim=4)
    vae.build((None, 28, 28, 1))
    z1 = vae.sample_latent(6, seed=2).numpy()
    np.testing.assert_allclose(vae.sample_latent(6, seed=2, temperature=0.3), 0.3 * z1, atol=1e-6)
    cold = vae.sample(3, seed=2, temperature=0)
    expected = vae.decode(tf.zeros([1, 4])).mean().numpy()
    np.testing.assert_allclose(cold, np.repeat(expected, 3, axis=0), atol=1e-6)
    for bad in (-0.5, float("nan"), "1"):
        with pytest.raises(ValueError, match="Received: temperature="):
            vae.sample(2, seed=0, temperature=bad)


def test_fit_on_mnist_raises_the_elbo(binary_images):
    keras.utils.set_random_seed(0)
    vae = mlp_vae(latent_dim=16)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    train, test = binary_images[:1500], binary_images[1500:]
    before = vae.evaluate(test, verbose=0, return_dict=True)["elbo"]
    history = vae.fit(train, epochs=3, batch_size=64, verbose=0)
    after = vae.evaluate(test, verbose=0, return_dict=True)["elbo"]
    assert history.history["elbo"][-1] > history.history["elbo"][0]
    assert after > before + 200  # from ~-545 nats (random decoder) to ~-200
    np.testing.assert_allclose(
        history.history["elbo"], -np.array(history.history["loss"]), rtol=1e-6
    )


def test_fit_accepts_a_dataset(binary_images):
    vae = mlp_vae(latent_dim=4)
    vae.compile(optimizer="adam")
    ds = tf.data.Dataset.from_tensor_slices(binary_images[:256]).batch(64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = vae.fit(ds, epochs=1, verbose=0)
    # The dataset shuffles itself: no warning that Keras's default shuffle=True is ignored.
    assert not [w for w in caught if "shuffle" in str(w.message)], caught
    assert set(history.history) == {"loss", "elbo", "reconstruction", "kl"}
    assert vae.predict(ds, verbose=0).shape == (256, 28, 28, 1)


@pytest.mark.slow
def test_gaussian_likelihood_vae_trains(mnist_test_images):
    images, _ = mnist_test_images
    vae = mlp_vae(latent_dim=4, likelihood="gaussian")
    vae.compile(optimizer="adam")
    before = vae.evaluate(images[:512], verbose=0, return_dict=True)["elbo"]
    vae.fit(images[:1024], epochs=2, batch_size=64, verbose=0)
    assert vae.evaluate(images[:512], verbose=0, return_dict=True)["elbo"] > before
    assert isinstance(vae.likelihood, GaussianLikelihood)


def test_config_round_trip():
    vae = mlp_vae(latent_dim=5, beta=0.25)
    config = vae.get_config()
    clone = VAE.from_config(config)
    assert clone.latent_dim == 5 and clone.beta == 0.25
    assert clone.get_config() == config


@pytest.mark.parametrize("compiled_with_xla", [False, True])
def test_setting_beta_takes_effect_in_already_compiled_steps(compiled_with_xla):
    vae = tiny_vae(beta=1.0, seed=0)
    vae.compile(optimizer="sgd", jit_compile=compiled_with_xla)
    x = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]] * 4, "float32")
    vae.evaluate(x, verbose=0)  # traces the test step with beta=1
    vae.fit(x, epochs=1, batch_size=8, verbose=0)  # and the training step
    for beta in (0.0, 2.5):
        vae.beta = beta
        logs = vae.evaluate(x, batch_size=8, verbose=0, return_dict=True)
        assert logs["kl"] > 0.1
        assert logs["loss"] == pytest.approx(beta * logs["kl"] - logs["reconstruction"], rel=1e-5)
        history = vae.fit(x, epochs=1, batch_size=8, verbose=0).history
        assert history["loss"][0] == pytest.approx(
            beta * history["kl"][0] - history["reconstruction"][0], rel=1e-5
        )
    assert vae.get_config()["beta"] == 2.5
    assert VAE.from_config(vae.get_config()).beta == 2.5


@pytest.mark.parametrize("compiled_with_xla", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_setting_objective_and_num_samples_during_fit_takes_effect(compiled_with_xla):
    # The compiled steps hold `objective` and `num_samples` as constants:
    # setting them from a callback must trace the steps again. With K > 1 the
    # IWAE loss is below -ELBO (the mean of the K one-sample ELBOs) by
    # Jensen's inequality; the ELBO objective's loss is -ELBO exactly, and the
    # K = 1 IWAE loss is -ELBO with a sampled KL (equal in expectation; over
    # 2048 examples the difference is a few hundredths of a nat).
    keras.utils.set_random_seed(0)
    vae = tiny_vae(seed=0)
    vae.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=compiled_with_xla)
    x = (np.random.default_rng(0).random((2048, 3)) < 0.5).astype("float32")
    schedule = [("elbo", 1), ("iwae", 8), ("iwae", 1), ("iwae", 8), ("elbo", 8)]

    def set_objective(epoch, logs):
        vae.objective, vae.num_samples = schedule[epoch]

    history = vae.fit(
        x,
        batch_size=2048,
        epochs=len(schedule),
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=set_objective)],
    ).history
    gaps = -np.array(history["elbo"]) - np.array(history["loss"])
    assert gaps[1] > 0.2 and gaps[3] > 0.2, gaps
    assert abs(gaps[2]) < 0.1, gaps
    np.testing.assert_allclose(gaps[[0, 4]], 0.0, atol=1e-4)
    vae.objective, vae.num_samples = "iwae", 8
    logs = vae.evaluate(x, batch_size=2048, verbose=0, return_dict=True)
    assert -logs["elbo"] - logs["loss"] > 0.2
    assert VAE.from_config(vae.get_config()).num_samples == 8


def test_objective_and_num_samples_are_checked_when_set():
    vae = tiny_vae(beta=0.5)
    with pytest.raises(ValueError, match=r"Expected beta=1\.0 with objective='iwae'"):
        vae.objective = "iwae"
    with pytest.raises(
        ValueError, match=r"Expected objective to be one of .*Received: objective='x'"
    ):
        vae.objective = "x"
    with pytest.raises(ValueError, match=r"Received: num_samples=0"):
        vae.num_samples = 0
    assert (vae.objective, vae.num_samples) == ("elbo", 1)


def test_beta_is_checked_when_set():
    vae = tiny_vae()
    with pytest.raises(
        ValueError, match=r"Expected beta to be a non-negative float\. Received: beta=-0\.5"
    ):
        vae.beta = -0.5
    iwae = tiny_vae(objective="iwae", num_samples=2)
    with pytest.raises(
        ValueError, match=r"Expected beta=1\.0 with objective='iwae'.*Received: beta=0\.5"
    ):
        iwae.beta = 0.5
    assert vae.beta == 1.0 and iwae.beta == 1.0


def test_a_file_saved_before_beta_was_a_weight_loads_and_trains():
    # Written by keras-vae 62bcf6f (beta=0.5, 4 training steps), whose model
    # held one weight of its own, `sampler_state`; `beta` was in the config only.
    path = os.path.join(os.path.dirname(__file__), "data", "vae_before_beta_weight.keras")
    with (
        zipfile.ZipFile(path) as archive,
        h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as f,
    ):
        saved_state = f["vars/0"][()]
        saved_kernel = f["decoder/layers/dense/vars/0"][()]
        assert list(f["vars"]) == ["0"]
    vae = keras.saving.load_model(path)
    assert vae.beta == 0.5
    np.testing.assert_array_equal(vae.sampler_state.numpy(), saved_state)
    np.testing.assert_array_equal(vae.decoder.layers[-1].kernel.numpy(), saved_kernel)
    assert int(vae.optimizer.iterations.numpy()) == 4
    vae.fit(np.ones((8, 6), "float32"), epochs=1, batch_size=8, verbose=0)
    assert vae.sampler_state.numpy()[1] == saved_state[1] + 1


def test_save_load_keeps_outputs_and_optimizer_state(tmp_path, binary_images):
    vae = mlp_vae(latent_dim=4, seed=3)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = binary_images[:256]
    vae.fit(x, epochs=1, batch_size=64, verbose=0)
    path = str(tmp_path / "vae.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), vae.predict(x[:8], verbose=0))
    np.testing.assert_array_equal(loaded.sample(4, seed=1), vae.sample(4, seed=1))
    assert int(loaded.optimizer.iterations) == int(vae.optimizer.iterations) == 4
    assert loaded.steps_per_execution == vae.steps_per_execution == 8
    # The "auto" defaults are saved as such, to be resolved where the model is loaded.
    compile_config = loaded.get_compile_config()
    assert compile_config["steps_per_execution"] == compile_config["jit_compile"] == "auto"
    # Same weights, optimizer moments and sampler state: one more identical
    # step must give identical weights.
    for model in (vae, loaded):
        model.fit(x[:64], epochs=1, batch_size=64, shuffle=False, verbose=0)
    for a, b in zip(vae.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"latent_dim": 2.5}, "latent_dim"),
        ({"beta": -1.0}, "beta"),
        ({"encoder": "dense"}, "encoder"),
        ({"likelihood": "bernoulli"}, "likelihood"),
        ({"prior": tfd.Normal(0.0, 1.0)}, "prior"),
        ({"prior": standard_normal(2, batch_shape=[1])}, "prior"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    args = {
        "encoder": keras.layers.Flatten(),
        "decoder": keras.layers.Dense(3),
        "latent_dim": 2,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"Expected {message}.*Received: {message}="):
        VAE(**args)


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((4, 28, 28), "float32"), r"Expected x shaped \[batch, 28, 28, 1\]"),
        (np.zeros((4, 32, 32, 1), "float32"), r"Expected x shaped"),
        (np.full((4, 28, 28, 1), "a"), "Expected x to hold numbers"),
        (np.full((4, 28, 28, 1), 255.0, "float32"), r"Expected x values in \[0, 1\]"),
        (np.full((4, 28, 28, 1), np.nan, "float32"), r"Expected x values in \[0, 1\]"),
    ],
)
def test_bad_data(x, message):
    vae = mlp_vae(latent_dim=2)
    vae.compile(optimizer="adam")
    vae.build((None, 28, 28, 1))
    with pytest.raises(ValueError, match=message) as info:
        vae.fit(x, epochs=1, verbose=0)
    assert "Received:" in str(info.value)


def test_unbuilt_model_must_match_likelihood_shape():
    vae = mlp_vae(latent_dim=2)
    with pytest.raises(ValueError, match="Expected x shaped"):
        vae.fit(np.zeros((4, 14, 14, 1), "float32"), verbose=0)


@pytest.mark.parametrize(
    "output_shape, likelihood, expected",
    [
        # A likelihood of batch [batch, 1]: its log_prob of [batch, 3] data was [batch, batch].
        ((1, 3), GaussianLikelihood(3), r"\[batch, 3\]"),
        ((3, 1), IndependentBernoulli(3), r"\[batch, 3\]"),
        ((2,), GaussianLikelihood(3), r"\[batch, 3\]"),
        ((3,), IndependentNormal(3), r"\[batch, 6\]"),
    ],
)
def test_decoder_output_unlike_the_likelihood_parameters_fails_in_one_line(
    output_shape, likelihood, expected
):
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    decoder = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(math.prod(output_shape)),
            keras.layers.Reshape(output_shape),
        ]
    )
    vae = VAE(encoder, decoder, 2, likelihood=likelihood)
    vae.compile()
    message = (
        rf"^Expected the decoder to output {type(likelihood).__name__} parameters shaped "
        rf"{expected}\. Received: decoder_output.shape={re.escape(str((1, *output_shape)))}$"
    )
    with pytest.raises(ValueError, match=message):
        vae.fit(np.zeros((4, 3), "float32"), epochs=1, verbose=0)


def test_decoder_with_several_outputs_fails_in_one_line():
    z = keras.Input((2,))
    decoder = keras.Model(z, [keras.layers.Dense(3)(z), keras.layers.Dense(3)(z)])
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Identity()])
    vae = VAE(encoder, decoder, 2, likelihood=IndependentNormal(3))
    with pytest.raises(ValueError, match=r"^Expected the decoder to output one tensor .*list$"):
        vae.build((None, 3))


@pytest.mark.parametrize(
    "encoder_input, decoder_input, message",
    [
        (
            (4,),
            (2,),
            r"encoder to take inputs shaped \[batch, 3\] \(x, the likelihood's event "
            r"shape\)\. Received: encoder.input_shape=\(None, 4\)",
        ),
        (
            (3,),
            (5,),
            r"decoder to take inputs shaped \[batch, 2\] \(z, latent_dim=2\)\. "
            r"Received: decoder.input_shape=\(None, 5\)",
        ),
    ],
)
def test_networks_that_take_other_shapes_fail_in_one_line(encoder_input, decoder_input, message):
    encoder = keras.Sequential([keras.Input(encoder_input), keras.layers.Dense(4)])
    decoder = keras.Sequential([keras.Input(decoder_input), keras.layers.Dense(3)])
    vae = VAE(encoder, decoder, 2, likelihood=GaussianLikelihood(3))
    vae.compile()
    with pytest.raises(ValueError, match=f"^Expected the {message}$"):
        vae.fit(np.zeros((4, 3), "float32"), epochs=1, verbose=0)


def test_networks_whose_input_keras_adjusts_are_accepted():
    # Keras adds or drops a last axis of size 1 to fit a functional model's input.
    encoder = keras.Sequential([keras.Input((3, 1)), keras.layers.Flatten()])
    decoder = keras.Sequential([keras.Input((2, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    vae = VAE(encoder, decoder, 2, likelihood=GaussianLikelihood(3))
    vae.compile()
    vae.fit(np.zeros((4, 3), "float32"), epochs=1, verbose=0)


def test_the_seed_alone_fixes_the_training_draws():
    # The noise of two models made with the same seed, under different global
    # random states, is the same; another seed gives other noise.
    posterior = tfd.Independent(tfd.Normal(tf.zeros([4, 2]), tf.ones([4, 2])), 1)
    draws = {}
    for global_seed, seed in ((1, 7), (2, 7), (1, 8)):
        keras.utils.set_random_seed(global_seed)
        vae = tiny_vae(seed=seed)
        draws[global_seed, seed] = [vae.sample_posterior(posterior).numpy() for _ in range(2)]
    np.testing.assert_array_equal(draws[1, 7], draws[2, 7])
    assert not np.allclose(draws[1, 7][0], draws[1, 7][1])
    assert not np.allclose(draws[1, 7][0], draws[1, 8][0])


def test_neighbouring_seeds_draw_streams_that_do_not_overlap():
    # Runs with seeds 7 and 8 (replicates of an experiment) must not see the
    # same noise shifted by a step, as a seed added to the step counter would give.
    posterior = tfd.Independent(tfd.Normal(tf.zeros([4, 2]), tf.ones([4, 2])), 1)
    streams = []
    for seed in (7, 8):
        vae = tiny_vae(seed=seed)
        streams.append([vae.sample_posterior(posterior).numpy() for _ in range(3)])
    for first in streams[0]:
        for second in streams[1]:
            assert not np.allclose(first, second)


def test_iwae_objective_trains_on_the_importance_weighted_bound(binary_images):
    keras.utils.set_random_seed(0)
    vae = mlp_vae(latent_dim=4, objective="iwae", num_samples=5)
    vae.compile(optimizer="adam")
    x = binary_images[:512]
    vae.fit(x, epochs=2, batch_size=64, verbose=0)
    terms = vae.compute_terms(tf.constant(x))
    bound = -terms["loss"].numpy()
    # The K=5 bound is at least the ELBO on average (Burda et al., theorem 1).
    assert bound.mean() >= terms["elbo"].numpy().mean()
    assert VAE.from_config(vae.get_config()).objective == "iwae"
    with pytest.raises(ValueError, match="Expected objective"):
        mlp_vae(objective="vimco")
    with pytest.raises(ValueError, match="Expected beta=1.0 with objective='iwae'"):
        mlp_vae(objective="iwae", beta=0.5)


def test_training_draws_are_seeded_reparameterized_philox_normals():
    vae = mlp_vae(latent_dim=3, seed=11)
    posterior = vae.encode(np.random.default_rng(0).random((4, 28, 28, 1), "float32"))
    state = vae.sampler_state.numpy().copy()
    z = vae.sample_posterior(posterior).numpy()
    eps = tf.random.stateless_normal([4, 3], state, alg="philox").numpy()
    loc, scale = posterior.distribution.loc.numpy(), posterior.distribution.scale.numpy()
    np.testing.assert_allclose(z, loc + scale * eps, rtol=1e-6)
    # The state advanced, so the next draw differs; K samples stack in front.
    assert np.abs(vae.sample_posterior(posterior).numpy() - z).max() > 1e-3
    assert vae.sample_posterior(posterior, 5).shape == (5, 4, 3)


def test_xla_compiled_training_matches_the_elbo_it_reports(binary_images):
    keras.utils.set_random_seed(0)
    vae = mlp_vae(latent_dim=8)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    history = vae.fit(binary_images[:1024], epochs=2, batch_size=128, verbose=0)
    assert history.history["elbo"][1] > history.history["elbo"][0]
    np.testing.assert_allclose(
        history.history["elbo"],
        np.array(history.history["reconstruction"]) - history.history["kl"],
        rtol=1e-5,
    )


def test_xla_and_graph_training_take_the_same_steps(binary_images):
    # `compile`'s default picks XLA for MLPs on CPU: it must train the same
    # model. XLA draws other normals from the same Philox seed, so the
    # posterior is made deterministic (scale ~1e-5); plain SGD, because Adam
    # turns rounding noise in near-zero gradients into full-size steps.
    initial, losses, trained = None, {}, {}
    for jit_compile in (True, False):
        vae = mlp_vae(latent_dim=8, seed=3)
        vae.build((None, 28, 28, 1))
        if initial is None:
            kernel, bias = vae.posterior_params.get_weights()
            kernel[:, 8:], bias[8:] = 0.0, -30.0
            vae.posterior_params.set_weights([kernel, bias])
            initial = vae.get_weights()
        vae.set_weights(initial)
        vae.compile(
            optimizer=keras.optimizers.SGD(1e-3), jit_compile=jit_compile, steps_per_execution=1
        )
        assert vae.jit_compile is jit_compile
        history = vae.fit(binary_images[:512], batch_size=128, shuffle=False, verbose=0)
        losses[jit_compile] = history.history["loss"][0]
        trained[jit_compile] = vae.get_weights()
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
    for xla, graph in zip(trained[True], trained[False], strict=True):
        np.testing.assert_allclose(xla, graph, rtol=1e-3, atol=1e-4)
    assert max(np.abs(g - s).max() for g, s in zip(trained[False], initial, strict=True)) > 0.1


def test_xla_training_draws_are_standard_normal():
    vae = mlp_vae(latent_dim=2, seed=5)
    posterior = standard_normal(2, batch_shape=[20000])
    draw = tf.function(lambda: vae.sample_posterior(posterior), jit_compile=True)
    eps = np.concatenate([draw().numpy().ravel(), draw().numpy().ravel()])
    assert scipy.stats.kstest(eps, "norm").pvalue > 1e-3
    assert abs(eps.mean()) < 0.02 and abs(eps.std() - 1.0) < 0.02


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a CPU-only rule")
def test_auto_jit_compile_uses_xla_on_cpu_for_models_without_convolutions():
    chosen = {}
    for architecture in ("mlp", "conv"):
        vae = build_vae(architecture, (28, 28, 1), latent_dim=4)
        vae.compile()
        chosen[architecture] = vae.jit_compile
    assert chosen == {"mlp": True, "conv": False}
    vae = mlp_vae()
    vae.compile(jit_compile=False)
    assert vae.jit_compile is False
    with pytest.raises(ValueError, match="Expected jit_compile.*Received: jit_compile='yes'"):
        mlp_vae().compile(jit_compile="yes")


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_mixed_bfloat16_keeps_the_objective_in_float32(mixed_bfloat16, architecture, binary_images):
    x = binary_images[:256]
    vae = build_vae(architecture, (28, 28, 1), latent_dim=8, seed=0)
    vae.build((None, 28, 28, 1))
    assert vae.decoder.compute_dtype == "bfloat16"
    assert vae.likelihood.compute_dtype == vae.posterior.compute_dtype == "float32"
    keras.mixed_precision.set_global_policy("float32")
    reference = build_vae(architecture, (28, 28, 1), latent_dim=8, seed=0)
    reference.build((None, 28, 28, 1))
    reference.set_weights(vae.get_weights())  # the sampler state too: same noise

    terms = vae.compute_terms(tf.constant(x))
    assert all(value.dtype == tf.float32 for value in terms.values())
    expected = reference.compute_terms(tf.constant(x))
    # Same weights and noise; bfloat16 matmuls keep about 3 significant digits.
    np.testing.assert_allclose(
        terms["reconstruction"].numpy().mean(),
        expected["reconstruction"].numpy().mean(),
        rtol=2e-2,
    )
    vae.compile(optimizer="adam")
    history = vae.fit(x, epochs=2, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["elbo"][1] > history.history["elbo"][0]


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def sgd_update(vae, x):
    """The change of every weight after one SGD step on `x`."""
    vae.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=1)
    before = [w.numpy().astype("float32") for w in vae.trainable_weights]
    vae.fit(x, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    after = [w.numpy().astype("float32") for w in vae.trainable_weights]
    return [a - b for a, b in zip(after, before, strict=True)]


@pytest.mark.slow
def test_mixed_float16_steps_match_float32(mixed_float16, binary_images):
    # Keras wraps the optimizer in a LossScaleOptimizer, which unscales the
    # gradients: the step must scale the loss, or the updates shrink 32768x.
    x = binary_images[:64]
    vae = build_vae("mlp", (28, 28, 1), latent_dim=4, seed=0)
    vae.build((None, 28, 28, 1))
    keras.mixed_precision.set_global_policy("float32")
    reference = build_vae("mlp", (28, 28, 1), latent_dim=4, seed=0)
    reference.build((None, 28, 28, 1))
    reference.set_weights(vae.get_weights())
    update, expected = sgd_update(vae, x), sgd_update(reference, x)
    assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
    for got, want in zip(update, expected, strict=True):
        # float16 networks: about 3 significant digits per step.
        np.testing.assert_allclose(got, want, rtol=0.1, atol=0.05 * np.abs(want).max())


class Batches(keras.utils.PyDataset):
    def __init__(self, images, batch_size, as_tuple):
        super().__init__()
        self.images, self.batch_size, self.as_tuple = images, batch_size, as_tuple

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        batch = self.images[index * self.batch_size : (index + 1) * self.batch_size]
        return (batch,) if self.as_tuple else batch


@pytest.mark.slow
@pytest.mark.parametrize("as_tuple", [False, True])
def test_fit_and_evaluate_accept_a_py_dataset(as_tuple, binary_images):
    x = binary_images[:512]
    vae = mlp_vae(latent_dim=4)  # unbuilt: the first batch gives the shape
    vae.compile(steps_per_execution=1)
    before = vae.evaluate(Batches(x, 128, as_tuple), verbose=0, return_dict=True)["elbo"]
    vae.fit(Batches(x, 128, as_tuple), epochs=2, verbose=0)
    after = vae.evaluate(Batches(x, 128, as_tuple), verbose=0, return_dict=True)["elbo"]
    assert after > before + 20
    with pytest.raises(ValueError, match=r"Expected x shaped \[batch, 28, 28, 1\]"):
        mlp_vae().fit(Batches(x[:, :27], 128, as_tuple), verbose=0)
    with pytest.raises(ValueError, match="Expected x values in \\[0, 1\\]"):
        mlp_vae().fit(Batches(x * 2, 128, as_tuple), verbose=0)


@pytest.mark.parametrize("built", [False, True])
def test_fit_and_evaluate_without_data(built):
    vae = tiny_vae() if built else mlp_vae()
    vae.compile(optimizer="adam")
    for call in (vae.fit, vae.evaluate, vae.predict):
        with pytest.raises(ValueError, match=r"Expected x: .* Received: x=None$"):
            call(None)


def test_generators_need_a_built_model(binary_images):
    def batches():
        while True:
            yield (binary_images[:64],)

    vae = mlp_vae(latent_dim=4)
    vae.compile(steps_per_execution=1)
    with pytest.raises(ValueError, match="Expected a built model.*Received: x=generator"):
        vae.fit(batches(), steps_per_epoch=2, verbose=0)
    vae.build((None, 28, 28, 1))
    with warnings.catch_warnings():
        # Not Keras's warning that the default shuffle=True is ignored for a generator.
        warnings.simplefilter("error")
        history = vae.fit(batches(), steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_numpy_integer_seed_and_list_input():
    vae = tiny_vae(seed=np.int64(3))
    assert vae.seed == 3 and type(vae.seed) is int
    assert vae.get_config()["seed"] == 3
    vae.compile(steps_per_execution=1)
    x = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]
    logs = vae.evaluate(x, verbose=0, return_dict=True)
    assert np.isfinite(logs["elbo"])
    assert vae.predict(x, verbose=0).shape == (2, 3)


def test_likelihood_draws_use_the_low_32_bits_of_the_seed():
    vae = tiny_vae()
    draws = vae.sample(4, seed=7, use_mean=False)
    np.testing.assert_array_equal(draws, vae.sample(4, seed=7 + 2**32, use_mean=False))
    np.testing.assert_array_equal(
        vae.sample(4, seed=2**31 + 1, use_mean=False), vae.sample(4, seed=1 - 2**31, use_mean=False)
    )


# A diagonal Gaussian prior that is not N(0, I): tests fail if it is ignored.
PRIOR_LOC = np.array([0.5, -1.0], "float32")
PRIOR_SCALE = np.array([2.0, 0.5], "float32")


def shifted_prior():
    return tfd.Independent(tfd.Normal(PRIOR_LOC, PRIOR_SCALE), reinterpreted_batch_ndims=1)


PRIORS = {
    "standard": (None, {}),
    "shifted": (shifted_prior, {"prior_loc": PRIOR_LOC, "prior_scale": PRIOR_SCALE}),
}


def normal_log_pdf(z, loc, scale):
    """log N(z; loc, diag(scale^2)), summed over the last axis, in numpy."""
    return np.sum(-0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), -1)


def hand_terms(vae, x, num_samples, prior_loc=0.0, prior_scale=1.0):
    """`vae.compute_terms(x)` for `tiny_vae` with `set_fixed_weights(raw_scale=0)`,
    and numpy's log p(x|z_k) and log weights [K, B] and TFP's KL, all from the
    call's own noise: the Philox normals eps [K, B, d] of the sampler state."""
    a_mat, a_bias, w, b = set_fixed_weights(vae, raw_scale=0.0)
    state = vae.sampler_state.numpy().copy()
    terms = {k: v.numpy() for k, v in vae.compute_terms(tf.constant(x)).items()}
    eps = tf.random.stateless_normal([num_samples, len(x), 2], state, alg="philox").numpy()
    loc = (x @ a_mat + a_bias).astype("float64")
    scale = math.log(2.0) + 1e-5  # softplus(0) + floor
    z = loc + scale * eps.astype("float64")
    logits = z @ w + b
    log_likelihood = -np.sum(x * np.logaddexp(0, -logits) + (1 - x) * np.logaddexp(0, logits), -1)
    log_weights = (
        log_likelihood + normal_log_pdf(z, prior_loc, prior_scale) - normal_log_pdf(z, loc, scale)
    )
    kl = tfd.kl_divergence(
        tfd.MultivariateNormalDiag(loc, tf.fill(loc.shape, tf.constant(scale, tf.float64))),
        tfd.MultivariateNormalDiag(
            tf.constant(prior_loc, tf.float64) * tf.ones(2, tf.float64),
            tf.constant(prior_scale, tf.float64) * tf.ones(2, tf.float64),
        ),
    ).numpy()
    return terms, log_likelihood, log_weights, kl


HAND_X = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]], "float32")


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_iwae_loss_is_the_importance_weighted_bound_of_the_training_noise(prior):
    make_prior, moments = PRIORS[prior]
    vae = tiny_vae(objective="iwae", num_samples=5, seed=21, prior=make_prior and make_prior())
    terms, log_likelihood, log_weights, kl = hand_terms(vae, HAND_X, 5, **moments)
    bound = scipy.special.logsumexp(log_weights, axis=0) - np.log(5)
    np.testing.assert_allclose(terms["loss"], -bound, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(terms["reconstruction"], log_likelihood.mean(0), rtol=1e-4)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4)
    # The bound is not the 5-sample ELBO: the test tells the objectives apart.
    assert np.abs(bound - (log_likelihood.mean(0) - kl)).max() > 0.05


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_multi_sample_elbo_averages_the_likelihood_over_every_draw(prior):
    make_prior, moments = PRIORS[prior]
    vae = tiny_vae(beta=0.5, num_samples=5, seed=22, prior=make_prior and make_prior())
    terms, log_likelihood, _, kl = hand_terms(vae, HAND_X, 5, **moments)
    np.testing.assert_allclose(terms["reconstruction"], log_likelihood.mean(0), rtol=1e-4)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-4)
    np.testing.assert_allclose(terms["loss"], 0.5 * kl - log_likelihood.mean(0), rtol=1e-4)
    # One draw alone would give another reconstruction.
    assert np.abs(log_likelihood[0] - log_likelihood.mean(0)).max() > 0.05


def test_single_sample_elbo_uses_the_custom_prior():
    vae = tiny_vae(seed=23, prior=shifted_prior())
    terms, log_likelihood, _, kl = hand_terms(vae, HAND_X, 1, PRIOR_LOC, PRIOR_SCALE)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(terms["reconstruction"], log_likelihood[0], rtol=1e-4)
    np.testing.assert_allclose(terms["elbo"], log_likelihood[0] - kl, rtol=1e-4)


def test_sample_latent_and_sample_follow_the_custom_prior():
    vae = tiny_vae(prior=shifted_prior())
    _, _, w, b = set_fixed_weights(vae, raw_scale=0.0)
    z = vae.sample_latent(20000, seed=3).numpy()
    # The portable RNG's noise, moved and scaled by the prior.
    eps = portable_random.normal([20000, 2], 3).numpy()
    np.testing.assert_allclose(z, PRIOR_LOC + PRIOR_SCALE * eps, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z.mean(axis=0), PRIOR_LOC, atol=0.04)
    np.testing.assert_allclose(z.std(axis=0), PRIOR_SCALE, rtol=0.03)
    # Temperature 0 decodes the prior mean, not zero.
    expected = 1.0 / (1.0 + np.exp(-(PRIOR_LOC @ w + b)))
    np.testing.assert_allclose(vae.sample(2, seed=1, temperature=0), [expected] * 2, rtol=1e-5)


def test_regularization_losses_add_their_gradient_to_the_step():
    # Same weights and sampler state, so the same noise: the only difference
    # in one SGD step is the L2 penalty's gradient, 2 c W, times the rate.
    c, x = 0.05, HAND_X
    plain, regularized = (
        tiny_vae(seed=24),
        tiny_vae(seed=24, kernel_regularizer=keras.regularizers.L2(c)),
    )
    set_fixed_weights(plain, raw_scale=0.0)
    regularized.set_weights(plain.get_weights())
    kernel = plain.decoder.layers[-1].kernel.numpy()
    got, want = sgd_update(regularized, x), sgd_update(plain, x)
    kernel_index = next(
        i for i, v in enumerate(plain.trainable_weights) if v is plain.decoder.layers[-1].kernel
    )
    for i, (reg_step, plain_step) in enumerate(zip(got, want, strict=True)):
        extra = -0.1 * 2 * c * kernel if i == kernel_index else 0.0
        np.testing.assert_allclose(reg_step - plain_step, extra, atol=1e-6)


def test_pixel_draws_follow_the_seed_at_zero_temperature():
    # Temperature 0: every seed decodes the same z, the prior mean, so only
    # the likelihood's draws can tell two seeds apart.
    vae = tiny_vae()
    _, _, _, b = set_fixed_weights(vae, raw_scale=0.0)
    a = vae.sample(400, seed=5, use_mean=False, temperature=0)
    np.testing.assert_array_equal(a, vae.sample(400, seed=5, use_mean=False, temperature=0))
    assert np.any(a != vae.sample(400, seed=6, use_mean=False, temperature=0))
    np.testing.assert_allclose(a.mean(axis=0), 1.0 / (1.0 + np.exp(-b)), atol=0.1)
