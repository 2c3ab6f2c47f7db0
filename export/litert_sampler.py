"""Draws images from a keras-vae `.tflite` file with numpy and LiteRT only.

This file stands alone: it imports the standard library, numpy and
`ai_edge_litert` (or, where LiteRT is not installed, `tflite_runtime`; Pillow
only to write PNG files), never TensorFlow or keras_vae, so it can be copied
to a device or a slim container:

    pip install numpy ai-edge-litert pillow
    python litert_sampler.py model.tflite --seed 0 --num-samples 16 --output samples.png
    python litert_sampler.py cvae.tflite --seed 0 --num-samples 8 --label 7 --output sevens.npy

The same seed gives the same images as `model.sample(num_samples, seed)` in
Python and as the SavedModel's `sample` signature (to float rounding, about
1e-6, for a float32 export), because all three draw z with keras-vae's
portable counter-based RNG.
"""

import argparse
import atexit
import contextlib
import hashlib
import io
import json
import math
import numbers
import os
import signal
import struct
import sys
import tempfile
import threading
import weakref

import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # tflite-runtime, e.g. for a file exported with --min-runtime 2.14
    from tflite_runtime.interpreter import Interpreter

try:  # LiteRT 2.x; tflite-runtime and older ai-edge-litert have the Interpreter only
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.options import CpuOptions, Options
except ImportError:
    CompiledModel = None

MAX_NUM_SAMPLES = 4096
METADATA_NAME = "keras_vae"
# Rows of z that `Sampler.decode` runs at a time: its memory is the result's
# plus one chunk's activations, however many rows are asked for.
DECODE_BATCH_SIZE = 1024
# The seed of the draw a `Sampler` makes when it opens a model, to refuse a
# damaged file whose images are not finite.
PROBE_SEED = 0
_INT32_MIN = -(2**31)
RUNTIMES = ("auto", "compiled_model", "interpreter")
_QUIET_AT_EXIT = []
# The smallest static batch that `Sampler.decode` splits a larger batch into.
MIN_STATIC_CHUNK = 32


