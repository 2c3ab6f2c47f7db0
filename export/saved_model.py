"""SavedModel export in TF Serving's layout: `base_dir/<version>/`."""

import os

import tensorflow as tf

from keras_vae.export.precision import float32_model
from keras_vae.export.serving_module import ServingModule
from keras_vae.export.validation import (
    MAX_VERSION,
    check_exportable,
    check_folder_path,
    check_version,
)
from keras_vae.utils.staged_path import StagedPath, folder_entries, listed, publish_replacing

SIGNATURES = ("serving_default", "sample", "encode", "reconstruct", "sample_rows")


def next_version(base_dir: str) -> int:
    """One more than the largest numeric subfolder of `base_dir`, or 1 if none.

    Folders numbered above `2**63 - 1` are ignored: TF Serving reads version
    names as int64 and does not serve them.

    Args:
        base_dir: str. A TF Serving `model_base_path`.

    Returns:
        The version number a new export would get.

    Example:

    >>> next_version("/tmp/no-such-folder")
    1
    """
    if not os.path.isdir(base_dir):
        return 1
    versions = [
        int(name)
        for name in os.listdir(base_dir)
        if name.isdigit() and name.isascii() and os.path.isdir(os.path.join(base_dir, name))
    ]
    return max((v for v in versions if v <= MAX_VERSION), default=0) + 1


def export_saved_model(
    model, base_dir: str, version: int | None = None, allow_untrained: bool = False
) -> str:
    """Exports a VAE or ConditionalVAE as a SavedModel for TF Serving.

    Writes `base_dir/<version>/` (`saved_model.pb`, `variables/`), the layout
    TF Serving's `--model_base_path=base_dir` loads. The SavedModel is
    written to a hidden temporary folder inside `base_dir` (ignored by TF
    Serving, whose versions are numeric folder names) and renamed into place,
    so a failed export leaves nothing behind (nor a `base_dir` it created);
    an existing version is never overwritten.

    Signatures (names of inputs and outputs are stable; `L` is
    `model.latent_dim`, `S` the data shape, `C` the condition shape of a
    ConditionalVAE):

    - `serving_default` (decode): `z` float32 `[B, L]` (+ `condition` float32
      `[B, *C]`) -> `image` float32 `[B, *S]`, the likelihood mean.
    - `sample`: `seed` int32 scalar, `num_samples` int32 scalar (+
      `condition` `[B, *C]`) -> `image` `[N, *S]` and `z` `[N, L]`, with
      `N = num_samples` (VAE) or `B * num_samples` (CVAE; row
      `b * num_samples + k` is draw `k` for condition `b`). The same z as
      `model.sample(num_samples, seed)` / `model.generate(condition,
      num_samples, seed)`; seeds outside int32 are not accepted, use their
      low 32 bits as the Python methods do. Fails at run time unless
      `1 <= num_samples <= 4096` and `N <= 4096`.
    - `encode`: `x` `[B, *S]` (CVAE: `target` and `condition`) -> `loc`,
      `scale` `[B, L]` of the posterior.
    - `reconstruct`: same inputs -> `image` `[B, *S]`.

    Args:
        model: a built, trained `VAE` or `ConditionalVAE`. A model built
            under a mixed-precision policy is exported as its float32 copy
            (`keras_vae.export.precision.float32_model`).
        base_dir: str or path. The model's folder; created if missing. Must
            not be empty, a file, or a version folder (one holding
            `saved_model.pb`).
        version: int or `None`. The version folder, at most `2**63 - 1`;
            defaults to one more than the largest numeric subfolder (1 for a
            new folder).
        allow_untrained: bool. Export a built model whose optimizer never
            stepped (see `check_exportable`). Defaults to `False`.

    Returns:
        The path of the version folder written.

    Raises:
        ValueError: for an unbuilt or untrained model, an empty `base_dir`,
            one that is a file or a version folder, a bad or existing
            `version`.

    Example:

    >>> path = export_saved_model(vae, "saved_models/mnist-mlp")  # doctest: +SKIP
    >>> path  # doctest: +SKIP
    'saved_models/mnist-mlp/1'
    """
    check_exportable(model, allow_untrained)
    target = saved_model_target(base_dir, version)
    with StagedPath(target) as staged:
        write_saved_model(float32_model(model), staged.path)
        publish_saved_model(staged)
    return target


