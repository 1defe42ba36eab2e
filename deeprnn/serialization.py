"""The model file's format, below the model: which layer classes a config may name, and the ``.npz`` archive.

A model file is one ``.npz``: the architecture as JSON (``Sequential.get_config``), every weight as
``weight_0000``..., the optimizer state as ``optimizer_iterations`` and ``optimizer_0000``... (per-variable slots,
slot after slot: Adam's m for every trainable variable, then its v), and optional ``metadata`` JSON. Everything is
stored as plain arrays (JSON as a unicode scalar), so no entry can run code. Writes go through
``files.atomic_write``: a crash mid-save leaves the previous file intact.

Reading trusts nothing the file says until it is checked, and checks what it declares before acting on it:

- the path is a regular file of at most ``MAX_MODEL_FILE_BYTES`` (``files.open_regular_file``), and a zip archive
  whose directory declares at most ``MAX_ENTRIES`` entries (checked on its end record, before it is listed);
- every entry's declared size (the zip directory's, read without inflating anything) is at most
  ``MAX_INFLATION`` times the bytes it occupies in the file, so a small file cannot inflate into a large one;
- a JSON entry is at most ``MAX_JSON_CHARACTERS`` and nests at most ``MAX_JSON_DEPTH`` deep, checked before parsing;
- the architecture may declare no more parameters than the file's weight entries can hold (and never more than
  ``MAX_PARAMETERS``); this is found by building each layer on arrays of zero strides, which take no memory, so
  a config declaring ``LSTM(6000)`` in 480 bytes is refused before 1 GB is allocated;
- every array's ``.npy`` header (shape, dtype) is read first and must agree with its entry's size, be real
  floating point (``optimizer_iterations``: a non-negative integer), and have the shape the architecture gives
  that weight; only then is the data read, and it must be finite.

Every problem is a ``ModelFileError`` whose one line names the file and the entry (``FileNotFoundError`` for a
missing path). ``check_fields`` does the same for the JSON documents inside: a caller declares the fields it will
read and their types, and a document edited by hand is refused field by field instead of failing later.

This module knows layers and files, never ``Sequential``: the model imports it to save itself and to rebuild its
layers; ``saving.load_model`` sits above both.
"""
import json
import math
import os
import re
import struct
import tokenize
import zipfile
import zlib

import numpy

from . import backend, layers
from .errors import ModelFileError
from .files import atomic_write, open_regular_file
from .layers.base import Variable

FORMAT = "deeprnn-model"
VERSION = 1
LAYER_CLASSES = {cls.__name__: cls for cls in (layers.Dense, layers.Activation, layers.Dropout,
                                              layers.BatchNormalization, layers.Embedding, layers.SimpleRNN,
                                              layers.GRU, layers.LSTM, layers.StepCounterEmbedding,
                                              layers.ConditionedEmbedding)}

# One billion parameters: 8 GiB per copy in float64, and training holds four copies (weights, gradients, Adam's m
# and v), past the memory of the machines deeprnn trains on; the recipes' default models have about a million.
MAX_PARAMETERS = 1 << 30
# The file such a model writes: weights, m and v in float64, plus its JSON.
MAX_MODEL_FILE_BYTES = 3 * 8 * MAX_PARAMETERS + (1 << 30)
# Metadata holds the tokenizer's vocabulary and a history row (~100 characters) per epoch: kilobytes, megabytes for
# long runs; 16 Mi characters is 100000 epochs (the --epochs ceiling) with room to spare.
MAX_JSON_CHARACTERS = 16 << 20
# The deepest document deeprnn writes nests about 6 levels (a Keras config about 8); Python's parser recurses.
MAX_JSON_DEPTH = 64
# numpy.savez stores entries uncompressed; savez_compressed gains ~10% on float weights, which barely compress.
# An entry may declare 16 times the bytes it occupies (zero-initialized biases compress well), plus 1 MiB for
# small entries; a 1000:1 zip bomb is refused before it is inflated.
MAX_INFLATION = 16
INFLATION_SLACK = 1 << 20
# The narrowest real float a weight may be stored as (float16): the most parameters a byte of weights can carry.
NARROWEST_FLOAT_BYTES = 2
MAX_NPY_HEADER_BYTES = 10_000  # numpy's own default bound on an .npy header
# A model writes a few entries per weight (the weight, Adam's m and v): 65536 entries is thousands of layers. Each
# entry zipfile lists costs ~0.5 KB of Python objects for its >= 46 bytes on disk, so a directory of millions of
# tiny entries would take gigabytes to list: its declared size is checked first.
MAX_ENTRIES = 1 << 16
MAX_DIRECTORY_BYTES = MAX_ENTRIES * 1024


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


