"""Models move between Keras 3 and deeprnn: .keras archives and .weights.h5 files, both directions.

Each round trip ends in predictions: the model that arrives must compute what the model that left computed
(relative error <= 1e-5, float32). deeprnn.keras_io reads and writes with h5py and zipfile only; one test proves
that loading never imports Keras.
"""
import os
import subprocess
import sys

os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402  (plain import: CI must fail, not skip, when Keras is missing)
import numpy  # noqa: E402
import pytest  # noqa: E402

import deeprnn as dr  # noqa: E402
from deeprnn import keras_io  # noqa: E402
from deeprnn import layers as dr_layers  # noqa: E402

from keras_reference import (ModelSpec, assert_all_close, assert_close, build_deeprnn, build_keras,  # noqa: E402
                             randomize_keras_weights)

# Keras 3.15.1 with NumPy 2 warns on every variable read ("__array__ ... copy keyword"): noise, not a finding
pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

ARCHITECTURES = [
    pytest.param(ModelSpec((6, 3), [("LSTM", {"units": 5, "return_sequences": True, "recurrent_dropout": 0.3}),
                                    ("LSTM", {"units": 5, "dropout": 0.2}), ("BatchNormalization", {}),
                                    ("Dropout", {"rate": 0.3}), ("Dense", {"units": 7}),
                                    ("Activation", {"activation": "relu"}),
                                    ("BatchNormalization", {"momentum": 0.9, "epsilon": 0.01}),
                                    ("Dropout", {"rate": 0.3}), ("Dense", {"units": 4}),
                                    ("Activation", {"activation": "softmax"})]), id="tutorial-model"),
    pytest.param(ModelSpec((5, 2), [("GRU", {"units": 4, "reset_after": False, "return_sequences": True}),
                                    ("GRU", {"units": 3, "go_backwards": True}),
                                    ("Dense", {"units": 3, "activation": "softmax"})]), id="GRU"),
    pytest.param(ModelSpec((4, 3), [("SimpleRNN", {"units": 4, "go_backwards": True, "return_sequences": True}),
                                    ("Dense", {"units": 6, "activation": "tanh", "use_bias": False}),
                                    ("LSTM", {"units": 3, "unit_forget_bias": False}),
                                    ("Dense", {"units": 2, "activation": "sigmoid"})]), id="SimpleRNN+Dense"),
    pytest.param(ModelSpec((7,), [("Embedding", {"input_dim": 9, "output_dim": 3}), ("LSTM", {"units": 4}),
                                  ("Dense", {"units": 9, "activation": "softmax"})],
                           loss="sparse_categorical_crossentropy", input_dtype="int32"), id="Embedding"),
]


def inputs_for(spec, rng, batch=5):
    if spec.input_dtype == "int32":
        return rng.integers(0, 9, (batch,) + spec.input_shape).astype(numpy.int32)
    return rng.normal(size=(batch,) + spec.input_shape).astype(numpy.float32)


def randomized_keras_model(spec, seed=0):
    keras.utils.set_random_seed(seed)
    model = build_keras(spec)
    randomize_keras_weights(model, numpy.random.default_rng(seed))
    return model


# -- Keras -> deeprnn --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ARCHITECTURES)
def test_load_keras_archive_rebuilds_the_model_with_the_same_predictions(spec, tmp_path):
    keras_model = randomized_keras_model(spec)
    path = tmp_path / "model.keras"
    keras_model.save(path)
    model = keras_io.load_keras(path)
    assert [type(layer).__name__ for layer in model.layers] == [type(layer).__name__ for layer in keras_model.layers]
    assert [layer.name for layer in model.layers] == [layer.name for layer in keras_model.layers]
    assert_all_close(model.get_weights(), keras_model.get_weights(), [v.path for v in keras_model.weights],
                     "loaded", tolerance=0.0)
    x = inputs_for(spec, numpy.random.default_rng(1))
    assert_close(model.predict(x), keras_model.predict(x, verbose=0), "predict after load_keras")