class Sampler:
    """Runs a keras-vae TFLite model's `sample` and `decode` signatures.

    Args:
        model_path: str. A `.tflite` file written by
            `keras_vae.export.export_tflite`.
        num_threads: positive int or `None`. CPU threads for the interpreter.
            Defaults to `None`, LiteRT's default.
        runtime: `"auto"`, `"compiled_model"` or `"interpreter"`. What runs
            the static-shape signatures (`decode_b{B}`, `sample_b{B}`, see
            `export_tflite`'s `batch_sizes`, and an int8-full file's
            fixed-batch `decode`): LiteRT's `CompiledModel`, or
            the `Interpreter`'s signature runners. `"auto"` takes
            `CompiledModel` when it is installed and gives the
            `Interpreter`'s outputs on the file; `"compiled_model"`
            requires it. The dynamic signatures always run in the
            `Interpreter`: `CompiledModel` (ai-edge-litert 2.3) sizes its
            buffers at the file's shapes, so it leaves `sample`'s `z`
            (sized by the value of `num_samples`) unwritten and crashes
            on a resized `decode` whose output shape is computed at run
            time. Defaults to `"auto"`.

    Attributes:
        latent_dim: int. Size of z.
        image_shape: tuple of ints. Shape of one generated example.
        condition_shape: tuple of ints, or `None` for an unconditional VAE.
        condition_type: str or `None`. `"label"` for one-hot labels,
            `"center-column"` or `"top-half"` for completion models.
        full_image_shape: tuple of ints, or `None`. For completion models:
            the shape of the whole image, which `complete` rebuilds.
        observed_pixels, missing_pixels: int arrays, or `None`. For
            completion models: the row-major flat indices in the whole image
            of the condition's pixels and of the generated ones, in order.
        quantize: str or `None`. How the file was quantized.
        batch_sizes: tuple of ints. The fixed batches of the file's
            static-shape signatures (empty for none). `decode` runs full
            chunks of such a size through them; `sample` uses them when
            `num_samples` is one of them (with at most one condition).
        runtime: str. `"compiled_model"` or `"interpreter"`: what runs
            the static signatures.
        max_num_samples: int. Most rows per call: `num_samples`, or
            `B * num_samples` with a batch of `B` conditions. The `.tflite`
            file's own `sample` signature clamps `num_samples` to
            `[0, max_num_samples // B]`, since TFLite has no run-time
            errors: a raw signature runner never returns more rows.

    Inputs are checked before they reach the interpreter (shapes, finite
    values), and outputs after it. On opening, a file is refused if its
    bytes differ from the checksum its export recorded, or if one draw
    with `PROBE_SEED` gives non-finite images; a call whose images are not
    finite raises instead of returning them.

    An `int8-full` file (int8 inputs and output, one `decode` signature with
    a fixed batch, `"sampling": "host"` in its metadata) is run the same
    way: `sample` draws z here with `portable_normal`, and both calls
    quantize z (and the condition) with the scales and zero points the
    metadata records (`integer_inputs`: z in two inputs, `z` and
    `z_residual`, where the file has both), run the file's batch at a time
    (the last chunk padded with zeros) and dequantize the image.

    Example:

    >>> sampler = Sampler("model.tflite")  # doctest: +SKIP
    >>> images = sampler.sample(seed=0, num_samples=4)  # doctest: +SKIP
    >>> images.shape  # doctest: +SKIP
    (4, 28, 28, 1)
    """

    def __init__(self, model_path, num_threads=None, runtime="auto"):
        model_path = os.fspath(model_path)
        if runtime not in RUNTIMES:
            raise ValueError(f"Expected runtime in {RUNTIMES}. Received: runtime={runtime!r}")
        if runtime == "compiled_model" and CompiledModel is None:
            raise ValueError(
                "Expected ai-edge-litert 2 or newer for runtime='compiled_model' (its "
                "CompiledModel API). Received: a LiteRT without ai_edge_litert.compiled_model"
            )
        if num_threads is not None and (
            isinstance(num_threads, bool)
            or not isinstance(num_threads, numbers.Integral)
            or num_threads < 1
        ):
            raise ValueError(
                "Expected num_threads to be a positive integer or None. "
                f"Received: num_threads={num_threads!r}"
            )
        try:
            with open(model_path, "rb") as f:
                content = f.read()
        except OSError as e:
            raise ValueError(
                f"Expected a readable TFLite model file. Received: model={model_path!r} "
                f"({e.strerror or type(e).__name__})"
            ) from None
        # Every TFLite flatbuffer carries the file identifier "TFL3" at bytes 4-8.
        if len(content) < 8 or content[4:8] != b"TFL3":
            raise ValueError(
                f"Expected a TFLite model file (.tflite). Received: model={model_path!r}, "
                "which is not a TFLite flatbuffer"
            )
        metadata = _read_metadata(content)
        try:
            # Reads every buffer: a truncated file fails here, before the interpreter.
            _read_buffers(content)
        except (struct.error, IndexError, ValueError, TypeError):
            raise ValueError(
                f"Expected a whole TFLite model file. Received: model={model_path!r}, whose "
                "tables point past its end (truncated or damaged)"
            ) from None
        try:
            self._interpreter = Interpreter(
                model_content=content,
                num_threads=None if num_threads is None else int(num_threads),
            )
            signatures = self._interpreter.get_signature_list()
        except (ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            needs = metadata.get("min_runtime_version")
            if needs and "find op" in str(e):
                raise ValueError(
                    f"Expected a TFLite runtime of version {needs} or newer, which this file "
                    f"needs. Received: model={model_path!r}, whose ops this runtime lacks "
                    f"({first}); export with --quantize float16 or none for older runtimes"
                ) from None
            raise ValueError(
                f"Expected a loadable TFLite model. Received: model={model_path!r} ({first})"
            ) from None
        # An int8-full file, or a TFLite Micro decode file (float32, no quantization),
        # holds `decode` only: its z is drawn here (`_HostSample`).
        host = metadata.get("sampling") == "host"
        self._host_quantization = (metadata.get("quantization") or {}) if host else None
        if host and metadata.get("prior", "StandardNormal") != "StandardNormal":
            raise ValueError(
                "Expected a decode-only file of a model with a standard normal prior (the "
                f"host draws z from it). Received: prior={metadata.get('prior')!r}"
            )
        if not ({"decode"} if host else {"decode", "sample"}) <= set(signatures):
            raise ValueError(
                "Expected a keras-vae TFLite model with 'decode' and 'sample' signatures. "
                f"Received: signatures={sorted(signatures)}"
            )
        self.model_path = model_path
        if not _matches_its_sha256(content, metadata):
            raise ValueError(
                "Expected a TFLite model that matches the checksum it was exported with. "
                f"Received: model={model_path!r}, whose bytes differ (a damaged file?)"
            )
        try:
            self._read_signatures()
        except (ValueError, RuntimeError, IndexError, KeyError, TypeError) as e:
            # A damaged signature table (a tensor index past the end, a missing name).
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                "Expected a keras-vae TFLite model with readable 'decode' and 'sample' "
                f"signatures. Received: model={model_path!r} ({first})"
            ) from None
        self.condition_type = metadata.get("condition_type")
        self.quantize = metadata.get("quantize")
        self.min_runtime_version = metadata.get("min_runtime_version")
        self.max_num_samples = int(metadata.get("max_num_samples", MAX_NUM_SAMPLES))
        self.full_image_shape = metadata.get("full_image_shape")
        self.observed_pixels = self.missing_pixels = None
        if self.full_image_shape is not None:
            self.full_image_shape = tuple(int(d) for d in self.full_image_shape)
            self.observed_pixels = np.asarray(metadata["observed_pixels"], np.int64)
            self.missing_pixels = np.asarray(metadata["missing_pixels"], np.int64)
        self._probe()
        self.runtime = "interpreter"
        # An int8-full file's one `decode` has a fixed batch: static too.
        static = bool(self.batch_sizes) or self._host_quantization is not None
        if runtime == "compiled_model" and not static:
            raise ValueError(
                "Expected a file with static-shape signatures (exported with batch_sizes, "
                "--batch-sizes) for runtime='compiled_model'. Received: "
                f"model={model_path!r}, whose signatures are all dynamic"
            )
        if static and runtime != "interpreter":
            self._use_compiled_model(content, num_threads, required=runtime == "compiled_model")

    def _read_signatures(self):
        """The signature runners, and the shapes their inputs and outputs declare."""
        decode = _QuietFirstCall(self._interpreter.get_signature_runner("decode"))
        if self._host_quantization is None:
            self._decode = decode
            self._sample = _QuietFirstCall(self._interpreter.get_signature_runner("sample"))
        else:
            self._decode = _IntegerDecode(decode, self._host_quantization)
            latent_dim = int(decode.get_input_details()["z"]["shape"][-1])
            self._sample = _HostSample(self._decode, latent_dim)
        inputs = self._decode.get_input_details()
        self.latent_dim = int(inputs["z"]["shape_signature"][-1])
        condition = inputs.get("condition")
        self.condition_shape = (
            None if condition is None else tuple(int(d) for d in condition["shape_signature"][1:])
        )
        outputs = self._decode.get_output_details()
        self.image_shape = tuple(int(d) for d in outputs["image"]["shape_signature"][1:])
        self._sample.get_input_details()
        self._sample.get_output_details()
        # The static-shape signatures, by batch: {"decode": {64: runner}, "sample": {...}}.
        self._static = {"decode": {}, "sample": {}}
        for key in self._interpreter.get_signature_list():
            function, _, batch = key.rpartition("_b")
            if function in self._static and batch.isdigit():
                runner = _QuietFirstCall(self._interpreter.get_signature_runner(key))
                self._static[function][int(batch)] = runner
        self.batch_sizes = tuple(sorted(self._static["decode"]))

    def _use_compiled_model(self, content, num_threads, required):
        """Runs the static signatures in a `CompiledModel`, if it gives the same outputs.

        Each static signature runs once on the same inputs in both runtimes;
        any error or difference keeps the `Interpreter` (or, with
        `required`, raises).
        """
        try:
            options = None
            if num_threads is not None:
                options = Options(cpu_options=CpuOptions(num_threads=int(num_threads)))
            with quiet_stderr():  # LiteRT logs its accelerator and plugin search from C++
                compiled = CompiledModel.from_buffer(content, options=options)
            _quiet_at_exit()
            runners = {
                function: {
                    batch: _CompiledRunner(compiled, f"{function}_b{batch}") for batch in batches
                }
                for function, batches in self._static.items()
            }
            for function, batches in runners.items():
                for batch, runner in batches.items():
                    inputs = self._probe_inputs(function, batch)
                    expected = self._static[function][batch](**inputs)
                    with quiet_stderr():
                        outputs = runner(**inputs)
                    for name, value in expected.items():
                        if not np.allclose(outputs[name], value, rtol=1e-5, atol=1e-5):
                            raise ValueError(f"{function}_b{batch} gives another {name}")
            if self._host_quantization is not None:
                runners["host"] = {0: self._compiled_host_decode(compiled)}
        except (ValueError, RuntimeError, KeyError, TypeError, AttributeError, IndexError) as e:
            if required:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ValueError(
                    "Expected a model that LiteRT's CompiledModel runs as the Interpreter "
                    f"does. Received: model={self.model_path!r} ({first})"
                ) from None
            return
        self._static = runners
        self.runtime = "compiled_model"
        # LiteRT logs from C++ as it frees the model and its accelerators.
        weakref.finalize(self, _close_quietly, compiled, runners)

    def _compiled_host_decode(self, compiled):
        """Puts a `CompiledModel` runner of an int8-full file's `decode` in place, if it
        gives the `Interpreter`'s images on probe latents; returns it."""
        inputs = self._probe_inputs("decode", self._decode.batch_size)
        expected = self._decode(**inputs)["image"]
        interpreter_runner = self._decode._runner
        runner = _CompiledRunner(compiled, "decode")
        self._decode._runner = runner
        try:
            with quiet_stderr():
                outputs = self._decode(**inputs)["image"]
            if not np.array_equal(outputs, expected):
                raise ValueError("decode gives other images")
        except BaseException:
            self._decode._runner = interpreter_runner
            raise
        return runner

    def _probe_inputs(self, function, batch):
        """Inputs of the static signature `function` at `batch` for a probe run."""
        condition = None
        if self.condition_shape is not None:
            rows = batch if function == "decode" else 1
            condition = np.zeros((rows, *self.condition_shape), np.float32)
            condition[:, 0] = 1.0
        if function == "decode":
            z = np.linspace(-2.0, 2.0, batch * self.latent_dim, dtype=np.float32)
            inputs = {"z": z.reshape(batch, self.latent_dim)}
        else:
            inputs = {"seed": np.asarray(PROBE_SEED, np.int32)}
        if condition is not None:
            inputs["condition"] = condition
        return inputs

    def _probe(self):
        """Raises unless one draw with `PROBE_SEED` gives finite images.

        A bit flipped in a weight's exponent makes a file that loads and
        runs, and draws NaN images.
        """
        inputs = {"seed": np.int32(PROBE_SEED), "num_samples": np.int32(1)}
        if self.condition_shape is not None:
            condition = np.zeros((1, *self.condition_shape), np.float32)
            if self.condition_type == "label":
                condition[0, 0] = 1.0
            inputs["condition"] = condition
        try:
            images = self._sample(**inputs)["image"]
        except (ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(
                "Expected a loadable keras-vae TFLite model. Received: "
                f"model={self.model_path!r} ({first})"
            ) from None
        if not np.all(np.isfinite(images)):
            raise ValueError(
                "Expected a model that draws finite images. Received: "
                f"model={self.model_path!r}, whose draw with seed {PROBE_SEED} holds NaN or "
                "infinite values (a damaged file?)"
            )

    def sample(self, seed, num_samples, condition=None, return_latent=False):
        """Generates examples from the prior, reproducibly by seed.

        Args:
            seed: int in `[-2**31, 2**32)`: a signed or unsigned 32-bit
                seed, the same bits either way (`-1` draws what
                `model.sample(..., seed=2**32 - 1)` draws).
            num_samples: int in `[1, max_num_samples]`. Draws (per condition).
            condition: array `[B, *condition_shape]` for a conditional model,
                else `None`. `B * num_samples` must not exceed
                `max_num_samples`.
            return_latent: bool. Also return z. Defaults to `False`.

        Returns:
            float32 array `[num_samples, *image_shape]`, or `[B * num_samples,
            *image_shape]` for a conditional model, with row
            `b * num_samples + k` draw `k` for condition `b` (the likelihood
            mean, e.g. pixel probabilities); with `return_latent`, the pair
            `(images, z)`.
        """
        num_samples = self._check_num_samples(num_samples)
        inputs = {
            "seed": np.asarray(_int32_seed(seed), np.int32),
            "num_samples": np.asarray(num_samples, np.int32),
        }
        condition = self._check_condition(condition)
        if condition is not None:
            if len(condition) * num_samples > self.max_num_samples:
                raise ValueError(
                    f"Expected at most {self.max_num_samples} rows in all (condition batch * "
                    f"num_samples). Received: condition batch={len(condition)}, "
                    f"num_samples={num_samples}"
                )
            inputs["condition"] = condition
        if condition is not None and len(condition) == 0:
            images, z = self._empty_batch()
        else:
            static = self._static["sample"].get(num_samples)
            if static is not None and (condition is None or len(condition) == 1):
                del inputs["num_samples"]
                outputs = static(**inputs)
            else:
                outputs = self._sample(**inputs)
            images, z = np.array(outputs["image"]), np.array(outputs["z"])
            _check_finite_output(images, f"seed={seed}")
        return (images, z) if return_latent else images

    def complete(self, images, seed, num_samples=1):
        """Fills in the missing part of partly observed images (completion models).

        Args:
            images: array `[B, *full_image_shape]` of values in [0, 1],
                `B >= 1`. Only the observed pixels are read, as they are:
                binarize grey images for a Bernoulli model, as its training
                data were (`keras-vae complete` and `complete_images` do).
            seed: int. As in `sample`.
            num_samples: int. Completions per image; `B * num_samples` must
                not exceed `max_num_samples`.

        Returns:
            float32 array `[B * num_samples, *full_image_shape]`: row
            `b * num_samples + k` is image `b` with its observed pixels and
            completion `k` (the likelihood mean) in the missing ones.
        """
        if self.full_image_shape is None:
            raise ValueError(
                "Expected a completion model whose file records its pixel layout "
                "('center-column' or 'top-half', exported by this keras-vae). Received: "
                f"condition_type={self.condition_type!r}, no pixel layout"
            )
        images = _float_batch("images", images, self.full_image_shape)
        # Above float32's smallest normal below 0 is a 0 pixel (a subnormal), as for
        # the Keras model and the SavedModel, whose TensorFlow kernels flush it to 0.
        tiny = np.finfo(np.float32).tiny
        if len(images) == 0 or not np.all((images > -tiny) & (images <= 1.0)):
            raise ValueError(
                "Expected at least one image with values in [0, 1]. Received: "
                + (
                    "images with none"
                    if len(images) == 0
                    else f"images with min={images.min()}, max={images.max()}"
                )
            )
        flat = images.reshape(len(images), -1)
        missing = self.sample(seed, num_samples, flat[:, self.observed_pixels])
        completed = np.repeat(flat, self._check_num_samples(num_samples), axis=0)
        completed[:, self.missing_pixels] = missing
        return completed.reshape(-1, *self.full_image_shape)

    def decode(self, z, condition=None, batch_size=DECODE_BATCH_SIZE):
        """The likelihood mean for latents `z` (and conditions), `batch_size` rows at a time.

        Args:
            z: array `[B, latent_dim]` of finite numbers.
            condition: array `[B, *condition_shape]` for a conditional model,
                else `None`.
            batch_size: positive int. Rows run at a time: the interpreter's
                memory is one chunk's, whatever `B`; the images do not
                depend on it. Defaults to `DECODE_BATCH_SIZE` (1024). In a
                file with static signatures (`batch_sizes`), chunks of a
                static size run in its signature (see `_chunks`).

        Returns:
            float32 array `[B, *image_shape]`.
        """
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1
        ):
            raise ValueError(
                f"Expected batch_size to be a positive integer. Received: batch_size={batch_size!r}"
            )
        z = _float_batch("z", z, (self.latent_dim,))
        condition = self._check_condition(condition)
        if condition is not None and len(condition) != len(z):
            raise ValueError(
                "Expected z and condition with the same batch size. Received: "
                f"z.shape={z.shape}, condition.shape={condition.shape}"
            )
        if len(z) == 0:
            return self._empty_batch()[0]
        images = np.empty((len(z), *self.image_shape), np.float32)
        for rows, runner, padded in _chunks(len(z), int(batch_size), self._static["decode"]):
            inputs = {"z": z[rows]}
            if condition is not None:
                inputs["condition"] = condition[rows]
            if padded:
                inputs = {k: _padded(v, padded) for k, v in inputs.items()}
            images[rows] = (runner or self._decode)(**inputs)["image"][: rows.stop - rows.start]
            _check_finite_output(images[rows], f"z with |z| up to {np.max(np.abs(z[rows])):g}")
        return images

    def _empty_batch(self):
        """Images and z for zero rows, made without the interpreter.

        LiteRT's XNNPack delegate can fail to resize a convolution to an empty
        batch ("BytesRequired number of elements overflowed"), as in the int8
        file of a convolutional decoder.
        """
        images = np.zeros((0, *self.image_shape), np.float32)
        return images, np.zeros((0, self.latent_dim), np.float32)

    def label_condition(self, label):
        """The one-hot condition `[1, num_classes]` for `label` (label-conditioned models)."""
        if self.condition_shape is None:
            raise ValueError(
                "Expected a conditional model for a label. Received: a model without a "
                "condition input"
            )
        if self.condition_type != "label":
            # As `keras-vae sample --label`: a 1-D condition alone is not known to be one-hot.
            raise ValueError(
                "Expected a label-conditioned model (condition_type='label'). Received: "
                f"condition_type={self.condition_type!r}, condition_shape={self.condition_shape}"
            )
        num_classes = self.condition_shape[0]
        if isinstance(label, bool) or not isinstance(label, numbers.Integral):
            raise ValueError(f"Expected label to be an integer. Received: label={label!r}")
        if not 0 <= label < num_classes:
            raise ValueError(f"Expected label in [0, {num_classes - 1}]. Received: label={label}")
        return np.eye(num_classes, dtype=np.float32)[[int(label)]]

    def _check_num_samples(self, num_samples):
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
            raise ValueError(
                f"Expected num_samples to be an integer. Received: num_samples={num_samples!r}"
            )
        if not 1 <= num_samples <= self.max_num_samples:
            raise ValueError(
                f"Expected num_samples to be an integer in [1, {self.max_num_samples}]. "
                f"Received: num_samples={num_samples}"
            )
        return int(num_samples)

    def _check_condition(self, condition):
        if self.condition_shape is None:
            if condition is not None:
                raise ValueError(
                    "Expected condition=None for a model without a condition input. "
                    "Received: a condition"
                )
            return None
        if condition is None:
            shape = "[batch, " + ", ".join(map(str, self.condition_shape)) + "]"
            raise ValueError(f"Expected a condition shaped {shape}. Received: condition=None")
        return _float_batch("condition", condition, self.condition_shape, noun="a condition")


