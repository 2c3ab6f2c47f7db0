"""The VAE family with the rest of Keras: callbacks, data inputs and compile options."""

import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_models import KINDS

VAE_KIND = KINDS["vae"]


def deterministic_vae():
    """A tiny VAE whose posterior scale is ~1e-5: its ELBO does not depend on the noise."""
    return VAE_KIND.make_deterministic(seed=0)


def binary_rows(n, pixels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 2, (n, pixels)).astype("float32")


def mean_elbo(vae, x):
    return float(np.mean(vae.compute_terms(tf.constant(x))["elbo"].numpy()))


@pytest.mark.parametrize("steps", [3, 10, 16])
def test_steps_per_epoch_and_steps_are_honoured_with_the_auto_steps_per_execution(steps):
    # compile's "auto" runs 8 batches per call; Keras rounds a number of steps
    # up to a multiple of it (3 steps trained 8, predicted 8 batches).
    vae = deterministic_vae()
    vae.compile(optimizer="sgd", jit_compile=False)
    x = binary_rows(40)
    repeated = tf.data.Dataset.from_tensor_slices(x).batch(4).repeat()
    history = vae.fit(
        repeated,
        epochs=2,
        steps_per_epoch=steps,
        validation_data=repeated,
        validation_steps=steps,
        verbose=0,
    ).history
    assert int(vae.optimizer.iterations.numpy()) == 2 * steps
    assert vae.steps_per_execution == 8  # only those runs used fewer
    seen = np.resize(x, (4 * steps, 3))  # the first `steps` batches, cycling over x
    assert history["val_elbo"][-1] == pytest.approx(mean_elbo(vae, seen), rel=1e-5)
    logs = vae.evaluate(repeated, steps=steps, verbose=0, return_dict=True)
    assert logs["elbo"] == pytest.approx(mean_elbo(vae, seen), rel=1e-5)
    np.testing.assert_allclose(vae.predict(repeated, steps=steps, verbose=0), vae(seen), atol=1e-6)


def progress_counts(text):
    """The "n/total" step counts a Keras progress bar printed."""
    return re.findall(r"(\d+)/(\d+) ", re.sub(r"\x1b\[[0-9;]*m", "", text))


@pytest.mark.parametrize("own_progbar", [False, True])
def test_progress_bar_counts_stop_at_the_epoch_steps(capsys, own_progbar):
    # 11 batches under 8 steps per execution: Keras showed "16/11" after the
    # second call, with a negative time left.
    vae = deterministic_vae()
    vae.compile(optimizer="sgd", jit_compile=False)
    x = binary_rows(42)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
    callbacks = [keras.callbacks.ProgbarLogger()] if own_progbar else None
    vae.fit(dataset, epochs=2, verbose=1, callbacks=callbacks)
    vae.evaluate(dataset, verbose=1, callbacks=callbacks)
    vae.predict(dataset, verbose=1, callbacks=callbacks)
    counts = progress_counts(capsys.readouterr().out)
    assert ("11", "11") in counts
    overshoot = [count for count in counts if int(count[0]) > int(count[1])]
    # A ProgbarLogger of the caller's own is used as given: Keras's, which
    # overshoots (if a Keras release stops doing so, CappedProgbarLogger can go).
    assert bool(overshoot) == own_progbar, counts


def without_rank(tensor):
    return tf.py_function(lambda t: t, [tensor], tf.float32)  # as a Python augmentation would


def test_a_dataset_of_unknown_rank_fails_in_one_line(kind):
    x, condition = kind.data(8)
    model = kind.make()
    if kind.conditional:
        pairs = tf.data.Dataset.from_tensor_slices((condition, x)).batch(4)
        dataset = pairs.map(lambda c, t: (c, without_rank(t)))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(4).map(without_rank)
    model.compile(optimizer="sgd")
    for run in (model.fit, model.evaluate, model.predict):
        with pytest.raises(ValueError, match=r"known number of dimensions.*tf\.ensure_shape\)\."):
            run(dataset, verbose=0)


def test_a_dataset_whose_rank_is_restored_trains_on_the_same_elbo():
    vae = deterministic_vae()
    vae.compile(optimizer="sgd", jit_compile=False)
    x = binary_rows(8)
    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4).map(without_rank)
    restored = dataset.map(lambda t: tf.ensure_shape(t, [None, 3]))
    logs = vae.evaluate(restored, verbose=0, return_dict=True)
    assert logs["elbo"] == pytest.approx(mean_elbo(vae, x), rel=1e-5)


