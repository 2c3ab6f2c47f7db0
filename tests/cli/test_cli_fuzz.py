"""Property-based tests of the command line: any arguments end in a result or one clear line."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_vae.cli.main import main
from keras_vae.models.presets import build_vae
from keras_vae.utils import cpu

# Values a user (or a script) might put after an option: numbers at and past
# every edge, non-finite ones, words, empty strings and flags in the wrong place.
TOKENS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["0", "-1", "1", "nan", "inf", "-inf", "1e308", "1e-320", "0x10", "1_000"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
    st.sampled_from(["--quiet", "--output", "-", "--", "mlp", "conv", "cvae", "label"]),
)

TRAIN_OPTIONS = [
    "--architecture", "--latent-dim", "--epochs", "--batch-size", "--beta",
    "--kl-warmup-epochs", "--learning-rate", "--clipnorm", "--binarize", "--likelihood",
    "--seed", "--model", "--condition", "--prior", "--prior-components", "--posterior",
    "--gsnn-weight", "--dtype-policy",
]  # fmt: skip


def _affordable_count(token):
    """Whether `--num-samples token` ends fast: an error, up to 1024 images, or too many to count.

    Counts in between are valid and draw real images for seconds to minutes
    (the most that fit in memory: millions); 2**30 and more exceed the
    portable RNG's 2**31 latent values. A count past memory is refused by
    `test_sample_refuses_more_images_than_memory_holds`.
    """
    try:
        count = int(token)
    except ValueError:
        return True
    return not 1024 < count < 2**30


SAMPLE_ARGUMENTS = st.one_of(
    st.tuples(st.just("--num-samples"), TOKENS.filter(_affordable_count)),
    st.tuples(st.sampled_from(["--seed", "--label", "--temperature"]), TOKENS),
)
# Each case calls the CLI in this process (no deadline: the first loads
# TensorFlow); tmp_path and capsys are shared by a test's cases, which is safe here.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _run(argv, capsys):
    """`main(argv)`: its exit code and stderr, argparse's exit included."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _one_clear_line(code, err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (1, 2), (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("keras-vae"), err


@settings(FUZZ, max_examples=60)
@given(options=st.lists(st.tuples(st.sampled_from(TRAIN_OPTIONS), TOKENS), max_size=4))
def test_train_arguments_end_in_one_clear_line(options, capsys, tmp_path, tfds_data_dir):
    # A dataset that does not exist: arguments that are all valid end there,
    # with one line too, instead of training.
    out = tmp_path / "out"
    argv = ["train", "--dataset", "no_such_dataset", "--output", str(out), "--quiet"]
    for option, value in options:
        argv += [option, value]
    code, err = _run(argv, capsys)
    _one_clear_line(code, err)
    assert not (out / "model.keras").exists()


@settings(FUZZ, max_examples=25)
@given(options=st.lists(SAMPLE_ARGUMENTS, max_size=3))
def test_sample_arguments_end_in_images_or_one_clear_line(options, capsys, tmp_path, vae_file):
    output = tmp_path / "fuzz.npy"
    if output.exists():
        os.remove(output)
    argv = ["sample", str(vae_file), "--output", str(output)]
    for option, value in options:
        argv += [option, value]
    code, err = _run(argv, capsys)
    if code == 0:
        images = np.load(output)
        assert images.ndim == 4 and np.isfinite(images).all()
        assert images.min() >= 0 and images.max() <= 1
    else:
        _one_clear_line(code, err)
        assert not output.exists()


def test_sample_refuses_more_images_than_memory_holds(capsys, tmp_path, vae_file, monkeypatch):
    # 400 MNIST images of float32 (1.2 MiB) on a machine of 1 MiB: one line,
    # before drawing, and no file.
    monkeypatch.setattr(cpu, "physical_memory", lambda: 2**20)
    output = tmp_path / "many.npy"
    code, err = _run(
        ["sample", str(vae_file), "--num-samples", "400", "--output", str(output)], capsys
    )
    _one_clear_line(code, err)
    assert "Expected num_samples whose samples fit in this machine's memory" in err
    assert not output.exists()


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    # Untrained: sampling takes any weights; a fit step would only add its tracing.
    model = build_vae("mlp", (28, 28, 1), latent_dim=2, seed=0)
    model.build((None, 28, 28, 1))
    path = tmp_path_factory.mktemp("fuzz") / "model.keras"
    model.save(path)
    return path
