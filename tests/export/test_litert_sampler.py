"""The standalone LiteRT sampler: library, command line, and a TensorFlow-free venv."""

import ast
import copy
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from export_helpers import LATENT_DIM, NUM_CLASSES, binary_images, one_hot, reference_normal
from PIL import Image

from keras_vae.data import merge_image, split_image
from keras_vae.export import MAX_NUM_SAMPLES, export_tflite, litert_sampler
from keras_vae.export.litert_sampler import Sampler
from keras_vae.models.presets import build_vae

SCRIPT = Path(litert_sampler.__file__)


@pytest.fixture(scope="module")
def sampler(vae_tflite):
    return Sampler(vae_tflite[None])


@pytest.fixture(scope="module")
def label_sampler(cvae_tflite):
    return Sampler(cvae_tflite[None])


def test_imports_only_stdlib_numpy_and_litert():
    tree = ast.parse(SCRIPT.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names)
    # tflite_runtime only where ai_edge_litert is missing (an older device runtime).
    assert third_party == {"numpy", "ai_edge_litert", "tflite_runtime", "PIL"}


def test_sample_matches_keras_and_reference(vae, sampler):
    images, z = sampler.sample(12, 5, return_latent=True)
    np.testing.assert_allclose(z, reference_normal((5, LATENT_DIM), 12), atol=1e-5)
    np.testing.assert_allclose(images, vae.sample(5, seed=12), atol=1e-5, rtol=0)
    assert sampler.max_num_samples == MAX_NUM_SAMPLES


@pytest.mark.parametrize(
    "seed, same_as",
    [(-1, 2**32 - 1), (np.int64(7), 7), (-(2**31), 2**31), (np.int32(-5), 2**32 - 5)],
    ids=repr,
)
def test_a_signed_seed_draws_what_its_unsigned_bits_draw_in_keras(vae, sampler, seed, same_as):
    np.testing.assert_array_equal(sampler.sample(seed, 3), sampler.sample(same_as, 3))
    np.testing.assert_allclose(sampler.sample(seed, 3), vae.sample(3, seed=same_as), atol=1e-5)


@pytest.mark.parametrize(
    "seed",
    [1.5, "3", None, True, np.float32(2.0), np.array([1, 2]), 2**32, -(2**31) - 1],
    ids=repr,
)
def test_wrong_seed(sampler, seed):
    # Beyond 32 bits a seed would wrap onto another's draws.
    with pytest.raises(
        ValueError, match=r"^Expected seed to be an integer in \[-2\*\*31, 2\*\*32\)"
    ):
        sampler.sample(seed, 2)


@pytest.mark.parametrize("num_samples", [0, -1, MAX_NUM_SAMPLES + 1, 2.0, "4", True])
def test_bad_num_samples(sampler, num_samples):
    with pytest.raises(ValueError, match=r"^Expected num_samples to be an integer"):
        sampler.sample(0, num_samples)


def test_decode_checks_shapes(vae, sampler):
    z = np.random.default_rng(0).normal(size=(3, LATENT_DIM))
    np.testing.assert_allclose(
        sampler.decode(z), vae.decode(z.astype("float32")).mean().numpy(), atol=1e-5
    )
    with pytest.raises(ValueError, match=rf"^Expected z shaped \[batch, {LATENT_DIM}\]"):
        sampler.decode(np.zeros((3, LATENT_DIM + 1)))
    with pytest.raises(ValueError, match=r"^Expected condition=None"):
        sampler.decode(z, condition=one_hot([1, 2, 3]))


@pytest.fixture(scope="module")
def conv_int8_sampler(tmp_path_factory):
    """The int8 file of a convolutional VAE, untrained."""
    vae = build_vae("conv", (28, 28, 1), latent_dim=LATENT_DIM)
    vae.build((None, 28, 28, 1))
    path = tmp_path_factory.mktemp("conv") / "vae-int8.tflite"
    return Sampler(export_tflite(vae, path, quantize="int8", allow_untrained=True))


