"""SavedModel export: TF Serving layout, atomicity, signatures, parity."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import LATENT_DIM, NUM_CLASSES, binary_images, one_hot, reference_normal

from keras_vae.export import MAX_NUM_SAMPLES, export_saved_model, next_version
from keras_vae.models.presets import build_cvae, build_vae

SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"
CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

# Inputs of the fresh-process check.
X = binary_images(3, seed=5)
Z = np.random.default_rng(2).normal(size=(3, LATENT_DIM)).astype("float32")
CONDITION = one_hot([2, 7, 9])
DECODE_CONDITION = one_hot([2, 7])


@pytest.fixture(scope="module")
def child(vae_saved_model, cvae_saved_model):
    """What one fresh process printed: the signatures' outputs, then saved_model_cli's.

    The child imports TensorFlow alone (not keras_vae) and calls every
    signature of both exports, then runs the `saved_model_cli` script (the
    console script itself, through runpy) with `show --all` on each: one
    TensorFlow import instead of three (3-4 s of CPU each).
    """
    inputs = {"x": X, "z": Z, "condition": CONDITION, "decode_condition": DECODE_CONDITION}
    args = [
        vae_saved_model,
        cvae_saved_model,
        json.dumps({k: v.tolist() for k, v in inputs.items()}),
    ]
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, *args, str(SAVED_MODEL_CLI)],
        capture_output=True,
        text=True,
        env=CHILD_ENV,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- layout and atomicity -------------------------------------------------------


@pytest.mark.usefixtures("reused_vae_saved_model")
def test_versions_count_up_and_never_overwrite(vae, tmp_path):
    base = tmp_path / "mnist"
    first = export_saved_model(vae, base)
    second = export_saved_model(vae, base)
    assert (first, second) == (str(base / "1"), str(base / "2"))
    for version in (first, second):
        assert os.path.isfile(os.path.join(version, "saved_model.pb"))
        assert os.path.isdir(os.path.join(version, "variables"))
    before = sorted(os.listdir(base / "2"))
    message = r"^Expected a new version: exports never overwrite\. Received: version=2"
    with pytest.raises(ValueError, match=message):
        export_saved_model(vae, base, version=2)
    assert sorted(os.listdir(base / "2")) == before
    assert export_saved_model(vae, base, version=7) == str(base / "7")
    # Nothing else: no temporary folder left behind.
    assert sorted(os.listdir(base)) == ["1", "2", "7"]
    assert next_version(str(base)) == 8


def test_next_version_ignores_files_and_other_names(tmp_path):
    for name in ("3", "10", "tmp", ".tmp-export-99-x"):
        (tmp_path / name).mkdir()
    (tmp_path / "42").write_text("a file, not a version")
    assert next_version(str(tmp_path)) == 11
    assert next_version(str(tmp_path / "missing")) == 1


def test_next_version_ignores_numbers_tf_serving_cannot_read(tmp_path):
    # TF Serving reads version names as int64: 2**63 is not a version it serves.
    for name in ("4", str(2**63), "1" * 30):
        (tmp_path / name).mkdir()
    assert next_version(str(tmp_path)) == 5


@pytest.mark.parametrize("version", [0, -1, "2", 1.0, True, 2**63, 10**30])
def test_bad_version(vae, tmp_path, version):
    message = (
        r"^Expected version to be a positive integer at most 2\*\*63 - 1 \(TF Serving reads it "
        rf"as an int64\) or None\. Received: version={re.escape(repr(version))}$"
    )
    with pytest.raises(ValueError, match=message):
        export_saved_model(vae, tmp_path, version=version)
    assert os.listdir(tmp_path) == []


@pytest.mark.usefixtures("reused_vae_saved_model")
def test_largest_int64_version(vae, tmp_path):
    assert export_saved_model(vae, tmp_path, version=2**63 - 1) == str(tmp_path / str(2**63 - 1))
    message = (
        r"^Expected a free version number at most 2\*\*63 - 1 .*holds version 9223372036854775807$"
    )
    with pytest.raises(ValueError, match=message):
        export_saved_model(vae, tmp_path)
    assert os.listdir(tmp_path) == [str(2**63 - 1)]


def test_empty_base_dir(vae, tmp_path, monkeypatch):
    # Without the check, "" would write a version folder "1" into the working folder.
    monkeypatch.chdir(tmp_path)
    message = (
        r"^Expected base_dir to be a folder path \(the TF Serving model folder\)\. "
        r"Received: base_dir=''$"
    )
    with pytest.raises(ValueError, match=message):
        export_saved_model(vae, "")
    assert os.listdir(tmp_path) == []


@pytest.mark.usefixtures("reused_vae_saved_model")
def test_base_dir_that_is_a_version_folder(vae, tmp_path):
    version = export_saved_model(vae, tmp_path / "model")
    before = sorted(os.listdir(version))
    message = (
        r"^Expected base_dir to be a TF Serving model folder, not a version folder "
        r"\(exports write base_dir/<version>/\)\. Received: base_dir='.*/model/1', which holds "
        r"saved_model\.pb$"
    )
    with pytest.raises(ValueError, match=message):
        export_saved_model(vae, version)
    assert sorted(os.listdir(version)) == before


def test_base_dir_that_is_a_file(vae, tmp_path):
    path = tmp_path / "model"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match=r"^Expected base_dir to be a folder.*an existing file"):
        export_saved_model(vae, path)
    assert path.read_text() == "not a folder"


def test_failure_mid_export_leaves_nothing(vae, vae_saved_model, tmp_path, monkeypatch):
    def save_then_fail(obj, export_dir, *args, **kwargs):
        # A complete write (of the same model, copied: saving again takes seconds),
        # then a failure.
        shutil.copytree(vae_saved_model, export_dir)
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", save_then_fail)
    existing = tmp_path / "existing"
    (existing / "1").mkdir(parents=True)
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(vae, existing)
    assert os.listdir(existing) == ["1"]
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="disk full"):
        export_saved_model(vae, fresh / "models" / "mnist")
    assert not fresh.exists()


def test_unbuilt_model(tmp_path):
    model = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM)
    with pytest.raises(ValueError, match=r"^Expected a built model.*Received: an unbuilt VAE$"):
        export_saved_model(model, tmp_path)
    assert os.listdir(tmp_path) == []


def test_untrained_model_needs_allow_untrained(tmp_path):
    model = build_vae("mlp", (28, 28, 1), latent_dim=LATENT_DIM)
    model.build((None, 28, 28, 1))
    message = (
        r"^Expected a trained model \(optimizer\.iterations > 0\); pass allow_untrained=True "
        r"\(--allow-untrained on the command line\) to export it anyway\. Received: a VAE "
        r"with no optimizer$"
    )
    with pytest.raises(ValueError, match=message):
        export_saved_model(model, tmp_path)
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"an optimizer that never stepped$"):
        export_saved_model(model, tmp_path)
    assert os.listdir(tmp_path) == []
    assert export_saved_model(model, tmp_path, allow_untrained=True) == str(tmp_path / "1")


def test_not_a_keras_vae_model(tmp_path):
    with pytest.raises(ValueError, match=r"^Expected a keras_vae VAE or ConditionalVAE"):
        export_saved_model(object(), tmp_path)


# --- signatures -------------------------------------------------------------------


def _cli_signatures(shown):
    """{signature: {"inputs"/"outputs": {name: (dtype, shape)}}} from saved_model_cli."""
    assert shown["exit_code"] == 0, shown
    stdout = shown["stdout"]
    signatures = {}
    pattern = r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))"
    for block in stdout.split("signature_def['")[1:]:
        name = block.split("'", 1)[0]
        entry = {"inputs": {}, "outputs": {}}
        for kind, key, dtype, shape in re.findall(pattern, block):
            entry[kind][key] = (dtype, shape)
        signatures[name] = entry
    return signatures


def test_saved_model_cli_lists_vae_signatures(child):
    z = ("DT_FLOAT", f"(-1, {LATENT_DIM})")
    image = ("DT_FLOAT", "(-1, 28, 28, 1)")
    scalar = ("DT_INT32", "()")
    rows = ("DT_INT32", "(-1)")
    signatures = _cli_signatures(child["cli"]["vae"])
    signatures.pop("__saved_model_init_op")
    assert signatures == {
        "serving_default": {"inputs": {"z": z}, "outputs": {"image": image}},
        "sample": {
            "inputs": {"seed": scalar, "num_samples": scalar},
            "outputs": {"image": image, "z": z},
        },
        "encode": {"inputs": {"x": image}, "outputs": {"loc": z, "scale": z}},
        "reconstruct": {"inputs": {"x": image}, "outputs": {"image": image}},
        "sample_rows": {"inputs": {"seed": rows}, "outputs": {"image": image, "z": z}},
    }


def test_saved_model_cli_lists_cvae_signatures(child):
    z = ("DT_FLOAT", f"(-1, {LATENT_DIM})")
    image = ("DT_FLOAT", "(-1, 28, 28, 1)")
    condition = ("DT_FLOAT", f"(-1, {NUM_CLASSES})")
    scalar = ("DT_INT32", "()")
    rows = ("DT_INT32", "(-1)")
    signatures = _cli_signatures(child["cli"]["cvae"])
    signatures.pop("__saved_model_init_op")
    assert signatures == {
        "serving_default": {
            "inputs": {"z": z, "condition": condition},
            "outputs": {"image": image},
        },
        "sample": {
            "inputs": {"seed": scalar, "num_samples": scalar, "condition": condition},
            "outputs": {"image": image, "z": z},
        },
        "encode": {
            "inputs": {"target": image, "condition": condition},
            "outputs": {"loc": z, "scale": z},
        },
        "reconstruct": {
            "inputs": {"target": image, "condition": condition},
            "outputs": {"image": image},
        },
        "sample_rows": {
            "inputs": {"seed": rows, "condition": condition},
            "outputs": {"image": image, "z": z},
        },
    }


FRESH_PROCESS = textwrap.dedent(
    """
    import contextlib, io, json, runpy, sys
    import numpy as np, tensorflow as tf

    inputs = {k: np.asarray(v, np.float32) for k, v in json.loads(sys.argv[3]).items()}
    out = {}
    for kind, path in (("vae", sys.argv[1]), ("cvae", sys.argv[2])):
        signatures = tf.saved_model.load(path).signatures
        conditional = kind == "cvae"
        condition = {"condition": tf.constant(inputs["condition"])} if conditional else {}
        x = {("target" if conditional else "x"): tf.constant(inputs["x"])}
        z = tf.constant(inputs["z"][:2] if conditional else inputs["z"])
        decode_condition = (
            {"condition": tf.constant(inputs["decode_condition"])} if conditional else {}
        )
        calls = {
            "serving_default": signatures["serving_default"](z=z, **decode_condition),
            "sample": signatures["sample"](
                seed=tf.constant(3), num_samples=tf.constant(5), **condition
            ),
            "encode": signatures["encode"](**x, **condition),
            "reconstruct": signatures["reconstruct"](**x, **condition),
        }
        out[kind] = {
            name: {key: value.numpy().tolist() for key, value in result.items()}
            for name, result in calls.items()
        }
        errors = []
        for bad in (-1, 0, 5000):
            try:
                signatures["sample"](seed=tf.constant(0), num_samples=tf.constant(bad), **condition)
                errors.append("no error")
            except tf.errors.InvalidArgumentError as e:
                errors.append(e.message)
        out[kind]["errors"] = errors
    # Then the saved_model_cli script, as its console command runs it.
    out["cli"] = {}
    script = sys.argv[4]
    for kind, path in (("vae", sys.argv[1]), ("cvae", sys.argv[2])):
        shown = io.StringIO()
        sys.argv = [script, "show", "--all", "--dir", path]
        with contextlib.redirect_stdout(shown):
            try:
                runpy.run_path(script, run_name="__main__")
                code = 0
            except SystemExit as stop:
                code = stop.code or 0
        out["cli"][kind] = {"exit_code": code, "stdout": shown.getvalue()}
    print(json.dumps(out))
    """
)


def test_fresh_process_calls_every_signature(vae, cvae, child):
    # The child does not import keras_vae: the SavedModels stand alone.
    out = child
    x, z, condition, conditions = X, Z, CONDITION, DECODE_CONDITION

    def close(actual, expected, atol=1e-6):
        np.testing.assert_allclose(np.asarray(actual, np.float32), expected, atol=atol, rtol=0)

    got = out["vae"]
    close(got["serving_default"]["image"], vae.decode(z).mean())
    close(got["sample"]["image"], vae.sample(5, seed=3))
    close(got["sample"]["z"], reference_normal((5, LATENT_DIM), 3), atol=1e-5)
    posterior = vae.encode(x).distribution
    close(got["encode"]["loc"], posterior.loc)
    close(got["encode"]["scale"], posterior.scale)
    close(got["reconstruct"]["image"], vae(x))

    got = out["cvae"]
    close(got["serving_default"]["image"], cvae.decode(z[:2], conditions).mean())
    generated = cvae.generate(condition, 5, seed=3)
    close(got["sample"]["image"], generated.reshape(15, 28, 28, 1))
    posterior = cvae.encode(x, condition).distribution
    close(got["encode"]["loc"], posterior.loc)
    close(got["encode"]["scale"], posterior.scale)
    close(got["reconstruct"]["image"], cvae.reconstruct(x, condition))

    for kind in ("vae", "cvae"):
        errors = out[kind]["errors"]
        for bad, message in zip((-1, 0, 5000), errors, strict=True):
            assert f"Expected num_samples to be an integer in [1, {MAX_NUM_SAMPLES}]" in message
            assert "Received: num_samples=" in message and f"[{bad}]" in message


# --- parity and run-time checks in process ------------------------------------------


@pytest.fixture(scope="module")
def vae_signatures(vae_saved_model):
    return tf.saved_model.load(vae_saved_model).signatures


@pytest.fixture(scope="module")
def cvae_signatures(cvae_saved_model):
    return tf.saved_model.load(cvae_saved_model).signatures


@pytest.mark.parametrize("seed", [0, 1, -5, 2**31 - 1])
def test_sample_matches_python_and_reference(vae, vae_signatures, seed):
    out = vae_signatures["sample"](seed=tf.constant(seed), num_samples=tf.constant(6))
    assert out["image"].shape == (6, 28, 28, 1) and out["z"].shape == (6, LATENT_DIM)
    np.testing.assert_allclose(out["z"], reference_normal((6, LATENT_DIM), seed), atol=1e-5)
    np.testing.assert_allclose(out["image"], vae.sample(6, seed=seed % 2**32), atol=1e-6, rtol=0)


def test_different_seeds_give_different_images(vae_signatures):
    a, b = (
        vae_signatures["sample"](seed=tf.constant(s), num_samples=tf.constant(4))["image"]
        for s in (0, 1)
    )
    assert np.abs(a.numpy() - b.numpy()).max() > 1e-3


def test_cvae_sample_rows_are_condition_major(cvae, cvae_signatures):
    condition = one_hot([1, 4, 8])
    out = cvae_signatures["sample"](
        seed=tf.constant(11), num_samples=tf.constant(2), condition=tf.constant(condition)
    )
    generated = cvae.generate(condition, 2, seed=11)
    latents = cvae.sample_latent(2, 11, condition=condition).numpy()
    for b in range(3):
        for k in range(2):
            np.testing.assert_allclose(out["image"][b * 2 + k], generated[b, k], atol=1e-6)
            np.testing.assert_allclose(out["z"][b * 2 + k], latents[b, k], atol=1e-6)


@pytest.mark.parametrize("num_samples", [-3, 0, MAX_NUM_SAMPLES + 1, 2**31 - 1])
def test_num_samples_out_of_range_fails_at_run_time(vae_signatures, num_samples):
    message = rf"Expected num_samples to be an integer in \[1, {MAX_NUM_SAMPLES}\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        vae_signatures["sample"](seed=tf.constant(0), num_samples=tf.constant(num_samples))


def test_num_samples_cap_is_accepted(vae_signatures):
    out = vae_signatures["sample"](seed=tf.constant(0), num_samples=tf.constant(MAX_NUM_SAMPLES))
    assert out["image"].shape[0] == MAX_NUM_SAMPLES


def test_cvae_sample_caps_rows_in_all(cvae_signatures):
    # The cap bounds B * num_samples, not only the draws per condition.
    message = (
        rf"Expected at most {MAX_NUM_SAMPLES} rows in all \(condition batch \* num_samples\)\. "
        r"Received: condition batch=\] \[2\] \[num_samples=\] \[2049\]"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        cvae_signatures["sample"](
            seed=tf.constant(0),
            num_samples=tf.constant(MAX_NUM_SAMPLES // 2 + 1),
            condition=tf.constant(one_hot([1, 2])),
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="rows in all"):
        cvae_signatures["sample"](
            seed=tf.constant(0),
            num_samples=tf.constant(MAX_NUM_SAMPLES),
            condition=tf.constant(one_hot(np.arange(1000) % NUM_CLASSES)),
        )
    out = cvae_signatures["sample"](
        seed=tf.constant(0),
        num_samples=tf.constant(MAX_NUM_SAMPLES // 2),
        condition=tf.constant(one_hot([1, 2])),
    )
    assert out["image"].shape[0] == MAX_NUM_SAMPLES


@pytest.mark.parametrize(
    "condition",
    [one_hot([1, 2])[:, :9], np.zeros((2, NUM_CLASSES, 1), "float32"), np.zeros([2], "float32")],
    ids=["too_few_classes", "extra_axis", "no_class_axis"],
)
def test_condition_of_wrong_shape_is_rejected(cvae_signatures, condition):
    message = (
        r"Shape of tensor condition \[[0-9,]+\] is not compatible with expected shape \[\?,10\]"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        cvae_signatures["sample"](
            seed=tf.constant(0), num_samples=tf.constant(2), condition=tf.constant(condition)
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        cvae_signatures["serving_default"](
            z=tf.zeros([2, LATENT_DIM]), condition=tf.constant(condition)
        )


def test_latent_of_wrong_shape_is_rejected(vae_signatures):
    message = (
        rf"Shape of tensor z \[2,5\] is not compatible with expected shape \[\?,{LATENT_DIM}\]"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        vae_signatures["serving_default"](z=tf.zeros([2, LATENT_DIM + 1]))


def test_wrong_seed_dtype_is_rejected(vae_signatures):
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a int32 tensor"):
        vae_signatures["sample"](seed=tf.constant(1.5), num_samples=tf.constant(2))


def test_cvae_decode_batch_mismatch_fails(cvae_signatures):
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        cvae_signatures["serving_default"](
            z=tf.zeros([3, LATENT_DIM]), condition=tf.constant(one_hot([1, 2]))
        )


@pytest.mark.parametrize("name", ["encode", "reconstruct"])
def test_cvae_target_batch_mismatch_fails(cvae_signatures, name):
    message = (
        r"Expected target and condition with the same batch size\. Received: target batch=\] "
        r"\[3\] \[condition batch=\] \[2\]"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        cvae_signatures[name](
            target=tf.constant(binary_images(3)), condition=tf.constant(one_hot([1, 2]))
        )


@pytest.mark.parametrize("name", ["seed", "num_samples"])
@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_seed_and_num_samples_must_be_scalars(vae_signatures, cvae_signatures, kind, name):
    # TF Serving's row format ("instances") gives scalars a batch axis: [3], not 3.
    signatures = {"vae": vae_signatures, "cvae": cvae_signatures}[kind]
    condition = {"condition": tf.constant(one_hot([1]))} if kind == "cvae" else {}
    inputs = {"seed": tf.constant(3), "num_samples": tf.constant(2), **condition}
    inputs[name] = tf.reshape(inputs[name], [1])
    message = rf"Shape of tensor {name} \[1\] is not compatible with expected shape \[\]"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        signatures["sample"](**inputs)


@pytest.mark.parametrize("kind", ["vae", "completion-cvae"])
def test_conv_signatures_answer_an_empty_batch_with_empty_outputs(kind, tmp_path):
    # With oneDNN, TF 2.21's convolutions gave 0 rows the wrong shape: the
    # conv decoder's signature answered [0, 28, 28, 32] and encode failed.
    if kind == "vae":
        model = build_vae("conv", (28, 28, 1), latent_dim=LATENT_DIM, seed=0)
        model.build((None, 28, 28, 1))
        condition = {}
    else:
        model = build_cvae("conv", "top-half", latent_dim=LATENT_DIM, seed=0)
        model.build((None, 392))
        condition = {"condition": tf.zeros([0, 392])}
    data = {"x": tf.zeros([0, 28, 28, 1])} if kind == "vae" else {"target": tf.zeros([0, 392])}
    path = export_saved_model(model, tmp_path, allow_untrained=True)
    signatures = tf.saved_model.load(str(path)).signatures
    z = tf.zeros([0, LATENT_DIM])
    outputs = {
        "serving_default": signatures["serving_default"](z=z, **condition),
        "encode": signatures["encode"](**data, **condition),
        "reconstruct": signatures["reconstruct"](**data, **condition),
    }
    if condition:
        seed, num_samples = tf.constant(0), tf.constant(3)
        outputs["sample"] = signatures["sample"](seed=seed, num_samples=num_samples, **condition)
    data_shape = list(next(iter(data.values())).shape[1:])
    for name, result in outputs.items():
        for key, value in result.items():
            expected = [0, LATENT_DIM] if key in ("loc", "scale", "z") else [0, *data_shape]
            assert value.shape.as_list() == expected, (name, key)
    # Non-empty batches still go through the networks.
    z = tf.random.normal([2, LATENT_DIM], seed=1)
    two = {k: tf.concat([v, tf.zeros([2, *v.shape[1:]])], 0) for k, v in condition.items()}
    image = signatures["serving_default"](z=z, **two)["image"].numpy()
    expected = model.decode(z, *two.values()).mean().numpy()
    np.testing.assert_allclose(image, expected, atol=1e-5)
