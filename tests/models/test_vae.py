"""The machinery `VAE` shares with the whole family (`ConditionalVAE` inherits it).

Each test runs once per kind (the `kind` fixture of `conftest.py`): with a
`VAE` and with a `ConditionalVAE`. What `model_battery.py` checks for every
configuration (shapes, the terms against the contract, sampling, saving) is
not repeated here: these are the properties of training, of the data checks
and of the settings that change inside `fit`.
"""

import functools
import math
import os
import re
import warnings

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp
from tiny_models import LATENT_DIM, PIXELS

from keras_vae.data import split_image
from keras_vae.data.images import array_batches
from keras_vae.layers import GaussianLikelihood, IndependentBernoulli, IndependentNormal
from keras_vae.models import elbo_model
from keras_vae.models.presets import build_cvae, build_vae
from keras_vae.networks import mlp_decoder, mlp_encoder

tfd = tfp.distributions
TERMS = ("loss", "elbo", "reconstruction", "kl")


def compile_eagerly(model, optimizer="sgd"):
    """Compiles `model` to run its steps eagerly.

    What most tests here check is what a step computes, and tracing a step
    for every model costs more than running it on 3 pixels. The compiled
    steps are run by the tests of settings changed inside `fit`, of XLA and
    of MNIST training, and by `test_model_family.py`'s `evaluate` check.
    """
    model.compile(optimizer=optimizer, run_eagerly=True)


def terms_of(model, kind, x, condition, training=False):
    terms = model.compute_terms(*kind.inputs(x, condition), training=training)
    return {name: value.numpy() for name, value in terms.items()}


def sgd_update(model, kind, x, condition, rate=0.1):
    """The change of every trainable weight after one SGD step on all of `x`."""
    compile_eagerly(model, keras.optimizers.SGD(rate))
    before = [w.numpy().astype("float32") for w in model.trainable_weights]
    model.fit(*kind.inputs(x, condition), batch_size=len(x), verbose=0, shuffle=False)
    after = [w.numpy().astype("float32") for w in model.trainable_weights]
    return [a - b for a, b in zip(after, before, strict=True)]


# -- Sample weights ----------------------------------------------------------------


def test_fit_evaluate_and_validation_report_the_sample_weighted_means(kind):
    # A posterior scale of ~1e-5 makes the terms independent of the noise, so
    # they can be compared across calls; batches of 16 make Keras average
    # over several batches.
    model = kind.make_deterministic(beta=0.5)
    compile_eagerly(model, keras.optimizers.SGD(0.0))
    x, condition = kind.data(48, seed=2)
    terms = terms_of(model, kind, x, condition)
    # Weights that favour the worse-fitted examples, so that they matter.
    weights = np.where(terms["loss"] > np.median(terms["loss"]), 3.0, 0.25).astype("float32")
    inputs = kind.inputs(x, condition)
    plain = model.evaluate(*inputs, batch_size=16, verbose=0, return_dict=True)
    weighted = model.evaluate(
        *inputs, sample_weight=weights, batch_size=16, verbose=0, return_dict=True
    )
    # The learning rate is 0: fit logs the terms of the weights it starts from.
    history = model.fit(
        *inputs,
        sample_weight=weights,
        validation_data=(*inputs, weights),
        batch_size=16,
        verbose=0,
    ).history
    for name in TERMS:
        expected = np.average(terms[name], weights=weights)
        np.testing.assert_allclose(plain[name], terms[name].mean(), rtol=1e-4)
        np.testing.assert_allclose(weighted[name], expected, rtol=1e-4)
        np.testing.assert_allclose(history[name][0], expected, rtol=1e-4)
        np.testing.assert_allclose(history[f"val_{name}"][0], expected, rtol=1e-4)
    assert abs(np.average(terms["loss"], weights=weights) - terms["loss"].mean()) > 1e-2


def test_examples_of_zero_weight_do_not_move_the_weights(kind):
    x, condition = kind.data(8, seed=3)
    changed = x.copy()
    changed[1:] = 1.0 - changed[1:]
    weights = np.eye(8, dtype="float32")[0]
    trained = []
    for data in (x, changed):
        keras.utils.set_random_seed(0)
        model = kind.make(seed=4)
        compile_eagerly(model, keras.optimizers.SGD(0.1))
        inputs = kind.inputs(data, condition)
        model.fit(*inputs, sample_weight=weights, batch_size=8, epochs=3, verbose=0)
        trained.append(model.get_weights())
    for before, after in zip(*trained, strict=True):
        np.testing.assert_array_equal(before, after)


def test_training_minimises_the_weighted_mean_so_scaling_the_weights_changes_nothing(kind):
    # sum(w * loss) / sum(w) does not change when every weight is tripled; a
    # loss divided by the batch size instead would take a step three times as long.
    x, condition = kind.data(8, seed=5)
    weights = np.array([1, 2, 0, 1, 3, 1, 0, 2], "float32")
    trained = []
    for scale in (1.0, 3.0):
        keras.utils.set_random_seed(0)
        model = kind.make(seed=2)
        before = model.get_weights()
        compile_eagerly(model, keras.optimizers.SGD(0.1))
        model.fit(
            *kind.inputs(x, condition),
            sample_weight=scale * weights,
            batch_size=8,
            shuffle=False,
            verbose=0,
        )
        trained.append(model.get_weights())
    assert any(not np.allclose(b, a) for b, a in zip(before, trained[0], strict=True))
    for one, three in zip(*trained, strict=True):
        np.testing.assert_allclose(one, three, rtol=1e-5, atol=1e-6)


def test_a_batch_of_zero_weights_leaves_the_weights_alone(kind):
    x, condition = kind.data(8, seed=4)
    weights = np.r_[np.zeros(4), np.ones(4)].astype("float32")
    model = kind.make(seed=1)
    compile_eagerly(model, keras.optimizers.SGD(0.1))
    before = [w.numpy() for w in model.trainable_weights]
    # The first batch weighs nothing: its step is zero, not NaN (0 / 0).
    first = kind.inputs(x[:4], None if condition is None else condition[:4])
    model.fit(*first, sample_weight=np.zeros((4, 1)), batch_size=4, shuffle=False, verbose=0)
    for old, new in zip(before, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())
    history = model.fit(
        *kind.inputs(x, condition),
        sample_weight=weights[:, None],
        batch_size=4,
        shuffle=False,
        verbose=0,
    ).history
    assert np.isfinite(history["loss"]).all()
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_sample_weights_of_either_accepted_shape_in_turn(kind):
    # Compiled: a step traced for weights [N, 1] was traced again for [N] with
    # weights of unknown rank, which the metric trackers could not read.
    model = kind.make()
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    inputs = kind.inputs(*kind.data(4))
    for shape in ((4, 1), (4,)):
        history = model.fit(*inputs, sample_weight=np.ones(shape), batch_size=4, verbose=0)
        logs = model.evaluate(*inputs, sample_weight=np.ones(shape), verbose=0, return_dict=True)
        assert np.isfinite(history.history["loss"]).all() and np.isfinite(logs["loss"])


