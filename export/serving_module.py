"""The `tf.Module` that the SavedModel and TFLite exports are made from."""

import contextlib

import tensorflow as tf
from tensorflow.python.saved_model import save_context

from keras_vae.export.validation import check_batch_sizes, check_exportable

MAX_NUM_SAMPLES = 4096
FUNCTIONS = ("decode", "sample", "encode", "reconstruct", "sample_rows")
SEED_DTYPE = tf.int32


class ServingModule(tf.Module):
    """The serving functions of a VAE or ConditionalVAE, with fixed signatures.

    Every function returns a dict, so output names are part of the signature.
    With `latent_dim` L, data shape `S` (`model.event_shape` of a VAE,
    `model.target_shape` of a CVAE) and condition shape `C`:

    - `decode(z[, condition])`: `z` float32 `[B, L]` (and `condition` float32
      `[B, *C]`) -> `{"image": float32 [B, *S]}`, the likelihood mean.
    - `sample(seed, num_samples[, condition])`: `seed` and `num_samples` int32
      scalars (checked at run time, like the float inputs) ->
      `{"image": [N, *S], "z": [N, L]}` with `N = num_samples`, or
      `N = B * num_samples` for a CVAE, where row `b * num_samples + k` is
      draw `k` for condition `b`. z comes from the portable RNG through
      `model.sample_latent`, so it equals `model.sample(num_samples, seed)`'s
      (or `model.generate(condition, num_samples, seed)`'s) latents. Fails
      at run time unless `1 <= num_samples <= MAX_NUM_SAMPLES` and, for a
      CVAE, `B * num_samples <= MAX_NUM_SAMPLES`: the cap bounds the rows a
      request allocates, not only the draws per condition.
    - `sample_rows(seed[, condition])`: one draw per row, for TF Serving's
      row format (`"instances"`, which gives every input a batch axis):
      `seed` int32 `[N]` (and `condition` `[N, *C]`) -> `{"image": [N, *S],
      "z": [N, L]}`, row `n` being `sample(seed[n], 1[, condition[n:n+1]])`.
      Fails at run time for more than `MAX_NUM_SAMPLES` rows. SavedModel
      only (the TFLite and ONNX exports leave it out).
    - `encode(x)` / `encode(target, condition)`: -> the posterior layer's
      `export_outputs`, each with batch `B`: `loc` `[B, L]` always (the
      posterior's point: its mean, or for an IAF the flow's image of its
      base mean), `scale` `[B, L]` for a diagonal Gaussian, `scale_tril`
      `[B, L, L]` for a full-covariance one.
    - `reconstruct(x)` / `reconstruct(target, condition)`: -> `{"image"}`,
      the likelihood mean at the posterior's point.

    Only the model's contract is used (`decode`, `encode`, `sample_latent`,
    the posterior layer's `point` and `export_outputs`), so every prior and
    posterior exports the same way; a model's `conditional` and `data_name`
    decide whether the functions take a condition and how the data input is
    named.

    The model is held in the functions' closures, not as an attribute, and
    the module tracks the plain `tf.Variable`s the functions read. Tracking
    Keras 3's variable wrappers instead (through the model) leaves the TFLite
    converter unable to freeze them: the `.tflite` keeps uninitialised
    resource variables and returns NaN. Holding only those variables also
    keeps the optimizer's slots out of the SavedModel. Float inputs are
    checked at run time against their declared shapes (`tf.ensure_shape`),
    since neither TF Serving nor a loaded signature does it first, and to be
    finite (and `x` or `target` in [0, 1] for a binary likelihood): with
    oneDNN, TensorFlow's default on x86 CPUs, the fused dense layers turned
    NaN or infinite inputs into normal-looking images.

    TFLite drops these run-time checks. What stays in the `.tflite` file:
    `decode` reshapes its image to `z`'s number of rows, so a `z` with
    another number of values per row (which TFLite's fully connected layer
    would read as other rows) fails to run; `sample` clamps `num_samples`
    to `[0, MAX_NUM_SAMPLES]` and, given `B` conditions, to
    `MAX_NUM_SAMPLES // B`, so a raw signature runner returns at most
    `MAX_NUM_SAMPLES` rows; images are the likelihood's `portable_mean`.

    An empty batch (0 rows of `z`, `x` or conditions) gets empty outputs of
    the declared shapes. With `empty_batches=True`, the networks then run on
    one row of zeros whose output is dropped (a `tf.cond`): with oneDNN,
    TF 2.21's convolutions give 0 rows a wrong shape, so a convolutional
    decoder answered `[0, 28, 28, 32]` and an encoder failed.

    Args:
        model: a built `VAE` or `ConditionalVAE`.
        functions: sequence of str. The functions to build, among `decode`,
            `sample`, `encode` and `reconstruct`. Defaults to all four.
        empty_batches: bool. Whether to route empty batches around the
            networks as above. Defaults to `True`; the TFLite export turns it
            off (LiteRT's `Sampler` answers empty batches itself, and the
            flatbuffer stays free of control flow).
        batch_sizes: sequence of positive ints. For each `B`, `decode_b{B}`
            and `sample_b{B}` besides the functions above (when `decode` and
            `sample` are among them), with every shape fixed: `decode_b{B}`
            takes `z` `[B, L]` (and `condition` `[B, *C]`); `sample_b{B}`
            takes `seed` (and one `condition` `[1, *C]`) and returns what
            `sample` does with `num_samples = B`. With no shape left to
            compute at run time, a converter folds the output shapes of
            transposed convolutions into constants (the TFLite export's
            `batch_sizes`). Defaults to `()`.

    Raises:
        ValueError: for a model that is not a built, exportable keras-vae
            model (see `check_exportable`), or an unknown function name.

    Example:

    >>> module = ServingModule(vae)  # doctest: +SKIP
    >>> tf.saved_model.save(module, path, signatures=module.signatures())  # doctest: +SKIP
    """

    def __init__(self, model, functions=FUNCTIONS, empty_batches=True, batch_sizes=()):
        check_exportable(model, allow_untrained=True)
        _check_names("functions", functions, FUNCTIONS)
        batch_sizes = check_batch_sizes(batch_sizes)
        super().__init__(name="keras_vae_serving")
        self.conditional = bool(model.conditional)
        self.latent_dim = int(model.latent_dim)
        self.condition_shape = tuple(model.condition_shape) if self.conditional else None
        self.data_shape = tuple(model.event_shape)
        rows = _rows_or_empty if empty_batches else _rows
        available = _functions(model, self.latent_dim, self.data_shape, self.condition_shape, rows)
        functions = {name: available[name] for name in functions}
        for batch in batch_sizes:
            fixed = _functions(
                model, self.latent_dim, self.data_shape, self.condition_shape, _rows, batch
            )
            for name in ("decode", "sample"):
                if name in functions:
                    functions[static_name(name, batch)] = fixed[name]
        self.batch_sizes = batch_sizes
        for name, function in functions.items():
            setattr(self, name, function)
        self.function_names = tuple(functions)
        variables = {}
        with saving_traces():
            for function in functions.values():
                for variable in function.get_concrete_function().variables:
                    variables[id(variable)] = variable
        self.model_variables = list(variables.values())

    def signatures(
        self, names=("serving_default", "sample", "encode", "reconstruct", "sample_rows")
    ):
        """Concrete functions keyed by signature name; `serving_default` is `decode`."""
        _check_names("names", names, ("serving_default", *self.function_names))
        functions = {}
        with saving_traces():
            for name in names:
                function = getattr(self, "decode" if name == "serving_default" else name)
                functions[name] = function.get_concrete_function()
        return functions


