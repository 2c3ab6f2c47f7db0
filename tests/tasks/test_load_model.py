"""`load_model`: a `.keras` file that is missing, damaged or not one is named as such."""

import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_vae import VAE
from keras_vae.models.presets import build_vae
from keras_vae.tasks import load_model

PREFIX = r"^Expected a readable \.keras model saved by keras-vae\. Received: model='.*'"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small VAE's `.keras` file, its bytes and its weights."""
    model = build_vae("mlp", (4, 4, 1), latent_dim=2, seed=0)
    model.build((None, 4, 4, 1))
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return path, path.read_bytes(), model.get_weights()


def refused(path, reason):
    with pytest.raises(ValueError, match=PREFIX + reason) as raised:
        load_model(str(path))
    assert len(str(raised.value).splitlines()) == 1


def test_a_missing_file_is_not_found(tmp_path):
    refused(tmp_path / "missing.keras", r" \(file not found\)$")


@pytest.mark.parametrize(
    "content",
    [b"", b"hello", bytes(range(256)) * 40, "half"],
    ids=["empty", "text", "random", "truncated"],
)
def test_files_that_are_not_zip_archives(saved, tmp_path, content):
    if content == "half":
        content = saved[1][: len(saved[1]) // 2]
    path = tmp_path / "bad.keras"
    path.write_bytes(content)
    refused(
        path, r", not a valid \.keras file \(not a zip archive: truncated, or another format\)$"
    )


def test_a_zip_without_the_keras_members(tmp_path):
    path = tmp_path / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    refused(path, r", not a valid \.keras file \(no metadata\.json, config\.json\)$")


def test_a_damaged_member_fails_its_checksum(saved, tmp_path):
    content = bytearray(saved[1])
    content[len(content) // 2] ^= 0x40  # inside the weights, stored uncompressed
    path = tmp_path / "flipped.keras"
    path.write_bytes(bytes(content))
    refused(path, r", not a valid \.keras file \(model\.weights\.h5 is damaged: checksum fails\)$")


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_flipped_bit_is_refused_or_harmless(saved, tmp_path, position, bit):
    path, original, weights = saved
    content = bytearray(original)
    content[int(position * len(content))] ^= 1 << bit
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(bytes(content))
    try:
        model = load_model(str(damaged))
    except ValueError as error:
        assert str(error).startswith("Expected a readable .keras model") and "\n" not in str(error)
        return
    # A flip in a field nothing reads (a timestamp): the same model.
    for loaded, expected in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(loaded, expected)
    assert isinstance(model, keras.Model)


def test_keras_load_model_finds_the_classes_after_import_keras_then_keras_vae(saved, tmp_path):
    # A fresh process, as a user's script: keras_vae's classes load lazily, and
    # imported after Keras they register at once, so Keras's own loader finds them.
    path, _, weights = saved
    script = (
        "import sys, numpy as np, keras, keras_vae\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "np.save(sys.argv[2], np.concatenate([w.ravel() for w in model.get_weights()]))\n"
        "print(type(model).__name__)\n"
    )
    out = tmp_path / "weights.npy"
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["VAE"]
    np.testing.assert_array_equal(np.load(out), np.concatenate([w.ravel() for w in weights]))


class Unregistered(keras.layers.Layer):
    """A custom layer not registered with Keras: a saved network holding it cannot load."""

    def call(self, inputs):
        return inputs * 2.0


def test_a_network_keras_cannot_rebuild_is_named_with_its_cause(tmp_path):
    # The message kept Keras's first line ("<class VAE> could not be deserialized
    # properly ..."), which blamed the file; the cause was on its last line.
    def saved_with(encoder_layer, decoder_layer, name):
        encoder = keras.Sequential([keras.Input((3,)), encoder_layer, keras.layers.Dense(4)])
        decoder = keras.Sequential([keras.Input((2,)), decoder_layer, keras.layers.Dense(3)])
        model = VAE(encoder, decoder, latent_dim=2)
        model.build((None, 3))
        model.save(tmp_path / name)
        return model, tmp_path / name

    _, path = saved_with(Unregistered(), keras.layers.Identity(), "unregistered.keras")
    refused(path, r" \(Could not locate class 'Unregistered'\. Make sure [^{}]*\)$")
    model, path = saved_with(keras.layers.Identity(), keras.layers.Lambda(lambda z: z), "l.keras")
    refused(path, r" \(Requested the deserialization of a `Lambda` layer")
    loaded = load_model(str(path), safe_mode=False)  # a file one trusts
    z = np.ones((1, 2), "float32")
    np.testing.assert_array_equal(loaded.decode(z).mean(), model.decode(z).mean())


def test_a_cause_without_a_message_is_named_by_its_type():
    from keras_vae.utils.checks import keras_error_cause

    error = TypeError("<class 'VAE'> could not be deserialized.\n\nException encountered: ")
    assert keras_error_cause(error) == "<class 'VAE'> could not be deserialized."
    assert keras_error_cause(TypeError()) == "TypeError"