def _chunks(total, batch_size, static):
    """(rows, runner, padded) for each chunk of `total` rows, at most `batch_size` each.

    `static` maps fixed batch sizes to runners. Full chunks of the largest
    static size up to `batch_size` run in its runner (`padded` 0), unless
    that size is below `min(MIN_STATIC_CHUNK, batch_size)` (many calls of a
    tiny batch cost more than they save); else full chunks of `batch_size`
    run in the dynamic signature (`runner` `None`). The rows left, fewer,
    run in the runner of their own size if there is one; else padded up to
    a static size at most twice their number (`padded` that size), as a
    convolutional decoder runs about twice as fast at a static shape; else
    in the dynamic signature.
    """
    sizes = sorted(b for b in static if b <= batch_size)
    size = sizes[-1] if sizes and sizes[-1] >= min(MIN_STATIC_CHUNK, batch_size) else batch_size
    start = 0
    while total - start >= size:
        yield slice(start, start + size), static.get(size), 0
        start += size
    left = total - start
    if left:
        larger = [b for b in sizes if left <= b <= 2 * left]
        if larger:
            padded = 0 if larger[0] == left else larger[0]
            yield slice(start, total), static[larger[0]], padded
        else:
            yield slice(start, total), None, 0


def _padded(value, rows):
    """`value` with rows of zeros appended up to `rows` rows."""
    padding = np.zeros((rows - len(value), *value.shape[1:]), value.dtype)
    return np.concatenate([value, padding])


