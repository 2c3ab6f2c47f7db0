"""A callback that sets the KL weight `beta` every epoch (KL warm-up, annealing)."""

import keras

from keras_vae.layers.distribution_layer import check_positive_float
from keras_vae.models.elbo_model import ELBOModel
from keras_vae.models.validation import check_positive_int


class BetaScheduler(keras.callbacks.Callback):
    """Sets a VAE's or CVAE's KL weight `beta` at the start of every epoch.

    The usual use is a KL warm-up (Bowman et al., 2016; Sønderby et al.,
    2016): training starts with a small weight on KL(Q(z|X) || P(z)), so the
    decoder learns to use z before the KL term pushes Q towards the prior,
    which counters posterior collapse (see `active_units` in
    `keras_vae.evaluation.log_likelihood`). `linear_kl_warmup` builds such a
    schedule. The model's `elbo` metric is the true ELBO whatever `beta` is;
    `loss` weights the KL by the epoch's `beta`, which is logged as `beta`.

    Since `loss` and `val_loss` change meaning with `beta`, a warm-up makes
    them incomparable across epochs: select checkpoints and stop early on
    `val_elbo` with `mode="max"` (`keras.callbacks.ModelCheckpoint`,
    `EarlyStopping`). `beta` is a weight, so checkpoints and
    `BackupAndRestore` keep it. It joins the epoch's logs when this callback's
    `on_epoch_end` runs: list it before `CSVLogger`, `TensorBoard` or a
    `ModelCheckpoint` whose file name uses it, or they will not see it (as
    with Keras's `LearningRateScheduler`).

    Example:

    ```python
    warmup = keras_vae.callbacks.BetaScheduler(keras_vae.callbacks.linear_kl_warmup(10))
    best = keras.callbacks.ModelCheckpoint(
        "best.keras", monitor="val_elbo", mode="max", save_best_only=True
    )
    vae.fit(train, epochs=30, validation_data=valid, callbacks=[warmup, best])
    # beta 0.1, 0.2, ..., 0.9, then 1; best.keras holds the epoch of the best ELBO
    ```

    Args:
        schedule: function `(epoch, beta) -> beta`, taking the 0-based epoch
            index and the current `beta` (a float) and returning the epoch's
            `beta` (a float >= 0).
        verbose: int. 0 is quiet, 1 prints a line when `beta` changes.
            Defaults to `0`.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError(
                "Expected schedule to be a function (epoch, beta) -> beta. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        if not isinstance(self.model, ELBOModel):
            raise ValueError(
                "Expected a keras_vae VAE or ConditionalVAE, which has a KL weight `beta`. "
                f"Received: model={type(self.model).__name__}"
            )
        old = self.model.beta
        beta = self.schedule(epoch, old)
        self.model.beta = beta  # checked by the setter
        if self.verbose > 0 and beta != old:
            keras.utils.io_utils.print_msg(
                f"\nEpoch {epoch + 1}: BetaScheduler setting beta to {beta}."
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["beta"] = self.model.beta


def linear_kl_warmup(warmup_epochs, beta=1.0):
    """A `BetaScheduler` schedule: `beta` rises linearly over `warmup_epochs` epochs.

    Epoch `e` (0-based) trains with `beta * min(1, (e + 1) / warmup_epochs)`:
    `beta / warmup_epochs` in the first epoch, the full `beta` from epoch
    `warmup_epochs - 1` on, as in the VampPrior paper's code (its weight is
    `epoch / warmup` with epochs counted from 1). No epoch is KL-free: with
    no KL weight at all, nothing keeps the posteriors' covariances from
    becoming near-singular (the reconstruction alone favours small scales),
    and a VampPrior, whose components are those posteriors, then started
    with a KL of 1e17 nats or more over a full-covariance posterior (still
    hundreds of nats 30 epochs later, in probes on 6,000 MNIST images) and
    an infinite one over an IAF, whose loss was infinite in the next epoch
    (see `benchmarks/RESULTS.md`). A schedule that returns 0 still gives a
    KL-free epoch.

    Args:
        warmup_epochs: int > 0. Epochs over which the KL weight rises to
            `beta`; `1` gives `beta` from the first epoch.
        beta: float >= 0. The weight after the warm-up. Defaults to `1.0`.

    Returns:
        A function `(epoch, beta) -> beta` for `BetaScheduler`.
    """
    warmup_epochs = check_positive_int("warmup_epochs", warmup_epochs)
    beta = check_positive_float("beta", beta, allow_zero=True)

    def schedule(epoch, current_beta):
        del current_beta  # the schedule depends on the epoch alone
        return beta * min(1.0, (epoch + 1) / warmup_epochs)

    return schedule
