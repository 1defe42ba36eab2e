"""Shared fixtures: every numerical test runs on each available backend (NumPy always, CuPy with a GPU)."""
import os

import pytest

import deeprnn as dr
from deeprnn import backend

os.environ.setdefault("KERAS_BACKEND", "jax")

BACKENDS = [pytest.param("cpu", id="numpy"),
            pytest.param("gpu", id="cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(
                backend.cupy_or_none() is None, reason="CuPy with a CUDA GPU is not available")])]


@pytest.fixture(params=BACKENDS)
def device(request):
    """Run the test on one backend; restores the CPU backend and float32 afterwards."""
    dr.set_device(request.param)
    yield request.param
    dr.set_device("cpu")
    dr.set_floatx("float32")


@pytest.fixture
def float64():
    """Gradient checks run in float64."""
    dr.set_floatx("float64")
    yield
    dr.set_floatx("float32")


@pytest.fixture(autouse=True)
def restore_defaults():
    yield
    dr.set_device("cpu")
    dr.set_floatx("float32")
