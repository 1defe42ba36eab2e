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
