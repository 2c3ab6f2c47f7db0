"""Trains under a 2-replica MirroredStrategy; run by test_distributed.py in its own process.

Two logical CPU devices must be configured before TensorFlow starts, which a
pytest process that already ran TensorFlow cannot do. Prints one JSON line.
With `--compare-with-one-device`, it also trains the same models on one
device (for the slow tests).
"""

import gc
import json
import os
import sys
import tempfile

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_vae  # noqa: E402
from keras_vae.evaluation import log_likelihood  # noqa: E402
from keras_vae.export import export_model  # noqa: E402
from keras_vae.layers import IndependentBernoulli  # noqa: E402
from keras_vae.models.presets import build_cvae, build_vae  # noqa: E402
from keras_vae.networks import mlp_encoder  # noqa: E402

# The imports' objects out of garbage collection, as the `keras-vae` executable does.
gc.freeze()

SHAPE = (4, 4, 1)


class ConstantLogits(keras.layers.Layer):
    """A decoder that ignores z: with it the loss, and its gradient, have no noise."""

    def build(self, input_shape):
        self.logits = self.add_weight(shape=SHAPE, initializer="random_normal")

    def call(self, z):
        return tf.zeros_like(z[:, :1, None, None]) + self.logits


def noiseless_vae():
    keras.utils.set_random_seed(0)
    return keras_vae.VAE(
        encoder=mlp_encoder(SHAPE, hidden_units=(8,)),
        decoder=keras.Sequential([keras.Input((3,)), ConstantLogits()]),
        latent_dim=3,
        likelihood=IndependentBernoulli(SHAPE),
    )


def error_of(function):
    """The class name of what `function()` raises (printed to stderr), or `None`."""
    try:
        function()
    except Exception as error:  # noqa: BLE001 -- reported to the test
        print(error, file=sys.stderr)
        return type(error).__name__
    return None


rng = np.random.default_rng(0)
x = (rng.random((16, *SHAPE)) < 0.3).astype("float32")
results = {}

# A step split over two replicas.
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    mirrored = noiseless_vae()
    mirrored.compile(optimizer=keras.optimizers.SGD(0.5))
results["steps_per_execution"] = mirrored.steps_per_execution
results["jit_compile"] = mirrored.jit_compile
state_before = mirrored.sampler_state.numpy().tolist()
mirrored.fit(x, batch_size=16, epochs=1, verbose=0, shuffle=False)
results["sampler_steps"] = mirrored.sampler_state.numpy()[1] - state_before[1]

if "--compare-with-one-device" in sys.argv[1:]:  # for the slow tests
    # The same SGD step on one device.
    single = noiseless_vae()
    single.compile(optimizer=keras.optimizers.SGD(0.5))
    single.fit(x, batch_size=16, epochs=1, verbose=0, shuffle=False)
    results["max_weight_difference"] = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(single.get_weights(), mirrored.get_weights(), strict=True)
    )
    # The same with sample weights whose sums differ between the replicas' halves:
    # the step is that of the weighted mean over the whole batch.
    weights = np.array([0.0] * 6 + [1.0] * 2 + [3.0] * 4 + [1.0] * 4, "float32")
    weighted = {}
    for name, scope in (("single", None), ("mirrored", strategy)):
        if scope is None:
            weighted[name] = noiseless_vae()
        else:
            with scope.scope():
                weighted[name] = noiseless_vae()
        weighted[name].compile(optimizer=keras.optimizers.SGD(0.5))
        weighted[name].fit(x, sample_weight=weights, batch_size=16, verbose=0, shuffle=False)
    results["max_weighted_difference"] = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(
            weighted["single"].get_weights(), weighted["mirrored"].get_weights(), strict=True
        )
    )
    results["elbo"] = [
        model.evaluate(x, batch_size=16, verbose=0, return_dict=True)["elbo"]
        for model in (single, mirrored)
    ]

# The replicas' seeds within one step (after the comparisons: it moves the sampler's state).
seeds = strategy.run(mirrored.next_seed)
results["replica_seeds"] = [s.numpy().tolist() for s in strategy.experimental_local_results(seeds)]

images = (rng.random((256, 28, 28, 1)) < 0.3).astype("float32")
labels = keras.utils.to_categorical(rng.integers(0, 10, 256), 10)


def train(name, model, *data):
    """Records the loss of each of 3 epochs of `fit` as `results[name]`."""
    results[name] = model.fit(*data, batch_size=64, epochs=3, verbose=0).history["loss"]


# Unbuilt presets of the strategy, with their defaults, still train there: a VAE
# built by log_likelihood, a CVAE built by a call outside the strategy's scope.
with strategy.scope():
    vae = build_vae("mlp", (28, 28, 1), 4)
    vae.compile()
    cvae = build_cvae("mlp", "label", latent_dim=4, prior="learned")
    cvae.compile()
log_likelihood(vae, images[:8], num_samples=2, verbose=0)
results["fit_after_log_likelihood_error"] = error_of(lambda: train("vae_loss", vae, images))
cvae(labels[:2])
results["fit_after_call_error"] = error_of(lambda: train("cvae_loss", cvae, labels, images))
# A KL warm-up sets the mirrored beta weight from a callback between epochs.
results["scheduled_history"] = vae.fit(
    images,
    batch_size=64,
    epochs=2,
    verbose=0,
    callbacks=[keras_vae.callbacks.BetaScheduler(lambda epoch, beta: [0.0, 2.0][epoch])],
).history

# A model compiled with the defaults on one device (8 steps, XLA for an MLP),
# saved, then loaded in a strategy's scope trains there.
# Its optimizer is built, as by a `fit`, so the file holds the optimizer's
# variables too (a `fit` here would compile an XLA step for nothing).
single = build_vae("mlp", (28, 28, 1), 4)
single.compile()
single(images[:2])
single.optimizer.build(single.trainable_variables)
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "single.keras")
    single.save(path)
    with strategy.scope():
        loaded = keras.saving.load_model(path)
results["loaded_defaults"] = [loaded.steps_per_execution, loaded.jit_compile]
results["loaded_fit_error"] = error_of(
    lambda: loaded.fit(images, batch_size=64, epochs=1, verbose=0)
)
# A model of the strategy exported inside its scope, as in a training script.
with tempfile.TemporaryDirectory() as folder, strategy.scope():
    try:
        report = export_model(vae, saved_model_base=os.path.join(folder, "vae"))
        results["export_in_scope"] = report["ok"]
    except Exception as error:  # noqa: BLE001 -- reported to the test
        results["export_in_scope"] = type(error).__name__
        print(error, file=sys.stderr)

print(json.dumps(results, default=int))
