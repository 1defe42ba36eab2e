"""Bad input fails early and says what is wrong: which layer, what shape it expected, what it received."""
import re

import numpy
import pytest

import deeprnn as dr
from deeprnn import backend, layers, optimizers


def assert_names_layer_and_shapes(error, layer_name, expected, received):
    message = str(error.value)
    assert repr(layer_name) in message, message
    assert re.search(r"expected .*" + re.escape(expected), message), message
    assert "received " + received in message, message


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.GRU, layers.LSTM])
def test_recurrent_layer_rejects_a_wrong_feature_size_naming_layer_and_shapes(cls):
    layer = cls(3, name="my_rnn")
    layer(numpy.ones((2, 5, 4), "float32"))
    with pytest.raises(ValueError) as error:
        layer(numpy.ones((2, 5, 6), "float32"))
    assert_names_layer_and_shapes(error, "my_rnn", "4)", "(2, 5, 6)")


@pytest.mark.parametrize("shape", [(2, 5), (2, 5, 4, 1)], ids=["rank2", "rank4"])
def test_recurrent_layer_rejects_a_wrong_rank_naming_layer_and_shapes(shape):
    built = layers.LSTM(3, name="built_lstm")
    built(numpy.ones((2, 5, 4), "float32"))
    with pytest.raises(ValueError) as error:
        built(numpy.ones(shape, "float32"))
    assert_names_layer_and_shapes(error, "built_lstm", "(batch, ?, 4)", str(shape))
    with pytest.raises(ValueError) as error:  # an unbuilt layer fails the same way, before creating weights
        layers.LSTM(3, name="fresh_lstm")(numpy.ones(shape, "float32"))
    assert_names_layer_and_shapes(error, "fresh_lstm", "(batch, ?, ?)", str(shape))


def test_dense_and_batch_normalization_reject_a_wrong_feature_size():
    dense = layers.Dense(3, name="head")
    dense(numpy.ones((2, 4), "float32"))
    with pytest.raises(ValueError) as error:
        dense(numpy.ones((2, 5), "float32"))
    assert_names_layer_and_shapes(error, "head", "4)", "(2, 5)")
    bn = layers.BatchNormalization(name="norm")
    bn(numpy.ones((2, 4), "float32"))
    with pytest.raises(ValueError) as error:
        bn(numpy.ones((2, 3), "float32"))
    assert_names_layer_and_shapes(error, "norm", "4)", "(2, 3)")


def test_a_model_names_the_first_layer_that_cannot_take_the_input():
    model = dr.Sequential([layers.Input((5, 1)), layers.LSTM(4, name="lstm_in"), layers.Dense(2, name="out")])
    with pytest.raises(ValueError) as error:
        model.predict(numpy.ones((3, 5, 2), "float32"))
    assert_names_layer_and_shapes(error, "lstm_in", "1)", "(3, 5, 2)")
    with pytest.raises(ValueError) as error:
        model.predict(numpy.ones((3, 5), "float32"))
    assert_names_layer_and_shapes(error, "lstm_in", "(batch, ?, 1)", "(3, 5)")


def test_wrong_initial_state_shape_or_count_is_a_value_error():
    lstm = layers.LSTM(3, name="stateful_thing")
    x = numpy.ones((2, 5, 4), "float32")
    with pytest.raises(ValueError, match=r"'stateful_thing'.*2 arrays, received 1"):
        lstm(x, initial_state=[numpy.zeros((2, 3), "float32")])
    with pytest.raises(ValueError, match=r"expected initial state of shape \(2, 3\), received \(2, 4\)"):
        lstm(x, initial_state=[numpy.zeros((2, 4), "float32")] * 2)


def compiled_model():
    model = dr.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
def test_x_and_y_of_different_lengths_is_a_value_error(method):
    model = compiled_model()
    x, y = numpy.ones((5, 3), "float32"), numpy.zeros(4, "int64")
    kwargs = {"verbose": 0} if method == "fit" else {}
    with pytest.raises(ValueError, match=r"different numbers of samples: 5 and 4"):
        getattr(model, method)(x, y, **kwargs)


def test_labels_that_do_not_fit_the_loss_are_value_errors():
    model = compiled_model()
    x = numpy.ones((2, 3), "float32")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        model.train_on_batch(x, numpy.array([0, 2]))
    model.compile(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="one-hot"):
        model.train_on_batch(x, numpy.array([0, 1]))