def test_class_weight_is_refused(kind):
    model = kind.make()
    model.compile(optimizer="adam")
    with pytest.raises(
        ValueError, match=r"^Expected class_weight=None: .* class_weight=\{0: 1.0\}$"
    ):
        model.fit(*kind.inputs(*kind.data(4)), class_weight={0: 1.0}, verbose=0)


@pytest.mark.parametrize("shape", [(8, 3), (8, 2), (7,), ()])
def test_sample_weight_of_the_wrong_shape(kind, shape):
    model = kind.make()
    model.compile(optimizer="adam")
    inputs = kind.inputs(*kind.data(8))
    message = (
        r"^Expected sample_weight shaped \[8\] or \[8, 1\] .* Received: "
        rf"sample_weight.shape={re.escape(str(shape))}$"
    )
    for call in (model.fit, model.evaluate):
        with pytest.raises(ValueError, match=message):
            call(*inputs, sample_weight=np.ones(shape, "float32"), verbose=0)
    with pytest.raises(ValueError, match=message):
        model.fit(*inputs, validation_data=(*inputs, np.ones(shape, "float32")), verbose=0)


# -- The training draws --------------------------------------------------------------


def test_gradients_reach_the_posterior_scale_through_the_sample(kind):
    model = kind.make(seed=0)
    x, condition = kind.data(4, seed=1)
    with tf.GradientTape() as tape:
        reconstruction = model.compute_terms(*kind.inputs(x, condition), training=True)[
            "reconstruction"
        ]
    kernel = model.posterior_layer.params.kernel
    gradient = tape.gradient(reconstruction, kernel).numpy()
    # The reconstruction term depends on the posterior only through
    # z = loc + scale * eps: the columns of both halves must get gradients.
    assert np.all(np.abs(gradient[:, :LATENT_DIM]).sum(0) > 0)
    assert np.all(np.abs(gradient[:, LATENT_DIM:]).sum(0) > 0)


def standard_normal_posterior(batch):
    """A posterior whose reparameterized draws are the training noise itself."""
    return tfd.Independent(tfd.Normal(tf.zeros([batch, LATENT_DIM]), 1.0), 1)


def test_the_seed_alone_fixes_the_training_draws(kind):
    # The noise of two models made with the same seed, under different global
    # random states, is the same; another seed gives other noise.
    posterior = standard_normal_posterior(4)
    draws = {}
    for global_seed, seed in ((1, 7), (2, 7), (1, 8)):
        keras.utils.set_random_seed(global_seed)
        model = kind.make(seed=seed)
        draws[global_seed, seed] = [model.sample_posterior(posterior).numpy() for _ in range(2)]
    np.testing.assert_array_equal(draws[1, 7], draws[2, 7])
    assert not np.allclose(draws[1, 7][0], draws[1, 7][1])
    assert not np.allclose(draws[1, 7][0], draws[1, 8][0])


def test_every_seed_below_2_to_the_32_keys_its_own_training_draws(kind):
    # The sampler's state holds the seed's 32 bits; it once kept them modulo 2**31.
    posterior = standard_normal_posterior(4)
    draws = [
        kind.make(seed=seed).sample_posterior(posterior).numpy() for seed in (0, 2**31, 2**32 - 1)
    ]
    assert not np.allclose(draws[0], draws[1]) and not np.allclose(draws[1], draws[2])
    for seed in (2**32, -1):
        with pytest.raises(ValueError, match=rf"Received: seed={seed}$"):
            kind.make(seed=seed)
    # A file saved before seeds were checked loads (its sampler state draws, not its seed).
    model = kind.make(seed=0)
    loaded = type(model).from_config({**model.get_config(), "seed": -1})
    assert loaded.seed == 2**32 - 1


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_evaluating_leaves_the_training_noise_alone(kind, objective):
    # Evaluations draw a stream of their own, restarted by each evaluate: before, they
    # advanced the training stream, so evaluating (or validating) changed what a seeded
    # model learned, and two evaluations of the same data differed.
    x, condition = kind.data(32)
    data = kind.inputs(x, condition)
    extra = {"gsnn_weight": 0.5} if kind.conditional else {}
    weights = []
    for evaluate in (False, True):
        keras.utils.set_random_seed(0)
        model = kind.make(seed=3, objective=objective, num_samples=3, **extra)
        model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=False)
        model.fit(*data, batch_size=8, epochs=1, verbose=0)
        if evaluate:
            first = model.evaluate(*data, batch_size=8, verbose=0, return_dict=True)
            second = model.evaluate(*data, batch_size=8, verbose=0, return_dict=True)
            assert first == second
            # test_on_batch restarts the stream too: the same batch gives the same figures.
            batch = kind.inputs(x[:8], None if condition is None else condition[:8])
            one = model.test_on_batch(*batch, return_dict=True)
            assert model.test_on_batch(*batch, return_dict=True) == one
            assert model.evaluate(*batch, batch_size=8, verbose=0, return_dict=True) == one
            model.fit(*data, batch_size=8, epochs=1, verbose=0, validation_data=data)
        else:
            model.fit(*data, batch_size=8, epochs=1, verbose=0)
        weights.append([w.numpy() for w in model.weights])
    for trained, evaluated in zip(*weights, strict=True):
        np.testing.assert_array_equal(trained, evaluated)