def test_load_keras_archive_keeps_every_layer_option(tmp_path):
    """Options that change the numbers travel with the architecture: reset_after, go_backwards, momentum, ..."""
    spec = ModelSpec((5, 2), [("GRU", {"units": 4, "reset_after": False, "return_sequences": True,
                                       "dropout": 0.1, "recurrent_dropout": 0.2}),
                              ("LSTM", {"units": 3, "go_backwards": True, "unit_forget_bias": False,
                                        "activation": "relu", "recurrent_activation": "sigmoid"}),
                              ("BatchNormalization", {"momentum": 0.8, "epsilon": 0.005, "center": False}),
                              ("Dense", {"units": 2, "activation": "softmax", "use_bias": False})])
    path = tmp_path / "options.keras"
    randomized_keras_model(spec).save(path)
    gru, lstm, norm, dense = keras_io.load_keras(path).layers
    assert (gru.reset_after, gru.return_sequences, gru.dropout, gru.recurrent_dropout) == (False, True, 0.1, 0.2)
    assert (lstm.go_backwards, lstm.unit_forget_bias, lstm.activation_name) == (True, False, "relu")
    assert (norm.momentum, norm.epsilon, norm.center, norm.scale) == (0.8, 0.005, False, True)
    assert (dense.activation, dense.use_bias) == ("softmax", False)


def test_load_keras_archive_with_a_stateful_batch_shape(tmp_path):
    """keras.Input(batch_shape=...) becomes layers.Input(batch_shape=...); the stateful layer stays stateful."""
    keras.utils.set_random_seed(0)
    keras_model = keras.Sequential([keras.Input(batch_shape=(3, 4, 2)),
                                    keras.layers.LSTM(5, stateful=True, return_sequences=True),
                                    keras.layers.Dense(2)])
    path = tmp_path / "stateful.keras"
    keras_model.save(path)
    model = keras_io.load_keras(path)
    assert model.input_spec.batch_shape == (3, 4, 2) and model.layers[0].stateful
    x1, x2 = numpy.random.default_rng(2).normal(size=(2, 3, 4, 2)).astype(numpy.float32)
    # model(x), not predict: Keras 3.15.1 on JAX does not carry the state between predict calls (its untracked
    # state variables are not written back by the compiled predict function); model(x) carries it, as deeprnn does
    for call, x in enumerate((x1, x2)):  # the second call starts from the first call's final state
        assert_close(model(x), keras.ops.convert_to_numpy(keras_model(x)), f"stateful call {call + 1}")


@pytest.mark.parametrize("spec", ARCHITECTURES[:2])
def test_load_keras_weights_file_into_a_deeprnn_model(spec, tmp_path):
    keras_model = randomized_keras_model(spec, seed=3)
    path = tmp_path / "model.weights.h5"
    keras_model.save_weights(path)
    model = build_deeprnn(spec)  # a .weights.h5 holds no architecture: build it, then fill it
    assert keras_io.load_keras(path, model=model) is model
    x = inputs_for(spec, numpy.random.default_rng(4))
    assert_close(model.predict(x), keras_model.predict(x, verbose=0), "predict after load_keras(weights)")


def test_load_keras_does_not_import_keras(tmp_path):
    spec = ARCHITECTURES[0].values[0]
    path = tmp_path / "model.keras"
    randomized_keras_model(spec).save(path)
    code = ("import sys; from deeprnn import keras_io; keras_io.load_keras(sys.argv[1]); "
            "assert 'keras' not in sys.modules and 'jax' not in sys.modules, 'Keras was imported'")
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=environment)


# -- deeprnn -> Keras --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ARCHITECTURES)
def test_save_keras_weights_loads_in_keras_with_the_same_predictions(spec, tmp_path):
    dr.set_seed(5)
    model = dr.Sequential([dr_layers.Input(spec.input_shape, dtype=spec.input_dtype)] +
                          [getattr(dr_layers, name)(**kwargs) for name, kwargs in spec.layers])
    model.compile(loss=spec.loss)
    rng = numpy.random.default_rng(6)
    x = inputs_for(spec, rng, batch=8)
    classes = model.layers[-1].units if hasattr(model.layers[-1], "units") else model.layers[-2].units
    labels = rng.integers(0, classes, 8)
    y = labels if spec.loss.startswith("sparse") else numpy.eye(classes, dtype=numpy.float32)[labels]
    for _ in range(3):  # a few steps, so BatchNorm's moving statistics are not at their initial values
        model.train_on_batch(x, y)
    path = tmp_path / "model.weights.h5"
    keras_io.save_keras_weights(model, path)

    keras_model = build_keras(spec)
    keras_model.load_weights(path)
    assert_all_close(keras_model.get_weights(), model.get_weights(), [v.path for v in keras_model.weights],
                     "Keras after load_weights", tolerance=0.0)
    assert_close(keras_model.predict(x, verbose=0), model.predict(x), "Keras predict after load_weights")