def _float_batch(name, value, event_shape, noun=None):
    """`value` as a float32 array `[batch, *event_shape]` of finite numbers; raises in one
    line otherwise.

    The errors call it `noun` (default `name`), e.g. "a condition". Values
    beyond float32's range are refused, not made infinite.
    """
    noun = name if noun is None else noun
    shape = "[batch, " + ", ".join(map(str, event_shape)) + "]"
    try:
        original = np.asarray(value)
        if original.dtype.kind not in "biuf":
            raise TypeError
        with np.errstate(over="ignore"):
            value = original.astype(np.float32)
    except (TypeError, ValueError):
        raise ValueError(
            f"Expected {noun} of numbers shaped {shape}. Received: another type"
        ) from None
    if value.ndim < 1 or value.shape[1:] != tuple(event_shape):
        raise ValueError(f"Expected {noun} shaped {shape}. Received: {name}.shape={value.shape}")
    if value.size and not (np.isfinite(value.min()) and np.isfinite(value.max())):
        raise ValueError(
            f"Expected {noun} of finite float32 numbers. Received: {name} with "
            f"{int(np.sum(np.isnan(value)))} NaN and {int(np.sum(np.isinf(value)))} infinite "
            "values (in float32)"
        )
    return value


def _check_finite_output(images, inputs):
    """Raises unless the model's `images` for `inputs` (a description) are finite."""
    if images.size and not (np.isfinite(images.min()) and np.isfinite(images.max())):
        raise ValueError(
            "Expected the model to give finite images. Received: NaN or infinite images for "
            f"{inputs}"
        )


