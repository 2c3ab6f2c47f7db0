"""The CLI on a TFDS image dataset other than MNIST: 32x32 colour images of 3 classes.

The dataset is generated and prepared by TFDS in a temporary folder, as a
user's CIFAR-10 or Fashion-MNIST would be after its download.
"""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_vae.cli.main import main

SHAPE = (32, 32, 3)


class ColorSquares(tfds.core.GeneratorBasedBuilder):
    """Dim noise with a bright square in the colour channel named by the label."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=SHAPE),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(240, 0), "test": self._generate_examples(96, 1)}

    def _generate_examples(self, num_examples, seed):
        rng = np.random.default_rng(seed)
        for index in range(num_examples):
            label = index % 3
            image = rng.integers(0, 60, SHAPE, dtype=np.uint8)
            image[8:24, 8:24, label] = 230
            yield index, {"image": image, "label": label}


@pytest.fixture(scope="module")
def color_dir(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tfds"))
    ColorSquares(data_dir=folder).download_and_prepare()
    return folder


def _train(folder, output, *extra):
    argv = [
        "train", "--dataset", "color_squares", "--data-dir", folder, "--epochs", "2",
        "--batch-size", "32", "--output", str(output), *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    return json.loads((output / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra", [[], ["--architecture", "conv", "--binarize", "none"]], ids=["mlp", "conv-gaussian"]
)
def test_train_evaluate_export_and_sample_colour_images(color_dir, tmp_path, capsys, extra):
    metrics = _train(color_dir, tmp_path / "run", *extra)
    elbo = metrics["history"]["elbo"]
    assert elbo[1] > elbo[0] and np.isfinite(metrics["test"]["elbo"])
    model = str(tmp_path / "run" / "model.keras")
    capsys.readouterr()
    assert main(["evaluate", model, "--dataset", "color_squares", "--data-dir", color_dir,
                 "--split", "test", "--importance-samples", "4", "--json"]) == 0  # fmt: skip
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Positive for binary pixels and for 8-bit ones (a Gaussian's NLL is of
    # the dequantized images), in bits per each of the 32 * 32 * 3 values.
    assert scores["nll"] > 0
    assert scores["bits_per_dim"] == pytest.approx(scores["nll"] / (np.prod(SHAPE) * np.log(2)))
    # Export verifies the SavedModel and the TFLite file against the Keras model.
    assert main(["export", model, "--saved-model", str(tmp_path / "serving"),
                 "--tflite", str(tmp_path / "sampler.tflite")]) == 0  # fmt: skip
    assert main(["sample", model, "--num-samples", "4", "--output",
                 str(tmp_path / "s.npy")]) == 0  # fmt: skip
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (4, *SHAPE) and 0.0 <= samples.min() <= samples.max() <= 1.0


@pytest.mark.slow
def test_label_cvae_on_three_classes(color_dir, tmp_path, capsys):
    metrics = _train(color_dir, tmp_path / "run", "--model", "cvae", "--condition", "label")
    assert metrics["config"]["condition"] == "label"
    model = str(tmp_path / "run" / "model.keras")
    assert main(["sample", model, "--label", "2", "--num-samples", "5", "--output",
                 str(tmp_path / "two.npy")]) == 0  # fmt: skip
    assert np.load(tmp_path / "two.npy").shape == (5, *SHAPE)
    assert main(["sample", model, "--num-samples", "2", "--output",
                 str(tmp_path / "rows.npy")]) == 0  # fmt: skip
    assert np.load(tmp_path / "rows.npy").shape == (6, *SHAPE)  # a row per class
    capsys.readouterr()
    assert main(["sample", model, "--label", "3", "--output", str(tmp_path / "x.npy")]) != 0
    error = capsys.readouterr().err.strip()
    assert "label=3" in error and len(error.splitlines()) == 1
