"""Keras 3 files in and out, read and written with ``zipfile`` and ``h5py`` only (Keras is never imported).

    model = keras_io.load_keras("model.keras")                       # architecture + weights
    keras_io.load_keras("model.weights.h5", model=model)             # weights into a model you built
    keras_io.save_keras_weights(model, "model.weights.h5")           # Keras: model.load_weights(...)

A ``.keras`` file is a zip archive holding ``config.json`` (the architecture), ``model.weights.h5`` (the weights)
and ``metadata.json``. Keras 3 lays the weights out by position, not by layer name
(``keras/src/saving/saving_lib.py``): the i-th layer of a Sequential owns a group named after its class in
snake_case, numbered in order of appearance, and its weights are datasets "0", "1", ... in ``get_weights()``
order. A recurrent layer keeps them in its cell:

    layers/lstm/cell/vars/0, 1, 2           kernel (D, 4H), recurrent_kernel (H, 4H), bias (4H,)
    layers/lstm_1/cell/vars/...             the second LSTM, whatever its name
    layers/dense/vars/0, 1                  kernel, bias
    layers/batch_normalization/vars/0..3    gamma, beta, moving_mean, moving_variance
    layers/dropout/vars                     (no datasets)

deeprnn's layers store their weights in the same order and shapes (GRU's bias included), so moving them is a copy.

Files from elsewhere are read defensively, by the rules of ``serialization`` for deeprnn's own files: the path
must be a regular file; a ``.keras`` member larger than ``MAX_CONFIG_BYTES`` / ``MAX_WEIGHTS_BYTES``, or declaring
more than ``serialization.MAX_INFLATION`` times its stored size, is refused before it is inflated; config.json's
size and nesting depth are checked before it is parsed; the architecture may declare no more parameters than the
weights member can hold (counted before any layer is built, so 480 bytes declaring ``LSTM(6000)`` allocate
nothing); an HDF5 file with external or soft links, external storage or virtual datasets (ways to make it read
other files) is refused; every dataset's shape and type are checked against the model before its data is read.
Every problem with the file is a ``ModelFileError`` (a ValueError) naming it (FileNotFoundError when it is
missing).
"""
import io
import os
import re
import zipfile

import numpy

from . import layers
from .errors import ModelFileError
from .files import atomic_write, open_regular_file
from .layers.recurrent import RNN
from .model import Sequential
from .serialization import (MAX_PARAMETERS, check_declared_parameters, check_directory, check_member_size,
                            parameter_limit, parse_json)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.weights.h5"
# A Keras config is a few KiB; the weights of a model deeprnn trains on one machine are well under a GiB.
MAX_CONFIG_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 2 << 30

SUPPORTED = ("InputLayer", "LSTM", "GRU", "SimpleRNN", "Dense", "Activation", "Dropout", "BatchNormalization",
             "Embedding")

# options deeprnn does not implement: loading them with any other value would silently change the model
UNSUPPORTED_OPTIONS = {
    "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
    "activity_regularizer": None, "embeddings_regularizer": None, "beta_regularizer": None,
    "gamma_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None,
    "embeddings_constraint": None, "beta_constraint": None, "gamma_constraint": None, "lora_rank": None,
    "quantization_config": None, "mask_zero": False, "noise_shape": None, "renorm": False,
}