# -- declared sizes, checked before anything is inflated or allocated --------------------------------------------------
def check_member_size(info, path, max_bytes):
    """Raise ModelFileError unless zip member ``info`` declares at most ``max_bytes`` and at most ``MAX_INFLATION``
    times its stored size (``zipfile`` never inflates past the declared size, so this bounds the memory)."""
    if info.file_size > max_bytes:
        raise ModelFileError(f"{path}: entry {info.filename} declares {info.file_size:,} bytes, more than the "
                             f"limit of {max_bytes:,}")
    if info.file_size > MAX_INFLATION * info.compress_size + INFLATION_SLACK:
        raise ModelFileError(f"{path}: entry {info.filename} declares {info.file_size:,} bytes inflated from "
                             f"{info.compress_size:,}; refusing a ratio over {MAX_INFLATION}:1 (a zip bomb?)")


END_RECORD = struct.Struct("<4s4H2LH")            # zip's end of central directory record
ZIP64_LOCATOR = struct.Struct("<4sLQL")            # zip64 end of central directory locator
ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")     # zip64 end of central directory record


def declared_directory(stream):
    """(entries, bytes) of the central directory a zip's end record declares, read from the file's last 64 KiB (and
    the zip64 record it points to) before ``zipfile`` lists anything; None where there is no end record."""
    size = stream.seek(0, os.SEEK_END)
    tail_start = max(0, size - END_RECORD.size - 0xFFFF)  # the record, then a comment of at most 65535 bytes
    stream.seek(tail_start)
    tail = stream.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < END_RECORD.size:
        return None
    _, _, _, _, entries, directory_bytes, _, _ = END_RECORD.unpack_from(tail, at)
    locator_at = tail_start + at - ZIP64_LOCATOR.size
    if locator_at >= 0:
        stream.seek(locator_at)
        signature, _, zip64_offset, _ = ZIP64_LOCATOR.unpack(stream.read(ZIP64_LOCATOR.size))
        if signature == b"PK\x06\x07" and zip64_offset + ZIP64_END_RECORD.size <= size:
            stream.seek(zip64_offset)
            record = ZIP64_END_RECORD.unpack(stream.read(ZIP64_END_RECORD.size))
            if record[0] == b"PK\x06\x06":
                entries, directory_bytes = record[7], record[8]
    stream.seek(0)
    return entries, directory_bytes


def check_directory(stream, path):
    """Raise ModelFileError if the zip in ``stream`` declares more than ``MAX_ENTRIES`` entries or
    ``MAX_DIRECTORY_BYTES`` of directory (checked before ``zipfile`` lists them)."""
    declared = declared_directory(stream)
    if declared is None:
        return
    entries, directory_bytes = declared
    if entries > MAX_ENTRIES or directory_bytes > MAX_DIRECTORY_BYTES:
        raise ModelFileError(f"{path}: its zip directory declares {entries:,} entries in {directory_bytes:,} bytes, "
                             f"more than the limit of {MAX_ENTRIES:,} entries in {MAX_DIRECTORY_BYTES:,} bytes")