def test_eager_tensors_of_the_wrong_shape_or_batch_are_refused_in_one_line(kind):
    # Numpy arrays were checked; eager tensors reached the networks, which failed in 6 to
    # 16 lines, and a CVAE's target and condition of different batches failed in Concatenate.
    model = kind.make()
    x, condition = kind.data(3)
    c = None if condition is None else tf.constant(condition)
    name = kind.data_name
    cases = [
        (lambda: model.decode(tf.zeros((3, LATENT_DIM + 1)), c), "z shaped [batch, 2]"),
        (lambda: model.encode(tf.zeros((3, PIXELS + 1)), c), f"{name} shaped [batch, 3]"),
    ]
    if kind.conditional:
        cases += [
            (lambda: model.encode(tf.constant(x[:2]), c), "target and condition with the same"),
            (lambda: model.decode(np.zeros((2, LATENT_DIM), "float32"), c), "z and condition"),
        ]
    for call, expected in cases:
        with pytest.raises(ValueError) as error:
            call()
        assert len(str(error.value).splitlines()) == 1 and expected in str(error.value)
    # Matching batches encode.
    assert model.encode(tf.constant(x), c).batch_shape == (3,)


def test_neighbouring_seeds_draw_streams_that_do_not_overlap(kind):
    # Runs with seeds 7 and 8 (replicates of an experiment) must not see the
    # same noise shifted by a step, as a seed added to the step counter would give.
    posterior = standard_normal_posterior(4)
    streams = []
    for seed in (7, 8):
        model = kind.make(seed=seed)
        streams.append([model.sample_posterior(posterior).numpy() for _ in range(3)])
    for first in streams[0]:
        for second in streams[1]:
            assert not np.allclose(first, second)


def test_xla_training_draws_are_standard_normal(kind):
    model = kind.make(seed=5)
    posterior = standard_normal_posterior(20000)
    draw = tf.function(lambda: model.sample_posterior(posterior), jit_compile=True)
    eps = np.concatenate([draw().numpy().ravel(), draw().numpy().ravel()])
    assert scipy.stats.kstest(eps, "norm").pvalue > 1e-3
    assert abs(eps.mean()) < 0.02 and abs(eps.std() - 1.0) < 0.02


# -- Settings that change inside `fit` ---------------------------------------------


