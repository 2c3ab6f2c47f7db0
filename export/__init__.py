"""Exports to TF Serving (SavedModel), TFLite and TFLite Micro, and their verification."""

from keras_vae.export.export_model import export_model, format_report
from keras_vae.export.litert_sampler import Sampler
from keras_vae.export.saved_model import export_saved_model, next_version
from keras_vae.export.serving_module import MAX_NUM_SAMPLES, ServingModule
from keras_vae.export.tflite import export_tflite, tflite_ops
from keras_vae.export.tflite_micro import export_tflite_micro
from keras_vae.export.validation import QUANTIZE_MODES, check_exportable
from keras_vae.export.verify import TOLERANCES, verify_export

__all__ = [
    "MAX_NUM_SAMPLES",
    "QUANTIZE_MODES",
    "TOLERANCES",
    "Sampler",
    "ServingModule",
    "check_exportable",
    "export_model",
    "export_saved_model",
    "export_tflite",
    "export_tflite_micro",
    "format_report",
    "next_version",
    "tflite_ops",
    "verify_export",
]