@contextlib.contextmanager
def saving_traces():
    """A context in which `tf.function`s trace as `tf.saved_model.save` traces them.

    A function's traces are keyed by, among others, the variable policy of
    the save in progress (`None` outside one). So `tf.saved_model.save`
    traced every serving function again, though `ServingModule` had traced
    it to find its variables, and the SavedModel held both graphs, the
    signatures' and the object graph's: for an MLP VAE with a VampPrior and
    an IAF, 1.29 MB of `saved_model.pb` instead of 0.69 MB, a save about
    1 s and a load 0.5 s longer, the same outputs. Traced in this context
    (with the default `tf.saved_model.SaveOptions`, which the exports save
    with), the signatures are the functions the save lists. Inside a save
    already, it changes nothing.
    """
    if save_context.in_save_context():
        yield
        return
    with save_context.save_context(tf.saved_model.SaveOptions()):
        yield


def static_name(function, batch):
    """The name of `function`'s signature at the fixed batch `batch`: `decode_b64`."""
    return f"{function}_b{batch}"


def _check_names(argument, names, known):
    if isinstance(names, str) or not set(names) <= set(known):
        raise ValueError(
            f"Expected {argument} to be a sequence of names among {known}. "
            f"Received: {argument}={names!r}"
        )


def _check_scalar(tensor, name):
    """`tensor`, checked at run time to be a scalar.

    The signature declares `seed` and `num_samples` scalars, but a loaded
    signature and TF Serving pass a shape-[1] tensor through (TF Serving's
    row format, "instances", gives every input a batch axis): a seed `[s]`
    would be used as if it were `s`, and a `num_samples` `[n]` would fail in
    an Assert with "In[0] should be a scalar". A check on `tf.rank` would be
    folded away by the static shape; `EnsureShape` is not, and fails with
    "Shape of tensor seed [1] is not compatible with expected shape []".
    """
    return tf.ensure_shape(tensor, [], name=f"check_{name}")


