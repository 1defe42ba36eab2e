"""The one atomic writer: a reader sees the old file or the new one, never a torn one, and no temporary is left."""
import os

import pytest

from deeprnn.files import atomic_write, atomic_write_bytes, remove_stale_temporaries


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write(target, lambda stream: stream.write(b"first"))
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["out.bin"]


def test_a_write_that_fails_halfway_keeps_the_previous_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")

    def dies_halfway(stream):
        stream.write(b"half")
        raise KeyboardInterrupt  # even an interrupt must not leave a temporary file

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_halfway)
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_remove_stale_temporaries_deletes_only_the_writers_leftovers(tmp_path):
    leftover = tmp_path / ".tmp-abc123.part"
    leftover.write_bytes(b"interrupted save")
    keep = [tmp_path / "best.npz", tmp_path / ".tmp-notes.txt", tmp_path / "tmp-x.part"]
    for path in keep:
        path.write_bytes(b"data")
    (tmp_path / ".tmp-folder.part").mkdir()
    assert remove_stale_temporaries(tmp_path) == [leftover]
    assert not leftover.exists()
    assert all(path.exists() for path in keep) and (tmp_path / ".tmp-folder.part").is_dir()
    assert remove_stale_temporaries(tmp_path / "missing") == []


# The read guard: what every reader of a path the user gave calls before reading a byte.

from deeprnn.errors import DataError, ModelFileError  # noqa: E402
from deeprnn.files import check_regular_file, open_regular_file, read_regular_file  # noqa: E402


def special_files(tmp_path):
    """Each kind of path that is not a regular file, named as a user's data would name it, with the words we expect."""
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.mid"
    folder.mkdir()
    zero = tmp_path / "zero.mid"
    zero.symlink_to("/dev/zero")
    return [(fifo, "is a named pipe (FIFO)"), (folder, "is a folder"), (zero, "is a character device")]


@pytest.mark.parametrize("guard", [check_regular_file, open_regular_file, read_regular_file])
def test_a_pipe_a_folder_and_a_link_to_dev_zero_are_refused_in_one_line_before_any_read(tmp_path, guard):
    for path, words in special_files(tmp_path):
        # a FIFO with no writer would block a plain open() forever: the guard must return at once
        with pytest.raises(DataError) as caught:
            guard(path, 1 << 20, "MIDI file")
        assert str(caught.value) == f"{path}: {words}, not a MIDI file"


@pytest.mark.parametrize("guard", [check_regular_file, open_regular_file, read_regular_file])
def test_a_file_over_the_callers_bound_is_refused_without_reading_it(tmp_path, guard):
    sparse = tmp_path / "huge.mid"
    with open(sparse, "wb") as stream:
        stream.truncate(5 << 30)  # 5 GB declared, nothing on disk: reading it whole would exhaust memory
    with pytest.raises(ModelFileError, match=r"huge\.mid: 5368709120 bytes, more than the 4194304 bytes a model"):
        guard(sparse, 4 << 20, "model file", ModelFileError)


def test_a_regular_file_within_the_bound_is_read_and_a_missing_one_is_file_not_found(tmp_path):
    path = tmp_path / "a.mid"
    path.write_bytes(b"MThd")
    assert check_regular_file(path, 4) == 4
    with open_regular_file(path, 4) as stream:
        assert stream.read() == b"MThd"
    assert read_regular_file(path, 4) == b"MThd"
    with pytest.raises(DataError):
        read_regular_file(path, 3)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing.mid", 4)
