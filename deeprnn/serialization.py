"""The model file's format, below the model: which layer classes a config may name, and the ``.npz`` archive.

A model file is one ``.npz``: the architecture as JSON (``Sequential.get_config``), every weight as
``weight_0000``..., the optimizer state as ``optimizer_iterations`` and ``optimizer_0000``..., and optional
``metadata`` JSON. Everything is stored as plain arrays (JSON as a unicode scalar) so ``numpy.load(...,
allow_pickle=False)`` reads it: a model file can never run code. Writes go through ``files.atomic_write``: a
crash mid-save leaves the previous file intact.

This module knows layers and files, never ``Sequential``: the model imports it to save itself and to rebuild its
layers; ``saving.load_model`` sits above both.
"""
import json
import os
import zipfile

import numpy

from . import layers
from .files import atomic_write

FORMAT = "deeprnn-model"
VERSION = 1
LAYER_CLASSES = {cls.__name__: cls for cls in (layers.Dense, layers.Activation, layers.Dropout,
                                              layers.BatchNormalization, layers.Embedding, layers.SimpleRNN,
                                              layers.GRU, layers.LSTM, layers.StepCounterEmbedding,
                                              layers.ConditionedEmbedding)}


def register_layer_class(cls):
    """Let ``load_model`` rebuild layers of ``cls`` (a Layer subclass with get_config/from_config)."""
    LAYER_CLASSES[cls.__name__] = cls
    return cls


def layer_to_config(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def layer_from_config(entry):
    cls = LAYER_CLASSES.get(entry["class_name"])
    if cls is None:
        raise ValueError(f"unknown layer class {entry['class_name']!r} in model config")
    return cls.from_config(entry["config"])


def write_archive(path, arrays):
    """Write ``arrays`` (name -> array) as one .npz at ``path``, atomically."""
    atomic_write(path, lambda stream: numpy.savez(stream, **arrays))


def read_archive(path):
    """Every array of the .npz at ``path`` (pickle refused); a clear ValueError for anything unreadable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    # a truncated zip is BadZipFile; a damaged "version needed" field is NotImplementedError
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as error:
        raise ValueError(f"{path}: not a readable deeprnn model file ({error})") from None


def json_entry(arrays, key, path):
    """The JSON document stored under ``key``, or a ValueError naming the file."""
    try:
        return json.loads(str(arrays[key]))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: its {key} entry is not valid JSON ({error})") from None


def numbered(arrays, prefix):
    """The arrays named ``prefix0000``, ``prefix0001``... in order."""
    return [arrays[key] for key in sorted(k for k in arrays if k.startswith(prefix) and k[len(prefix):].isdigit())]