def test_run_eagerly_trains_without_warning_about_the_auto_jit_compile():
    vae = deterministic_vae()
    x = binary_rows(16)
    with warnings.catch_warnings():
        # Keras warned "If run_eagerly is True, then jit_compile cannot also be True".
        warnings.simplefilter("error")
        vae.compile(optimizer="sgd", run_eagerly=True)
        logs = vae.fit(x, batch_size=8, epochs=1, verbose=0, shuffle=False).history
    assert (vae.run_eagerly, vae.jit_compile) == (True, False)
    assert np.isfinite(logs["elbo"][0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": "mse"},
        {"metrics": ["mae"]},
        {"weighted_metrics": ["mae"]},
        {"loss_weights": [1.0]},
    ],
)
def test_compile_refuses_losses_and_metrics_it_would_ignore(kwargs):
    # They were accepted, and fit logged the ELBO terms alone.
    (name,), vae = tuple(kwargs), deterministic_vae()
    with pytest.raises(ValueError, match=rf"^Expected {name}=None: .* Received: {name}="):
        vae.compile(optimizer="sgd", **kwargs)


@pytest.mark.parametrize("value", [0, -2, 2.0, "x", True, None])
def test_compile_refuses_steps_per_execution_that_is_not_a_positive_integer(value):
    # Keras took them: -2 then trained nothing, silently; 0 and "x" failed inside fit.
    vae = deterministic_vae()
    with pytest.raises(ValueError) as error:
        vae.compile(optimizer="sgd", steps_per_execution=value)
    assert str(error.value) == (
        "Expected steps_per_execution to be 'auto' or a positive integer. "
        f"Received: steps_per_execution={value!r}"
    )
    vae.compile(optimizer="sgd", steps_per_execution=np.int64(3))
    assert vae.steps_per_execution == 3


def test_fit_evaluate_and_predict_take_keras_positional_arguments(kind):
    # keras.Model.fit(x, y, batch_size, epochs, verbose, ...): these raised TypeError.
    x, condition = kind.data(20)
    model, data = kind.make(), kind.inputs(x, condition)
    model.compile(optimizer="sgd", jit_compile=False)
    # batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle
    history = model.fit(*data, 8, 2, 0, None, 0.0, None, False)
    assert history.epoch == [0, 1]
    assert int(model.optimizer.iterations.numpy()) == 2 * 3  # batches of 8, 8 and 4
    logs = model.evaluate(*data, 8, 0, None, None, None, True)  # ..., return_dict
    assert sorted(logs) == ["elbo", "kl", "loss", "reconstruction"]
    assert model.predict(data[0], 8, 0).shape == (20, 3)
    with pytest.raises(TypeError, match="multiple values for argument 'batch_size'"):
        model.fit(*data, 8, batch_size=8)


PRESETS = [
    ("vae", "mlp", None),
    ("vae", "conv", None),
    ("cvae", "mlp", "label"),
    ("cvae", "conv", "top-half"),
]


def built_preset(model, architecture, condition):
    from keras_vae.data import make_conditional_pairs
    from keras_vae.models.presets import build_cvae, build_vae

    if model == "vae":
        vae = build_vae(architecture, (28, 28, 1), latent_dim=4)
        vae.build((None, 28, 28, 1))
        return vae
    cvae = build_cvae(architecture, condition, latent_dim=4)
    conditions, _ = make_conditional_pairs(np.zeros((2, 28, 28), "uint8"), [0, 1], condition)
    cvae.build((None,) + conditions.shape[1:])
    return cvae


@pytest.mark.parametrize(("model", "architecture", "condition"), PRESETS)
def test_every_weight_of_a_preset_has_its_own_path(model, architecture, condition):
    # TensorBoard(histogram_freq=1) tags each histogram with the weight's
    # path: the encoder's and the decoder's `dense_0/kernel` shared one tag.
    paths = [weight.path for weight in built_preset(model, architecture, condition).weights]
    assert len(set(paths)) == len(paths), sorted(p for p in paths if paths.count(p) > 1)


def test_tensorboard_writes_one_histogram_per_weight(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    vae = built_preset("vae", "mlp", None)
    vae.compile(optimizer="sgd", jit_compile=False)
    x = binary_rows(8, pixels=28 * 28).reshape(8, 28, 28, 1)
    tensorboard = keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)
    vae.fit(x, batch_size=8, epochs=1, verbose=0, callbacks=[tensorboard])
    events = event_accumulator.EventAccumulator(str(tmp_path / "train"), {"tensors": 0})
    events.Reload()
    histograms = [tag for tag in events.Tags()["tensors"] if tag.endswith("/histogram")]
    assert len(histograms) == len(vae.weights) - 2  # all but sampler_state and beta (ints)
    for tag in histograms:
        assert len(events.Tensors(tag)) == 1, tag  # one event: epoch 0, one weight
