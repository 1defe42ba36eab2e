"""Shared fixtures: every numerical test runs on each available backend (NumPy always, CuPy with a GPU)."""
import os
from pathlib import Path

import pytest

import deeprnn as dr
from deeprnn import backend
from deeprnn.music import groove

os.environ.setdefault("KERAS_BACKEND", "jax")



def groove_folder():
    """The Groove MIDI Dataset for the tests, read-only: where $DEEPRNN_GROOVE says, else the copy beside the
    checkout (../shared/data/groove), else the one `make train` downloaded into the data cache."""
    configured = os.environ.get(groove.GROOVE_ENV)
    if configured:
        return Path(configured).expanduser()
    beside = Path(__file__).resolve().parents[2] / "shared" / "data" / "groove"
    if (beside / "info.csv").is_file():
        return beside
    return groove.downloaded_root() or beside


# Found once, before any test points $DEEPRNN_DATA at a temporary folder.
GROOVE = groove_folder()

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


def skip_without_groove():
    if not (GROOVE / "info.csv").is_file():
        pytest.skip(f"Groove MIDI Dataset not found at {GROOVE}, nor in the data cache (set DEEPRNN_GROOVE to its "
                    f"folder, or run `make train` once to download it)")


@pytest.fixture(name="groove")
def groove_fixture(tmp_path, monkeypatch):
    """The Groove folder for a pipeline test (skipped without it); the token cache goes to tmp_path."""
    skip_without_groove()
    monkeypatch.setenv("DEEPRNN_DATA", str(tmp_path / "cache"))  # the token cache, never the shared folder
    return str(GROOVE)


@pytest.fixture(scope="session")
def groove_root():
    """The real Groove MIDI Dataset folder (read-only), as a Path; skipped without it."""
    skip_without_groove()
    return GROOVE