def saved_model_target(base_dir: str, version: int | None = None) -> str:
    """The version folder an export would write, after checking it is new.

    Args:
        base_dir: str or path. A TF Serving model folder, or a new path.
        version: int or `None`. Defaults to `next_version(base_dir)`.

    Returns:
        `base_dir/<version>`, which does not exist yet.

    Raises:
        ValueError: for an empty `base_dir`, one that is a file or a
            SavedModel (a version folder), a bad or existing `version`.
    """
    version = check_version(version)
    base_dir = os.fspath(base_dir)
    if not base_dir:
        raise ValueError(
            "Expected base_dir to be a folder path (the TF Serving model folder). "
            "Received: base_dir=''"
        )
    if os.path.exists(base_dir) and not os.path.isdir(base_dir):
        raise ValueError(
            f"Expected base_dir to be a folder or a new path. Received: base_dir={base_dir!r} "
            "(an existing file)"
        )
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        if os.path.isfile(os.path.join(base_dir, name)):
            raise ValueError(
                "Expected base_dir to be a TF Serving model folder, not a version folder "
                "(exports write base_dir/<version>/). Received: "
                f"base_dir={base_dir!r}, which holds {name}"
            )
    if version is None:
        version = next_version(base_dir)
        if version > MAX_VERSION:
            raise ValueError(
                "Expected a free version number at most 2**63 - 1 (TF Serving reads it as an "
                f"int64). Received: base_dir={base_dir!r}, which holds version {MAX_VERSION}"
            )
    target = os.path.join(base_dir, str(version))
    _check_new(target)
    return target


# What `tf.saved_model.save` writes into a SavedModel's folder.
SAVED_MODEL_ENTRIES = ("saved_model.pb", "variables", "assets", "fingerprint.pb")


def check_saved_model_dir(path) -> str:
    """Returns `path` as a str, if a SavedModel may be written at exactly that folder.

    A new path, an empty folder, or an earlier SavedModel with nothing added
    (only `SAVED_MODEL_ENTRIES`), which `publish_saved_model_dir` replaces
    whole. A folder holding anything else (a TF Serving model folder with
    its versions, a version folder with `assets.extra/` warm-up requests) is
    refused: replacing it would delete what it holds.

    Raises:
        ValueError: for an empty path, a file at or above it, or a folder
            that is not a bare SavedModel.
    """
    path = check_folder_path("saved_model_dir", path, "saved_model.pb")
    _check_replaceable(path)
    return path


def _check_replaceable(path):
    names, others = folder_entries(path, lambda name: name in SAVED_MODEL_ENTRIES)
    if names and (others or "saved_model.pb" not in names):
        found = "beside a SavedModel" if "saved_model.pb" in names else "and no saved_model.pb"
        raise ValueError(
            "Expected saved_model_dir to be a new or empty folder, or an earlier SavedModel "
            "with nothing added (an export replaces it whole; for TF Serving's numbered "
            f"versions, use saved_model_base). Received: saved_model_dir={path!r}, which "
            f"holds {listed(others or names)} {found}"
        )


def publish_saved_model_dir(staged: StagedPath) -> str:
    """Renames a staged SavedModel to its folder, replacing an earlier SavedModel there.

    The folder is checked again first (`check_saved_model_dir`). See
    `publish_replacing`.
    """
    return publish_replacing(staged, _check_replaceable)


def write_saved_model(model, path: str) -> None:
    """Saves the `ServingModule` of a float32 `model`, with `SIGNATURES`, at `path`."""
    module = ServingModule(model)
    tf.saved_model.save(module, path, signatures=module.signatures(SIGNATURES))


def publish_saved_model(staged: StagedPath) -> str:
    """Renames a staged SavedModel to its version folder, unless that now exists."""
    _check_new(staged.target)
    return staged.publish()


def _check_new(target):
    if os.path.exists(target):
        raise ValueError(
            f"Expected a new version: exports never overwrite. Received: "
            f"version={os.path.basename(target)} ({target} exists)"
        )