@pytest.mark.slow
def test_empty_batches_give_empty_arrays(sampler, label_sampler, conv_int8_sampler):
    # LiteRT failed to resize the int8 convolutions to 0 rows (a RuntimeError).
    for model in (sampler, conv_int8_sampler):
        assert model.decode(np.zeros((0, LATENT_DIM))).shape == (0, 28, 28, 1)
        assert model.decode(np.ones((2, LATENT_DIM))).shape == (2, 28, 28, 1)
    no_condition = np.zeros((0, NUM_CLASSES), "float32")
    images, z = label_sampler.sample(0, 3, no_condition, return_latent=True)
    assert images.shape == (0, 28, 28, 1) and z.shape == (0, LATENT_DIM)
    assert label_sampler.decode(np.zeros((0, LATENT_DIM)), no_condition).shape == (0, 28, 28, 1)


def test_conditions(cvae, label_sampler):
    condition = one_hot([3, 8])
    images = label_sampler.sample(1, 2, condition)
    np.testing.assert_allclose(
        images, cvae.generate(condition, 2, seed=1).reshape(4, 28, 28, 1), atol=1e-5
    )
    np.testing.assert_array_equal(label_sampler.label_condition(3), one_hot([3]))
    with pytest.raises(ValueError, match=r"^Expected a condition shaped \[batch, 10\]\. "):
        label_sampler.sample(0, 2, one_hot([1])[:, :9])
    with pytest.raises(ValueError, match=r"Received: condition=None$"):
        label_sampler.sample(0, 2)
    with pytest.raises(ValueError, match=r"^Expected z and condition with the same batch"):
        label_sampler.decode(np.zeros((3, LATENT_DIM)), one_hot([1, 2]))
    with pytest.raises(ValueError, match=r"^Expected label in \[0, 9\]\. Received: label=10$"):
        label_sampler.label_condition(NUM_CLASSES)


