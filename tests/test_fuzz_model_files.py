"""Fuzzing the model loaders (issue 11): a saved .npz checkpoint, a .keras archive and a .weights.h5 file,
truncated or with bytes overwritten, give a model or the documented error (ValueError naming the file), fast."""
import io
import json
import time
import zipfile

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deeprnn as dr
from deeprnn import keras_io

SECONDS_PER_LOAD = 5.0
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW_FUZZ = settings(FUZZ, max_examples=1000)

KERAS_CONFIG = {"class_name": "Sequential", "config": {"name": "fuzz", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 4, 3], "name": "input"}},
    {"class_name": "LSTM", "config": {"units": 2, "name": "lstm"}},
    {"class_name": "Dense", "config": {"units": 3, "name": "dense"}}]}}


def small_model():
    model = dr.Sequential([dr.layers.Input(shape=(4, 3)), dr.layers.LSTM(2), dr.layers.Dense(3)])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("originals")
    model = small_model()
    model.save(folder / "model.npz")
    keras_io.save_keras_weights(model, folder / "model.weights.h5")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as keras_zip:
        keras_zip.writestr("config.json", json.dumps(KERAS_CONFIG))
        keras_zip.writestr("model.weights.h5", (folder / "model.weights.h5").read_bytes())
    (folder / "model.keras").write_bytes(archive.getvalue())
    # the intact files load: the fuzzing below starts from working files
    assert isinstance(dr.load_model(folder / "model.npz"), dr.Sequential)
    assert isinstance(keras_io.load_keras(folder / "model.keras"), dr.Sequential)
    return {name: (folder / name).read_bytes() for name in ("model.npz", "model.keras", "model.weights.h5")}


@st.composite
def corruption(draw, size):
    """(truncate to, [(position, byte)]): a cut file, a few overwritten bytes, or both."""
    cut = draw(st.one_of(st.none(), st.integers(0, size - 1)))
    flips = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), max_size=4))
    return cut, flips


def corrupt(data, damage):
    cut, flips = damage
    data = bytearray(data)
    for position, value in flips:
        data[position] = value
    return bytes(data[:cut] if cut is not None else data)


def load(name, path):
    if name == "model.npz":
        return dr.load_model(path)
    if name == "model.keras":
        return keras_io.load_keras(path)
    return keras_io.load_keras(path, model=small_model())


def check(originals, tmp_path, name, damage):
    path = tmp_path / name
    path.write_bytes(corrupt(originals[name], damage))
    started = time.perf_counter()
    try:
        model = load(name, path)
    except ValueError as error:
        assert str(path) in str(error), f"the error must name the file: {error}"
    else:
        assert isinstance(model, dr.Sequential)
        if name != "model.npz":  # a Keras file never loads non-finite weights
            assert all(numpy.all(numpy.isfinite(weight)) for weight in model.get_weights())
    assert time.perf_counter() - started < SECONDS_PER_LOAD


@pytest.mark.parametrize("name", ["model.npz", "model.keras", "model.weights.h5"])
def test_a_corrupted_model_file_loads_or_is_a_value_error_naming_it(originals, tmp_path, name):
    @FUZZ
    @given(damage=corruption(len(originals[name])))
    def run(damage):
        check(originals, tmp_path, name, damage)
    run()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["model.npz", "model.keras", "model.weights.h5"])
def test_a_corrupted_model_file_many_examples(originals, tmp_path, name):
    @SLOW_FUZZ
    @given(damage=corruption(len(originals[name])))
    def run(damage):
        check(originals, tmp_path, name, damage)
    run()


def test_a_keras_archive_with_a_member_name_that_is_not_utf8_names_the_file(originals, tmp_path):
    """Found by the slow fuzzing: setting the UTF-8 flag of a member whose name is not UTF-8 made zipfile raise a
    bare UnicodeDecodeError; it is a ValueError naming the file."""
    check(originals, tmp_path, "model.keras", (None, [(7, 8), (30, 128)]))


def test_malformed_keras_json_is_a_value_error_naming_the_file(tmp_path, originals):
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as keras_zip:
        keras_zip.writestr("config.json", "{not json")
        keras_zip.writestr("model.weights.h5", originals["model.weights.h5"])
    with pytest.raises(ValueError, match=f"{path}: config.json is not valid JSON"):
        keras_io.load_keras(path)


def test_an_oversized_keras_member_is_refused_before_it_is_read(tmp_path, originals, monkeypatch):
    path = tmp_path / "model.keras"
    path.write_bytes(originals["model.keras"])
    monkeypatch.setattr(keras_io, "MAX_WEIGHTS_BYTES", 100)
    real_read = zipfile.ZipFile.read

    def read_only_small_members(archive, member, *args):
        name = getattr(member, "filename", member)
        assert name != "model.weights.h5", "read an oversized member"
        return real_read(archive, member, *args)

    monkeypatch.setattr(zipfile.ZipFile, "read", read_only_small_members)
    with pytest.raises(ValueError, match="entry model.weights.h5 declares .* bytes, more than the limit of 100"):
        keras_io.load_keras(path)


@pytest.mark.parametrize("link", ["external", "soft"])
def test_a_weights_file_with_a_link_elsewhere_is_refused(tmp_path, link):
    h5py = pytest.importorskip("h5py")
    model = small_model()
    path = tmp_path / "model.weights.h5"
    keras_io.save_keras_weights(model, path)
    with h5py.File(path, "a") as h5:
        h5["layers/dense/vars/extra"] = (h5py.ExternalLink("/etc/secret.h5", "/data") if link == "external"
                                         else h5py.SoftLink("/layers/lstm"))
    with pytest.raises(ValueError, match=f"{path}: refusing .*Link 'layers/dense/vars/extra'"):
        keras_io.load_keras(path, model=model)