def _check_num_samples(num_samples):
    """`num_samples`, run only after the check that it is a scalar in [1, MAX_NUM_SAMPLES]."""
    num_samples = _check_scalar(num_samples, "num_samples")
    valid = tf.logical_and(num_samples >= 1, num_samples <= MAX_NUM_SAMPLES)
    check = tf.debugging.Assert(
        valid,
        [
            f"Expected num_samples to be an integer in [1, {MAX_NUM_SAMPLES}]. "
            "Received: num_samples=",
            num_samples,
        ],
    )
    # An explicit dependency, so no latent is allocated for a bad request.
    with tf.control_dependencies([check]):
        return tf.identity(num_samples)


def _clamped_num_samples(num_samples, condition=None):
    """`num_samples` clamped to what the checks allow: `[0, MAX_NUM_SAMPLES // B]`.

    A no-op after the asserts of the SavedModel; TFLite drops asserts, so the
    clamp is what bounds the rows a raw `.tflite` signature runner allocates.
    """
    cap = tf.constant(MAX_NUM_SAMPLES, tf.int32)
    if condition is not None:
        cap = cap // tf.maximum(tf.shape(condition, out_type=tf.int32)[0], 1)
    return tf.clip_by_value(num_samples, 0, cap)


def _check_values(tensor, name, unit_interval=False):
    """`tensor`, run only after the checks that it is finite (and in [0, 1]).

    A check before the networks: with oneDNN the fused dense layers of a
    SavedModel turned NaN inputs into normal-looking images. TFLite drops it.
    """
    checks = [
        tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(tensor)),
            [
                f"Expected {name} to hold finite values. Received: {name} with NaN or "
                "infinite values"
            ],
        )
    ]
    if unit_interval:
        inside = tf.reduce_all(tf.logical_and(tensor >= 0.0, tensor <= 1.0))
        checks.append(
            tf.debugging.Assert(
                inside,
                [
                    f"Expected {name} values in [0, 1] for a Bernoulli likelihood. Received: "
                    f"{name} values outside [0, 1]"
                ],
            )
        )
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def _check_total_rows(num_samples, condition):
    """`num_samples`, run only after the check that `B * num_samples <= MAX_NUM_SAMPLES`.

    The cap on `num_samples` alone lets a batch of conditions multiply the
    rows: 1000 conditions at 4096 draws each would ask for 4 million images.
    """
    batch = tf.shape(condition, out_type=tf.int64)[0]
    total = batch * tf.cast(num_samples, tf.int64)  # int64: no int32 overflow
    check = tf.debugging.Assert(
        total <= MAX_NUM_SAMPLES,
        [
            f"Expected at most {MAX_NUM_SAMPLES} rows in all (condition batch * "
            "num_samples). Received: condition batch=",
            batch,
            "num_samples=",
            num_samples,
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(num_samples)


def _checked(tensor, name, event_shape, unit_interval=False):
    """`tensor`, checked at run time to be shaped `[batch, *event_shape]`, and its values.

    The signature declares the shape, but neither a loaded signature function
    nor TF Serving enforces it before the graph runs, and Grappler simplifies
    the graph as if it held: a wrong condition would fail deep inside a Tile
    or MatMul. `EnsureShape` fails first, with "Shape of tensor condition
    [2,9] is not compatible with expected shape [?,10]". Then
    `_check_values`. TFLite drops both.
    """
    tensor = tf.ensure_shape(tensor, [None, *event_shape], name=f"check_{name}")
    return _check_values(tensor, name, unit_interval)


def _check_same_batch(tensor, condition, name="z"):
    """`tensor` (named `name`), run only after the check that its batch is `condition`'s."""
    batch, batch_condition = tf.shape(tensor)[0], tf.shape(condition)[0]
    check = tf.debugging.Assert(
        tf.equal(batch, batch_condition),
        [
            f"Expected {name} and condition with the same batch size. Received: {name} batch=",
            batch,
            "condition batch=",
            batch_condition,
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def _check_row_count(seed):
    """`seed` `[N]`, run only after the check that `N <= MAX_NUM_SAMPLES`."""
    rows = tf.shape(seed)[0]
    check = tf.debugging.Assert(
        rows <= MAX_NUM_SAMPLES,
        [f"Expected at most {MAX_NUM_SAMPLES} rows (seeds). Received: seed rows=", rows],
    )
    with tf.control_dependencies([check]):
        return tf.identity(seed)


def _scalar_specs():
    return [
        tf.TensorSpec([], SEED_DTYPE, name="seed"),
        tf.TensorSpec([], tf.int32, name="num_samples"),
    ]


def _rows(function, *inputs):
    return function(*inputs)


def _rows_or_empty(function, *inputs):
    """`function(*inputs)`, or for 0 rows its output on one row of zeros, emptied.

    The inputs share their batch size and have static shapes past it.
    """

    def empty():
        rows = [tf.zeros([1, *t.shape[1:]], t.dtype) for t in inputs]
        return tf.nest.map_structure(lambda t: t[:0], function(*rows))

    return tf.cond(tf.shape(inputs[0])[0] > 0, lambda: function(*inputs), empty)


def _functions(model, latent_dim, data_shape, condition_shape, rows, batch=None):
    """The four serving functions; with a `condition_shape`, each also takes `condition`.

    Conditions travel as an optional last argument (`*condition`, empty for
    an unconditional model), so one definition serves both signatures.

    With a `batch` B, only `decode` and `sample`, at that fixed batch (see
    `ServingModule`'s `batch_sizes`): `decode` takes `z` `[B, L]` (and
    `condition` `[B, *C]`); `sample` takes `seed` (and one condition
    `[1, *C]`) and draws `num_samples = B`.
    """
    data_name = model.data_name
    z_spec = tf.TensorSpec([batch, latent_dim], tf.float32, name="z")
    data_spec = tf.TensorSpec([None, *data_shape], tf.float32, name=data_name)
    condition_specs = []
    if condition_shape is not None:
        condition_specs = [tf.TensorSpec([batch, *condition_shape], tf.float32, name="condition")]

    binary = model.likelihood.binary

    def mean(likelihood):
        return model.likelihood.portable_mean(likelihood)

    def checked_pair(tensor, name, shape, condition):
        """`tensor` and the condition (a 0- or 1-tuple), both checked against their shapes."""
        tensor = _checked(tensor, name, shape, unit_interval=binary and name == data_name)
        if not condition:
            return tensor, ()
        condition = _checked(condition[0], "condition", condition_shape)
        return _check_same_batch(tensor, condition, name), (condition,)

    def optional(condition):
        return condition[0] if condition else None

    def decode(z, *condition):
        z, condition = checked_pair(z, "z", (latent_dim,), condition)
        image = rows(lambda z, *c: mean(model.decode(z, optional(c))), z, *condition)
        # One image per row of z: in TFLite, which drops the shape check, a z
        # of another width (read by the fully connected layer as other rows)
        # then fails to run instead of giving other images.
        return {"image": tf.reshape(image, tf.concat([tf.shape(z)[:1], data_shape], 0))}

    def sample(seed, num_samples, *condition):
        seed, num_samples = _check_scalar(seed, "seed"), _check_num_samples(num_samples)
        if not condition:
            z = model.sample_latent(_clamped_num_samples(num_samples), seed)
            return {"image": mean(model.decode(z)), "z": z}
        condition = _checked(condition[0], "condition", condition_shape)
        num_samples = _check_total_rows(num_samples, condition)
        num_samples = _clamped_num_samples(num_samples, condition)
        latent = model.sample_latent(num_samples, seed, condition=condition)
        z = tf.reshape(latent, [-1, latent_dim])
        # Row b * num_samples + k is draw k for condition b, as in `sample`.
        repeated = tf.repeat(condition, num_samples, axis=0)
        image = rows(lambda z, c: mean(model.decode(z, c)), z, repeated)
        return {"image": image, "z": z}

    def sample_rows(seed, *condition):
        seed = _check_row_count(seed)
        if condition:
            condition = (_checked(condition[0], "condition", condition_shape),)
            seed = _check_same_batch(seed, condition[0], "seed")

        def draw(row):
            seed, *condition = row
            one = [c[None] for c in condition]
            latent = model.sample_latent(1, seed, condition=optional(one))
            return tf.reshape(latent, [latent_dim])

        z = tf.map_fn(
            draw, (seed, *condition), fn_output_signature=tf.TensorSpec([latent_dim], tf.float32)
        )
        image = rows(lambda z, *c: mean(model.decode(z, optional(c))), z, *condition)
        return {"image": image, "z": z}

    def encode(x, *condition):
        x, condition = checked_pair(x, data_name, data_shape, condition)

        def outputs(x, *c):
            return model.posterior_layer.export_outputs(model.encode(x, optional(c)))

        return rows(outputs, x, *condition)

    def reconstruct(x, *condition):
        x, condition = checked_pair(x, data_name, data_shape, condition)

        def image(x, *c):
            posterior = model.encode(x, optional(c))
            z = model.posterior_layer.point(posterior)
            return {"image": mean(model.decode(z, optional(c)))}

        return rows(image, x, *condition)

    if batch is not None:
        one_condition = []
        if condition_shape is not None:
            one_condition = [tf.TensorSpec([1, *condition_shape], tf.float32, name="condition")]

        def sample_batch(seed, *condition):
            return sample(seed, tf.constant(batch, tf.int32), *condition)

        return {
            "decode": _graph_function(decode, [z_spec, *condition_specs]),
            "sample": _graph_function(sample_batch, [_scalar_specs()[0], *one_condition]),
        }
    return {
        "decode": _graph_function(decode, [z_spec, *condition_specs]),
        "sample": _graph_function(sample, [*_scalar_specs(), *condition_specs]),
        "encode": _graph_function(encode, [data_spec, *condition_specs]),
        "reconstruct": _graph_function(reconstruct, [data_spec, *condition_specs]),
        "sample_rows": _graph_function(
            sample_rows, [tf.TensorSpec([None], SEED_DTYPE, name="seed"), *condition_specs]
        ),
    }


def _graph_function(function, input_signature):
    """`function` as a `tf.function` of `input_signature`, traced without AutoGraph.

    The signatures use no Python control flow on tensors, so AutoGraph would
    only rewrite each Python function it meets (the counter RNG's word
    mixing above all) into the same graph. Without it the same ops trace in
    a fraction of the time: about 2 s less for a `keras-vae export` of an
    MLP VAE, whose process converts every function afresh.
    """
    return tf.function(function, input_signature=input_signature, autograph=False)