def test_embedding_rejects_token_ids_outside_its_table():
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 5\).*max 5"):
        layers.Embedding(5, 2)(numpy.array([[0, 5]]))
    with pytest.raises(ValueError, match="integer token ids"):
        layers.Embedding(5, 2)(numpy.array([[0.5, 1.0]]))


@pytest.mark.parametrize("make", [lambda: layers.Dense(3, activation="swish_ish"),
                                  lambda: layers.Activation("swish_ish"),
                                  lambda: layers.LSTM(3, activation="swish_ish"),
                                  lambda: layers.GRU(3, recurrent_activation="swish_ish")],
                         ids=["dense", "activation", "lstm", "gru"])
def test_an_unknown_activation_name_is_a_value_error_naming_it(make):
    with pytest.raises(ValueError, match="unknown activation 'swish_ish'"):
        make()


def test_an_unknown_initializer_name_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="unknown initializer 'glorot_normalish'"):
        layers.LSTM(3, recurrent_initializer="glorot_normalish")(numpy.ones((1, 2, 3), "float32"))


def test_unknown_loss_and_optimizer_names_are_value_errors():
    model = dr.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        model.compile(loss="mse", optimizer="adam")
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        model.compile(loss="categorical_crossentropy", optimizer="sgd")


def test_training_before_compile_is_a_value_error():
    model = dr.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="compile"):
        model.fit(numpy.ones((2, 3), "float32"), numpy.array([0, 1]), verbose=0)


@pytest.mark.parametrize("make", [lambda: layers.LSTM(3, dropout=1.0), lambda: layers.GRU(3, recurrent_dropout=-0.1),
                                  lambda: layers.Dropout(1.5), lambda: layers.LSTM(0),
                                  lambda: optimizers.Adam(learning_rate=0),
                                  lambda: optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0)],
                         ids=["dropout_1", "negative_recurrent_dropout", "dropout_rate", "zero_units",
                              "zero_learning_rate", "both_clips"])
def test_out_of_range_hyperparameters_are_value_errors(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("make, message", [
    (lambda: layers.LSTM(2.7), "LSTM: units must be an integer >= 1, got 2.7"),
    (lambda: layers.GRU(True), "GRU: units must be an integer >= 1, got True"),
    (lambda: layers.SimpleRNN(4, dropout=float("nan")), "SimpleRNN: dropout must be a finite number"),
    (lambda: layers.Dense("8"), "Dense: units must be an integer >= 1, got '8'"),
    (lambda: layers.Embedding(10, 0), "Embedding: output_dim must be an integer >= 1, got 0"),
    (lambda: layers.BatchNormalization(epsilon=0), "BatchNormalization: epsilon must be a finite number > 0"),
    (lambda: layers.StepCounterEmbedding(5, 3, counter_bits=99), "StepCounterEmbedding: counter_bits must be an integer >= 0 and <= 62"),
    (lambda: optimizers.Adam(learning_rate=float("nan")), "Adam: learning_rate must be a finite number > 0, got nan"),
    (lambda: optimizers.Adam(clipnorm=-1), "Adam: clipnorm must be a finite number > 0, got -1"),
    (lambda: optimizers.Adam(global_clipnorm=0), "Adam: global_clipnorm must be a finite number > 0, got 0"),
    (lambda: optimizers.Adam(beta_1=1.0), "Adam: beta_1 must be a finite number >= 0 and < 1, got 1.0"),
])
def test_numeric_arguments_are_checked_for_type_finiteness_sign_and_range(make, message):
    """A wrong number is an error naming the argument and the value, never silently rounded (LSTM(2.7) is not 2
    units) or flipped (a negative clipnorm would reverse every gradient)."""
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value).startswith(message), str(error.value)


def test_set_floatx_accepts_only_float32_and_float64():
    with pytest.raises(ValueError, match="float16"):
        dr.set_floatx("float16")
    assert dr.floatx() == "float32"


@pytest.mark.skipif(backend.cupy_or_none() is not None, reason="a GPU is present, so set_device('gpu') succeeds")
def test_set_device_gpu_without_cupy_is_a_runtime_error_that_says_what_to_install():
    with pytest.raises(RuntimeError, match=r"CuPy.*deeprnn\[gpu\]"):
        dr.set_device("gpu")
    assert backend.device() == "cpu"


def test_set_device_rejects_an_unknown_device_name():
    with pytest.raises(ValueError, match="tpu"):
        dr.set_device("tpu")


def test_a_sequential_model_refuses_a_layer_that_returns_several_arrays():
    with pytest.raises(ValueError, match="return_state=True"):
        dr.Sequential([layers.Input((5, 1)), layers.LSTM(3, return_state=True)])
