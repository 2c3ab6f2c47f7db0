import pytest
from tiny_image_models import make_completion_cvae, make_label_cvae, make_vae


@pytest.fixture(scope="module")
def vae():
    return make_vae()


@pytest.fixture(scope="module")
def label_cvae():
    return make_label_cvae()


@pytest.fixture(scope="module")
def completion_cvae():
    return make_completion_cvae()


@pytest.fixture(params=["vae", "label_cvae", "completion_cvae"])
def any_model(request):
    """Each kind of model the pictures draw, in turn."""
    return request.getfixturevalue(request.param)
