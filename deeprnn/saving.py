"""``load_model`` and ``load_metadata``: a model file (``Sequential.save``) opened again.

The format lives in ``serialization`` (below the model); this module sits above ``Sequential`` and rebuilds one
from a file's architecture, then loads its weights and optimizer state. Any layer of ``deeprnn.layers`` opens in a
process that imports only ``deeprnn``. Every problem with the file is a ``ModelFileError`` naming it and the entry
or field at fault; nothing the file declares is allocated before it is checked (see ``serialization``).
"""
from .errors import ModelFileError
from .layers import Input
from .model import Sequential
from .serialization import (ModelArchive, Optional, check_declared_parameters, check_fields, layer_from_config,
                            parameter_limit, register_layer_class)

__all__ = ["load_model", "load_metadata", "save_model", "register_layer_class"]

# The fields of the architecture that ``Sequential.from_config`` reads, and their types.
ARCHITECTURE_FIELDS = {"format": str, "layers": [{"class_name": str, "config": dict}],
                       "input": Optional((dict, None)), "build_input_shape": Optional((list, None)),
                       "compile": Optional((dict, None))}


def save_model(model, path, include_optimizer=True, metadata=None):
    """The same as ``model.save(path, ...)``."""
    model.save(path, include_optimizer=include_optimizer, metadata=metadata)


def load_model(path):
    """Rebuild the model saved at ``path``: architecture, weights, compile settings and optimizer state."""
    with ModelArchive(path) as archive:
        config = archive.json("architecture")
        model = model_from_architecture(config, archive)
        arrays = archive.model_arrays(model)
    model.restore_arrays(arrays, archive.path)
    return model


def model_from_architecture(config, archive):
    """``Sequential.from_config(config)``, once the parameters it declares are known to fit in the file."""
    path = archive.path
    check_fields(config, ARCHITECTURE_FIELDS, path, "architecture")
    try:
        model_layers = [layer_from_config(entry) for entry in config["layers"]]
        input_shape = (Input.from_config(config["input"]).batch_shape if config.get("input")
                       else config.get("build_input_shape"))
        if input_shape is not None:
            limit, why = parameter_limit(archive.declared_bytes("weight_"))
            check_declared_parameters(model_layers, input_shape, limit, path, why)
        return Sequential.from_config(config)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise ModelFileError(f"{path}: malformed architecture ({type(error).__name__}: {error})") from None


def load_metadata(path, fields=None):
    """The metadata dict saved with the model (or {}); ``fields``: a ``check_fields`` schema it must have."""
    with ModelArchive(path) as archive:
        metadata = archive.json("metadata") if "metadata" in archive else {}
    if fields is not None:
        check_fields(metadata, fields, archive.path, "metadata")
    return metadata
