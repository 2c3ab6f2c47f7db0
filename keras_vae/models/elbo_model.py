"""Training and evaluation steps shared by the VAE family."""

import contextlib
import copy
import inspect
import os
import types
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_vae.data.images import array_batches
from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.validation import call_network, check_network_output, check_positive_int
from keras_vae.ops import random as portable_random
from keras_vae.utils.checks import check_seed

# Layers whose XLA-compiled training step was slower on CPU (benchmarks/RESULTS.md).
CONVOLUTIONS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)


def resolve_jit_compile(model, jit_compile="auto"):
    """The `jit_compile` to compile `model` with: `"auto"` made concrete on CPU.

    Keras's `"auto"` never uses XLA on a machine without an accelerator. For
    the VAE family on CPU, XLA made the fully connected MNIST VAE's training
    step about 1.25x faster and the convolutional one about 0.7x as fast, so
    on CPU `"auto"` becomes `True` unless the model holds a convolution or a
    layer whose `prefers_graph_mode` is true (a PixelCNN likelihood, whose
    masked convolutions ran slower under XLA too; a VampPrior over
    full-covariance posteriors, whose float64 mixture density made the
    MLP's step about 2x slower). With an accelerator, `"auto"` is left
    to Keras.

    Args:
        model: a Keras model (its layers are inspected, built or not).
        jit_compile: `"auto"`, `True` or `False`. Defaults to `"auto"`.

    Under a `tf.distribute` strategy with several replicas, `"auto"` is
    `False`, as in Keras.

    Returns:
        `True`, `False`, or `"auto"` when an accelerator is present.
    """
    if isinstance(jit_compile, bool):
        return jit_compile
    if jit_compile != "auto":
        raise ValueError(
            "Expected jit_compile to be 'auto', True or False. "
            f"Received: jit_compile={jit_compile!r}"
        )
    if model.distribute_strategy.num_replicas_in_sync > 1:
        return False  # as Keras's "auto" does; XLA steps failed to run on mirrored CPUs
    if any(device.device_type != "CPU" for device in tf.config.list_physical_devices()):
        return "auto"
    return not any(
        isinstance(layer, CONVOLUTIONS) or getattr(layer, "prefers_graph_mode", False)
        for layer in model._flatten_layers()
    )


def _all_arrays(data):
    leaves = [leaf for leaf in tf.nest.flatten(data) if leaf is not None]
    return bool(leaves) and all(isinstance(leaf, np.ndarray) for leaf in leaves)


def _floatx_arrays(data):
    """`data` with float arrays in `keras.backend.floatx()`, as Keras casts them."""
    floatx = keras.backend.floatx()
    return tf.nest.map_structure(
        lambda a: a.astype(floatx) if np.issubdtype(a.dtype, np.floating) else a, data
    )


def _plain_arrays(x, y, kwargs):
    """Whether `fit` gets arrays that `array_batches` can feed as Keras would.

    Left to Keras: a validation split, `steps_per_epoch`, class weights and
    `shuffle="batch"`.
    """
    return (
        _all_arrays(x)
        and (y is None or _all_arrays(y))
        and (kwargs.get("sample_weight") is None or _all_arrays(kwargs["sample_weight"]))
        and not kwargs.get("validation_split")
        and kwargs.get("steps_per_epoch") is None
        and kwargs.get("class_weight") is None
        and isinstance(kwargs.get("shuffle", True), bool)
    )


def likelihood_seed(seed):
    """The stateless seed `[seed, 1]` of the likelihood's draws (low 32 bits of `seed`)."""
    return tf.stack([portable_random._int32_scalar(seed, "seed"), 1])


