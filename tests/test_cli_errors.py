"""Expected failures end with one clear line and a non-zero status, never a traceback."""
import subprocess
import sys
from pathlib import Path

import pytest

from deeprnn import backend
from deeprnn.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(backend.cupy_or_none() is not None, reason="a GPU is present: --device gpu is valid here")
@pytest.mark.parametrize("command", [[sys.executable, "-m", "deeprnn", "train"],
                                     [sys.executable, str(REPO_ROOT / "examples" / "train_groove.py")]])
def test_device_gpu_without_a_gpu_is_one_line_and_exit_status_2(command):
    result = subprocess.run([*command, "--device", "gpu", "--data", "/nonexistent"], capture_output=True,
                            text=True, cwd=REPO_ROOT)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--device gpu needs CuPy and a CUDA GPU" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_checkpoint_and_missing_data_are_one_line_errors(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "nope.npz")]) == 1
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 1
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--data", str(tmp_path)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3
    assert "checkpoint not found" in errors[0]
    assert "no such file or folder" in errors[1]
    assert "nothing to resume" in errors[2]


def test_bad_flag_values_are_refused_before_any_work(tmp_path, capsys):
    assert main(["train", "--dropout", "1.5", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 1
    assert "--dropout must be in [0, 1)" in capsys.readouterr().err
