"""ONNX against Keras: the largest difference over seeds, for an MLP and a conv model.

Exports each model with `export_model(..., onnx_dir=...)`, then for every seed
runs `sample.onnx` under onnxruntime (64 draws) and compares images and z
with `model.sample` / `model.sample_latent`, and `decode.onnx` on the same z
with `model.decode(z).mean()`.

    python -m benchmarks.onnx_parity --mlp runs/mnist-mlp/model.keras --seeds 21
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import mnist_arrays, record  # noqa: E402
from keras_vae.export import export_model  # noqa: E402
from keras_vae.models.presets import build_vae  # noqa: E402
from keras_vae.tasks import load_model  # noqa: E402


def _conv_model(split):
    """A conv preset VAE trained for one epoch on `split`."""
    images, _ = mnist_arrays(split)
    binary = (np.random.default_rng(0).random(images.shape) < images).astype("float32")
    keras.utils.set_random_seed(0)
    model = build_vae("conv", (28, 28, 1), latent_dim=16, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(binary, batch_size=128, epochs=1, verbose=0)
    return model


def parity(model, seeds, num_samples=64):
    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        report = export_model(model, onnx_dir=os.path.join(folder, "onnx"))
        sample = onnxruntime.InferenceSession(os.path.join(folder, "onnx", "sample.onnx"))
        decode = onnxruntime.InferenceSession(os.path.join(folder, "onnx", "decode.onnx"))
        worst = {"image": 0.0, "z": 0.0, "decode": 0.0}
        for seed in range(seeds):
            feeds = {
                "seed": np.array(seed, np.int32),
                "num_samples": np.array(num_samples, np.int32),
            }
            image, z = sample.run(["image", "z"], feeds)
            keras_z = np.asarray(model.sample_latent(num_samples, seed))
            worst["z"] = max(worst["z"], float(np.max(np.abs(z - keras_z))))
            keras_image = model.sample(num_samples, seed=seed)
            worst["image"] = max(worst["image"], float(np.max(np.abs(image - keras_image))))
            (decoded,) = decode.run(["image"], {"z": keras_z.astype(np.float32)})
            expected = model.decode(keras_z).mean().numpy()
            worst["decode"] = max(worst["decode"], float(np.max(np.abs(decoded - expected))))
    return report["ok"], worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlp", default="runs/mnist-mlp/model.keras", help="A trained MLP .keras.")
    parser.add_argument("--conv-split", default="train[:5000]", help="Trains the conv model.")
    parser.add_argument("--seeds", type=int, default=21, help="Seeds 0..N-1.")
    args = parser.parse_args(argv)
    models = {
        "mlp (make demo)": load_model(args.mlp),
        "conv (1 epoch)": _conv_model(args.conv_split),
    }
    lines = [
        f"onnxruntime against Keras, seeds 0–{args.seeds - 1}, 64 draws each; max |diff| over all.",
        "",
        "| model | export verified | sample image | sample z | decode |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, model in models.items():
        ok, worst = parity(model, args.seeds)
        lines.append(
            f"| {name} | {'ok' if ok else 'MISMATCH'} | {worst['image']:.2g} | {worst['z']:.2g} "
            f"| {worst['decode']:.2g} |"
        )
    record("ONNX parity", lines)


if __name__ == "__main__":
    main()