def json_depth(text):
    r"""How deep the arrays and objects of JSON ``text`` nest, counted without parsing it, in linear time and memory.

    Escaped backslashes, then escaped quotes, are dropped (JSON's escapes, read left to right), so every quote left
    opens or closes a string; the strings and everything but brackets go next. The patterns have no repeated group:
    a regex like ``"(?:[^"\\]|\\.)*"`` keeps state per character repeated and takes ~1 GB for an 8 MB string.
    """
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    brackets = re.sub(r'"[^"]*"|[^\[\]{}"]+', "", unescaped).encode("ascii", "replace")
    codes = numpy.frombuffer(brackets, dtype=numpy.uint8)
    steps = (codes == ord("[")).astype(numpy.int32) + (codes == ord("{")) - (codes == ord("]")) - (codes == ord("}"))
    return int(numpy.cumsum(steps, dtype=numpy.int32).max(initial=0))


def parse_json(text, path, field):
    """The JSON object in ``text`` (the file's ``field``), its size and depth checked first; ModelFileError naming
    the file and the field for anything else (not JSON, too deep, not an object)."""
    if len(text) > MAX_JSON_CHARACTERS:
        raise ModelFileError(f"{path}: {field} holds {len(text):,} characters, more than the limit of "
                             f"{MAX_JSON_CHARACTERS:,}")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ModelFileError(f"{path}: {field} nests {depth} levels deep, more than the limit of {MAX_JSON_DEPTH}")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError; RecursionError should the count above miss
        raise ModelFileError(f"{path}: {field} is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise ModelFileError(f"{path}: {field} must be a JSON object, not {json_type(document)}")
    return document


def check_declared_parameters(model_layers, input_shape, limit, path, why):
    """The number of parameters ``model_layers`` create for ``input_shape``, found without allocating them; a
    ModelFileError as soon as the count passes ``limit`` (``why`` says where the limit comes from).

    Each layer is rebuilt from its config and built with ``add_weight`` recording shapes: the weight it hands the
    layer is one zero broadcast to the shape (zero strides, no memory), so a build that reads its weights (LSTM
    sets its forget bias) still runs. Layers' own constructors have already checked their arguments.
    """
    total = 0
    shape = tuple(input_shape)
    for layer in model_layers:
        twin = layer_from_config(layer_to_config(layer))

        def add_weight(name, weight_shape, initializer, trainable=True, twin=twin):
            nonlocal total
            weight_shape = tuple(weight_shape)
            if not all(isinstance(size, int) and size >= 0 for size in weight_shape):
                raise ModelFileError(f"{path}: layer {twin.name!r} declares a weight of shape {weight_shape}")
            total += math.prod(weight_shape)
            if total > limit:
                raise ModelFileError(f"{path}: its architecture declares more than {limit:,} parameters, {why} "
                                     f"(passed at layer {twin.name!r} ({type(twin).__name__}), whose {name} has "
                                     f"shape {weight_shape})")
            value = numpy.broadcast_to(numpy.zeros((), dtype=backend.floatx()), weight_shape)
            variable = Variable(f"{twin.name}/{name}", value, trainable)
            twin.variables.append(variable)
            return variable

        twin.add_weight = add_weight  # this throwaway twin only: the model's own layers build as ever
        twin.build(shape)
        shape = twin.compute_output_shape(shape)
    return total


def parameter_limit(weight_bytes):
    """(the most parameters a file with ``weight_bytes`` of weights may declare, the reason in words)."""
    if weight_bytes // NARROWEST_FLOAT_BYTES < MAX_PARAMETERS:
        return (weight_bytes // NARROWEST_FLOAT_BYTES,
                f"the most that the {weight_bytes:,} bytes of weights in the file can hold")
    return MAX_PARAMETERS, "the most a model file may declare (MAX_PARAMETERS)"


# -- the archive ------------------------------------------------------------------------------------------------------
class ModelArchive:
    """An open model file: its entries listed and their declared sizes checked; nothing is inflated until asked.

        with ModelArchive(path) as archive:
            config = archive.json("architecture")
            weights = archive.array("weight_0000", shape=(3, 24))
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            self.file = open_regular_file(self.path, MAX_MODEL_FILE_BYTES, "model file", ModelFileError)
        except FileNotFoundError:
            raise FileNotFoundError(f"model file not found: {self.path}") from None
        try:
            if not zipfile.is_zipfile(self.file):
                raise ModelFileError(f"{self.path}: not a readable deeprnn model file (not a zip archive; a model "
                                     "file is the .npz that save or train writes, such as best.npz)")
            check_directory(self.file, self.path)
            self.zip = zipfile.ZipFile(self.file)
            self.entries = {info.filename[:-len(".npy")]: info for info in self.zip.infolist()
                            if info.filename.endswith(".npy")}
        except zipfile.BadZipFile as error:
            self.file.close()
            raise ModelFileError(f"{self.path}: not a readable deeprnn model file ({error})") from None
        # a damaged directory: bad sizes, a member name flagged UTF-8 that is not
        except (OSError, EOFError, ValueError, NotImplementedError, UnicodeDecodeError) as error:
            self.file.close()
            if isinstance(error, ModelFileError):
                raise
            raise ModelFileError(f"{self.path}: not a readable deeprnn model file ({type(error).__name__}: "
                                 f"{error})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.zip.close()
        self.file.close()

    def __contains__(self, key):
        return key in self.entries

    def keys(self):
        return list(self.entries)

    def declared_bytes(self, prefix):
        """The bytes the entries named ``prefix0000``... declare (their sizes checked, nothing inflated)."""
        total = 0
        for key in numbered_keys(self.entries, prefix):
            check_member_size(self.entries[key], self.path, MAX_MODEL_FILE_BYTES)
            total += self.entries[key].file_size
        return total

    def read(self, key, check):
        """The array of entry ``key``: its header read and handed to ``check(shape, dtype)`` before any data."""
        info = self.entries[key]
        check_member_size(info, self.path, MAX_MODEL_FILE_BYTES)
        try:
            with self.zip.open(info) as stream:
                version = numpy.lib.format.read_magic(stream)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f".npy format version {version} (numpy.savez writes 1.0 or 2.0)")
                read_header = (numpy.lib.format.read_array_header_1_0 if version == (1, 0)
                               else numpy.lib.format.read_array_header_2_0)
                shape, fortran_order, dtype = read_header(stream, max_header_size=MAX_NPY_HEADER_BYTES)
                if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
                    raise ModelFileError(f"{self.path}: entry {key} holds {dtype} values, not numbers or text")
                check(shape, dtype)
                count = math.prod(shape)
                if stream.tell() + count * dtype.itemsize != info.file_size:
                    raise ModelFileError(f"{self.path}: entry {key} declares {count:,} values of {dtype} "
                                         f"({count * dtype.itemsize:,} bytes) in an entry of {info.file_size:,} "
                                         "bytes")
                data = stream.read(count * dtype.itemsize)
                stream.read(1)  # at the end of the entry: zipfile checks its CRC-32
        except ModelFileError:
            raise
        # a damaged entry: BadZipFile (CRC), zlib.error (deflate), EOFError (cut short), a header that is not a
        # Python literal: ValueError, SyntaxError, or TokenError (numpy retries it as a Python 2 header; fuzzing)
        except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError,
                SyntaxError, tokenize.TokenError) as error:
            raise ModelFileError(f"{self.path}: entry {key} is damaged ({type(error).__name__}: {error})") from None
        array = numpy.frombuffer(data, dtype=dtype)
        return array.reshape(shape, order="F" if fortran_order else "C").copy()  # copy: writable and aligned

    def json(self, key):
        """The JSON object stored under ``key`` (a unicode scalar, at most ``MAX_JSON_CHARACTERS``)."""
        if key not in self.entries:
            raise ModelFileError(f"{self.path}: not a deeprnn model file (no {key} entry)")

        def text_scalar(shape, dtype):
            if shape != () or dtype.kind != "U":
                raise ModelFileError(f"{self.path}: its {key} entry must be JSON text, not a {dtype} array of "
                                     f"shape {shape}")
            if dtype.itemsize > 4 * MAX_JSON_CHARACTERS:  # numpy's "U" text is UCS-4: 4 bytes a character
                raise ModelFileError(f"{self.path}: its {key} entry declares {dtype.itemsize // 4:,} characters, "
                                     f"more than the limit of {MAX_JSON_CHARACTERS:,}")
        return parse_json(str(self.read(key, text_scalar)), self.path, key)

    def weights(self, key, shape, name, dtype):
        """A weight (or optimizer slot) of ``shape``: real floating point, and finite once cast to ``dtype`` (the
        variable's: 1e300 in a float64 file is infinite in a float32 model)."""
        def real_of_shape(declared, dtype):
            if dtype.kind != "f":
                raise ModelFileError(f"{self.path}: {key} ({name}) holds {dtype} values, not real floating point")
            if declared != tuple(shape):
                raise ModelFileError(f"{self.path}: {key} ({name}) has shape {declared}, the architecture needs "
                                     f"{tuple(shape)}")
        stored = self.read(key, real_of_shape)
        with numpy.errstate(over="ignore"):
            array = stored.astype(dtype, copy=False)
        if not numpy.all(numpy.isfinite(array)):
            values = ("NaN or infinite values" if not numpy.all(numpy.isfinite(stored))
                      else f"values beyond the range of {numpy.dtype(dtype)}")
            raise ModelFileError(f"{self.path}: {key} ({name}) holds {values}")
        return array

    def iterations(self):
        def integer_scalar(shape, dtype):
            if shape != () or dtype.kind not in "iu":
                raise ModelFileError(f"{self.path}: optimizer_iterations must be one integer, not a {dtype} array "
                                     f"of shape {shape}")
        iterations = int(self.read("optimizer_iterations", integer_scalar))
        if iterations < 0:
            raise ModelFileError(f"{self.path}: optimizer_iterations is {iterations}, a count must be >= 0")
        return iterations

    def model_arrays(self, model):
        """The weights and optimizer state for ``model`` (what ``model.restore_arrays`` takes), each entry's header
        checked against the model's variables before its data is read."""
        variables = model.variables
        keys = numbered_keys(self.entries, "weight_")
        if len(keys) != len(variables):
            raise ModelFileError(f"{self.path}: holds {len(keys)} weights, the architecture has {len(variables)}")
        arrays = {key: self.weights(key, variable.shape, variable.name, variable.value.dtype)
                  for key, variable in zip(keys, variables)}
        if getattr(model, "optimizer", None) is not None and "optimizer_iterations" in self.entries:
            arrays["optimizer_iterations"] = numpy.array(self.iterations())
            trainable = model.trainable_variables
            keys = numbered_keys(self.entries, "optimizer_")
            slots = getattr(model.optimizer, "slots", None)  # arrays per trainable variable, where it says
            if (len(keys) % len(trainable) if trainable else keys) or (keys and slots is not None
                                                                       and len(keys) != slots * len(trainable)):
                raise ModelFileError(f"{self.path}: holds {len(keys)} optimizer arrays, not "
                                     f"{slots or 'a whole number of'} slot(s) for each of the model's "
                                     f"{len(trainable)} trainable weights")
            for index, key in enumerate(keys):
                variable = trainable[index % len(trainable)]
                arrays[key] = self.weights(key, variable.shape, f"optimizer slot of {variable.name}",
                                           variable.value.dtype)
        return arrays


def read_archive(path, model):
    """The arrays of the model file at ``path`` that ``model`` takes: its JSON entries (unicode scalars) and its
    weights and optimizer state, checked against ``model``'s variables (see the module docstring)."""
    with ModelArchive(path) as archive:
        arrays = archive.model_arrays(model)
        for key in ("architecture", "metadata"):
            if key in archive:
                arrays[key] = numpy.array(json.dumps(archive.json(key)))
    return arrays


def json_entry(arrays, key, path):
    """The JSON object stored under ``key``, or a ModelFileError naming the file."""
    return parse_json(str(arrays[key]), path, key)


def numbered_keys(keys, prefix):
    """The keys named ``prefix0000``, ``prefix0001``... in order."""
    return sorted(k for k in keys if k.startswith(prefix) and k[len(prefix):].isdigit())


def numbered(arrays, prefix):
    """The arrays named ``prefix0000``, ``prefix0001``... in order."""
    return [arrays[key] for key in numbered_keys(arrays, prefix)]


# -- the fields of a JSON document -------------------------------------------------------------------------------------
class Optional:
    """A field that may be absent (``check_fields``); ``None`` in a tuple of types allows null."""

    def __init__(self, schema):
        self.schema = schema


class JsonText:
    """A field holding a JSON object as text (a tokenizer's ``to_json``): parsed by ``parse_json`` (size and depth
    bounded) and checked against ``fields`` (a ``check_fields`` schema)."""

    def __init__(self, fields=dict):
        self.fields = fields


KIND_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a finite number",
              bool: "true or false", None: "null"}


def json_type(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def check_fields(document, schema, path, field):
    """Raise ModelFileError, naming ``path`` and the dotted field, where ``document`` does not have ``schema``.

    A schema is a type (``str``, ``int``, ``float``: an int or a finite float, ``bool``, ``list``, ``dict``); a
    tuple of them (``None`` allows null); a dict of field -> schema (those fields required, ``Optional(schema)``
    fields may be absent, other fields allowed); a one-item list: a list whose every item has that schema; or
    ``JsonText(schema)``: a string holding a JSON object of that schema.
    """
    if isinstance(schema, Optional):
        schema = schema.schema
    if isinstance(schema, JsonText):
        if not isinstance(document, str):
            raise ModelFileError(f"{path}: {field} must be JSON text, found {json_type(document)}")
        check_fields(parse_json(document, path, field), schema.fields, path, field)
        return
    if isinstance(schema, dict):
        if not isinstance(document, dict):
            raise ModelFileError(f"{path}: {field} must be an object, found {json_type(document)}")
        for key, inner in schema.items():
            if key not in document:
                if isinstance(inner, Optional):
                    continue
                raise ModelFileError(f"{path}: {field} has no {key!r} entry")
            check_fields(document[key], inner, path, f"{field}.{key}")
        return
    if isinstance(schema, list):
        if not isinstance(document, list):
            raise ModelFileError(f"{path}: {field} must be a list, found {json_type(document)}")
        for index, item in enumerate(document):
            check_fields(item, schema[0], path, f"{field}[{index}]")
        return
    allowed = schema if isinstance(schema, tuple) else (schema,)
    if not any(matches(document, kind) for kind in allowed):
        names = " or ".join(KIND_NAMES.get(kind, getattr(kind, "__name__", str(kind))) for kind in allowed)
        raise ModelFileError(f"{path}: {field} must be {names}, found {json_type(document)} {short(document)}")


# What BackupAndRestore keeps under the metadata's "training" (its own fields; the pipeline adds others).
RESUME_FIELDS = {"epoch": int, "rng_state": dict, "callbacks": Optional([(dict, None)])}


def check_resume_state(training, callbacks, path, field="metadata.training"):
    """Raise ModelFileError unless ``training`` has ``RESUME_FIELDS``, a non-negative epoch, and for each of
    ``callbacks`` that declares ``state_fields`` (a ``check_fields`` schema) a state with those fields."""
    check_fields(training, RESUME_FIELDS, path, field)
    if training["epoch"] < 0:
        raise ModelFileError(f"{path}: {field}.epoch is {training['epoch']}, an epoch count must be >= 0")
    for index, (callback, state) in enumerate(zip(callbacks, training.get("callbacks", []))):
        fields = getattr(callback, "state_fields", None)
        if fields is not None:
            check_fields(state, fields, path, f"{field}.callbacks[{index}] ({type(callback).__name__})")


def restore_field(path, field, restore, value):
    """``restore(value)`` with a value read from the file's ``field``; the errors a setter raises on a value of the
    wrong form (a missing key, a wrong type) become a ModelFileError naming the file and the field."""
    try:
        restore(value)
    except (KeyError, IndexError, TypeError, ValueError, OverflowError) as error:  # Overflow: numpy's RNG state
        raise ModelFileError(f"{path}: {field} cannot be restored ({type(error).__name__}: {error})") from None


def matches(value, kind):
    if kind is None:
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def short(value):
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
