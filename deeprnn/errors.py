"""The library's exceptions for problems the user can fix, one family: ``DeeprnnError``.

The command line reports a ``DeeprnnError`` (and an ``OSError``: a disk, a permission, a path) in one line; any
other exception is a bug in deeprnn and keeps its traceback. Each class also derives from the builtin a Python
caller would expect (``ValueError`` for a bad value, ``ImportError`` for a missing package), as Keras raises
``ValueError`` for a bad layer argument, so ``except ValueError`` in a user's code still catches them.

This module imports nothing from the package: every layer of it may raise these.
"""


class DeeprnnError(Exception):
    """A problem with what the user gave: a setting, a file, data, a missing extra. Its text is one line."""


class SettingError(DeeprnnError, ValueError):
    """A setting or argument outside its declared type or range (names the flag or argument)."""


class DataError(DeeprnnError, ValueError):
    """Input data that cannot be used: a MIDI file, ``info.csv``, a data folder (names the file)."""


class ModelFileError(DeeprnnError, ValueError):
    """A model or checkpoint file that cannot be loaded: damaged, edited, or not a model file (names the file)."""


class MissingExtraError(DeeprnnError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""
