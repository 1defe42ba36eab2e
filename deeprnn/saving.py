"""``load_model`` and ``load_metadata``: a model file (``Sequential.save``) opened again.

The format lives in ``serialization`` (below the model); this module sits above ``Sequential`` and rebuilds one
from a file's architecture, then loads its weights and optimizer state. Any layer of ``deeprnn.layers`` opens in a
process that imports only ``deeprnn``.
"""
from .model import Sequential
from .serialization import json_entry, read_archive, register_layer_class

__all__ = ["load_model", "load_metadata", "save_model", "register_layer_class"]


def save_model(model, path, include_optimizer=True, metadata=None):
    """The same as ``model.save(path, ...)``."""
    model.save(path, include_optimizer=include_optimizer, metadata=metadata)


def load_model(path):
    """Rebuild the model saved at ``path``: architecture, weights, compile settings and optimizer state."""
    arrays = read_archive(path)
    if "architecture" not in arrays:
        raise ValueError(f"{path}: not a deeprnn model file (no architecture entry)")
    try:
        model = Sequential.from_config(json_entry(arrays, "architecture", path))
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: malformed architecture ({error!r})") from None
    model.restore_arrays(arrays, path)
    return model


def load_metadata(path):
    """The metadata dict saved with the model (or {})."""
    arrays = read_archive(path)
    return json_entry(arrays, "metadata", path) if "metadata" in arrays else {}