# Under XLA too, but slow: test_xla_and_graph_training_take_the_same_steps
# shows that XLA computes the graph's step.
@pytest.mark.parametrize("compiled_with_xla", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_setting_beta_takes_effect_in_already_compiled_steps(kind, compiled_with_xla):
    model = kind.make(beta=1.0, seed=0)
    model.compile(optimizer="sgd", jit_compile=compiled_with_xla)
    inputs = kind.inputs(*kind.data(8, seed=6))
    model.evaluate(*inputs, verbose=0)  # traces the test step with beta=1
    model.fit(*inputs, epochs=1, batch_size=8, verbose=0)  # and the training step
    for beta in (0.0, 2.5):
        model.beta = beta
        logs = model.evaluate(*inputs, batch_size=8, verbose=0, return_dict=True)
        assert logs["kl"] > 0.1
        assert logs["loss"] == pytest.approx(beta * logs["kl"] - logs["reconstruction"], rel=1e-5)
        history = model.fit(*inputs, epochs=1, batch_size=8, verbose=0).history
        assert history["loss"][0] == pytest.approx(
            beta * history["kl"][0] - history["reconstruction"][0], rel=1e-5
        )
    assert model.get_config()["beta"] == 2.5
    assert type(model).from_config(model.get_config()).beta == 2.5


def test_beta_set_as_a_weight_takes_effect(kind):
    # `set_weights` (EarlyStopping's restore among others) assigns `beta`'s variable
    # itself: the steps went on with a KL weight of 0 where beta read 1.0, or the
    # other way round.
    inputs = kind.inputs(*kind.data(8, seed=6))
    for before, after in ((0.0, 1.0), (1.0, 0.0)):
        model = kind.make(beta=before, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
        model.fit(*inputs, batch_size=8, verbose=0)  # traces the steps with `before`
        model.set_weights(kind.make(beta=after, seed=0).get_weights())
        assert model.beta == after
        for logs in (
            model.train_on_batch(*inputs, return_dict=True),
            model.evaluate(*inputs, batch_size=8, verbose=0, return_dict=True),
            {k: v[0] for k, v in model.fit(*inputs, batch_size=8, verbose=0).history.items()},
        ):
            assert logs["kl"] > 0.1
            assert logs["loss"] == pytest.approx(after * logs["kl"] - logs["reconstruction"])


def test_a_frozen_model_fits_without_stepping_as_keras_models_do(kind):
    # It failed in the optimizer with "not enough values to unpack".
    model = kind.make(seed=0)
    model.trainable = False
    model.compile(optimizer="adam", jit_compile=False)
    weights = [w.numpy() for w in model.weights if w.name != "sampler_state"]
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        history = model.fit(*kind.inputs(*kind.data(8)), batch_size=4, verbose=0).history
    assert np.isfinite(history["loss"][0])
    after = [w.numpy() for w in model.weights if w.name != "sampler_state"]
    for a, b in zip(weights, after, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("compiled_with_xla", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_setting_objective_and_num_samples_during_fit_takes_effect(kind, compiled_with_xla):
    # The compiled steps hold `objective` and `num_samples` as constants:
    # setting them from a callback must trace the steps again. With K > 1 the
    # IWAE loss is below -ELBO (the mean of the K one-sample ELBOs) by
    # Jensen's inequality; the ELBO objective's loss is -ELBO exactly, and the
    # K = 1 IWAE loss is -ELBO with a sampled KL (equal in expectation; over
    # 2048 examples the difference is a few hundredths of a nat).
    keras.utils.set_random_seed(0)
    model = kind.make(seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=compiled_with_xla)
    inputs = kind.inputs(*kind.data(2048))
    schedule = [("elbo", 1), ("iwae", 8), ("iwae", 1), ("iwae", 8), ("elbo", 8)]

    def set_objective(epoch, logs):
        model.objective, model.num_samples = schedule[epoch]

    history = model.fit(
        *inputs,
        batch_size=2048,
        epochs=len(schedule),
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_begin=set_objective)],
    ).history
    gaps = -np.array(history["elbo"]) - np.array(history["loss"])
    assert gaps[1] > 0.1 and gaps[3] > 0.1, gaps
    assert abs(gaps[2]) < 0.05, gaps
    np.testing.assert_allclose(gaps[[0, 4]], 0.0, atol=1e-4)
    model.objective, model.num_samples = "iwae", 8
    logs = model.evaluate(*inputs, batch_size=2048, verbose=0, return_dict=True)
    assert -logs["elbo"] - logs["loss"] > 0.1
    config = model.get_config()
    assert (config["objective"], config["num_samples"]) == ("iwae", 8)
    clone = type(model).from_config(config)
    assert (clone.objective, clone.num_samples) == ("iwae", 8)


def test_objective_num_samples_and_beta_are_checked_when_set(kind):
    model = kind.make(beta=0.5)
    with pytest.raises(ValueError, match=r"^Expected beta=1\.0 with objective='iwae'"):
        model.objective = "iwae"
    with pytest.raises(
        ValueError, match=r"^Expected objective to be one of .*Received: objective='x'$"
    ):
        model.objective = "x"
    with pytest.raises(ValueError, match=r"Received: num_samples=0$"):
        model.num_samples = 0
    with pytest.raises(
        ValueError, match=r"^Expected beta to be a non-negative float\. Received: beta=-0\.5$"
    ):
        model.beta = -0.5
    assert (model.objective, model.num_samples, model.beta) == ("elbo", 1, 0.5)
    iwae = kind.make(objective="iwae", num_samples=2)
    with pytest.raises(
        ValueError, match=r"^Expected beta=1\.0 with objective='iwae'.*Received: beta=0\.5$"
    ):
        iwae.beta = 0.5
    assert iwae.beta == 1.0


def test_regularization_losses_add_their_gradient_to_the_step(kind):
    # Same weights and sampler state, so the same noise: the only difference
    # in one SGD step is the L2 penalty's gradient, 2 c W, times the rate.
    c = 0.05
    x, condition = kind.data(3, seed=7)
    plain = kind.make(seed=24)
    regularized = kind.make(seed=24, kernel_regularizer=keras.regularizers.L2(c))
    regularized.set_weights(plain.get_weights())
    kernel = plain.decoder.layers[-1].kernel
    kernel_value = kernel.numpy()
    got = sgd_update(regularized, kind, x, condition)
    want = sgd_update(plain, kind, x, condition)
    index = next(i for i, v in enumerate(plain.trainable_weights) if v is kernel)
    for i, (reg_step, plain_step) in enumerate(zip(got, want, strict=True)):
        extra = -0.1 * 2 * c * kernel_value if i == index else 0.0
        np.testing.assert_allclose(reg_step - plain_step, extra, atol=1e-6)


# -- Compiling ---------------------------------------------------------------------


def test_xla_and_graph_training_take_the_same_steps(kind):
    # `compile`'s default picks XLA for MLPs on CPU: it must train the same
    # model. XLA draws other normals from the same Philox seed, so the
    # posterior is made deterministic; plain SGD, because Adam turns rounding
    # noise in near-zero gradients into full-size steps.
    x, condition = kind.data(64, seed=8)
    initial, losses, trained = None, {}, {}
    for jit_compile in (True, False):
        model = kind.make_deterministic(seed=3)
        if initial is None:
            initial = model.get_weights()
        model.set_weights(initial)
        model.compile(
            optimizer=keras.optimizers.SGD(0.5), jit_compile=jit_compile, steps_per_execution=1
        )
        assert model.jit_compile is jit_compile
        history = model.fit(*kind.inputs(x, condition), batch_size=16, shuffle=False, verbose=0)
        losses[jit_compile] = history.history["loss"][0]
        trained[jit_compile] = model.get_weights()
        np.testing.assert_allclose(
            history.history["elbo"],
            np.array(history.history["reconstruction"]) - history.history["kl"],
            rtol=1e-6,
        )
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
    for xla, graph in zip(trained[True], trained[False], strict=True):
        np.testing.assert_allclose(xla, graph, rtol=1e-4, atol=1e-5)
    assert max(np.abs(g - s).max() for g, s in zip(trained[False], initial, strict=True)) > 0.1


def test_fit_traces_the_training_step_once(kind):
    # Keras builds an unbuilt optimizer inside the first traced step when no
    # strategy is set, and TensorFlow traces a function that creates
    # variables twice; `fit` builds it first.
    model = kind.make(seed=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    step, traces = model.train_step, []

    def counted_step(data):
        traces.append(data)
        return step(data)

    model.train_step = counted_step
    x, condition = kind.data(16, seed=9)
    model.fit(*kind.inputs(x, condition), epochs=2, batch_size=8, verbose=0)
    assert len(traces) == 1
    assert int(model.optimizer.iterations) == 4


@pytest.mark.xla
@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a CPU-only rule")
def test_auto_jit_compile_uses_xla_on_cpu_for_models_without_convolutions(kind):
    def preset(architecture):
        if kind.conditional:
            return build_cvae(architecture, "top-half", latent_dim=4)
        return build_vae(architecture, (28, 28, 1), latent_dim=4)

    chosen = {}
    for architecture in ("mlp", "conv"):
        model = preset(architecture)
        model.compile()
        chosen[architecture] = model.jit_compile
    assert chosen == {"mlp": True, "conv": False}
    model = preset("mlp")
    model.compile(jit_compile=False)
    assert model.jit_compile is False
    with pytest.raises(ValueError, match="Expected jit_compile.*Received: jit_compile='yes'"):
        preset("mlp").compile(jit_compile="yes")


# -- Saving a model in training -------------------------------------------------------


def test_save_load_keeps_the_optimizer_state(kind, tmp_path):
    model = kind.make(seed=3)
    compile_eagerly(model, keras.optimizers.Adam(1e-2))
    x, condition = kind.data(16, seed=9)
    inputs = kind.inputs(x, condition)
    model.fit(*inputs, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    # Same weights, optimizer moments and sampler state: one more step gives
    # the same weights.
    for each in (model, loaded):
        each.fit(*inputs, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert int(loaded.optimizer.iterations) == 3
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# Keras warns that the saved optimizer, never built, has fewer variables than the loaded one.
@pytest.mark.xla
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_save_load_keeps_the_auto_compile_arguments_unresolved(kind, tmp_path):
    model = kind.make()
    model.compile()
    assert (model.steps_per_execution, model.jit_compile) == (8, True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert (loaded.steps_per_execution, loaded.jit_compile) == (8, True)
    # Saved as "auto", to be resolved where the model is loaded (under a
    # strategy with several replicas they differ: see test_distributed.py).
    compile_config = loaded.get_compile_config()
    assert compile_config["steps_per_execution"] == compile_config["jit_compile"] == "auto"


@pytest.mark.parametrize("name", ["model.h5", "model.hdf5"])
def test_the_legacy_h5_format_is_refused_in_one_line_and_writes_nothing(kind, tmp_path, name):
    # Keras's legacy saver failed on the model's own variables with an unrelated
    # numpy error ("truth value of an array ... is ambiguous"), after writing part.
    model = kind.make()
    with pytest.raises(ValueError) as raised:
        model.save(tmp_path / name)
    assert str(raised.value) == (
        "Expected a .keras path: the legacy HDF5 format cannot hold the model's own variables "
        f"(beta, the sampler's state). Received: filepath={str(tmp_path / name)!r}"
    )
    assert os.listdir(tmp_path) == []


# -- Data and arguments that are refused -----------------------------------------------


def test_encode_and_decode_take_lists_and_refuse_a_missing_batch_axis_in_one_line(kind):
    model = kind.make()
    x, condition = kind.data(2)
    z = np.random.default_rng(1).normal(size=(2, LATENT_DIM))
    as_list = None if condition is None else condition.tolist()
    # A list holds one example per row, as for fit, predict and reconstruct.
    np.testing.assert_array_equal(
        model.encode(x.tolist(), as_list).mean(), model.encode(x, condition).mean()
    )
    np.testing.assert_array_equal(
        model.decode(z.tolist(), as_list).mean(), model.decode(z, condition).mean()
    )
    name = kind.data_name
    with pytest.raises(ValueError, match=rf"^Expected {name} shaped \[batch, 3\]\. Received: "):
        model.encode(x[0], condition)
    with pytest.raises(ValueError, match=r"^Expected z shaped \[batch, 2\]\. Received: z.shape"):
        model.decode(z[0], condition)
    if kind.conditional:
        with pytest.raises(ValueError, match=r"^Expected condition shaped \[batch, 2\]\. Rec"):
            model.decode(z, condition[0])


def test_predict_takes_a_list_and_refuses_a_bad_shape_in_one_line(kind):
    model = kind.make()
    compile_eagerly(model)
    data = kind.predict_input(*kind.data(2))
    np.testing.assert_array_equal(
        model.predict(data.tolist(), verbose=0), model.predict(data, verbose=0)
    )
    name = "condition" if kind.conditional else "x"
    size = data.shape[1]
    np.testing.assert_array_equal(model.predict_on_batch(data), model.predict(data, verbose=0))
    for bad in (data[0], np.zeros((2, size + 1), "float32"), np.full_like(data, np.nan)):
        message = rf"^Expected {name} (shaped \[batch, {size}\]|to hold finite values)\. Received"
        for call in (functools.partial(model.predict, verbose=0), model.predict_on_batch):
            with pytest.raises(ValueError, match=message):
                call(bad)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 3, 1), "float32"), r"shaped \[batch, 3\]\. Received: {name}.shape"),
        (np.zeros((4, 4), "float32"), r"shaped \[batch, 3\]\. Received: {name}.shape"),
        (np.full((4, 3), "a"), r"to hold real numbers\. Received: {name}.dtype="),
        (np.zeros((4, 3), "complex64"), r"to hold real numbers\. .*dtype=complex64$"),
        (np.full((4, 3), 255.0, "float32"), r"values in \[0, 1\] .* Received: {name} values"),
        (np.full((4, 3), np.nan, "float32"), r"to hold finite values\. .* with 12 NaN"),
        (np.full((4, 3), -np.inf, "float32"), r"to hold finite .* with 0 NaN and 12 infinite"),
    ],
    ids=["rank", "size", "strings", "complex", "255", "nan", "inf"],
)
@pytest.mark.parametrize("built", [True, False])
def test_bad_data_fails_in_one_line(kind, bad, message, built):
    model = kind.make(build=built)
    model.compile(optimizer="adam")
    _, condition = kind.data(4)
    pattern = f"^Expected {kind.data_name} " + message.format(name=kind.data_name)
    calls = (
        functools.partial(model.fit, verbose=0),
        functools.partial(model.evaluate, verbose=0),
        model.train_on_batch,
        model.test_on_batch,
    )
    for call in calls:
        with pytest.raises(ValueError, match=pattern) as raised:
            call(*kind.inputs(bad, condition))
        assert len(str(raised.value).splitlines()) == 1


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
    kind, output_shape, likelihood, expected
):
    decoder = keras.Sequential(
        [
            keras.Input((kind.decoder_inputs,)),
            keras.layers.Dense(math.prod(output_shape)),
            keras.layers.Reshape(output_shape),
        ]
    )
    model = kind.make(build=False, decoder=decoder, likelihood=likelihood)
    model.compile()
    message = (
        rf"^Expected the decoder to output {type(likelihood).__name__} parameters shaped "
        rf"{expected}\. Received: decoder_output.shape={re.escape(str((1, *output_shape)))}$"
    )
    with pytest.raises(ValueError, match=message):
        model.fit(*kind.inputs(*kind.data(4)), epochs=1, verbose=0)