def keras_group_name(class_name):
    """Keras's ``naming.to_snake_case``: 'SimpleRNN' -> 'simple_rnn', 'BatchNormalization' -> 'batch_normalization'."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def weight_groups(model):
    """(layer, HDF5 path of its weights) for every layer, numbered per class the way Keras numbers them."""
    used = {}
    groups = []
    for layer in model.layers:
        base = keras_group_name(type(layer).__name__)
        count = used.get(base, -1) + 1
        used[base] = count
        key = base if count == 0 else f"{base}_{count}"
        path = f"layers/{key}/cell/vars" if isinstance(layer, RNN) else f"layers/{key}/vars"
        groups.append((layer, path))
    return groups


# -- reading -----------------------------------------------------------------------------------------------------------
def load_keras(path, model=None):
    """The deeprnn model stored in a Keras 3 ``.keras`` archive, or ``model`` filled from a ``.weights.h5`` file.

    ``.keras``: the architecture comes from the archive's config (Sequential models of InputLayer, LSTM, GRU,
    SimpleRNN, Dense, Activation, Dropout, BatchNormalization and Embedding); pass ``model`` to load the weights
    into a model you built instead. ``.weights.h5`` holds no architecture, so ``model`` is required.
    Raises ValueError naming the layer when the file holds a layer or an option deeprnn does not support, or
    when the weights do not fit the model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Keras file not found: {path}")
    with open_regular_file(path, MAX_CONFIG_BYTES + MAX_WEIGHTS_BYTES, "Keras file", ModelFileError) as stream:
        if zipfile.is_zipfile(stream):
            try:
                check_directory(stream, path)
                with zipfile.ZipFile(stream) as archive:
                    config_text = archive.read(member_info(archive, CONFIG_NAME, MAX_CONFIG_BYTES, path))
                    weights_info = member_info(archive, WEIGHTS_NAME, MAX_WEIGHTS_BYTES, path)
                    if model is None:  # before the weights are inflated: the config may declare more than they hold
                        model = model_from_keras_json(config_text, path, *parameter_limit(weights_info.file_size))
                    weights = io.BytesIO(archive.read(weights_info))
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError,
                    UnicodeDecodeError) as error:   # a member name flagged UTF-8 that is not (found by fuzzing)
                raise ModelFileError(f"{path}: not a readable .keras archive ({type(error).__name__}: "
                                     f"{error})") from None
            load_weights_into(model, weights, path)
            return model
    if path.endswith(".keras"):
        raise ModelFileError(f"{path}: not a readable .keras archive (not a zip file; truncated?)")
    if model is None:
        raise ValueError(f"{path}: a weights file holds no architecture; build the model and call "
                         "load_keras(path, model=model)")
    load_weights_into(model, path, path)
    return model