def keras_keywords(method, args, kwargs):
    """`kwargs` with the positional `args` named as `keras.Model.<method>` names them.

    `fit(x, y, batch_size, epochs, ...)`, `evaluate(x, y, batch_size, ...)`
    and `predict(x, batch_size, ...)` take their arguments in Keras's order;
    the overrides that check them read them by name.
    """
    parameters = list(inspect.signature(getattr(keras.Model, method)).parameters)
    names = parameters[2 if method == "predict" else 3 :]  # after self, x (and y)
    if len(args) > len(names):
        raise TypeError(
            f"{method}() takes at most {len(names)} positional arguments after "
            f"{'x' if method == 'predict' else 'x and y'}. Received: {len(args)}"
        )
    for name, value in zip(names, args, strict=False):
        if name in kwargs:
            raise TypeError(f"{method}() got multiple values for argument '{name}'")
        kwargs[name] = value
    return kwargs


class CappedProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, with the step count capped at the epoch's steps.

    With `steps_per_execution=k`, Keras reports the last call of an epoch as
    ending at the next multiple of `k`: 469 MNIST batches under the default 8
    showed "472/469" and a negative time left. `fit`, `evaluate` and
    `predict` use this logger unless given a `ProgbarLogger` (or a
    `CallbackList`).
    """

    def _capped(self, batch):
        return batch if not self.target else min(batch, self.target - 1)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(self._capped(batch), logs)

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(self._capped(batch), logs)

    def on_predict_batch_end(self, batch, logs=None):
        super().on_predict_batch_end(self._capped(batch), logs)


def with_capped_progbar(kwargs):
    """`kwargs` of `fit`, `evaluate` or `predict` with a `CappedProgbarLogger` if Keras would
    add its own progress bar."""
    callbacks = kwargs.get("callbacks")
    if kwargs.get("verbose", "auto") == 0 or isinstance(callbacks, keras.callbacks.CallbackList):
        return kwargs
    callbacks = list(callbacks or [])
    if not any(isinstance(cb, keras.callbacks.ProgbarLogger) for cb in callbacks):
        callbacks.append(CappedProgbarLogger())
    return {**kwargs, "callbacks": callbacks}


class ELBOModel(keras.Model):
    """A Keras model trained on a per-example variational bound.

    Subclasses implement `compute_terms(x, y, training)`, returning a dict of
    per-example tensors with at least `loss`, `elbo`, `reconstruction` and
    `kl` (in nats). This class turns them into Keras's `train_step` and
    `test_step`, with one `keras.metrics.Mean` per term, reset every epoch.

    The networks' own penalties (`kernel_regularizer`, `add_loss`) are added
    to the loss that training minimises, but the logged `loss` is the
    per-example objective alone (Keras's built-in losses log their sum).
    Keras cannot tell which way `elbo`, `reconstruction` and `kl` should go:
    `ModelCheckpoint` and `EarlyStopping` on them need `mode="max"` (or
    `"min"` for `kl`).

    Args:
        beta: float. Weight of the KL term in the loss, held in a weight
            that the `beta` property reads and sets. Defaults to `1.0`.
        seed: int in [0, 2**32) or `None`. Seed of the generator that
            draws the latent samples during training. Defaults to `None`.
        **kwargs: Base `keras.Model` keyword arguments.
    """

    metric_names = ("loss", "elbo", "reconstruction", "kl")
    # Constructor arguments that are Keras objects, (de)serialized as such,
    # and the attributes that hold them.
    nested_keys = {
        "encoder": "encoder",
        "decoder": "decoder",
        "likelihood": "likelihood",
        "prior": "prior_layer",
        "posterior": "posterior_layer",
    }

    def __init__(self, beta=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = None if seed is None else check_seed("seed", seed)
        beta = check_positive_float("beta", beta, allow_zero=True)
        # The sampler's state is a weight, so `.keras` files keep it and a
        # reloaded model continues with the same noise it would have drawn.
        # It holds the seed's 32 bits as an int32: every seed keys its own draws.
        initial = np.random.randint(0, 2**31 - 1) if seed is None else self.seed
        self.sampler_state = self.add_weight(
            shape=(2,),
            dtype="int32",
            initializer=keras.initializers.Constant([portable_random.int32_bits(initial), 0]),
            trainable=False,
            # Under a tf.distribute strategy the replicas share one counter,
            # advanced once per step (see `next_seed`).
            aggregation="only_first_replica",
            name="sampler_state",
        )
        # Evaluation draws from a stream of its own, restarted by every
        # `evaluate` (and so every validation pass of `fit`) and every
        # `test_on_batch`: evaluating never moves the training noise, and the
        # same data evaluate to the same figures. A plain variable, not a
        # weight: nothing to save.
        self._evaluation_draws = tf.Variable(
            0,
            dtype=tf.int32,
            trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            name="evaluation_draws",
        )
        # A weight, not a Python float: a compiled step reads its value at
        # every call, so setting `beta` during `fit` (a KL warm-up, see
        # `keras_vae.callbacks.BetaScheduler`) takes effect at the next step.
        self._beta = self.add_weight(
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(beta),
            trainable=False,
            name="beta",
        )
        # Whether beta is 0, as the compiled steps hold it (see `kl_weight`).
        self._kl_free = beta == 0
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.metric_names}

    @property
    def beta(self):
        """float. The weight of the KL term in the loss.

        Setting it changes the loss from the next training step on, also
        inside `fit` (compiled steps read it as a variable; setting it to or
        from 0 makes the training step again, see `kl_weight`).
        """
        return float(self._beta.numpy())  # a float() of a MirroredVariable fails

    @beta.setter
    def beta(self, value):
        value = self._check_beta(check_positive_float("beta", value, allow_zero=True))
        self._beta.assign(value)
        self._set_step_constant("kl_free", value == 0)

    def _check_beta(self, beta):
        """`beta` if this model can train with it; subclasses raise otherwise."""
        return beta

    def _set_step_constant(self, name, value):
        """Sets `self._<name>`, a value the compiled steps hold as a constant.

        A change makes the steps again: `fit` calls `self.train_function` at
        every step, so a function made here is used from the next step on,
        also inside `fit` (a callback); `evaluate` makes its own when it
        finds none.
        """
        attribute = f"_{name}"
        changed = hasattr(self, attribute) and getattr(self, attribute) != value
        setattr(self, attribute, value)
        if changed:
            if self.train_function is not None:
                self.make_train_function(force=True)
            self.test_function = None

    def kl_weight(self):
        """`beta` for the objective's graph: a float32 scalar tensor, or `0.0`.

        While `beta` is 0 the steps are traced with the Python `0.0`, so
        that the KL gets no gradient at all (`keras_vae.ops.elbo.weighted_kl`):
        a KL-free epoch can leave posteriors where the prior has no
        float32 density, and a zero gradient sent back through that KL's
        graph met infinities there and came out NaN under XLA (a VampPrior
        over IAF posteriors).
        """
        if self._kl_free:
            return 0.0
        return tf.convert_to_tensor(self._beta)

    def _sync_kl_free(self):
        """Reads again whether `beta` is 0, for a `beta` assigned without its setter.

        `set_weights` (also `EarlyStopping(restore_best_weights=True)`'s) and
        loading assign the variable itself: the steps would go on with the
        KL weight of before.
        """
        self._set_step_constant("kl_free", self.beta == 0)

    def set_weights(self, weights):
        super().set_weights(weights)
        self._sync_kl_free()

    def load_own_variables(self, store):
        # Files saved before `beta` became a weight hold `sampler_state` only:
        # their `beta` comes from the config.
        if len(store.keys()) == 1:
            self.sampler_state.assign(store["0"])
            return
        super().load_own_variables(store)
        self._sync_kl_free()

    def compile(self, optimizer="adam", steps_per_execution="auto", jit_compile="auto", **kwargs):
        """Configures training; see `keras.Model.compile`.

        Two defaults differ from Keras's, both measured on a 2-core CPU (see
        `benchmarks/RESULTS.md`):

        - `steps_per_execution="auto"` is 8: each call into the compiled
          training function runs 8 batches, which removes most of the
          per-batch Python overhead. Callbacks and the progress bar then see
          every 8th batch (`TensorBoard(update_freq="batch")` writes one
          point per call, numbered by call; the progress bar's count stops
          at the epoch's batches, see `CappedProgbarLogger`); pass
          `steps_per_execution=1` for per-batch callbacks. A
          `steps_per_epoch`, `validation_steps` or `steps` that 8 does not
          divide runs with the largest number of batches
          per call that does (Keras would round the steps up to a multiple
          of 8). Under a `tf.distribute` strategy with several replicas
          it is 1: Keras's multi-step loop fails there
          (keras-team/keras#19246).
        - `jit_compile="auto"` compiles the step with XLA on CPU when the
          model has no convolution layer and no VampPrior over
          full-covariance posteriors (see `resolve_jit_compile`): about
          1.25x faster for the MNIST MLP, while convolutions ran slower under
          XLA. Keras's own `"auto"` never uses XLA on CPU. With
          `run_eagerly=True` it is `False`.

        Args:
            optimizer: str or `keras.optimizers.Optimizer`. Defaults to
                `"adam"`.
            steps_per_execution: `"auto"` or int. Batches per compiled
                call. Defaults to `"auto"`.
            jit_compile: `"auto"`, `True` or `False`. Defaults to `"auto"`.
            **kwargs: Other `keras.Model.compile` arguments. `loss`,
                `loss_weights`, `metrics` and `weighted_metrics` must be
                `None`: the model's objective and metrics are its own.
        """
        for name in ("loss", "loss_weights", "metrics", "weighted_metrics"):
            if kwargs.get(name) is not None:
                # `train_step` never reads them: Keras would drop them silently.
                raise ValueError(
                    f"Expected {name}=None: a keras_vae model trains on its own objective "
                    "and reports loss, elbo, reconstruction and kl. "
                    f"Received: {name}={kwargs[name]!r}"
                )
        # Kept as given: a model loaded under another strategy resolves "auto"
        # for it (8 steps or XLA fail under a multi-replica strategy).
        self._auto_compile_args = {
            key: "auto"
            for key, value in (
                ("steps_per_execution", steps_per_execution),
                ("jit_compile", jit_compile),
            )
            if isinstance(value, str) and value == "auto"
        }
        if isinstance(steps_per_execution, str) and steps_per_execution == "auto":
            steps_per_execution = 1 if self.distribute_strategy.num_replicas_in_sync > 1 else 8
        elif (
            isinstance(steps_per_execution, bool)
            or not isinstance(steps_per_execution, (int, np.integer))
            or steps_per_execution < 1
        ):
            # Keras takes any value here, and a negative one trains nothing, silently.
            raise ValueError(
                "Expected steps_per_execution to be 'auto' or a positive integer. "
                f"Received: steps_per_execution={steps_per_execution!r}"
            )
        resolved = resolve_jit_compile(self, jit_compile)
        if kwargs.get("run_eagerly") and jit_compile == "auto":
            # Nothing is compiled: Keras would warn that it turns XLA off.
            resolved = False
        super().compile(
            optimizer=optimizer,
            steps_per_execution=steps_per_execution,
            jit_compile=resolved,
            **kwargs,
        )

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config.update(getattr(self, "_auto_compile_args", {}))
        return config

    def compile_from_config(self, config):
        # Keras skips this step for models that override `compile`; without it
        # a loaded model would lose its optimizer and optimizer state.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
        if path is not None and path.lower().endswith((".h5", ".hdf5")):
            # Keras's legacy saver fails on them with an unrelated numpy error, after
            # writing part of the file.
            raise ValueError(
                "Expected a .keras path: the legacy HDF5 format cannot hold the model's own "
                f"variables (beta, the sampler's state). Received: filepath={path!r}"
            )
        return super().save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        kwargs = keras_keywords("fit", args, kwargs)
        if _plain_arrays(x, y, kwargs):
            # Keras's own array pipeline is autotuned: it stalls every epoch.
            data = keras.utils.pack_x_y_sample_weight(x, y, kwargs.pop("sample_weight", None))
            batch_size = kwargs.pop("batch_size", None) or 32
            shuffle = kwargs.pop("shuffle", True)
            x, y = array_batches(_floatx_arrays(data), batch_size, shuffle), None
            validation = kwargs.get("validation_data")
            if isinstance(validation, tuple) and _all_arrays(validation):
                validation_size = kwargs.pop("validation_batch_size", None) or batch_size
                validation = _floatx_arrays(keras.utils.pack_x_y_sample_weight(*validation))
                kwargs["validation_data"] = array_batches(validation, validation_size, False)
        if isinstance(x, (tf.data.Dataset, types.GeneratorType)):
            # A dataset shuffles itself (`keras_vae.data.make_dataset` does),
            # a generator yields its own order; Keras's default `shuffle=True`
            # would only warn that it is ignored.
            kwargs.setdefault("shuffle", False)
        optimizer = getattr(self, "optimizer", None)  # `None` until compiled: Keras says so
        if self.built and optimizer is not None and not optimizer.built:
            # Without a distribution strategy Keras leaves the optimizer to be
            # built inside the first traced train step, and TensorFlow traces
            # a function that creates variables a second time: building it
            # here halves the tracing at the start of every `fit`.
            with self.distribute_strategy.scope():
                optimizer.build(self.trainable_variables)
        steps = (kwargs.get("steps_per_epoch"), kwargs.get("validation_steps"))
        with self._executions_dividing(*steps):
            return super().fit(x, y, **with_capped_progbar(kwargs))

    def evaluate(self, x=None, y=None, *args, **kwargs):
        kwargs = keras_keywords("evaluate", args, kwargs)
        self._evaluation_draws.assign(0)
        with self._executions_dividing(kwargs.get("steps")):
            return super().evaluate(x, y, **with_capped_progbar(kwargs))

    def test_on_batch(self, *args, **kwargs):
        self._evaluation_draws.assign(0)
        return super().test_on_batch(*args, **kwargs)

    def predict(self, x, *args, **kwargs):
        kwargs = keras_keywords("predict", args, kwargs)
        with self._executions_dividing(kwargs.get("steps")):
            return super().predict(x, **with_capped_progbar(kwargs))

    @contextlib.contextmanager
    def _executions_dividing(self, *steps):
        """Runs with the `"auto"` steps per execution lowered to divide every given `steps`.

        Keras runs whole executions, so a `steps_per_epoch` (or `steps`,
        `validation_steps`) that is not a multiple of `steps_per_execution`
        is rounded up to one: 3 steps per epoch trained 8 batches. When
        `compile` chose the 8 itself, the run uses the largest number up to
        it that divides them all (5 for 10 steps). A number passed to
        `compile` is left to Keras.
        """
        steps = [int(s) for s in steps if isinstance(s, (int, np.integer)) and s > 0]
        chosen = self.steps_per_execution
        auto = "steps_per_execution" in getattr(self, "_auto_compile_args", {})
        if not auto or all(s % chosen == 0 for s in steps):
            yield
            return
        divisor = max(d for d in range(1, chosen + 1) if all(s % d == 0 for s in steps))
        self._set_steps_per_execution(divisor)
        try:
            yield
        finally:
            self._set_steps_per_execution(chosen)

    def _set_steps_per_execution(self, value):
        # The compiled functions hold it as a constant: they are made again.
        self.steps_per_execution = value
        self.train_function = self.test_function = self.predict_function = None

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_terms(self, x, y=None, training=False):
        """Per-example objective terms for a batch (`x`, `y` as Keras unpacks them)."""
        raise NotImplementedError

    def next_seed(self, training=True):
        """A fresh stateless seed (int32 `[2]`) of the training or the evaluation stream.

        With `training=False` (the test step's draws) the seed comes from a
        stream of its own, `[seed, -1 - k]` for the k-th draw since the last
        `evaluate` or `test_on_batch` began, and `sampler_state` stays as it
        is: the training draws `[seed, step]` are the same whether or not the
        model was evaluated between steps.

        Inside a step of a `tf.distribute` strategy with several replicas,
        each replica folds its id into the seed, so that replicas draw
        independent noise for their shards of the batch.
        """
        if training:
            state = tf.identity(self.sampler_state.value)
            self.sampler_state.assign_add(tf.constant([0, 1], tf.int32))
        else:
            count = tf.identity(self._evaluation_draws.value())
            self._evaluation_draws.assign_add(1)
            state = tf.stack([self.sampler_state.value[0], -1 - count])
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
            state = tf.random.experimental.stateless_fold_in(state, replica)
        return state

    def _decode_in_chunks(self, inputs, batch_size):
        """The likelihood for decoder `inputs` `[N, d]`, decoding `batch_size` rows at a time.

        The decoder's activations are what takes memory (the conv decoder's
        last hidden layer alone holds 100 KB per MNIST image), so samplers
        decode in chunks and build one distribution over the concatenated
        parameters: its draws do not depend on `batch_size`.
        """
        batch_size = check_positive_int("batch_size", batch_size)
        rows = int(inputs.shape[0])
        params = []
        for start in range(0, max(rows, 1), batch_size):
            chunk = inputs[start : start + batch_size]
            params.append(call_network(self.decoder, chunk))
            check_network_output("decoder", params[-1], "z", chunk)
        return self.likelihood(params[0] if len(params) == 1 else tf.concat(params, 0))

    def _update_metrics(self, terms, sample_weight):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name], sample_weight=sample_weight)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _weighted_mean(self, values, sample_weight):
        if sample_weight is None:
            return tf.reduce_mean(values)
        weights = tf.cast(tf.reshape(sample_weight, [-1]), values.dtype)
        total = tf.reduce_sum(weights)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Each replica holds part of the batch: dividing by the replicas'
            # mean weight, not its own, makes train_step's average of the
            # replicas the weighted mean of the whole batch.
            total = context.all_reduce(tf.distribute.ReduceOp.MEAN, total)
        # A batch of zero weights (shuffled, mostly-masked data) contributes nothing, not NaN.
        return tf.math.divide_no_nan(tf.reduce_sum(values * weights), total)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            terms = self.compute_terms(x, y, training=True)
            loss = self._weighted_mean(terms["loss"], sample_weight)
            if self.losses:
                loss += tf.add_n(self.losses)
            # A tf.distribute strategy sums the replicas' gradients; each
            # replica's loss is a mean over its shard (as Keras scales it).
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            # Under `mixed_float16` the optimizer is a `LossScaleOptimizer`,
            # which unscales the gradients it applies: scale the loss to match.
            scaled_loss = self.optimizer.scale_loss(loss / replicas if replicas > 1 else loss)
        # While beta is 0 the prior's weights (pseudo-inputs, a mixture's
        # means) have no path to the loss: their gradient is 0, as the KL's
        # zero weight gave before, and Keras does not warn of it.
        if not self.trainable_variables:
            # Frozen (`trainable = False`): Keras's own step warns and steps nothing.
            warnings.warn("The model does not have any trainable weights.", stacklevel=2)
            return self._update_metrics(terms, sample_weight)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        if self._kl_free:
            gradients = [
                tf.zeros(v.shape, v.dtype) if g is None else g
                for g, v in zip(gradients, self.trainable_variables, strict=True)
            ]
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=False))
        return self._update_metrics(terms, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        terms = self.compute_terms(x, y, training=False)
        return self._update_metrics(terms, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update({"beta": self.beta, "seed": self.seed})
        for key, attribute in self.nested_keys.items():
            config[key] = keras.saving.serialize_keras_object(getattr(self, attribute))
        return config

    @classmethod
    def from_config(cls, config):
        # Deserialization consumes nested dicts: work on a copy.
        config = copy.deepcopy(config)
        seed = config.get("seed")
        if isinstance(seed, int) and not 0 <= seed < 2**32:
            # Saved before seeds were checked: the loaded sampler state draws, not the seed.
            config["seed"] = seed % 2**32
        for key in cls.nested_keys:
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
