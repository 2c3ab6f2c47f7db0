"""The `kind` fixture: each kind of the family in turn, `VAE` then `ConditionalVAE`."""

import keras
import pytest
from tiny_models import KINDS


@pytest.fixture(params=list(KINDS))
def kind(request):
    """A `tiny_models.Kind`: makes tiny models of one kind and hands them data."""
    return KINDS[request.param]


@pytest.fixture
def mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")