def test_decoder_with_several_outputs_fails_in_one_line(kind):
    z = keras.Input((kind.decoder_inputs,))
    decoder = keras.Model(z, [keras.layers.Dense(3)(z), keras.layers.Dense(3)(z)])
    model = kind.make(build=False, decoder=decoder, likelihood=IndependentNormal(3))
    with pytest.raises(ValueError, match=r"^Expected the decoder to output one tensor .*list$"):
        model.fit(*kind.inputs(*kind.data(4)), epochs=1, verbose=0)


def test_networks_that_take_other_shapes_fail_in_one_line(kind):
    def make(encoder_input, decoder_input):
        return kind.make(
            build=False,
            encoder=keras.Sequential([keras.Input(encoder_input), keras.layers.Dense(4)]),
            decoder=keras.Sequential([keras.Input(decoder_input), keras.layers.Dense(3)]),
            likelihood=GaussianLikelihood(3),
        )

    inputs = kind.inputs(*kind.data(4))
    encoder = r"x, the likelihood's event shape" if not kind.conditional else "targets, the li"
    with pytest.raises(
        ValueError,
        match=rf"^Expected the encoder to take inputs shaped \[batch, 3\] \({encoder}.*\)\. "
        r"Received: encoder.input_shape=\(None, 4\)$",
    ):
        make((4,), (kind.decoder_inputs,)).fit(*inputs, verbose=0)
    # A CVAE's decoder that reads z alone, without the condition, is refused too.
    decoder = (
        r"\[batch, 4\] \(\[z, flattened condition\]: latent_dim=2 \+ condition size 2\)"
        if kind.conditional
        else r"\[batch, 2\] \(z, latent_dim=2\)"
    )
    with pytest.raises(
        ValueError,
        match=rf"^Expected the decoder to take inputs shaped {decoder}\. "
        r"Received: decoder.input_shape=\(None, 5\)$",
    ):
        make((3,), (5,)).fit(*inputs, verbose=0)