def _int32_seed(seed):
    """A signed or unsigned 32-bit seed as the signed int32 of the same bits."""
    is_integer_array = isinstance(seed, np.ndarray) and seed.ndim == 0 and seed.dtype.kind in "iu"
    if (
        isinstance(seed, bool)
        or not (isinstance(seed, numbers.Integral) or is_integer_array)
        or not -(2**31) <= int(seed) < 2**32
    ):
        raise ValueError(
            "Expected seed to be an integer in [-2**31, 2**32) (a signed or unsigned 32-bit "
            f"seed). Received: seed={seed!r}"
        )
    low = int(seed) & 0xFFFFFFFF
    return low - 2**32 if low >= 2**31 else low


def _quiet_at_exit():
    """Silences stderr when the process exits, once a `CompiledModel` was made.

    LiteRT prints one INFO line from C++ per accelerator as its registry is
    freed at exit, after every Python handler; a program that succeeded
    prints nothing to stderr. Registered once; an uncaught exception's
    traceback is printed before exit handlers run.
    """
    if not _QUIET_AT_EXIT:
        _QUIET_AT_EXIT.append(True)
        atexit.register(_silence_stderr)


def _silence_stderr():
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)


def _close_quietly(compiled, runners):
    """Frees a `CompiledModel`, the buffers of its `runners` and its environment, quietly."""
    with quiet_stderr():
        for batches in runners.values():
            for runner in batches.values():
                runner.close()
        environment = compiled.environment
        compiled.close()
        environment.close()


