"""`keras-vae plot KIND MODEL --output FILE.png` on untrained MNIST-shaped models."""

import numpy as np
import pytest
from PIL import Image

from keras_vae import data
from keras_vae.cli.main import main
from keras_vae.models.presets import build_cvae, build_vae
from keras_vae.visualize import (
    plot_interpolations,
    plot_latents,
    plot_manifold,
    plot_reconstructions,
    plot_samples,
    plot_traversal,
)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Paths of an untrained 2-D VAE and a 3-D label CVAE of MNIST images."""
    folder = tmp_path_factory.mktemp("models")
    vae = build_vae("mlp", (28, 28, 1), latent_dim=2, seed=0)
    vae.build((None, 28, 28, 1))
    cvae = build_cvae("mlp", latent_dim=3, condition="label", image_shape=(28, 28, 1), seed=0)
    cvae.build((None, 10))
    vae.save(folder / "vae.keras")
    cvae.save(folder / "cvae.keras")
    return {"vae": (str(folder / "vae.keras"), vae), "cvae": (str(folder / "cvae.keras"), cvae)}


def test_each_kind_writes_the_librarys_picture(saved_models, tmp_path, tfds_data_dir, capsys):
    path, vae = saved_models["vae"]
    images, labels = data.load_images("mnist", "test[:6]", tfds_data_dir)
    expected = {
        "reconstructions": plot_reconstructions(vae, images),
        "interpolate": plot_interpolations(vae, images[:4], steps=3),
        "traverse": plot_traversal(vae, images, latents=[1], steps=4),
        "manifold": plot_manifold(vae, 3, extent=1.0),
        "latents": plot_latents(vae, images, labels),
        "samples": plot_samples(vae, 5, seed=2),
    }
    options = {
        "interpolate": ["--num", "2", "--steps", "3"],
        "traverse": ["--latent", "1", "--steps", "4"],
        "manifold": ["--num", "3", "--extent", "1"],
        "samples": ["--num", "5", "--seed", "2"],
    }
    for kind, picture in expected.items():
        output = tmp_path / f"{kind}.png"
        argv = ["plot", kind, path, "--split", "test[:6]", "--output", str(output)]
        assert main(argv + options.get(kind, [])) == 0
        assert capsys.readouterr().out == f"wrote {output}\n"
        written = np.asarray(Image.open(output))
        np.testing.assert_array_equal(written.reshape(picture.shape), picture)


def test_class_rows_of_a_label_cvae(saved_models, tmp_path):
    path, cvae = saved_models["cvae"]
    output = tmp_path / "classes.png"
    argv = ["plot", "samples", path, "--label", "7", "--label", "1", "--num", "3"]
    assert main(argv + ["--output", str(output)]) == 0
    picture = plot_samples(cvae, 3, classes=[7, 1])
    np.testing.assert_array_equal(np.asarray(Image.open(output)), picture[..., 0])


@pytest.mark.parametrize(
    "model,argv,message",
    [
        ("cvae", ["manifold"], "Received: latent_dim=3"),
        ("vae", ["latents", "--input", "{npy}"], "Received: labels=None"),
        ("vae", ["traverse", "--latent", "2"], "Received: latents=[2]"),
        ("vae", ["interpolate", "--split", "test[:1]"], "Received: 1 image"),
        ("vae", ["samples", "--steps", "3"], "Received: steps=3 with kind='samples'"),
        ("vae", ["samples", "--output", "{tmp}/samples.npy"], "ending in .png"),
        ("cvae", ["reconstructions", "--input", "{npy}"], "Received: labels=None"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    saved_models, model, argv, message, tmp_path, capsys, tfds_data_dir
):
    npy = tmp_path / "images.npy"
    np.save(npy, np.zeros((4, 28, 28, 1), "float32"))
    argv = [a.format(npy=npy, tmp=tmp_path) for a in argv]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "picture.png")]
    if "--split" not in argv and "--input" not in argv:
        argv += ["--split", "test[:8]"]  # not the 10,000 images of the default split
    kind, rest = argv[0], argv[1:]
    assert main(["plot", kind, saved_models[model][0], *rest]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("keras-vae plot: error: Expected ") and message in err, err
    assert not (tmp_path / "picture.png").exists()


def test_an_unknown_kind_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["plot", "histogram", "model.keras", "--output", "x.png"])
    assert excinfo.value.code == 2
    assert "invalid choice: 'histogram'" in capsys.readouterr().err
