"""Property-based tests of the command line: any arguments end in a result or one clear line."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_vae.cli.main import main
from keras_vae.models.presets import build_vae

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
SAMPLE_OPTIONS = ["--num-samples", "--seed", "--label", "--temperature"]
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
@given(options=st.lists(st.tuples(st.sampled_from(SAMPLE_OPTIONS), TOKENS), max_size=3))
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


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    # Untrained: sampling takes any weights; a fit step would only add its tracing.
    model = build_vae("mlp", (28, 28, 1), latent_dim=2, seed=0)
    model.build((None, 28, 28, 1))
    path = tmp_path_factory.mktemp("fuzz") / "model.keras"
    model.save(path)
    return path
