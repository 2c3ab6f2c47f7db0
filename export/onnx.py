"""ONNX export: the SavedModel's signatures converted by tf2onnx, checked under onnxruntime."""

import logging
import os
import tempfile

import tensorflow as tf

from keras_vae.export.serving_module import ServingModule
from keras_vae.export.validation import check_folder_path
from keras_vae.utils.staged_path import folder_entries, listed, publish_replacing

# Opset 18 is the first with BitwiseXor and BitwiseAnd, which the portable
# counter RNG of the seeded `sample` needs (at 17 tf2onnx leaves a BitwiseXor
# that onnxruntime rejects).
ONNX_OPSET = 18
# One file per signature of the SavedModel but `sample_rows` (TF Serving's row
# format); serving_default is the decoder.
SIGNATURES = ("serving_default", "sample", "encode", "reconstruct")
ONNX_FILES = {name: f"{name}.onnx" for name in SIGNATURES} | {"serving_default": "decode.onnx"}
ONNX_FUNCTIONS = ("decode", "sample", "encode", "reconstruct")


def _tf2onnx():
    try:
        import tf2onnx
        from tf2onnx import tf_loader
    except ImportError:
        raise ValueError(
            "Expected tf2onnx to be installed to export ONNX (pip install 'keras-vae[onnx]'). "
            "Received: no module named tf2onnx"
        ) from None
    return tf2onnx, tf_loader


def convert_onnx(model, opset: int = ONNX_OPSET) -> dict:
    """The ONNX models of a float32 model's SavedModel signatures.

    Args:
        model: a float32 model of the family (see `float32_model`).
        opset: int. ONNX opset, at least 18. Defaults to `18`.

    Returns:
        A dict from file name (`decode.onnx`, `sample.onnx`, `encode.onnx`,
        `reconstruct.onnx`) to the serialized model. Inputs and outputs keep
        the signatures' names (`z`, `condition`, `seed`, `num_samples`,
        `image`, ...).
    """
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < ONNX_OPSET:
        raise ValueError(
            f"Expected opset to be an integer of at least {ONNX_OPSET} (the seeded sampler's "
            f"bitwise ops). Received: opset={opset!r}"
        )
    tf2onnx, tf_loader = _tf2onnx()
    # tf2onnx logs each node it cannot convert (many lines) and goes on;
    # `_check_runs` turns the outcome into one error instead. The TensorFlow
    # functions it calls log their deprecation (about 8 lines on stderr).
    quieted = {"tf2onnx": logging.CRITICAL, "tensorflow": logging.ERROR}
    levels = {name: logging.getLogger(name).level for name in quieted}
    for name, level in quieted.items():
        logging.getLogger(name).setLevel(level)
    try:
        with tempfile.TemporaryDirectory() as folder:
            saved_model = os.path.join(folder, "saved_model")
            # Without the SavedModel's empty-batch `tf.cond`: inside it, tf2onnx
            # cannot convert a transposed convolution (its kernel's shape is lost).
            module = ServingModule(model, functions=ONNX_FUNCTIONS, empty_batches=False)
            tf.saved_model.save(module, saved_model, signatures=module.signatures(SIGNATURES))
            return {
                name: _convert_signature(tf2onnx, tf_loader, saved_model, signature, opset)
                for signature, name in ONNX_FILES.items()
            }
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _convert_signature(tf2onnx, tf_loader, saved_model, signature, opset):
    """One signature of the SavedModel at `saved_model` as a serialized ONNX model."""
    graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
        saved_model, None, None, signatures=[signature], return_tensors_to_rename=True
    )
    try:
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            name=signature,
            input_names=inputs,
            output_names=outputs,
            opset=opset,
            tensors_to_rename=renames,
        )
    except Exception as error:  # tf2onnx raises bare Exceptions for unsupported ops
        raise ValueError(
            f"Expected a model whose {signature!r} signature converts to ONNX. "
            f"Received: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        ) from None
    content = proto.SerializeToString()
    _check_runs(signature, content)
    return content


def _check_runs(signature, content):
    """Raises in one line unless onnxruntime can load `content`.

    tf2onnx logs the nodes it cannot convert and goes on, leaving them out:
    the model it returns is then refused by onnxruntime. Today this is the
    case for transposed convolutions inside the SavedModel's empty-batch
    `tf.cond` (the conv presets).
    """
    try:
        import onnxruntime
    except ImportError:
        return  # run again by `verify_export` before anything is published
    try:
        onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own exception types
        raise ValueError(
            f"Expected a model whose {signature!r} signature converts to ONNX (tf2onnx leaves "
            "out the ops it cannot convert). Received: onnxruntime cannot load it "
            f"({str(error).splitlines()[0][:160]})"
        ) from None


def write_onnx(files: dict, folder: str) -> None:
    """Writes the files of `convert_onnx` into `folder` (a new or staged folder)."""
    os.makedirs(folder, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(folder, name), "xb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())


def check_onnx_dir(path) -> str:
    """Returns `path` as a str, if an export may write its ONNX folder there.

    A new path, an empty folder, or one that holds only the files an earlier
    export wrote (which `publish_onnx` replaces whole). Any other file in it
    is refused: replacing the folder would delete it.
    """
    path = check_folder_path("onnx_dir", path, "decode.onnx")
    _check_only_onnx_files(path)
    return path


def _check_only_onnx_files(folder):
    _, others = folder_entries(folder, lambda name: name in ONNX_FILES.values())
    if others:
        raise ValueError(
            "Expected onnx_dir to be a new or empty folder, or one an earlier export wrote "
            f"(an export replaces it whole). Received: onnx_dir={folder!r}, which holds "
            f"{listed(others)}"
        )


def publish_onnx(staged) -> str:
    """Renames a staged ONNX folder into place, replacing an earlier export's folder.

    The earlier folder is checked again first (`check_onnx_dir`): a file put
    there since the export began stops it. See `publish_replacing`.
    """
    return publish_replacing(staged, _check_only_onnx_files)


def run_onnx(folder: str, signature: str, inputs: dict) -> dict:
    """Runs a signature's ONNX file in `folder` under onnxruntime; its outputs by name.

    Args:
        folder: str. What `write_onnx` wrote.
        signature: str. A SavedModel signature name (`"serving_default"`, `"sample"`, ...).
        inputs: dict of arrays by input name; names the file does not take are left out.
    """
    try:
        import onnxruntime
    except ImportError:
        raise ValueError(
            "Expected onnxruntime to be installed to check the ONNX export "
            "(pip install 'keras-vae[onnx]'). Received: no module named onnxruntime"
        ) from None
    session = onnxruntime.InferenceSession(
        os.path.join(folder, ONNX_FILES[signature]), providers=["CPUExecutionProvider"]
    )
    wanted = {i.name for i in session.get_inputs()}
    outputs = session.run(None, {k: v for k, v in inputs.items() if k in wanted})
    return dict(zip([o.name for o in session.get_outputs()], outputs, strict=True))