def member_info(archive, name, max_bytes, path):
    """The ZipInfo of one archive member, its declared size checked (``serialization.check_member_size``) before
    anything is read (zipfile never inflates past the declared size, so the check bounds the memory)."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"{path}: not a Keras 3 .keras archive (expected {CONFIG_NAME} and {WEIGHTS_NAME}, "
                             f"found {archive.namelist()[:10]})") from None
    check_member_size(info, path, max_bytes)
    return info


def model_from_keras_json(text, path, max_parameters=MAX_PARAMETERS, why="the most a model file may declare"):
    """``model_from_keras_config`` of a config.json's text (bytes), its size and depth checked before it is parsed;
    ModelFileError naming the file for malformed JSON, a document that is not a Keras model config, or one declaring
    more than ``max_parameters`` (``why``: where that limit comes from)."""
    try:
        text = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError as error:
        raise ModelFileError(f"{path}: {CONFIG_NAME} is not valid JSON ({error})") from None
    config = parse_json(text, path, CONFIG_NAME)
    try:
        return model_from_keras_config(config, max_parameters, why, path)
    except ModelFileError:
        raise
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise ModelFileError(f"{path}: {CONFIG_NAME} is not a Keras model config ({type(error).__name__}: "
                             f"{error})") from None


def h5py_module():
    """h5py, imported on first use: deeprnn itself does not need it."""
    try:
        import h5py
    except ImportError:
        raise ImportError("deeprnn.keras_io reads and writes Keras's HDF5 files with h5py: pip install h5py") from None
    return h5py


def load_weights_into(model, source, path):
    """Copy the weights of a Keras 3 HDF5 weights file (a path or a file object) into ``model``.

    ValueError naming ``path`` for anything wrong with the file: not HDF5, links or storage outside it, weights
    missing, extra, of the wrong shape or type.
    """
    h5py = h5py_module()
    model.require_built("load_keras")
    try:
        h5 = h5py.File(source, "r")
    except OSError as error:
        raise ModelFileError(f"{path}: not a readable HDF5 weights file ({error})") from None
    try:
        with h5:
            refuse_links_outside(h5, path)
            weights = read_weight_arrays(h5, model, path)
    # h5py's errors on a corrupt object inside a valid file; a visit over a corrupt file can surface as SystemError
    except (OSError, KeyError, RuntimeError, SystemError) as error:
        raise ModelFileError(f"{path}: corrupt HDF5 weights file ({type(error).__name__}: {error})") from None
    model.set_weights(weights)


def refuse_links_outside(h5, path):
    """Keras writes plain groups and datasets; an external or soft link, external storage or a virtual dataset
    would make reading this file read another one, so any of them is an error."""
    h5py = h5py_module()

    # h5py stops a visit at the first callback that returns a value (an exception raised inside one is mangled)
    def link_elsewhere(name, link):
        return (name, type(link).__name__) if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)) else None

    def stored_elsewhere(name, item):
        return name if isinstance(item, h5py.Dataset) and (item.external or item.is_virtual) else None

    found = h5.visititems_links(link_elsewhere)
    if found is not None:
        raise ModelFileError(f"{path}: refusing {found[1]} {found[0]!r}: a weights file must not point elsewhere")
    found = h5.visititems(stored_elsewhere)
    if found is not None:
        raise ModelFileError(f"{path}: refusing dataset {found!r}: its data is stored outside the file")


def read_weight_arrays(h5, model, path):
    """The arrays for ``model``'s layers, in order; every shape and type checked before any data is read."""
    h5py = h5py_module()
    if not isinstance(h5.get("layers"), h5py.Group):
        raise ModelFileError(f"{path}: no 'layers' group; not a Keras 3 weights file (Keras 2 .h5 files are not read)")
    weights = []
    expected_groups = set()
    for layer, group_path in weight_groups(model):
        expected_groups.add(group_path.split("/")[1])
        if not layer.variables:
            continue
        group = h5.get(group_path)
        if not isinstance(group, h5py.Group):
            raise ModelFileError(f"{path}: no weights at {group_path!r} for layer {layer.name!r} "
                             f"({type(layer).__name__}); the file's layers are {sorted(h5['layers'])}")
        keys = list(group)
        if len(keys) != len(layer.variables) or sorted(keys) != sorted(str(i) for i in range(len(keys))):
            raise ModelFileError(f"{path}: {group_path!r} holds {keys[:10]}, layer {layer.name!r} "
                             f"({type(layer).__name__}) has {len(layer.variables)} weights '0'..")
        for index, variable in enumerate(layer.variables):
            dataset = group[str(index)]
            if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in "fiu":
                raise ModelFileError(f"{path}: {group_path}/{index} is not a numeric array")
            if tuple(dataset.shape) != variable.shape:
                raise ModelFileError(f"{path}: {group_path!r} has an array of shape {tuple(dataset.shape)} where layer "
                                 f"{layer.name!r} expects {variable.name!r} of shape {variable.shape}")
            array = numpy.asarray(dataset)
            if not numpy.all(numpy.isfinite(array)):
                raise ModelFileError(f"{path}: {group_path}/{index} ({variable.name!r} of layer {layer.name!r}) holds "
                                 f"non-finite values")
            weights.append(array)
    extra = sorted(set(h5["layers"]) - expected_groups)
    if extra:
        raise ModelFileError(f"{path}: the file has weights for layers the model does not have: {extra}")
    return weights


def model_from_keras_config(config, max_parameters=MAX_PARAMETERS, why="the most a model file may declare",
                            path="config"):
    """A deeprnn Sequential from a Keras 3 ``config.json`` (the dict ``model.get_config()`` is wrapped in).

    Its layers are made first and the parameters they declare counted without allocating them; more than
    ``max_parameters`` is a ModelFileError naming ``path`` before any weight exists.
    """
    class_name = config.get("class_name")
    if class_name != "Sequential":
        raise ValueError(f"only Keras Sequential models can be loaded, this one is a {class_name!r}")
    body = config["config"]
    parts = [layer_from_keras(entry["class_name"], entry["config"]) for entry in body["layers"]]
    inputs = [part for part in parts if isinstance(part, layers.Input)]
    shape = (inputs[0].batch_shape if inputs
             else body.get("build_input_shape") or (config.get("build_config") or {}).get("input_shape"))
    if shape is not None:
        check_declared_parameters([part for part in parts if not isinstance(part, layers.Input)], shape,
                                  max_parameters, path, why)
    model = Sequential(name=body.get("name", "sequential"))
    for part in parts:
        model.add(part)
    if not model.built and shape is not None:
        model.build(tuple(shape))
    return model


