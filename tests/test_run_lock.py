"""Two runs, one folder (issue 22, class 6): a folder is taken with FolderLock; a second process is told, in one line,
which process holds it; a holder that dies (kill -9) leaves no lock behind. Tested with real processes."""
import os
import signal
import subprocess
import sys

import pytest

from deeprnn.errors import DeeprnnError
from deeprnn.files import LOCK_NAME, FolderInUseError, FolderLock
from deeprnn.pipeline import trainer
from deeprnn.pipeline.recipes import TrainConfig

HOLDER = ("import sys; from deeprnn.files import FolderLock; lock = FolderLock(sys.argv[1]).acquire(); "
          "print('holding', flush=True); sys.stdin.read()")


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/run, started as `python -c ... <folder> --tag`; yields (process, folder)."""
    folder = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), "--tag"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "holding\n"
        yield process, folder
    finally:
        process.kill()
        process.wait()


def test_a_second_process_is_refused_in_one_line_naming_the_holder(holder):
    process, folder = holder
    with pytest.raises(FolderInUseError) as caught:
        FolderLock(folder).acquire()
    message = str(caught.value)
    assert message.startswith(f"{folder} is in use by process {process.pid} (")
    assert f"{folder} --tag)" in message and "\n" not in message
    assert isinstance(caught.value, DeeprnnError)


def test_a_lock_left_by_a_killed_process_is_taken_over(holder):
    process, folder = holder
    os.kill(process.pid, signal.SIGKILL)   # no chance to release: the kernel drops the lock with the process
    process.wait()
    assert f"process {process.pid}" in (folder / LOCK_NAME).read_text()   # the dead holder's text stays
    with FolderLock(folder) as lock:
        assert (folder / LOCK_NAME).read_text().startswith(f"process {os.getpid()} (")
        # the other way round: this process holds it, another one is refused
        other = subprocess.run([sys.executable, "-c", HOLDER, str(folder)], capture_output=True, text=True, input="")
        assert other.returncode == 1
        assert f"FolderInUseError: {folder} is in use by process {os.getpid()} (" in other.stderr
    assert lock.descriptor is None and (folder / LOCK_NAME).read_text() == ""
    FolderLock(folder).acquire().release()   # released: free again


def test_train_takes_the_out_folder_before_it_looks_at_anything(holder):
    process, folder = holder
    # the data does not exist: the lock is refused before the folder or the data are read
    with pytest.raises(FolderInUseError, match=f"in use by process {process.pid} "):
        trainer.train(TrainConfig(recipe="drums", data=str(folder / "no-such-data")), folder, progress=False)


def test_the_lock_file_is_never_opened_through_a_symlink(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).symlink_to(target)
    with pytest.raises(OSError):
        FolderLock(tmp_path / "run").acquire()
    assert target.read_text() == "keep me"


def test_deeprnn_train_into_a_folder_another_run_holds_is_one_line_naming_it(holder, tmp_path):
    process, folder = holder
    second = subprocess.run([sys.executable, "-m", "deeprnn", "train", "--out", str(folder), "--data", str(tmp_path),
                             "--epochs", "1", "--quiet"], capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    # the holder's sys.argv, as `python -c` leaves it
    assert second.stderr.strip().splitlines() == [
        f"deeprnn train: error: {folder} is in use by process {process.pid} (-c {folder} --tag); wait for it to "
        "finish, or use another folder"]
