"""Shared fixtures: every numerical test runs on each available backend (NumPy always, CuPy with a GPU)."""
import os
from pathlib import Path

import pytest

import deeprnn as dr
from deeprnn import backend

os.environ.setdefault("KERAS_BACKEND", "jax")

# the Groove MIDI Dataset beside the checkout (read-only), or where DEEPRNN_GROOVE says
GROOVE = Path(os.environ.get("DEEPRNN_GROOVE", Path(__file__).resolve().parents[2] / "shared" / "data" / "groove"))

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


@pytest.fixture
def groove(tmp_path, monkeypatch):
    """The Groove folder for a pipeline test (skipped without it); the token cache goes to tmp_path."""
    if not (GROOVE / "info.csv").is_file():
        pytest.skip(f"Groove MIDI Dataset not found at {GROOVE} (set DEEPRNN_GROOVE to its folder)")
    monkeypatch.setenv("DEEPRNN_DATA", str(tmp_path / "cache"))  # the token cache, never the shared folder
    return str(GROOVE)
