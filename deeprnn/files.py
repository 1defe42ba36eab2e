"""Writing files so that a crash never leaves half of one: the one atomic writer every file of the project goes through.

``atomic_write`` writes to a temporary file in the target's own folder (so the final ``os.replace`` is a rename on one
file system, which POSIX and Windows both make atomic), flushes it to disk, then moves it over the target. A reader
sees either the old file or the new one, never a torn one. An interrupted save (``kill -9``, power loss) can leave its
temporary file behind; those are named ``.tmp-*.part`` so ``remove_stale_temporaries`` can find and delete them on the
next start without touching anything else.

A folder a process writes into is taken with ``FolderLock``: ``fcntl.flock`` on a lock file in it, which holds
the holder's process id and command line so that a second process is told who has it. The kernel releases the lock
when its process ends in any way (``kill -9`` included), so a lock left by a dead process is never an obstacle:
the file stays, its lock does not, and the next process takes it over.

Reading is guarded the same way, in one place: ``check_regular_file`` and ``open_regular_file`` are what every reader
of a path the user gave calls first. They refuse, in one line naming the path, anything that is not a regular file (a
named pipe would block the reader forever, ``/dev/zero`` never ends, a folder named ``x.mid`` is not a MIDI file) and
a file larger than the caller's bound, before a single byte is read.

This module sits at the bottom of the package: it imports only ``errors``.
"""
import fcntl
import os
import shlex
import stat
import sys
import tempfile
from pathlib import Path

from .errors import DataError, DeeprnnError

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


def _kind(mode):
    """What a file that is not a regular file is, in words."""
    for test, words in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file"


def _check_status(path, status, max_bytes, what, error):
    if not stat.S_ISREG(status.st_mode):
        raise error(f"{path}: is {_kind(status.st_mode)}, not a {what}")
    if status.st_size > max_bytes:
        raise error(f"{path}: {status.st_size} bytes, more than the {max_bytes} bytes a {what} may have")
    return status.st_size


def check_regular_file(path, max_bytes, what="file", error=DataError):
    """Size in bytes of the regular file at ``path``; ``error`` (one line naming ``path``) if it is anything else.

    Symlinks are followed, so a link to ``/dev/zero`` is judged as the device it names. ``what`` names the file in
    the message ("MIDI file", "model file"); ``error`` is the ``DeeprnnError`` class the caller's domain raises
    (``DataError`` for data, ``ModelFileError`` for models). A missing path is ``FileNotFoundError``. Nothing is
    opened: for a caller that hands the path to a library which opens it itself (``numpy.load``, ``mido``). Prefer
    ``open_regular_file`` where the caller reads the bytes: it checks the file it has open, so the path cannot be
    swapped for a pipe between the check and the read.
    """
    return _check_status(path, os.stat(path), max_bytes, what, error)


def open_regular_file(path, max_bytes, what="file", error=DataError):
    """``path`` opened for binary reading, after the same checks as ``check_regular_file``, made on the open file.

    The file is opened with ``O_NONBLOCK`` so that opening a named pipe with no writer returns at once instead of
    blocking forever; the checks then run on ``fstat`` of that descriptor, and only a regular file is handed back
    (in blocking mode again).
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        check_regular_file(path, max_bytes, what, error)  # a socket cannot be opened: say what it is
        raise
    try:
        _check_status(path, os.fstat(descriptor), max_bytes, what, error)
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular_file(path, max_bytes, what="file", error=DataError):
    """The bytes of the regular file at ``path``, read through ``open_regular_file`` (never more than ``max_bytes``).

    The read itself stops at ``max_bytes + 1`` bytes, so a file that grows after the check is still refused.
    """
    with open_regular_file(path, max_bytes, what, error) as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise error(f"{path}: more than the {max_bytes} bytes a {what} may have")
    return data


LOCK_NAME = ".deeprnn.lock"


class FolderInUseError(DeeprnnError, OSError):
    """Another live process holds the folder's ``FolderLock``; the message names it (process id, command line)."""


class FolderLock:
    """An exclusive claim on ``folder`` for as long as this process holds it (a context manager).

        with FolderLock(out_dir):      # FolderInUseError naming the holder if another process has it
            ...write into out_dir...

    ``flock`` on ``folder/.deeprnn.lock``, taken without waiting. The lock file is never deleted: deleting it
    would let a process that opened the old file and one that creates a new one both hold "the" lock. Releasing
    empties it; a holder that died leaves its text behind, but not its lock (the kernel drops it with the
    process), and the next holder overwrites the text. On a file system without ``flock`` support the claim
    fails with the OSError that says so.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.descriptor = None

    def acquire(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        # never through a symlink: the lock file is truncated, and must not be someone else's file
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        try:
            mode = os.fstat(descriptor).st_mode
            if not stat.S_ISREG(mode):
                raise FolderInUseError(f"{self.path}: is {_kind(mode)}, not the lock file deeprnn writes")
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lines = os.pread(descriptor, 4096, 0).decode("utf-8", "replace").splitlines()
            holder = lines[0][:300] if lines else "another process"
            os.close(descriptor)
            raise FolderInUseError(f"{self.folder} is in use by {holder}; wait for it to finish, or use another "
                                   "folder") from None
        except BaseException:
            os.close(descriptor)
            raise
        # one line, whatever bytes or newlines the arguments hold
        command = shlex.join(sys.argv).encode("utf-8", "backslashreplace").replace(b"\n", b"\\n")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, b"process %d (%s)\n" % (os.getpid(), command), 0)
        self.descriptor = descriptor
        return self

    def release(self):
        if self.descriptor is not None:
            os.ftruncate(self.descriptor, 0)  # before unlocking: a reader never sees a released holder's name
            fcntl.flock(self.descriptor, fcntl.LOCK_UN)
            os.close(self.descriptor)
            self.descriptor = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
