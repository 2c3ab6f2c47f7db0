import gc
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TFDS = REPO_ROOT.parent / "shared" / "data" / "tensorflow_datasets"

# The files that take longest, slowest first (seconds summed over each file's
# tests in a quiet `make test` on the 2-core EPYC, 2026-12-06, two workers).
# `make test` hands whole files to its workers in collection order (`--dist
# loadfile --no-loadscope-reorder`), so these go out first and the short files
# even out the end; xdist's own order (most tests first) left the one-test files
# that take half a minute (the MirroredStrategy script, exports) to the end, on
# one worker. A file missing here only runs later.
LONGEST_FILES = (
    "cli/test_cli.py",  # 54 s
    "cli/test_train_resume.py",  # 51 s
    "models/test_model_family.py",  # 43 s
    "models/test_vae.py",  # 40 s
    "posteriors/test_posteriors.py",  # 29 s
    "models/test_distributed.py",  # 28 s
    "export/test_priors_and_posteriors.py",  # 27 s
    "export/test_saved_model.py",  # 19 s
    "evaluation/test_log_likelihood.py",  # 17 s
    "export/test_int8_full.py",  # 17 s
    "export/test_litert_sampler.py",  # 16 s
    "export/test_export_model.py",  # 15 s
    "export/test_onnx.py",  # 14 s
    "export/test_tflite_micro.py",  # 14 s
    "models/test_elbo_model.py",  # 12 s
    "ops/test_random.py",  # 12 s
    "export/test_tflite.py",  # 11 s
    "export/test_compiled_model.py",  # 11 s
    "data/test_images.py",  # 10 s
    "export/test_tflite_batch_sizes.py",  # 8 s
    "export/test_export_kills.py",  # 7 s
    "callbacks/test_beta_scheduler.py",  # 7 s
    "export/test_runtime_versions.py",  # 6 s
    "export/test_verify.py",  # 6 s
)


def pytest_configure(config):
    """Readies a process that runs tests; `make test`'s controller runs none.

    pytest-xdist's controller only hands files to its workers: it does not
    import TensorFlow (7 s on the 2-core EPYC with its other core busy).
    """
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    _ready_for_tests()


def _ready_for_tests():
    from keras_vae.cli.main import unused_extras_kept_out

    # TensorFlow, Keras and TFP, imported before the freeze, as `keras-vae` imports them.
    with unused_extras_kept_out():
        import keras  # noqa: F401

    from keras_vae.models import elbo_model

    # What the imports made (TensorFlow, Keras, TFP: half a million objects) lives as
    # long as the process: frozen, it is left out of every full garbage collection, as
    # the `keras-vae` command does (`keras_vae.cli.main._freeze_imported_objects`).
    # Full collections took about 13 % of the export tests' time before.
    gc.freeze()

    # `compile(jit_compile="auto")` picks XLA for MLPs on CPU, and compiling a tiny
    # test model's steps with XLA takes about 3 s per model (fit 2 s, evaluate 1 s),
    # more than the test itself: an eighth of the suite's time. So the suite resolves
    # "auto" to False, except in tests marked `xla`, which check what "auto" chooses.
    # That XLA trains the same model is checked with `jit_compile=True` given
    # explicitly (test_xla_and_graph_training_take_the_same_steps); commands run in a
    # child process (the CLI tests' subprocesses) keep the real default.
    resolve = elbo_model.resolve_jit_compile

    def graph_unless_asked(model, jit_compile="auto"):
        if isinstance(jit_compile, str) and jit_compile == "auto":
            return False
        return resolve(model, jit_compile)

    elbo_model.resolve_jit_compile = graph_unless_asked
    _REAL_RESOLVE_JIT_COMPILE.append(resolve)


_REAL_RESOLVE_JIT_COMPILE = []


@pytest.fixture(autouse=True)
def _real_auto_jit_compile_in_xla_tests(request, monkeypatch):
    if request.node.get_closest_marker("xla"):
        from keras_vae.models import elbo_model

        monkeypatch.setattr(elbo_model, "resolve_jit_compile", _REAL_RESOLVE_JIT_COMPILE[0])


def pytest_collection_modifyitems(config, items):
    """Runs the files of `LONGEST_FILES` first, in its order; each file's tests keep theirs."""
    tests = Path(__file__).resolve().parent
    rank = {tests / name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))


def _tfds_dir():
    configured = os.environ.get("TFDS_DATA_DIR")
    if configured and (Path(configured) / "mnist").is_dir():
        return str(Path(configured).resolve())
    if (SHARED_TFDS / "mnist").is_dir():
        return str(SHARED_TFDS)
    return None


@pytest.fixture(scope="session")
def tfds_data_dir():
    """A TFDS data folder holding MNIST (the shared offline copy or $TFDS_DATA_DIR)."""
    path = _tfds_dir()
    if path is None:
        pytest.skip("MNIST in TFDS format not found: set TFDS_DATA_DIR")
    os.environ["TFDS_DATA_DIR"] = path
    return path


@pytest.fixture(scope="session")
def mnist_test_images(tfds_data_dir):
    """The first 2,000 MNIST test images, float32 [N, 28, 28, 1] in [0, 1], and labels."""
    import tensorflow_datasets as tfds

    data = tfds.load("mnist", split="test[:2000]", batch_size=-1, data_dir=tfds_data_dir)
    images = data["image"].numpy().astype("float32") / 255.0
    return images, data["label"].numpy()


@pytest.fixture
def binary_images(mnist_test_images):
    """One fixed Bernoulli draw of the MNIST test images."""
    images, _ = mnist_test_images
    rng = np.random.default_rng(0)
    return (rng.random(images.shape) < images).astype("float32")


@pytest.fixture
def mixed_bfloat16():
    """Runs a test under the `mixed_bfloat16` dtype policy."""
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")
