"""Issue 22, the model-file side: a model file that is not a file, that inflates, that declares more than it holds,
or that was edited by hand is refused in one line naming the file and the entry, before anything it declares is
allocated. No test here allocates more than a few megabytes: huge sizes are declared (headers, zip directories,
sparse files), never written."""
import io
import json
import os
import time
import tracemalloc
import warnings
import zipfile

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deeprnn as dr
from deeprnn import keras_io, serialization
from deeprnn.errors import ModelFileError

# a refusal reads a header or a zip directory, never the data: it must be quick and small
SECONDS = 2.0
PEAK_BYTES = 32 << 20
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# every fuzz test runs FUZZ by default and 1000 examples under `make test-slow`
BUDGETS = pytest.mark.parametrize("budget", [pytest.param(FUZZ, id="fuzz"),
                                             pytest.param(settings(FUZZ, max_examples=1000), id="many",
                                                          marks=pytest.mark.slow)])


def small_model():
    """LSTM(2) over 3 features and a Dense(3) head, trained one epoch so Adam's m and v are in the file."""
    dr.backend.set_seed(0)
    model = dr.Sequential([dr.layers.Input(shape=(4, 3)), dr.layers.LSTM(2, name="lstm"),
                           dr.layers.Dense(3, name="dense")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = numpy.random.default_rng(0)
    model.fit(rng.random((6, 4, 3)), numpy.eye(3)[numpy.arange(6) % 3], epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    """The arrays of an intact model file, name -> array (architecture and metadata as JSON text)."""
    path = tmp_path_factory.mktemp("intact") / "model.npz"
    small_model().save(path, metadata={"note": "intact"})
    with numpy.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def npy_bytes(array):
    stream = io.BytesIO()
    numpy.lib.format.write_array(stream, numpy.asarray(array), allow_pickle=False)
    return stream.getvalue()


def write_model_file(path, arrays, raw=None):
    """An .npz of ``arrays``, plus ``raw`` entries (name -> bytes) written as given."""
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in arrays.items():
            archive.writestr(f"{key}.npy", npy_bytes(value))
        for name, data in (raw or {}).items():
            archive.writestr(name, data)
    return path


def refused(path, load=dr.load_model):
    """The one-line ModelFileError that loading ``path`` raises, checked to name the file, to come fast and to
    allocate almost nothing."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ModelFileError) as caught:
            load(path)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak, message)
    return message


def with_architecture(entries, change):
    config = json.loads(str(entries["architecture"]))
    change(config)
    return {**entries, "architecture": numpy.array(json.dumps(config))}


def test_the_intact_file_loads(entries, tmp_path):
    model = dr.load_model(write_model_file(tmp_path / "model.npz", entries))
    for index, weight in enumerate(model.get_weights()):
        numpy.testing.assert_array_equal(weight, entries[f"weight_{index:04d}"])
    assert model.optimizer.iterations == int(entries["optimizer_iterations"])


# -- class 1, the file primitive at the model loader: what is not a regular file is named for what it is -------------

def test_a_folder_a_pipe_a_device_and_a_csv_are_not_model_files(tmp_path):
    folder = tmp_path / "best.npz"
    folder.mkdir()
    pipe = tmp_path / "last.npz"
    os.mkfifo(pipe)   # opening it for reading would block forever
    zero = tmp_path / "zero.npz"
    zero.symlink_to("/dev/zero")
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss\n1,2.5,2.6\n")
    assert refused(folder) == f"{folder}: is a folder, not a model file"
    assert refused(pipe) == f"{pipe}: is a named pipe (FIFO), not a model file"
    assert refused(zero) == f"{zero}: is a character device, not a model file"
    assert "not a zip archive; a model file is the .npz that save or train writes" in refused(history)
    assert "pickle" not in refused(history)


def test_a_model_file_larger_than_any_model_is_refused_unread(tmp_path):
    sparse = tmp_path / "huge.npz"
    with open(sparse, "wb") as stream:
        stream.truncate(serialization.MAX_MODEL_FILE_BYTES + 1)  # declared, never written: a sparse file
    assert "bytes, more than the" in refused(sparse)


# -- class 3: bombs, declared sizes checked before anything is inflated or allocated --------------------------------

def test_an_entry_that_inflates_a_thousandfold_is_refused_before_it_is_inflated(entries, tmp_path):
    path = tmp_path / "bomb.npz"
    write_model_file(path, {k: v for k, v in entries.items() if k != "weight_0000"})
    header = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (8 << 20,)})
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("weight_0000.npy", "w", force_zip64=True) as entry:
            entry.write(header.getvalue())
            zeros = bytes(1 << 20)
            for _ in range(64):   # 64 MiB of zeros deflate to ~64 KiB
                entry.write(zeros)
    message = refused(path)
    assert "entry weight_0000.npy declares" in message and "ratio over 16:1" in message


def test_an_npy_header_declaring_a_hundred_billion_values_is_refused_from_the_header(entries, tmp_path):
    huge = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(huge, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 11,)})
    rest = {k: v for k, v in entries.items() if k != "weight_0000"}
    path = write_model_file(tmp_path / "header.npz", rest, {"weight_0000.npy": huge.getvalue() + bytes(64)})
    assert "weight_0000 (lstm/kernel) has shape (100000000000,), the architecture needs (3, 8)" in refused(path)
    # the same header where the shape is right but the entry is too short for it: the sizes disagree
    short = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(short, {"descr": "<f8", "fortran_order": False, "shape": (3, 8)})
    path = write_model_file(tmp_path / "short.npz", rest, {"weight_0000.npy": short.getvalue() + bytes(8)})
    assert "declares 24 values of float64 (192 bytes) in an entry of" in refused(path)


def test_an_npy_header_that_is_not_a_python_literal_is_a_damaged_entry(entries, tmp_path):
    """Found by fuzzing: numpy parses a header that is not a literal again as a Python 2 header, whose tokenizer
    raises TokenError on an unclosed brace."""
    text = b"{'descr': '<f8',\n"
    header = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text
    rest = {k: v for k, v in entries.items() if k != "architecture"}
    path = write_model_file(tmp_path / "header.npz", rest, {"architecture.npy": header})
    assert "entry architecture is damaged (TokenError" in refused(path)


@pytest.mark.parametrize("units", [6000, 10 ** 12])
def test_an_architecture_declaring_more_parameters_than_the_file_holds_is_refused_before_it_is_built(
        entries, tmp_path, units):
    def widen(config):
        config["layers"][0]["config"]["units"] = units
    path = write_model_file(tmp_path / "wide.npz", with_architecture(entries, widen))
    message = refused(path)
    assert "its architecture declares more than" in message and "bytes of weights in the file can hold" in message
    assert "passed at layer 'lstm'" in message


def test_a_json_entry_nested_ten_thousand_deep_is_refused_before_it_is_parsed(entries, tmp_path):
    deep = {**entries, "metadata": numpy.array("[" * 10_000 + "]" * 10_000)}
    path = write_model_file(tmp_path / "deep.npz", deep)
    assert refused(path, dr.load_metadata) == f"{path}: metadata nests 10000 levels deep, more than the limit of 64"
    deep = {**entries, "architecture": numpy.array('{"a": ' * 5000 + "1" + "}" * 5000)}
    assert "architecture nests 5000 levels deep" in refused(write_model_file(tmp_path / "deep2.npz", deep))


# -- class 2: hand-edited files, every field checked against its schema ----------------------------------------------

@pytest.mark.parametrize("key, value, words", [
    ("weight_0000", lambda w: numpy.where(numpy.eye(*w.shape, dtype=bool), numpy.nan, w),
     "weight_0000 (lstm/kernel) holds NaN or infinite values"),
    ("weight_0002", lambda w: w.astype(complex), "weight_0002 (lstm/bias) holds complex128 values, not real"),
    ("weight_0003", lambda w: w.astype(numpy.int64), "weight_0003 (dense/kernel) holds int64 values, not real"),
    ("weight_0004", lambda w: w[:2], "weight_0004 (dense/bias) has shape (2,), the architecture needs (3,)"),
    ("optimizer_0001", lambda w: w.astype(numpy.int32),
     "optimizer_0001 (optimizer slot of lstm/recurrent_kernel) holds int32 values, not real floating point"),
    ("optimizer_0005", lambda w: numpy.full_like(w, numpy.inf), "optimizer_0005 (optimizer slot of lstm/kernel) "
                                                                "holds NaN or infinite values"),
    ("optimizer_iterations", lambda w: numpy.array(2.5), "optimizer_iterations must be one integer"),
    ("optimizer_iterations", lambda w: numpy.array(-1), "optimizer_iterations is -1, a count must be >= 0"),
    ("architecture", lambda w: numpy.array("[1, 2]"), "architecture must be a JSON object, not a list"),
    ("architecture", lambda w: numpy.arange(3.0), "its architecture entry must be JSON text, not a float64 array"),
    ("metadata", lambda w: numpy.array('{"a": '), "metadata is not valid JSON"),
])
def test_an_edited_entry_is_refused_naming_the_file_and_the_entry(entries, tmp_path, key, value, words):
    path = write_model_file(tmp_path / "edited.npz", {**entries, key: value(entries[key])})
    load = dr.load_metadata if key == "metadata" else dr.load_model
    assert words in refused(path, load)


@pytest.mark.parametrize("change, words", [
    (lambda c: c.pop("layers"), "architecture has no 'layers' entry"),
    (lambda c: c.update(layers={"0": 1}), "architecture.layers must be a list, found an object"),
    (lambda c: c["layers"][1].pop("class_name"), "architecture.layers[1] has no 'class_name' entry"),
    (lambda c: c["layers"][0]["config"].update(units="2"), "malformed architecture (SettingError: LSTM: units"),
    (lambda c: c.update(input=None, build_input_shape=[None, 4, -3]), "declares a weight of shape (-3, 8)"),
    (lambda c: c.update(input={"batch_shape": [None, 4, "x"]}), "declares a weight of shape ('x', 8)"),
])
def test_an_edited_architecture_is_refused_naming_the_field(entries, tmp_path, change, words):
    path = write_model_file(tmp_path / "edited.npz", with_architecture(entries, change))
    assert words in refused(path)


JSON_SCALARS = st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats() | st.text(max_size=5)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


def paths_of(document, prefix=()):
    """Every (path) to a value inside a JSON document."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths_of(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths_of(value, prefix + (index,))


def edited(document, path, value):
    """``document`` with the value at ``path`` replaced by ``value`` (None: removed)."""
    document = json.loads(json.dumps(document))
    if not path:
        return value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if value is None and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


@st.composite
def architecture_edit(draw, config):
    places = list(paths_of(config))
    return draw(st.sampled_from(places)), draw(JSON_VALUES)


@st.composite
def array_edit(draw, entries):
    key = draw(st.sampled_from(sorted(k for k in entries if k not in ("architecture", "metadata"))))
    dtype = draw(st.sampled_from(["float16", "float32", "float64", "int8", "int64", "uint8", "complex64", "bool",
                                  "U3", "S2", "m8[s]"]))
    shape = draw(st.sampled_from([None, (), (0,), (1,), (3, 8), (8, 3), (2, 2, 2)]))
    poison = draw(st.sampled_from([None, numpy.nan, numpy.inf, -numpy.inf, 1e300]))
    return key, dtype, shape, poison


def loads_or_refuses(path, load=dr.load_model):
    """The class property: a model with finite weights, or one line naming the file; quickly, in little memory."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # a cast that drops information (complex to real) is no load
            model = load(path)
    except ModelFileError:
        refused(path, load)
        return None
    assert all(numpy.all(numpy.isfinite(weight)) for weight in model.get_weights())
    return model


@BUDGETS
def test_any_edit_of_the_architecture_loads_or_is_one_line_naming_the_file(entries, tmp_path, budget):
    config = json.loads(str(entries["architecture"]))

    @budget
    @given(edit=architecture_edit(config))
    def run(edit):
        document = edited(config, *edit)
        path = write_model_file(tmp_path / "edited.npz", {**entries, "architecture": numpy.array(json.dumps(document))})
        loads_or_refuses(path)
    run()


@BUDGETS
def test_any_edit_of_an_array_loads_or_is_one_line_naming_the_file(entries, tmp_path, budget):
    @budget
    @given(edit=array_edit(entries))
    def run(edit):
        key, dtype, shape, poison = edit
        array = entries[key].reshape(shape if shape is not None else entries[key].shape) \
            if shape is None or numpy.prod(shape) == entries[key].size else numpy.ones(shape)
        with numpy.errstate(all="ignore"):
            array = array.astype(dtype) if dtype[0] not in "USm" else numpy.zeros(array.shape, dtype)
            if poison is not None and array.size and array.dtype.kind == "f":
                array.flat[0] = poison
        path = write_model_file(tmp_path / "edited.npz", {**entries, key: array})
        loads_or_refuses(path)
    run()


# -- the same rules for Keras files ----------------------------------------------------------------------------------

def keras_archive(path, config_text, weights=b"\x89HDF\r\n\x1a\n" + bytes(200)):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config_text)
        archive.writestr("model.weights.h5", weights)
    return path


def keras_config(units):
    return json.dumps({"class_name": "Sequential", "config": {"name": "hostile", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4, 3], "name": "input"}},
        {"class_name": "LSTM", "config": {"units": units, "name": "lstm"}},
        {"class_name": "Dense", "config": {"units": 3, "name": "dense"}}]}})


def test_a_small_keras_file_declaring_lstm_6000_is_refused_before_any_weight_is_allocated(tmp_path):
    path = keras_archive(tmp_path / "lstm6000.keras", keras_config(6000))
    assert os.path.getsize(path) < 1000
    message = refused(path, keras_io.load_keras)
    assert "its architecture declares more than 104 parameters, the most that the 208 bytes of weights" in message


def test_a_keras_config_nested_deep_or_a_weights_bomb_is_refused_before_it_is_parsed_or_inflated(tmp_path):
    path = keras_archive(tmp_path / "deep.keras", '{"a": ' * 100_000 + "1" + "}" * 100_000)
    message = refused(path, keras_io.load_keras)
    assert message.endswith("config.json nests 100000 levels deep, more than the limit of 64")
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", keras_config(2))
        with archive.open("model.weights.h5", "w", force_zip64=True) as entry:
            for _ in range(64):
                entry.write(bytes(1 << 20))
    assert "entry model.weights.h5 declares 67,108,864 bytes inflated from" in refused(path, keras_io.load_keras)


# -- class 2, the resume state: what BackupAndRestore reads back is checked field by field ---------------------------

RESUME_DATA = (numpy.random.default_rng(1).random((6, 4, 3)), numpy.eye(3)[numpy.arange(6) % 3])


def resumable_callbacks(folder):
    best = dr.callbacks.ModelCheckpoint(str(folder / "best.npz"), monitor="loss", save_best_only=True)
    budget = dr.callbacks.TimeBudget(log=lambda line: None)
    stopper = dr.callbacks.EarlyStopping(monitor="loss", patience=5)
    return [best, budget, stopper]


@pytest.fixture(scope="module")
def backup(tmp_path_factory):
    """(the bytes of last.npz after one epoch of fit with BackupAndRestore, its metadata)."""
    folder = tmp_path_factory.mktemp("backup")
    model = small_model()
    stateful = resumable_callbacks(folder)
    keeper = dr.callbacks.BackupAndRestore(folder / "last.npz", delete_checkpoint=False, state_of=stateful)
    model.fit(*RESUME_DATA, epochs=1, verbose=0, callbacks=[*stateful, keeper])
    data = (folder / "last.npz").read_bytes()
    return data, dr.load_metadata(folder / "last.npz")


def resume(path):
    """Continue the fit saved at ``path`` by one epoch, as `train --resume` does."""
    model = small_model()
    stateful = resumable_callbacks(path.parent)
    keeper = dr.callbacks.BackupAndRestore(path, delete_checkpoint=False, state_of=stateful)
    model.fit(*RESUME_DATA, epochs=2, verbose=0, callbacks=[*stateful, keeper])
    return keeper


def with_training(backup, tmp_path, change):
    """last.npz with its metadata's training state changed by ``change(training)`` (in place, or what it returns
    when that is not None)."""
    data, metadata = backup
    path = tmp_path / "last.npz"
    path.write_bytes(data)
    with numpy.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    metadata = json.loads(json.dumps(metadata))
    changed = change(metadata["training"])
    if changed is not None:
        metadata["training"] = changed
    arrays["metadata"] = numpy.array(json.dumps(metadata))
    return write_model_file(path, arrays)


def test_the_intact_backup_resumes(backup, tmp_path):
    assert resume(with_training(backup, tmp_path, lambda training: None)).restored_epoch == 1


@pytest.mark.parametrize("change, words", [
    (lambda t: t.update(rng_state="PCG64"), "metadata.training.rng_state must be an object, found a string"),
    (lambda t: t["rng_state"]["init"].update(state="x"), "metadata.training.rng_state cannot be restored"),
    (lambda t: t["rng_state"].__delitem__("shuffle"), "metadata.training.rng_state cannot be restored (KeyError"),
    (lambda t: t.update(epoch=-1), "metadata.training.epoch is -1, an epoch count must be >= 0"),
    (lambda t: t.update(epoch="1"), "metadata.training.epoch must be an integer, found a string"),
    (lambda t: t.update(callbacks={"best": 1}), "metadata.training.callbacks must be a list, found an object"),
    (lambda t: t["callbacks"][0].__delitem__("best"),
     "metadata.training.callbacks[0] (ModelCheckpoint) has no 'best' entry"),
    (lambda t: t["callbacks"][1].update(elapsed="soon"),
     "metadata.training.callbacks[1] (TimeBudget).elapsed must be a finite number, found a string"),
    (lambda t: t["callbacks"][2].update(wait=1.5),
     "metadata.training.callbacks[2] (EarlyStopping).wait must be an integer"),
])
def test_an_edited_resume_state_is_refused_naming_the_field(backup, tmp_path, change, words):
    path = with_training(backup, tmp_path, change)
    with pytest.raises(ModelFileError) as caught:
        resume(path)
    assert str(caught.value).startswith(f"{path}: ") and words in str(caught.value)


@BUDGETS
def test_any_edit_of_the_resume_state_resumes_or_is_one_line_naming_the_file(backup, tmp_path, budget):
    training = backup[1]["training"]

    @budget
    @given(edit=architecture_edit(training))
    def run(edit):
        path = with_training(backup, tmp_path, lambda t: edited(training, *edit))
        try:
            resume(path)
        except ModelFileError as error:
            assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
        except ValueError as error:   # the one refusal BackupAndRestore words itself
            assert str(error) == f"{path} holds no training state to resume from"
    run()


# -- class 2, a music checkpoint's metadata: the fields load_checkpoint reads --------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(the arrays of a tiny drums checkpoint, its metadata)."""
    from deeprnn.music import DrumGridTokenizer
    from deeprnn.pipeline.checkpoints import save_checkpoint
    from deeprnn.pipeline.recipes import TrainConfig, get_recipe

    dr.backend.set_seed(0)
    config = TrainConfig(recipe="drums", units=4, embedding_dim=3, layers=1).resolved()
    tokenizer = DrumGridTokenizer()
    model = get_recipe("drums").build_model(config, tokenizer.vocab_size)
    path = tmp_path_factory.mktemp("checkpoint") / "best.npz"
    save_checkpoint(path, model, tokenizer, config, "/data/groove", {"epoch": 1})
    with numpy.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return arrays, json.loads(str(arrays["metadata"]))


def with_metadata(checkpoint, tmp_path, metadata):
    return write_model_file(tmp_path / "best.npz", {**checkpoint[0], "metadata": numpy.array(json.dumps(metadata))})


@pytest.mark.parametrize("change, words", [
    (lambda m: m.pop("tokenizer"), "metadata has no 'tokenizer' entry"),
    (lambda m: m.update(tokenizer=["drum-grid"]), "metadata.tokenizer must be JSON text, found a list"),
    (lambda m: m.update(tokenizer='{"a": ' * 1000 + "1" + "}" * 1000), "metadata.tokenizer nests 1000 levels deep"),
    (lambda m: m.update(tokenizer="[]"), "metadata.tokenizer must be a JSON object, not a list"),
    (lambda m: m.update(config=[4, 1]), "metadata.config must be an object, found a list"),
    (lambda m: m.update(training="epoch 3"), "metadata.training must be an object, found a string"),
    (lambda m: m.update(version="1"), "metadata.version must be an integer, found a string"),
])
def test_an_edited_checkpoint_metadata_is_refused_naming_the_field(checkpoint, tmp_path, change, words):
    from deeprnn.pipeline.checkpoints import load_checkpoint

    metadata = json.loads(json.dumps(checkpoint[1]))
    change(metadata)
    path = with_metadata(checkpoint, tmp_path, metadata)
    assert words in refused(path, load_checkpoint)


def test_a_checkpoint_whose_metadata_is_a_list_is_refused(checkpoint, tmp_path):
    from deeprnn.pipeline.checkpoints import load_checkpoint
    from deeprnn.pipeline.run_folder import checkpoint_metadata

    path = with_metadata(checkpoint, tmp_path, [checkpoint[1]])
    assert refused(path, load_checkpoint) == f"{path}: metadata must be a JSON object, not a list"
    # as the command line reads it: the flag, then the path once
    with pytest.raises(ModelFileError) as caught:
        checkpoint_metadata(path)
    assert str(caught.value) == f"--checkpoint {path}: metadata must be a JSON object, not a list"


@BUDGETS
def test_any_edit_of_checkpoint_metadata_loads_or_is_one_line_naming_the_file(checkpoint, tmp_path, budget):
    from deeprnn.pipeline.checkpoints import load_checkpoint

    metadata = checkpoint[1]

    @budget
    @given(edit=architecture_edit(metadata))
    def run(edit):
        path = with_metadata(checkpoint, tmp_path, edited(metadata, *edit))
        loads_or_refuses(path, lambda p: load_checkpoint(p).model)
    run()


def declare_directory_bytes(path, directory_bytes):
    """``path``'s zip end record made to declare a central directory of ``directory_bytes``."""
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 12:end + 16] = directory_bytes.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def test_a_zip_directory_declaring_100_mb_is_refused_before_it_is_listed(entries, tmp_path):
    # listing a directory costs ~0.5 KB of Python objects per 46-byte entry: the declared size is checked first
    path = declare_directory_bytes(write_model_file(tmp_path / "directory.npz", entries), 100_000_000)
    assert (f"its zip directory declares {len(entries)} entries in 100,000,000 bytes, more than the limit of "
            "65,536 entries in 67,108,864 bytes") in refused(path)
    path = declare_directory_bytes(keras_archive(tmp_path / "directory.keras", keras_config(2)), 100_000_000)
    assert "its zip directory declares 2 entries in 100,000,000 bytes" in refused(path, keras_io.load_keras)


def nesting(document):
    """The reference: how deep a parsed JSON document's lists and objects nest."""
    if isinstance(document, (list, dict)):
        children = document.values() if isinstance(document, dict) else document
        return 1 + max((nesting(child) for child in children), default=0)
    return 0


TRICKY_TEXT = st.text(alphabet='[]{}"\\\\ ab,:\n\u00e9', max_size=8)
JSON_DOCUMENTS = st.recursive(st.none() | st.integers() | TRICKY_TEXT,
                              lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(TRICKY_TEXT, inner, max_size=3), max_leaves=12)


@given(document=JSON_DOCUMENTS, ascii_only=st.booleans())
@settings(max_examples=300, deadline=None)
def test_json_depth_counted_without_parsing_equals_the_depth_of_the_parsed_document(document, ascii_only):
    # strings full of brackets, quotes and backslashes: only real nesting counts
    assert serialization.json_depth(json.dumps(document, ensure_ascii=ascii_only)) == nesting(document)


def test_json_depth_takes_little_memory_on_a_long_string_of_escapes():
    text = '{"a": "' + "\\n" * 4_000_000 + '"}'  # 8 M characters; a naive string regex takes ~1 GB here
    tracemalloc.start()
    try:
        assert serialization.json_depth(text) == 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