class _CompiledRunner:
    """One static-shape signature of a `CompiledModel`, called like a signature runner.

    Its buffers are made once, at the signature's fixed shapes.
    """

    def __init__(self, compiled, key):
        self._compiled = compiled
        self._index = compiled.get_signature_index(key)
        if self._index < 0:
            raise KeyError(key)
        names = compiled.get_signature_list()[key]
        self._input_names, self._output_names = names["inputs"], names["outputs"]
        inputs = compiled.get_input_tensor_details(key)
        outputs = compiled.get_output_tensor_details(key)
        self._input_dtypes = {n: np.dtype(inputs[n]["dtype"]) for n in self._input_names}
        self._input_shapes = {n: tuple(inputs[n]["shape"]) for n in self._input_names}
        self._outputs = {n: (tuple(outputs[n]["shape"]), outputs[n]["dtype"]) for n in outputs}
        self._input_buffers = compiled.create_input_buffers(self._index)
        self._output_buffers = compiled.create_output_buffers(self._index)

    def close(self):
        for buffer in (*self._input_buffers, *self._output_buffers):
            buffer.destroy()
        self._input_buffers = self._output_buffers = ()

    def __call__(self, **inputs):
        for name, buffer in zip(self._input_names, self._input_buffers, strict=True):
            value = np.asarray(inputs[name], self._input_dtypes[name])
            # A buffer holds the signature's fixed shape: never write past it.
            if value.shape != self._input_shapes[name]:
                raise ValueError(
                    f"Expected {name} shaped {self._input_shapes[name]}. Received: "
                    f"{name}.shape={value.shape}"
                )
            buffer.write(value)
        self._compiled.run_by_index(self._index, self._input_buffers, self._output_buffers)
        results = {}
        for name, buffer in zip(self._output_names, self._output_buffers, strict=True):
            shape, dtype = self._outputs[name]
            results[name] = buffer.read(int(np.prod(shape)), np.dtype(dtype)).reshape(shape)
        return results


class _QuietFirstCall:
    """A signature runner whose first call (where LiteRT allocates and prints "INFO:
    Created TensorFlow Lite XNNPACK delegate for CPU." from C++) runs with stderr silenced."""

    def __init__(self, runner):
        self._runner = runner
        self._called = False

    def __call__(self, **inputs):
        if self._called:
            return self._runner(**inputs)
        with quiet_stderr():
            outputs = self._runner(**inputs)
        self._called = True
        return outputs

    def __getattr__(self, name):
        return getattr(self._runner, name)


@contextlib.contextmanager
def quiet_stderr():
    """Points file descriptor 2 at the null device meanwhile (LiteRT and TFLite
    Micro log from C++, where Python's `sys.stderr` cannot catch it)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def written_by_keras_vae(path) -> bool:
    """Whether the file at `path` is a `.tflite` file that keras-vae exported.

    That is, whether it holds the `keras_vae` metadata record that every
    export writes (a file of another exporter, or none, does not).
    """
    try:
        with open(path, "rb") as f:
            return bool(_read_metadata(f.read()))
    except OSError:
        return False


def _read_metadata(content):
    """The `keras_vae` JSON record of a model's metadata, or `{}` without one."""
    try:
        model = _Table.root(content)
        buffers = model.vector(_MODEL_BUFFERS)
        for entry in model.vector(_MODEL_METADATA):
            if entry.string(_METADATA_NAME) == METADATA_NAME.encode():
                data = buffers[entry.scalar(_METADATA_BUFFER, "<I")].bytes(_BUFFER_DATA)
                return json.loads(data.decode())
    except (ValueError, IndexError, UnicodeDecodeError, struct.error):
        pass
    return {}


def _read_buffers(content):
    """Reads every buffer of a TFLite model: raises `struct.error` for a truncated file."""
    for buffer in _Table.root(content).vector(_MODEL_BUFFERS):
        buffer.bytes(_BUFFER_DATA)


# Field numbers of TFLite's flatbuffer schema (tensorflow/compiler/mlir/lite/schema/schema.fbs):
# Model.buffers, Model.metadata, Metadata.name, Metadata.buffer and Buffer.data.
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA = 0


class _Table:
    """A flatbuffer table of `content`: just enough to read a model's metadata.

    Written with `struct`, so the sampler reads its file with any TFLite
    runtime (tflite-runtime ships no schema module). Offsets outside the
    content raise `struct.error`, as a truncated file should.
    """

    def __init__(self, content, position):
        self.content, self.position = content, position
        vtable = position - struct.unpack_from("<i", content, position)[0]
        size = struct.unpack_from("<H", content, vtable)[0]
        self.fields = struct.unpack_from(f"<{(size - 4) // 2}H", content, vtable + 4)

    @classmethod
    def root(cls, content):
        return cls(content, struct.unpack_from("<I", content, 0)[0])

    def _field(self, number):
        """The absolute position of a field, or `None` when it is absent."""
        if number >= len(self.fields) or not self.fields[number]:
            return None
        return self.position + self.fields[number]

    def _indirect(self, number):
        at = self._field(number)
        return None if at is None else at + struct.unpack_from("<I", self.content, at)[0]

    def scalar(self, number, form):
        at = self._field(number)
        return 0 if at is None else struct.unpack_from(form, self.content, at)[0]

    def bytes(self, number):
        at = self._indirect(number)
        if at is None:
            return b""
        length = struct.unpack_from("<I", self.content, at)[0]
        if at + 4 + length > len(self.content):
            raise struct.error(f"a vector of {length} bytes runs past the end of the file")
        return bytes(self.content[at + 4 : at + 4 + length])

    string = bytes

    def vector(self, number):
        at = self._indirect(number)
        if at is None:
            return []
        length = struct.unpack_from("<I", self.content, at)[0]
        tables = []
        for i in range(length):
            element = at + 4 + 4 * i
            tables.append(
                _Table(self.content, element + struct.unpack_from("<I", self.content, element)[0])
            )
        return tables


_SHA256_FIELD = b'"file_sha256": "'


def _matches_its_sha256(content, metadata):
    """Whether `content` hashes to the `file_sha256` its metadata records, as
    `keras_vae.export.tflite.sealed` wrote it (the digest's own characters as zeros).

    A file without a record (another exporter) passes; one whose record
    cannot be read although its bytes name it does not.
    """
    recorded = metadata.get("file_sha256")
    if recorded is None:
        return _SHA256_FIELD not in content
    field = _SHA256_FIELD + str(recorded).encode()
    if len(str(recorded)) != 64 or content.count(field) != 1:
        return False
    zeroed = content.replace(field, _SHA256_FIELD + b"0" * 64)
    return hashlib.sha256(zeroed).hexdigest() == recorded


