import warnings

import keras
import numpy as np
import pytest
import tensorflow_probability as tfp

from keras_vae.callbacks import BetaScheduler, linear_kl_warmup
from keras_vae.models.presets import build_cvae, build_vae

tfd = tfp.distributions


def test_linear_kl_warmup_rises_to_beta_without_a_kl_free_epoch():
    schedule = linear_kl_warmup(4, beta=2.0)
    assert [schedule(epoch, 123.0) for epoch in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert [linear_kl_warmup(1, beta=0.3)(epoch, 0.0) for epoch in range(2)] == [0.3, 0.3]


def test_each_epoch_trains_on_the_scheduled_beta(binary_images):
    vae = build_vae("mlp", (28, 28, 1), latent_dim=4, seed=0)
    vae.compile(optimizer="adam")
    history = vae.fit(
        binary_images[:512],
        epochs=4,
        batch_size=64,
        verbose=0,
        callbacks=[BetaScheduler(linear_kl_warmup(3, beta=0.8))],
    ).history
    assert history["beta"] == pytest.approx([0.8 / 3, 1.6 / 3, 0.8, 0.8])
    # The epoch's mean loss is beta * mean KL - mean reconstruction only if
    # the compiled step used the epoch's beta.
    beta, kl, rec = (np.array(history[key]) for key in ("beta", "kl", "reconstruction"))
    expected = beta * kl - rec
    np.testing.assert_allclose(history["loss"], expected, rtol=1e-5)
    assert history["kl"][0] > 1.0  # a KL term worth weighting
    assert vae.beta == pytest.approx(0.8)


def test_scheduler_sets_a_conditional_vae(binary_images):
    cvae = build_cvae("mlp", "label", latent_dim=2, seed=0)
    cvae.compile(optimizer="adam")
    conditions = np.eye(10, dtype="float32")[np.arange(256) % 10]
    history = cvae.fit(
        conditions,
        binary_images[:256],
        epochs=2,
        batch_size=64,
        verbose=0,
        callbacks=[BetaScheduler(lambda epoch, beta: 3.0 * epoch)],
    ).history
    assert history["beta"] == [0.0, 3.0]
    expected = [
        3.0 * e * kl - rec
        for e, (kl, rec) in enumerate(zip(history["kl"], history["reconstruction"], strict=True))
    ]
    np.testing.assert_allclose(history["loss"], expected, rtol=1e-5)


def test_bad_schedules_and_models_are_refused_in_one_line():
    with pytest.raises(
        ValueError, match=r"Expected schedule to be a function .* Received: schedule=0\.5"
    ):
        BetaScheduler(0.5)
    with pytest.raises(
        ValueError,
        match=r"Expected warmup_epochs to be a positive integer\. Received: warmup_epochs=0",
    ):
        linear_kl_warmup(0)
    vae = build_vae("mlp", (28, 28, 1), latent_dim=2)
    vae.compile(optimizer="adam")
    x = np.zeros((8, 28, 28, 1), "float32")
    with pytest.raises(
        ValueError, match=r"Expected beta to be a non-negative float\. Received: beta=-1"
    ):
        vae.fit(x, verbose=0, callbacks=[BetaScheduler(lambda epoch, beta: -1)])
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    plain.compile(optimizer="sgd", loss="mse")
    with pytest.raises(
        ValueError, match=r"Expected a keras_vae VAE or ConditionalVAE.*Received: model=Sequential"
    ):
        plain.fit(
            np.zeros((4, 2)),
            np.zeros((4, 1)),
            verbose=0,
            callbacks=[BetaScheduler(lambda e, b: 1.0)],
        )


def test_checkpoint_on_val_elbo_keeps_the_best_epoch_and_its_beta(binary_images, tmp_path):
    # The recipe of BetaScheduler's docstring and the README: listed after the
    # scheduler, CSVLogger logs beta and ModelCheckpoint (val_elbo, mode="max")
    # keeps the weights, beta included, of the epoch with the best val_elbo.
    vae = build_vae("mlp", (28, 28, 1), latent_dim=4, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    snapshots = []
    history = vae.fit(
        binary_images[:256],
        epochs=4,
        batch_size=64,
        validation_data=(binary_images[256:384],),
        verbose=0,
        callbacks=[
            BetaScheduler(linear_kl_warmup(2)),
            keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
            keras.callbacks.ModelCheckpoint(
                str(tmp_path / "best.weights.h5"),
                monitor="val_elbo",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            ),
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: snapshots.append(vae.get_weights())
            ),
        ],
    ).history
    log = np.genfromtxt(tmp_path / "log.csv", delimiter=",", names=True)
    np.testing.assert_allclose(log["beta"], [0.5, 1.0, 1.0, 1.0])
    best = int(np.argmax(history["val_elbo"]))
    restored = build_vae("mlp", (28, 28, 1), latent_dim=4)
    restored.build((None, 28, 28, 1))
    restored.load_weights(tmp_path / "best.weights.h5")
    assert restored.beta == history["beta"][best]
    for got, want in zip(restored.get_weights(), snapshots[best], strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="mode='max'"):  # Keras refuses mode="auto" for it
        vae.fit(
            binary_images[:64],
            validation_data=(binary_images[64:128],),
            verbose=0,
            callbacks=[keras.callbacks.ModelCheckpoint(str(tmp_path / "x.keras"), "val_elbo")],
        )


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_a_kl_free_epoch_trains_on_the_reconstruction_when_the_kl_is_infinite(
    binary_images, monkeypatch, jit_compile
):
    # An epoch with beta = 0 (a schedule's; `linear_kl_warmup` has none) can
    # leave posteriors where the prior has no float32 density: the KL is
    # +inf, and neither the loss (0 * inf) nor the gradients may become NaN.
    # This prior is TFP's mixture of components out of float32's reach, whose
    # gradient is NaN everywhere: while beta is 0 no gradient may pass
    # through the KL.
    vae = build_vae("mlp", (28, 28, 1), latent_dim=2, prior="mog", prior_components=2, seed=0)
    locs = np.array([[1e30, 1e30], [-1e30, -1e30]], "float32")
    far = tfd.MixtureSameFamily(
        tfd.Categorical(logits=[0.0, 0.0]), tfd.MultivariateNormalDiag(locs, np.ones_like(locs))
    )
    monkeypatch.setattr(vae.prior_layer, "prior", lambda condition=None: far)
    vae.compile(optimizer="adam", jit_compile=jit_compile)
    # The prior's weights get a zero gradient, without Keras's warning that
    # they have none.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Gradients do not exist")
        history = vae.fit(
            binary_images[:128],
            epochs=1,
            batch_size=64,
            verbose=0,
            callbacks=[BetaScheduler(lambda epoch, beta: 0.0)],
        ).history
    assert history["beta"] == [0.0]
    assert np.isposinf(history["kl"][0])
    np.testing.assert_allclose(history["loss"], -np.array(history["reconstruction"]), rtol=1e-6)
    assert all(np.all(np.isfinite(w)) for w in vae.get_weights())
