"""Writing files so that a crash never leaves half of one: the one atomic writer every file of the project goes through.

``atomic_write`` writes to a temporary file in the target's own folder (so the final ``os.replace`` is a rename on one
file system, which POSIX and Windows both make atomic), flushes it to disk, then moves it over the target. A reader
sees either the old file or the new one, never a torn one. An interrupted save (``kill -9``, power loss) can leave its
temporary file behind; those are named ``.tmp-*.part`` so ``remove_stale_temporaries`` can find and delete them on the
next start without touching anything else.

This module sits at the bottom of the package: it imports nothing from ``deeprnn``.
"""
import os
import tempfile
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"
TEMPORARY_SUFFIX = ".part"


def atomic_write(path, write):
    """Call ``write(binary_file_object)`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    The folder is created if needed. On any failure (including KeyboardInterrupt) the temporary file is removed and
    the error propagates; the previous content of ``path``, if any, is untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=TEMPORARY_SUFFIX, dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes the file private; a saved file should not be
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    atomic_write(path, lambda stream: stream.write(data))


def remove_stale_temporaries(folder):
    """Delete the ``.tmp-*.part`` files an interrupted ``atomic_write`` left in ``folder``; return their paths.

    Only regular files directly in ``folder`` that match the writer's own naming are removed (never subfolders, never
    symlinks' targets). A missing folder has nothing to clean.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for candidate in sorted(folder.glob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}")):
        if candidate.is_symlink() or not candidate.is_file():
            continue
        try:
            candidate.unlink()
        except FileNotFoundError:  # another process cleaned it first
            continue
        removed.append(candidate)
    return removed
