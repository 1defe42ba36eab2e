"""One ``.npz`` file per model: the architecture as JSON, every weight, the optimizer state, optional metadata.

Everything is stored as plain arrays (JSON as a unicode scalar) so ``numpy.load(..., allow_pickle=False)`` reads it:
a checkpoint can never run code. Writes go to a temporary file beside the target, then ``os.replace`` moves it over:
a crash mid-save leaves the previous file intact.
"""
import json
import os
import zipfile

import numpy

from . import backend, layers
from .files import atomic_write

FORMAT = "deeprnn-model"
VERSION = 1
LAYER_CLASSES = {cls.__name__: cls for cls in (layers.Dense, layers.Activation, layers.Dropout,
                                              layers.BatchNormalization, layers.Embedding, layers.SimpleRNN,
                                              layers.GRU, layers.LSTM)}


def register_layer_class(cls):
    """Let ``load_model`` rebuild layers of ``cls`` (a Layer subclass with get_config/from_config)."""
    LAYER_CLASSES[cls.__name__] = cls
    return cls


def model_config(model):
    config = {
        "format": FORMAT, "version": VERSION, "class_name": "Sequential", "name": model.name,
        "floatx": backend.floatx(),
        "build_input_shape": list(model.built_input_shape) if model.built_input_shape else None,
        "input": model.input_spec.get_config() if model.input_spec is not None else None,
        "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in model.layers],
    }
    if model.loss is not None:
        config["compile"] = {"loss": model.loss.name, "optimizer": model.optimizer.get_config()}
    return config


def model_from_config(config):
    from .model import Sequential
    if config.get("format") != FORMAT:
        raise ValueError("not a deeprnn model config (missing format marker)")
    model = Sequential(name=config.get("name", "sequential"))
    if config.get("input"):
        model.add(layers.Input.from_config(config["input"]))
    for entry in config["layers"]:
        cls = LAYER_CLASSES.get(entry["class_name"])
        if cls is None:
            raise ValueError(f"unknown layer class {entry['class_name']!r} in model config")
        model.add(cls.from_config(entry["config"]))
    if config.get("build_input_shape"):
        model.build(tuple(config["build_input_shape"]))
    if config.get("compile"):
        model.compile(optimizer=config["compile"]["optimizer"], loss=config["compile"]["loss"])
    return model


def save_model(model, path, include_optimizer=True, metadata=None):
    model.require_built("save")
    arrays = {"architecture": numpy.array(json.dumps(model_config(model)))}
    for index, weight in enumerate(model.get_weights()):
        arrays[f"weight_{index:04d}"] = weight
    if include_optimizer and model.optimizer is not None:
        arrays["optimizer_iterations"] = numpy.array(model.optimizer.iterations)
        for index, state in enumerate(model.optimizer.get_state()):
            arrays[f"optimizer_{index:04d}"] = state
    if metadata is not None:
        arrays["metadata"] = numpy.array(json.dumps(metadata))
    atomic_write(path, lambda stream: numpy.savez(stream, **arrays))


def read_archive(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:  # a truncated zip is BadZipFile
        raise ValueError(f"{path}: not a readable deeprnn model file ({error})") from None


def load_model(path):
    """Rebuild the model saved at ``path``: architecture, weights, compile settings and optimizer state."""
    arrays = read_archive(path)
    if "architecture" not in arrays:
        raise ValueError(f"{path}: not a deeprnn model file (no architecture entry)")
    config = json.loads(str(arrays["architecture"]))
    model = model_from_config(config)
    weights = [arrays[key] for key in sorted(k for k in arrays if k.startswith("weight_"))]
    try:
        model.set_weights(weights)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if model.optimizer is not None and "optimizer_iterations" in arrays:
        state = [arrays[key] for key in sorted(k for k in arrays if k.startswith("optimizer_") and k[-1].isdigit())]
        model.optimizer.set_state(int(arrays["optimizer_iterations"]), state, model.trainable_variables)
    return model


def load_metadata(path):
    """The metadata dict saved with the model (or {})."""
    arrays = read_archive(path)
    return json.loads(str(arrays["metadata"])) if "metadata" in arrays else {}