def test_networks_whose_input_keras_adjusts_are_accepted(kind):
    # Keras adds or drops a last axis of size 1 to fit a functional model's input.
    model = kind.make(
        build=False,
        encoder=keras.Sequential([keras.Input((3, 1)), keras.layers.Flatten()]),
        decoder=keras.Sequential(
            [keras.Input((kind.decoder_inputs, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
        ),
    )
    compile_eagerly(model)
    history = model.fit(*kind.inputs(*kind.data(4)), epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("built", [False, True])
def test_fit_evaluate_and_predict_without_data(kind, built):
    model = kind.make(build=built)
    model.compile(optimizer="adam")
    if kind.conditional:
        message = r"^Expected \(condition, target\) pairs: .* Received: y=None$"
        predicted = r"^Expected conditions: .* Received: x=None$"
    else:
        message = predicted = r"^Expected x: .* Received: x=None$"
    for call in (model.fit, model.evaluate):
        with pytest.raises(ValueError, match=message):
            call(None)
    with pytest.raises(ValueError, match=predicted):
        model.predict(None)


def test_generators_need_a_built_model(kind):
    x, condition = kind.data(16)
    inputs = kind.inputs(x, condition)

    def batches():
        while True:
            yield tuple(part for part in inputs if part is not None)

    model = kind.make(build=False)
    compile_eagerly(model)
    with pytest.raises(ValueError, match=r"^Expected a built model .*Received: x=generator$"):
        model.fit(batches(), steps_per_epoch=2, verbose=0)
    model.build((None, (condition if kind.conditional else x).shape[1]))
    with warnings.catch_warnings():
        # Not Keras's warning that the default shuffle=True is ignored for a generator.
        warnings.simplefilter("error")
        history = model.fit(batches(), steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_numpy_integer_seed_and_list_input(kind):
    model = kind.make(seed=np.int64(3))
    assert model.seed == 3 and type(model.seed) is int
    assert model.get_config()["seed"] == 3
    compile_eagerly(model)
    x, condition = kind.data(2)
    # A list holds one example per row (Keras would read it as several inputs).
    lists = [None if part is None else part.tolist() for part in kind.inputs(x, condition)]
    history = model.fit(*lists, verbose=0).history
    logs = model.evaluate(*lists, verbose=0, return_dict=True)
    assert np.isfinite(history["loss"]).all() and np.isfinite(logs["elbo"])
    assert model.predict(kind.predict_input(x, condition).tolist(), verbose=0).shape == (2, 3)


class Batches(keras.utils.PyDataset):
    """Batches of 4 of `parts` (x alone, or conditions and targets)."""

    def __init__(self, *parts, as_tuple=True):
        super().__init__()
        self.parts, self.as_tuple = parts, as_tuple

    def __len__(self):
        return math.ceil(len(self.parts[0]) / 4)

    def __getitem__(self, index):
        batch = tuple(part[4 * index : 4 * index + 4] for part in self.parts)
        return batch if self.as_tuple or len(batch) > 1 else batch[0]


@pytest.mark.parametrize("as_tuple", [False, True])
def test_fit_and_evaluate_accept_py_datasets_and_check_their_first_batch(kind, as_tuple):
    x, condition = kind.data(8)
    parts = [part for part in kind.inputs(x, condition) if part is not None]
    model = kind.make(build=False)  # unbuilt: the first batch gives the shape
    compile_eagerly(model)
    model.fit(Batches(*parts, as_tuple=as_tuple), epochs=1, verbose=0)
    logs = model.evaluate(Batches(*parts, as_tuple=as_tuple), verbose=0, return_dict=True)
    assert np.isfinite(logs["elbo"])
    bad = [*parts[:-1], np.concatenate([parts[-1], parts[-1]], axis=1)]
    with pytest.raises(ValueError, match=rf"^Expected {kind.data_name} shaped \[batch, 3\]"):
        kind.make(build=False).fit(Batches(*bad, as_tuple=as_tuple), verbose=0)
    with pytest.raises(ValueError, match=rf"^Expected {kind.data_name} values in \[0, 1\]"):
        kind.make(build=False).fit(Batches(*parts[:-1], 2 * parts[-1]), verbose=0)
    if kind.conditional:
        with pytest.raises(ValueError, match=r"^Expected a dataset of \(condition, target\) pa"):
            kind.make(build=False).fit(Batches(condition, as_tuple=as_tuple), verbose=0)


def test_a_dataset_of_integers_is_refused_for_a_bernoulli_likelihood(kind):
    # Its values are not seen: 8-bit images (0..255) trained without a word, the
    # loss running to -1e5. Booleans, and floats, fit.
    x, condition = kind.data(8)
    for dtype, refused in (("uint8", True), ("int32", True), ("bool", False)):
        parts = kind.inputs((x * 255 if dtype == "uint8" else x).astype(dtype), condition)
        dataset = tf.data.Dataset.from_tensor_slices(tuple(p for p in parts if p is not None))
        model = kind.make()
        compile_eagerly(model)
        if not refused:
            assert np.isfinite(model.fit(dataset.batch(4), verbose=0).history["loss"][0])
            continue
        with pytest.raises(ValueError) as error:
            model.fit(dataset.batch(4), verbose=0)
        assert str(error.value).endswith(f"Received: {kind.data_name}.dtype={dtype}")
        assert len(str(error.value).splitlines()) == 1


def test_fit_accepts_a_dataset_without_a_shuffle_warning(kind):
    x, condition = kind.data(32)
    parts = tuple(part for part in kind.inputs(x, condition) if part is not None)
    dataset = tf.data.Dataset.from_tensor_slices(parts if len(parts) > 1 else parts[0]).batch(8)
    model = kind.make()
    compile_eagerly(model, "adam")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(dataset, epochs=1, verbose=0)
    # The dataset shuffles itself: no warning that Keras's default shuffle=True is ignored.
    assert not [w for w in caught if "shuffle" in str(w.message)], caught
    assert set(history.history) == set(TERMS)
    # predict reads x, or a dataset of pairs' conditions.
    np.testing.assert_allclose(
        model.predict(dataset, verbose=0),
        model.predict(kind.predict_input(x, condition), verbose=0),
        atol=1e-6,
    )


def test_fit_feeds_arrays_without_tf_data_autotuning_and_casts_float64(kind, monkeypatch):
    # Keras's own array pipeline is autotuned, and deleting an autotuned
    # iterator (every epoch) stalled the cores for up to seconds.
    fed = []

    def spy(*args, **kwargs):
        fed.append(array_batches(*args, **kwargs))
        return fed[-1]

    monkeypatch.setattr(elbo_model, "array_batches", spy)
    x, condition = kind.data(10)
    wide = [None if part is None else part.astype("float64") for part in kind.inputs(x, condition)]
    model = kind.make()
    compile_eagerly(model)
    history = model.fit(
        *wide, batch_size=4, epochs=2, verbose=0, sample_weight=np.linspace(0.5, 1.5, 10),
        validation_data=tuple(part for part in wide if part is not None),
    )  # fmt: skip
    assert len(fed) == 2  # the training and the validation arrays
    assert all(ds.options().autotune.enabled is False for ds in fed)
    assert [ds.cardinality().numpy() for ds in fed] == [3, 3]
    assert all(spec.dtype != tf.float64 for ds in fed for spec in tf.nest.flatten(ds.element_spec))
    assert all(np.isfinite(history.history[name]).all() for name in ("loss", "val_loss"))


def test_conv_model_on_an_empty_batch_gives_empty_outputs(kind):
    # With oneDNN, TF 2.21's convolutions gave 0 rows the wrong shape: the
    # conv decoder's output [0, 28, 28, 32] failed the decoder-output check.
    if kind.conditional:
        model = build_cvae("conv", "top-half", latent_dim=4, seed=0)
        model.build((None, 392))
        condition = np.zeros((0, 392), "float32")
    else:
        model = build_vae("conv", (28, 28, 1), latent_dim=4, seed=0)
        model.build((None, 28, 28, 1))
        condition = None
    x = np.zeros((0, *model.event_shape), "float32")
    assert model.decode(np.zeros((0, 4), "float32"), condition).mean().shape == x.shape
    assert model.encode(x, condition).mean().shape == (0, 4)
    assert model.reconstruct(x, condition).shape == x.shape
    if kind.conditional:
        assert model.sample(3, condition, seed=0).shape == (0, 3, *model.event_shape)
    # One row is unaffected.
    one = np.random.default_rng(0).normal(size=(1, 4)).astype("float32")
    two = np.concatenate([one, one])
    conditions = None if condition is None else np.zeros((2, 392), "float32")
    np.testing.assert_allclose(
        model.decode(one, None if condition is None else conditions[:1]).mean(),
        model.decode(two, conditions).mean()[:1],
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_dim": 0}, r"latent_dim to be a positive integer\. Received: latent_dim=0"),
        ({"latent_dim": 2.5}, r"latent_dim to be a positive integer\. Received: latent_dim=2.5"),
        ({"beta": -1.0}, r"beta to be a non-negative float\. Received: beta=-1.0"),
        ({"encoder": "dense"}, r"encoder to be a Keras layer or model\. Received: encoder='dense'"),
        ({"decoder": 3}, r"decoder to be a Keras layer or model\. Received: decoder=3"),
        ({"likelihood": "bernoulli"}, r"likelihood to be a keras_vae distribution layer .*"),
        ({"objective": "vimco"}, r"objective to be one of .* Received: objective='vimco'"),
        ({"num_samples": 0}, r"num_samples to be a positive integer\. Received: num_samples=0"),
        ({"objective": "iwae", "beta": 0.5}, r"beta=1\.0 with objective='iwae' .*beta=0\.5"),
        ({"seed": 1.5}, r"seed to be an integer in \[0, 2\*\*32\)\. Received: seed=1.5"),
        ({"seed": True}, r"seed to be an integer in \[0, 2\*\*32\)\. Received: seed=True"),
    ],
    ids=lambda value: value if isinstance(value, str) and "\\" not in value else None,
)
def test_bad_constructor_arguments(kind, kwargs, message):
    with pytest.raises(ValueError, match=f"^Expected {message}$") as raised:
        kind.make(build=False, **kwargs)
    assert len(str(raised.value).splitlines()) == 1


def test_sample_refuses_bad_arguments_in_one_line(kind):
    model = kind.make()
    condition = kind.data(2)[1]
    for kwargs, message in [
        ({"temperature": -0.5}, r"non-negative float\. Received: temperature=-0\.5"),
        ({"temperature": float("nan")}, r"Received: temperature=nan"),
        ({"temperature": "1"}, r"Received: temperature='1'"),
        ({"num_samples": 0}, r"positive integer\. Received: num_samples=0"),
        ({"num_samples": 2.5}, r"positive integer\. Received: num_samples=2.5"),
        ({"batch_size": 0}, r"positive integer\. Received: batch_size=0"),
    ]:
        kwargs = {"num_samples": 2, "seed": 0, **kwargs}
        with pytest.raises(ValueError, match=f"^Expected .*{message}$"):
            model.sample(condition=condition, **kwargs)
    if not kind.conditional:  # a CVAE builds itself for the conditions it is given
        # A VAE without a likelihood does not know its data's shape until it sees data.
        with pytest.raises(ValueError, match=r"^Expected a built model: .* unbuilt VAE$"):
            kind.make(build=False, likelihood=None).sample(2, seed=0)


def test_an_unbuilt_model_builds_itself_to_sample_and_give_its_prior(kind):
    # As encode and decode do (Keras builds a layer on its first call): a VAE from
    # its likelihood's event shape, a CVAE from the conditions it is given. The
    # build is the explicit one: the same weights give the same draws and density.
    prior = "mog" if kind.conditional else "vamp"  # a VampPrior's weights need the build
    condition = kind.data(3)[1]
    sampled = kind.make(build=False, prior=prior)
    draws = sampled.sample(3, condition, seed=4)
    given_prior = kind.make(build=False, prior=prior)
    density = given_prior.prior(condition)
    assert sampled.built and given_prior.built
    for lazy in (sampled, given_prior):
        built = kind.make(prior=prior)
        built.set_weights(lazy.get_weights())
        np.testing.assert_array_equal(
            built.sample(3, condition, seed=4), lazy.sample(3, condition, seed=4)
        )
    z = sampled.sample_latent(3, seed=5, condition=condition)
    built = kind.make(prior=prior)
    built.set_weights(given_prior.get_weights())
    np.testing.assert_allclose(density.log_prob(z), built.prior(condition).log_prob(z), rtol=1e-6)
    np.testing.assert_array_equal(draws, sampled.sample(3, condition, seed=4))


def test_an_unbuilt_model_builds_itself_to_encode_and_decode(kind):
    # They left the model unbuilt, its KL estimator unknown, and a VAE without a
    # likelihood failed to decode with an AttributeError.
    x, condition = kind.data(3)
    z = np.zeros((3, LATENT_DIM), "float32")
    for call in (lambda m: m.encode(x, condition), lambda m: m.decode(z, condition)):
        model = kind.make(build=False, posterior="full")
        call(model)
        assert model.built and model.kl_estimator == "analytic"
        built = kind.make(posterior="full")
        built.set_weights(model.get_weights())
        np.testing.assert_array_equal(
            built.reconstruct(x, condition), model.reconstruct(x, condition)
        )
    if kind.conditional:  # the first condition is checked as before the build
        with pytest.raises(ValueError, match=r"^Expected condition to hold real numbers"):
            kind.make(build=False).decode(z, np.full(condition.shape, "a"))
    # Symbolic inputs too (the model inside a functional model).
    model = kind.make(build=False)
    symbolic = None if condition is None else keras.Input(condition.shape[1:])
    assert model.decode(keras.Input((LATENT_DIM,)), symbolic).shape == (None, PIXELS)
    assert model.built
    if not kind.conditional:  # a VAE without a likelihood takes x's shape
        model = kind.make(build=False, likelihood=None)
        with pytest.raises(ValueError, match=r"^Expected a likelihood, or a built VAE, to decode"):
            model.decode(z)
        assert not model.built
        with pytest.raises(ValueError, match=r"^Expected x values in \[0, 1\]"):
            model.encode(255 * x)  # checked against the likelihood the build gives it
        model.encode(x)
        assert model.built and model.event_shape == (PIXELS,)


# -- Training on data ----------------------------------------------------------------


@pytest.mark.parametrize(
    "likelihood", ["bernoulli", pytest.param("gaussian", marks=pytest.mark.slow)]
)
def test_training_on_mnist_raises_the_elbo(kind, likelihood, mnist_test_images):
    images, labels = mnist_test_images
    if likelihood == "bernoulli":
        x = (np.random.default_rng(0).random(images.shape) < images).astype("float32")
        layer = IndependentBernoulli((28, 28, 1))
    else:
        x, layer = images, GaussianLikelihood((28, 28, 1), scale=0.1, trainable_scale=True)
    condition = np.eye(10, dtype="float32")[labels] if kind.conditional else None
    keras.utils.set_random_seed(0)
    latent_dim = 8
    encoder = mlp_encoder((28, 28, 1), hidden_units=(64,))
    decoder = mlp_decoder(latent_dim + (10 if kind.conditional else 0), (28, 28, 1), (64,))
    extra = {"prior": "learned", "condition_type": "label", "hidden_units": 64}
    model = kind.make(
        build=False,
        encoder=encoder,
        decoder=decoder,
        latent_dim=latent_dim,
        likelihood=layer,
        **(extra if kind.conditional else {}),
    )
    model.compile(optimizer=keras.optimizers.Adam(2e-3), jit_compile=False)
    split = 1536
    train = kind.inputs(x[:split], None if condition is None else condition[:split])
    test = kind.inputs(x[split:], None if condition is None else condition[split:])
    before = model.evaluate(*test, verbose=0, return_dict=True)["elbo"]
    history = model.fit(*train, epochs=2, batch_size=64, verbose=0).history
    after = model.evaluate(*test, verbose=0, return_dict=True)["elbo"]
    assert history["elbo"][-1] > history["elbo"][0]
    # Bernoulli: from ~-545 nats (a random decoder) to ~-215.
    assert after > before + (250 if likelihood == "bernoulli" else 0), (before, after)
    np.testing.assert_allclose(history["elbo"], -np.array(history["loss"]), rtol=1e-6)


# -- Mixed precision ------------------------------------------------------------------


def conv_preset(kind, seed=0):
    """The convolutional preset of `kind` (a top-half completion CVAE), built, and its data."""
    rng = np.random.default_rng(seed)
    images = (rng.random((64, 28, 28, 1)) < 0.3).astype("float32")
    if kind.conditional:
        condition, x = split_image(images, "top-half")
        model = build_cvae("conv", "top-half", latent_dim=4, seed=seed)
        model.build((None, *condition.shape[1:]))
        return model, x, condition
    model = build_vae("conv", (28, 28, 1), latent_dim=4, seed=seed)
    model.build((None, 28, 28, 1))
    return model, images, None


@pytest.mark.parametrize("architecture", ["tiny", pytest.param("conv", marks=pytest.mark.slow)])
def test_mixed_bfloat16_keeps_the_objective_in_float32(kind, architecture, mixed_bfloat16):
    def make():
        if architecture == "conv":
            return conv_preset(kind)
        return (kind.make(seed=0), *kind.data(64, seed=10))

    model, x, condition = make()
    assert model.decoder.compute_dtype == "bfloat16"
    for layer in (model.likelihood, model.posterior_layer, model.prior_layer):
        assert layer.compute_dtype == "float32", layer
    keras.mixed_precision.set_global_policy("float32")
    reference = make()[0]
    reference.set_weights(model.get_weights())  # the sampler state too: same noise
    terms = terms_of(model, kind, x, condition)
    assert all(value.dtype == np.float32 for value in terms.values())
    expected = terms_of(reference, kind, x, condition)
    # Same weights and noise; bfloat16 matmuls keep about 3 significant digits.
    np.testing.assert_allclose(
        terms["reconstruction"].mean(), expected["reconstruction"].mean(), rtol=2e-2
    )
    compile_eagerly(model, keras.optimizers.Adam(0.01))
    history = model.fit(*kind.inputs(x, condition), epochs=3, batch_size=32, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert history["elbo"][-1] > history["elbo"][0]


def test_mixed_float16_steps_match_float32(kind, mixed_float16):
    # Keras wraps the optimizer in a LossScaleOptimizer, which unscales the
    # gradients: the step must scale the loss, or the updates shrink 32768x.
    x, condition = kind.data(64, seed=11)
    model = kind.make(seed=0)
    keras.mixed_precision.set_global_policy("float32")
    reference = kind.make(seed=0)
    reference.set_weights(model.get_weights())
    update = sgd_update(model, kind, x, condition)
    expected = sgd_update(reference, kind, x, condition)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    for got, want in zip(update, expected, strict=True):
        # float16 networks: about 3 significant digits per step.
        np.testing.assert_allclose(got, want, rtol=0.1, atol=0.05 * np.abs(want).max())