# --- keras-vae's portable RNG in numpy, for files that sample on the host -----
# A copy of `keras_vae.ops.random.normal` (see its docstring for the
# algorithm): the integer stage in uint32, whose products wrap modulo 2**32
# as the algorithm's do, so the words are bit-exact; the float stage (log,
# sqrt, cos) in float32, within a few ulps of TensorFlow's and LiteRT's.

_MIX_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)
_STREAM_KEYS = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0)
_NORMAL_STREAMS = (1, 2)
_LOG_SERIES_ABOVE = np.float32(0.875)
_LOG_SERIES_TERMS = 8


def _mix(x):
    """Wellons' `lowbias32` on uint32 arrays."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(_MIX_MULTIPLIERS[0])
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(_MIX_MULTIPLIERS[1])
    return x ^ (x >> np.uint32(16))


def _stream_word(seed, counter, stream):
    seed = np.array([seed & 0xFFFFFFFF], np.uint32)
    inner = _mix(seed ^ np.uint32(_STREAM_KEYS[2 * stream]))
    outer = _mix(seed ^ np.uint32(_STREAM_KEYS[2 * stream + 1]))
    return _mix(_mix(counter ^ inner) ^ outer)


def _to_unit(word):
    odd = (word >> np.uint32(9)).astype(np.int64) * 2 + 1
    return odd.astype(np.float32) * np.float32(2.0**-24)


def portable_normal(shape, seed):
    """`keras_vae.ops.random.normal(shape, seed)` in numpy (counter offset 0).

    Args:
        shape: tuple of non-negative ints.
        seed: int. Its low 32 bits are used.

    Returns:
        float32 array of `shape`: the same words as TensorFlow's, and
        values within a few float32 ulps (|z| at most sqrt(48 ln 2) ~ 5.77).
    """
    size = int(np.prod(shape, dtype=np.int64))
    counter = (np.arange(size, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32)
    with np.errstate(over="ignore"):
        u1 = _to_unit(_stream_word(int(seed), counter, _NORMAL_STREAMS[0]))
        u2 = _to_unit(_stream_word(int(seed), counter, _NORMAL_STREAMS[1]))
    v = np.float32(1.0) - u1
    series = np.float32(1.0 / _LOG_SERIES_TERMS)
    for k in range(_LOG_SERIES_TERMS - 1, 0, -1):
        series = np.float32(1.0 / k) + v * series
    minus_log = np.where(u1 > _LOG_SERIES_ABOVE, v * series, -np.log(u1))
    z = np.sqrt(np.float32(2.0) * minus_log) * np.cos(np.float32(2.0 * np.pi) * u2)
    return z.astype(np.float32).reshape(shape)


class _IntegerDecode:
    """The `decode` signature of an int8-full file, called with float32 arrays.

    Quantizes `z` (and `condition`) with the scale and zero point the file's
    metadata records, runs the fixed batch (the last chunk padded with
    zeros) and dequantizes the image.
    """

    def __init__(self, runner, quantization):
        self._runner = runner
        self._quantization = quantization
        self.batch_size = int(runner.get_input_details()["z"]["shape"][0])

    def __call__(self, **inputs):
        rows = len(inputs["z"])
        padding = -rows % self.batch_size
        if padding:
            inputs = {
                name: np.concatenate([value, np.zeros((padding, *value.shape[1:]), value.dtype)])
                for name, value in inputs.items()
            }
        # Quantized at once rather than per chunk: a batch-1 file runs a chunk per row.
        integers = integer_inputs(inputs, self._quantization)
        chunks = []
        for start in range(0, rows, self.batch_size):
            end = start + self.batch_size
            chunks.append(self._runner(**{k: v[start:end] for k, v in integers.items()})["image"])
        image = dequantized(np.concatenate(chunks)[:rows], self._quantization.get("image"))
        return {"image": image}

    def __getattr__(self, name):
        return getattr(self._runner, name)


class _HostSample:
    """A `sample` signature for int8-full files: z from `portable_normal`, then `decode`.

    As the float files' `sample` for a standard normal prior: row
    `b * num_samples + k` of z is draw `k` for condition `b`, the counters
    of `portable_normal([B * num_samples, latent_dim], seed)`.
    """

    def __init__(self, decode, latent_dim):
        self._decode = decode
        self._latent_dim = latent_dim

    def __call__(self, seed, num_samples, condition=None):
        rows = int(num_samples) * (1 if condition is None else len(condition))
        z = portable_normal((rows, self._latent_dim), int(seed))
        inputs = {"z": z}
        if condition is not None:
            inputs["condition"] = np.repeat(condition, int(num_samples), axis=0)
        return {"image": self._decode(**inputs)["image"], "z": z}

    def __getattr__(self, name):
        return getattr(self._decode, name)


def integer_inputs(inputs, quantization):
    """The int8 inputs of an int8-full file's `decode` for float32 `inputs`.

    Each input is quantized with its scale and zero point in the metadata's
    `quantization`. Where the file has a `z_residual` input, z comes in two
    parts: `z` is z on its int8 grid, and `z_residual` is z minus that
    grid value (at most half a step), on its own grid 255 times finer.

    Args:
        inputs: dict of float arrays: `z` and, for a ConditionalVAE,
            `condition`.
        quantization: the metadata's `quantization` record.

    Returns:
        A dict of int8 arrays, by the file's input names.
    """
    integers = {name: quantized(value, quantization.get(name)) for name, value in inputs.items()}
    if "z_residual" in quantization:
        z = np.asarray(inputs["z"], np.float64)
        residual = z - dequantized(integers["z"], quantization["z"]).astype(np.float64)
        integers["z_residual"] = quantized(residual, quantization["z_residual"])
    return integers


def quantized(value, quantization):
    """`value` as the integers `round(value / scale) + zero_point`, clipped to the dtype.

    With `quantization=None` (a float32 input), `value` as float32.

    Halves round away from zero, as TFLite's QUANTIZE does.
    """
    if quantization is None:
        return np.asarray(value, np.float32)
    dtype = np.dtype(quantization["dtype"])
    scaled = np.asarray(value, np.float64) / quantization["scale"]
    scaled = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    integers = scaled + quantization["zero_point"]
    return np.clip(integers, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


def dequantized(value, quantization):
    """`(value - zero_point) * scale` as float32 (`value` itself for `quantization=None`)."""
    if quantization is None:
        return np.asarray(value, np.float32)
    shifted = value.astype(np.float32) - np.float32(quantization["zero_point"])
    return shifted * np.float32(quantization["scale"])


def image_grid(images, padding=2):
    """Tiles images `[N, H, W, C]` in [0, 1] into one near-square uint8 grid."""
    n, h, w, c = images.shape
    rows = max(1, int(math.floor(math.sqrt(n))))
    cols = int(math.ceil(n / rows))
    grid = np.ones((rows * (h + padding) - padding, cols * (w + padding) - padding, c))
    for i, image in enumerate(images):
        top, left = (i // cols) * (h + padding), (i % cols) * (w + padding)
        grid[top : top + h, left : left + w] = image
    grid = np.round(np.clip(grid, 0.0, 1.0) * 255).astype(np.uint8)
    return grid[..., 0] if c == 1 else grid


def save(images, path):
    """Writes images `[N, H, W, C]` in [0, 1] as `.npy` or as a PNG grid; returns `path`.

    The folder of `path` is created if missing; the file is replaced in one rename.
    """
    if path.endswith(".npy"):
        content = io.BytesIO()
        np.save(content, images)
        return _write_atomically(path, content.getvalue())
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "Expected images shaped [N, H, W, C] with C in (1, 3) for a PNG grid; write .npy "
            f"instead. Received: images.shape={images.shape}"
        )
    try:
        from PIL import Image
    except ImportError:
        raise ValueError(
            "Expected Pillow to be installed to write a PNG (pip install pillow). "
            f"Received: --output {path}; write a .npy file instead"
        ) from None
    content = io.BytesIO()
    Image.fromarray(image_grid(images)).save(content, format="PNG")
    return _write_atomically(path, content.getvalue())


def _write_atomically(path, content):
    """Writes `content` to a hidden file beside `path`, then renames it to `path`.

    A stop or a full disk leaves the previous file (or none), never a cut one.
    """
    _make_parent(path)
    folder, name = os.path.split(os.path.abspath(path))
    fd, staged = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staged, 0o666 & ~umask)  # as open() would make it; mkstemp's is 0600
        os.replace(staged, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(staged)
        raise
    return path


def check_output(path):
    """Raises unless `path` can be written: not a folder, and no file where a folder goes."""
    if os.path.isdir(path):
        raise ValueError(f"Expected output to be a file path. Received: output={path!r} (a folder)")
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ValueError(
            f"Expected output in a folder. Received: output={path!r} ({folder} is a file)"
        )


def _make_parent(path):
    check_output(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument in one line, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _Parser(
        prog="litert_sampler",
        description="Generate images with a keras-vae .tflite model (numpy and LiteRT only).",
    )
    parser.add_argument("model", help="A .tflite file written by keras-vae.")
    parser.add_argument("--seed", type=int, default=0, help="Same seed, same images (default: 0).")
    parser.add_argument("--num-samples", type=int, default=16, help="Images to draw (default: 16).")
    parser.add_argument("--output", required=True, help="A .png grid or a .npy array.")
    parser.add_argument(
        "--label", type=int, default=None, help="The class to draw, required by a label CVAE."
    )
    parser.add_argument("--threads", type=int, default=None, help="Interpreter threads.")
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="auto",
        help="What runs the static-shape signatures: LiteRT's CompiledModel where it works "
        "(auto), or one of the two.",
    )
    return parser


class _Stopped(Exception):
    """Ctrl+C or SIGTERM, raised where the program was, so a file in progress is removed."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stops_as_exceptions():
    """Turns Ctrl+C and SIGTERM into `_Stopped` meanwhile (Python's SIGTERM ends at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        with _stops_as_exceptions():
            return _sample_to_file(args)
    except _Stopped as stop:
        print("litert_sampler: stopped; nothing was written", file=sys.stderr)
        return 128 + stop.signum
    except (ValueError, OSError) as e:
        print(f"litert_sampler: error: {e}", file=sys.stderr)
        return 1


def _sample_to_file(args):
    """The command line's work, once its arguments are parsed; the exit code."""
    if not args.output.endswith((".png", ".npy")):
        raise ValueError(
            f"Expected --output to end with .png or .npy. Received: output={args.output!r}"
        )
    check_output(args.output)  # before the model runs
    if args.threads is not None and args.threads < 1:
        raise ValueError(
            f"Expected --threads to be a positive integer. Received: threads={args.threads}"
        )
    sampler = Sampler(args.model, num_threads=args.threads, runtime=args.runtime)
    condition = None
    if args.label is not None:
        condition = sampler.label_condition(args.label)
    elif sampler.condition_type == "label":
        raise ValueError(
            "Expected --label for a label-conditioned model. Received: condition_type="
            f"{sampler.condition_type!r} and no --label"
        )
    elif sampler.condition_shape is not None:
        raise ValueError(
            "Expected a VAE or a label-conditioned model to sample from the command line "
            "(a completion model completes images: use Sampler.complete; for other "
            "conditions, pass them to Sampler.sample). Received: "
            f"condition_type={sampler.condition_type!r}"
        )
    images = sampler.sample(args.seed, args.num_samples, condition)
    path = save(np.clip(images, 0.0, 1.0).astype(np.float32), args.output)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