def layer_from_keras(class_name, config):
    """One deeprnn layer (or Input) from one Keras layer config."""
    name = config.get("name")
    if class_name not in SUPPORTED:
        raise ValueError(f"Keras layer {name!r} is a {class_name}, which deeprnn does not support "
                         f"(supported: {', '.join(SUPPORTED)})")
    for option, default in UNSUPPORTED_OPTIONS.items():
        if option in config and config[option] != default and not (default is False and config[option] is None):
            raise ValueError(f"Keras layer {name!r} ({class_name}): option {option}={config[option]!r} is not "
                             "supported by deeprnn")
    try:
        return LAYER_READERS[class_name](config)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Keras layer {name!r} ({class_name}): {error}") from None


def activation_name(value):
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"activation {value!r} is not a built-in activation name")


def read_input(config):
    return layers.Input(batch_shape=tuple(config["batch_shape"]), dtype=config.get("dtype"), name=config.get("name"))


RECURRENT_OPTIONS = ("units", "use_bias", "dropout", "recurrent_dropout", "return_sequences", "return_state",
                     "go_backwards", "stateful")


def read_recurrent(cls, config, *cell_options):
    """SimpleRNN, GRU (cell option reset_after) or LSTM (unit_forget_bias): the same names in both libraries."""
    kwargs = {key: config[key] for key in RECURRENT_OPTIONS + cell_options if key in config}
    kwargs["activation"] = activation_name(config.get("activation", "tanh"))
    if cls is not layers.SimpleRNN:
        kwargs["recurrent_activation"] = activation_name(config.get("recurrent_activation", "sigmoid"))
    return cls(name=config.get("name"), **kwargs)


def read_batch_normalization(config):
    axis = config.get("axis", -1)
    if isinstance(axis, (list, tuple)):
        axis = axis[0] if len(axis) == 1 else axis
    if axis != -1:
        raise ValueError(f"axis={axis!r}: only the last axis (-1) is supported")
    return layers.BatchNormalization(momentum=config.get("momentum", 0.99), epsilon=config.get("epsilon", 1e-3),
                                     center=config.get("center", True), scale=config.get("scale", True),
                                     name=config.get("name"))


LAYER_READERS = {
    "InputLayer": read_input,
    "LSTM": lambda c: read_recurrent(layers.LSTM, c, "unit_forget_bias"),
    "GRU": lambda c: read_recurrent(layers.GRU, c, "reset_after"),
    "SimpleRNN": lambda c: read_recurrent(layers.SimpleRNN, c),
    "Dense": lambda c: layers.Dense(c["units"], activation=activation_name(c.get("activation")),
                                    use_bias=c.get("use_bias", True), name=c.get("name")),
    "Activation": lambda c: layers.Activation(activation_name(c["activation"]), name=c.get("name")),
    "Dropout": lambda c: layers.Dropout(c["rate"], name=c.get("name")),
    "BatchNormalization": read_batch_normalization,
    "Embedding": lambda c: layers.Embedding(c["input_dim"], c["output_dim"], name=c.get("name")),
}


# -- writing -----------------------------------------------------------------------------------------------------------
def save_keras_weights(model, path, dtype="float32"):
    """Write ``model``'s weights as a Keras 3 ``.weights.h5`` file (atomically).

    Keras's ``model.load_weights(path)`` reads it into a Keras model of the same architecture (same layer classes
    in the same order; names may differ). Optimizer state is not written.
    """
    h5py = h5py_module()
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"save_keras_weights: the file name must end in '.weights.h5' (Keras requires it), "
                         f"got {path!r}")
    model.require_built("save_keras_weights")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.create_group("layers")
        h5.create_group("vars").attrs["name"] = model.name
        for layer, group_path in weight_groups(model):
            if isinstance(layer, RNN):
                # Keras writes the (empty) layer group beside its cell's group
                h5.create_group(group_path.replace("/cell/vars", "/vars")).attrs["name"] = layer.name
            group = h5.create_group(group_path)
            group.attrs["name"] = f"{keras_group_name(type(layer).__name__)}_cell" if isinstance(layer, RNN) \
                else layer.name
            for index, weight in enumerate(layer.get_weights()):
                group.create_dataset(str(index), data=weight.astype(dtype))
    atomic_write(path, lambda stream: stream.write(buffer.getvalue()))