def test_condition_batch_times_num_samples_is_capped(label_sampler):
    message = (
        rf"^Expected at most {MAX_NUM_SAMPLES} rows in all \(condition batch \* num_samples\)\. "
        rf"Received: condition batch=2, num_samples={MAX_NUM_SAMPLES}$"
    )
    with pytest.raises(ValueError, match=message):
        label_sampler.sample(0, MAX_NUM_SAMPLES, one_hot([1, 2]))
    with pytest.raises(ValueError, match=r"Received: condition batch=1000, num_samples=5$"):
        label_sampler.sample(0, 5, one_hot(np.arange(1000) % NUM_CLASSES))
    images = label_sampler.sample(0, MAX_NUM_SAMPLES // 2, one_hot([1, 2]))
    assert images.shape == (MAX_NUM_SAMPLES, 28, 28, 1)


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a flatbuffer")
    with pytest.raises(ValueError, match=r"^Expected a TFLite model file \(\.tflite\)"):
        Sampler(path)
    with pytest.raises(ValueError, match=r"^Expected a readable TFLite model file"):
        Sampler(tmp_path / "missing.tflite")


def test_command_line_in_process(vae, vae_tflite, tmp_path, capsys):
    npy = tmp_path / "samples.npy"
    argv = [vae_tflite[None], "--seed", "4", "--num-samples", "6", "--output", str(npy)]
    assert litert_sampler.main(argv) == 0
    np.testing.assert_allclose(np.load(npy), np.clip(vae.sample(6, seed=4), 0, 1), atol=1e-5)
    png = tmp_path / "grid.png"
    argv = [vae_tflite[None], "--seed", "4", "--num-samples", "6", "--output", str(png)]
    assert litert_sampler.main(argv) == 0
    # 6 tiles: 2 rows of 3, 28 pixels each with 2 between.
    assert Image.open(png).size == (3 * 30 - 2, 2 * 30 - 2)
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--label", "3"], "Expected a conditional model for a label"),
        (["--num-samples", "0"], "Expected num_samples to be an integer in [1, 4096]"),
        (["--output", "x.jpg"], "Expected --output to end with .png or .npy"),
        (["--threads", "0"], "Expected --threads to be a positive integer. Received: threads=0"),
        (["--threads", "-2"], "Expected --threads to be a positive integer. Received: threads=-2"),
    ],
)
def test_command_line_errors_are_one_line(vae_tflite, tmp_path, capsys, extra, message):
    argv = [vae_tflite[None], "--output", str(tmp_path / "out.npy"), *extra]
    assert litert_sampler.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("litert_sampler: error: Expected") and message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seed", "1.5"], "argument --seed: invalid int value: '1.5'"),
        (["--num-samples", "many"], "argument --num-samples: invalid int value: 'many'"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_command_line_bad_arguments_are_one_line(vae_tflite, tmp_path, capsys, extra, message):
    argv = [vae_tflite[None], "--output", str(tmp_path / "out.npy"), *extra]
    with pytest.raises(SystemExit) as exit_info:
        litert_sampler.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"litert_sampler: error: {message}\n"


def test_command_line_output_under_a_file_or_at_a_folder(vae_tflite, tmp_path, capsys):
    (tmp_path / "a.png").write_text("a file")
    (tmp_path / "folder.npy").mkdir()
    cases = [
        (
            tmp_path / "a.png" / "x.png",
            f"Expected output in a folder. Received: output='{tmp_path}/a.png/x.png' "
            f"({tmp_path}/a.png is a file)",
        ),
        (
            tmp_path / "a.png" / "deeper" / "x.npy",
            f"Expected output in a folder. Received: output='{tmp_path}/a.png/deeper/x.npy' "
            f"({tmp_path}/a.png is a file)",
        ),
        (
            tmp_path / "folder.npy",
            f"Expected output to be a file path. Received: output='{tmp_path}/folder.npy' "
            "(a folder)",
        ),
    ]
    for output, message in cases:
        assert litert_sampler.main([vae_tflite[None], "--output", str(output)]) == 1
        err = capsys.readouterr().err
        assert err == f"litert_sampler: error: {message}\n"
    assert (tmp_path / "a.png").read_text() == "a file"
    assert os.listdir(tmp_path / "folder.npy") == []


def test_command_line_creates_the_output_folder(vae, vae_tflite, tmp_path, capsys):
    for name in ("samples.npy", "grid.png"):
        path = tmp_path / "new" / "deeper" / name
        argv = [vae_tflite[None], "--seed", "4", "--num-samples", "2", "--output", str(path)]
        assert litert_sampler.main(argv) == 0, capsys.readouterr().err
        assert path.is_file()
    np.testing.assert_allclose(
        np.load(tmp_path / "new" / "deeper" / "samples.npy"),
        np.clip(vae.sample(2, seed=4), 0, 1),
        atol=1e-5,
    )
    capsys.readouterr()


# The script, with a write that gets SIGTERM halfway (a device's service stopped).
STOPPED_MID_WRITE = """
import os, runpy, signal, sys

def fsync_then_stop(fd):
    os.kill(os.getpid(), signal.SIGTERM)

os.fsync = fsync_then_stop
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_stop_while_writing_is_one_line_and_leaves_nothing(vae_tflite, tmp_path):
    output = tmp_path / "samples.png"
    output.write_bytes(b"the previous picture")
    argv = [str(SCRIPT), vae_tflite[None], "--num-samples", "4", "--output", str(output)]
    done = subprocess.run(
        [sys.executable, "-c", STOPPED_MID_WRITE, *argv], capture_output=True, text=True
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    errors = [line for line in done.stderr.splitlines() if not line.startswith("INFO: ")]
    assert errors == ["litert_sampler: stopped; nothing was written"]
    assert os.listdir(tmp_path) == ["samples.png"]  # no hidden half-written file
    assert output.read_bytes() == b"the previous picture"


@pytest.mark.parametrize("num_threads", [0, -1, 1.5, True])
def test_bad_num_threads(vae_tflite, num_threads):
    message = r"^Expected num_threads to be a positive integer or None\. Received: num_threads="
    with pytest.raises(ValueError, match=message):
        Sampler(vae_tflite[None], num_threads=num_threads)


def test_num_threads(vae, vae_tflite):
    sampler = Sampler(vae_tflite[None], num_threads=2)
    np.testing.assert_allclose(sampler.sample(3, 2), vae.sample(2, seed=3), atol=1e-5)


def test_command_line_label_checks(label_sampler, cvae_tflite, tmp_path, capsys):
    out = str(tmp_path / "out.npy")
    assert litert_sampler.main([cvae_tflite[None], "--output", out]) == 1
    assert "Expected --label for a label-conditioned model" in capsys.readouterr().err
    assert litert_sampler.main([cvae_tflite[None], "--output", out, "--label", "12"]) == 1
    assert "Expected label in [0, 9]. Received: label=12" in capsys.readouterr().err


# --- a virtualenv without TensorFlow ----------------------------------------------------


@pytest.fixture(scope="session")
def litert_venv(tmp_path_factory):
    """A plain venv (no system site-packages) with numpy, ai-edge-litert and Pillow.

    This environment's pip installs them into it (`pip --python`): the venv gets
    no pip of its own, whose installation (ensurepip) took a third of the time.
    """
    folder = tmp_path_factory.mktemp("litert-venv") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=300
    )
    python = folder / "bin" / "python"
    packages = ["numpy", "ai-edge-litert", "pillow"]
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", *packages],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if install.returncode != 0:
        pytest.skip(f"pip could not install the LiteRT runtime: {install.stderr[-500:]}")
    return python


def test_runs_in_a_venv_without_tensorflow(
    vae, cvae, vae_tflite, cvae_tflite, litert_venv, tmp_path
):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    probe = subprocess.run(
        [str(litert_venv), "-c", "import tensorflow"], capture_output=True, text=True, env=env
    )
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    # A copy outside the repository: the script must need nothing beside it.
    script = shutil.copy(SCRIPT, tmp_path / "litert_sampler.py")

    def run(*args):
        return subprocess.run(
            [str(litert_venv), script, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )

    npy = tmp_path / "samples.npy"
    proc = run(vae_tflite[None], "--seed", 9, "--num-samples", 5, "--output", npy)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.load(npy), np.clip(vae.sample(5, seed=9), 0, 1), atol=1e-5)

    sevens = tmp_path / "sevens.npy"
    proc = run(cvae_tflite[None], "--seed", 2, "--num-samples", 3, "--label", 7, "--output", sevens)
    assert proc.returncode == 0, proc.stderr
    expected = cvae.generate(one_hot([7]), 3, seed=2)[0]
    np.testing.assert_allclose(np.load(sevens), np.clip(expected, 0, 1), atol=1e-5)

    png = tmp_path / "grid.png"
    proc = run(vae_tflite["int8"], "--seed", 9, "--num-samples", 4, "--output", png)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(png).size == (58, 58)

    not_a_model = tmp_path / "notes.tflite"
    not_a_model.write_text("hello")
    proc = run(not_a_model, "--output", tmp_path / "x.npy")
    assert proc.returncode == 1
    assert proc.stderr.startswith("litert_sampler: error: Expected a TFLite model file")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def completion_sampler(completion_cvae, exports_dir):
    path = export_tflite(completion_cvae, exports_dir / "completion.tflite")
    return Sampler(str(path))


def test_complete_rebuilds_images_like_keras(completion_cvae, completion_sampler):
    images = binary_images(3)
    completed = completion_sampler.complete(images, seed=5, num_samples=2)
    observed, _ = split_image(images, "top-half")
    generated = completion_cvae.generate(observed, 2, seed=5).reshape(6, -1)
    expected = merge_image(np.repeat(observed, 2, axis=0), generated, "top-half", (28, 28, 1))
    assert completed.shape == (6, 28, 28, 1)
    np.testing.assert_allclose(completed, expected, atol=1e-5)
    # The observed half is the input's own; the two completions of an image differ.
    np.testing.assert_array_equal(completed[:, :14], np.repeat(images[:, :14], 2, axis=0))
    assert np.abs(completed[0, 14:] - completed[1, 14:]).max() > 1e-3
    assert completion_sampler.full_image_shape == (28, 28, 1)
    with pytest.raises(ValueError, match=r"^Expected images shaped \[batch, 28, 28, 1\]\. "):
        completion_sampler.complete(images[:, :14], seed=0)
    with pytest.raises(ValueError, match=r"rows in all"):
        completion_sampler.complete(binary_images(2), seed=0, num_samples=4096)
    with pytest.raises(ValueError, match=r"Received: images with none$"):
        completion_sampler.complete(np.zeros((0, 28, 28, 1)), seed=0)
    with pytest.raises(ValueError, match=r"Received: images with min=0.0, max=7.0$"):
        completion_sampler.complete(7 * binary_images(1), seed=0)
    # A pixel just below 0 that float32 holds only as a subnormal is a 0, as for
    # Keras and the SavedModel; any normal negative number is refused.
    zero, shy = images.copy(), images.copy()
    zero[0, 3, 4, 0], shy[0, 3, 4, 0] = 0.0, -6.4e-41
    np.testing.assert_allclose(
        completion_sampler.complete(shy, seed=5, num_samples=2),
        completion_sampler.complete(zero, seed=5, num_samples=2),
        atol=1e-6,
    )
    shy[0, 3, 4, 0] = -np.finfo(np.float32).tiny
    with pytest.raises(ValueError, match=r"Received: images with min=-1.17549"):
        completion_sampler.complete(shy, seed=0)


def test_command_line_refuses_to_sample_a_completion_model(
    completion_sampler, exports_dir, tmp_path, capsys
):
    out = tmp_path / "out.npy"
    model = str(exports_dir / "completion.tflite")  # the completion_sampler's file
    assert litert_sampler.main([model, "--output", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert error.endswith("to Sampler.sample). Received: condition_type='top-half'")
    assert len(error.splitlines()) == 1 and not out.exists()


def test_label_needs_a_model_saved_as_label_conditioned(
    label_sampler, cvae_tflite, tmp_path, monkeypatch, capsys
):
    # A CVAE built without condition_type: its 1-D condition need not be one-hot
    # rows, and `keras-vae sample --label` refuses it too.
    untyped = copy.copy(label_sampler)
    untyped.condition_type = None
    with pytest.raises(
        ValueError,
        match=r"^Expected a label-conditioned model \(condition_type='label'\)\. "
        r"Received: condition_type=None, condition_shape=\(10,\)$",
    ):
        untyped.label_condition(3)
    monkeypatch.setattr(litert_sampler, "Sampler", lambda path, **options: untyped)
    out = tmp_path / "out.npy"
    for flags in (["--label", "3"], []):
        assert litert_sampler.main([cvae_tflite[None], "--output", str(out), *flags]) == 1
        error = capsys.readouterr().err.strip()
        shape = ", condition_shape=(10,)" if flags else ""
        assert error.endswith(f"Received: condition_type=None{shape}")
        assert len(error.splitlines()) == 1 and not out.exists()


def test_complete_needs_a_completion_model(label_sampler):
    with pytest.raises(ValueError, match=r"^Expected a completion model .* condition_type='label'"):
        label_sampler.complete(binary_images(1), seed=0)