def test_save_keras_weights_loads_into_a_compiled_and_trained_keras_model(tmp_path):
    """load_weights on a Keras model whose optimizer already has state (the file carries no optimizer)."""
    spec = ARCHITECTURES[1].values[0]
    keras_model = randomized_keras_model(spec)
    keras_model.compile(optimizer="adam", loss=spec.loss)
    x = inputs_for(spec, numpy.random.default_rng(7), batch=4)
    keras_model.train_on_batch(x, numpy.eye(3, dtype=numpy.float32)[[0, 1, 2, 0]])
    model = build_deeprnn(spec)
    model.set_weights([w * 0.5 for w in keras_model.get_weights()])
    path = tmp_path / "model.weights.h5"
    keras_io.save_keras_weights(model, path)
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        keras_model.load_weights(path)  # Keras keeps its optimizer state and says so
    assert_close(keras_model.predict(x, verbose=0), model.predict(x), "predict")


def test_weights_round_trip_through_a_weights_file_is_exact(tmp_path):
    spec = ARCHITECTURES[0].values[0]
    source = build_deeprnn(spec)
    source.set_weights([numpy.random.default_rng(i).normal(size=w.shape).astype(numpy.float32)
                        for i, w in enumerate(source.get_weights())])
    path = tmp_path / "model.weights.h5"
    keras_io.save_keras_weights(source, path)
    target = keras_io.load_keras(path, model=build_deeprnn(spec))
    assert_all_close(target.get_weights(), source.get_weights(), [v.name for v in source.variables], "round trip",
                     tolerance=0.0)


# -- what cannot be loaded, said clearly -------------------------------------------------------------------------------
def test_unsupported_layer_is_named_in_the_error(tmp_path):
    keras_model = keras.Sequential([keras.Input((8, 2)), keras.layers.Conv1D(4, 3, name="my_conv"),
                                    keras.layers.LSTM(3), keras.layers.Dense(2)])
    path = tmp_path / "conv.keras"
    keras_model.save(path)
    with pytest.raises(ValueError, match=r"'my_conv' is a Conv1D, which deeprnn does not support"):
        keras_io.load_keras(path)


def test_unsupported_option_is_named_in_the_error(tmp_path):
    keras_model = keras.Sequential([keras.Input((5,), dtype="int32"),
                                    keras.layers.Embedding(10, 3, mask_zero=True, name="masked"),
                                    keras.layers.LSTM(3)])
    path = tmp_path / "masked.keras"
    keras_model.save(path)
    with pytest.raises(ValueError, match=r"'masked' \(Embedding\): option mask_zero=True is not supported"):
        keras_io.load_keras(path)


def test_functional_model_is_refused(tmp_path):
    inputs = keras.Input((4, 2))
    keras_model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.LSTM(3)(inputs)))
    path = tmp_path / "functional.keras"
    keras_model.save(path)
    with pytest.raises(ValueError, match="only Keras Sequential models"):
        keras_io.load_keras(path)


def test_weights_file_without_a_model_is_refused(tmp_path):
    keras_model = randomized_keras_model(ARCHITECTURES[1].values[0])
    path = tmp_path / "model.weights.h5"
    keras_model.save_weights(path)
    with pytest.raises(ValueError, match="holds no architecture"):
        keras_io.load_keras(path)


def test_weights_that_do_not_fit_the_model_name_the_layer(tmp_path):
    spec = ARCHITECTURES[1].values[0]
    path = tmp_path / "model.weights.h5"
    randomized_keras_model(spec).save_weights(path)
    other = ModelSpec(spec.input_shape, [("GRU", {"units": 6, "reset_after": False, "return_sequences": True})]
                      + spec.layers[1:])
    with pytest.raises(ValueError, match=r"layer '.*' expects .* of shape \(2, 18\)"):
        keras_io.load_keras(path, model=build_deeprnn(other))


def test_save_keras_weights_needs_the_keras_suffix(tmp_path):
    model = build_deeprnn(ARCHITECTURES[1].values[0])
    with pytest.raises(ValueError, match=r"must end in '.weights.h5'"):
        keras_io.save_keras_weights(model, tmp_path / "model.h5")
