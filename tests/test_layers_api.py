"""The public layer API in float32: Keras's call signature, output shapes, weight layouts and initializers."""
from collections import namedtuple

import numpy
import pytest

import deeprnn as dr
from deeprnn import initializers, layers


def test_a_layer_used_alone_builds_on_first_call_and_returns_a_numpy_array():
    out = layers.LSTM(3)(numpy.ones((2, 5, 4), "float32"))
    assert isinstance(out, numpy.ndarray)
    assert out.shape == (2, 3) and out.dtype == numpy.float32


@pytest.mark.parametrize("make", [lambda: layers.LSTM(3), lambda: layers.Dense(3), lambda: layers.BatchNormalization()],
                         ids=["lstm", "dense", "batch_normalization"])
def test_a_layer_casts_float_input_to_floatx_as_keras_does(make):
    """numpy.ones is float64; Keras computes a float32 layer in float32 and returns float32."""
    out = make()(numpy.ones((2, 5, 4)))
    assert out.dtype == numpy.float32


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.GRU, layers.LSTM])
def test_return_sequences_and_return_state_output_shapes_follow_keras(cls):
    x = numpy.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    assert cls(3, return_sequences=True)(x).shape == (2, 5, 3)
    outputs = cls(3, return_state=True)(x)
    states = 2 if cls is layers.LSTM else 1  # LSTM returns [out, h_T, c_T]; GRU and SimpleRNN [out, h_T]
    assert isinstance(outputs, list) and [o.shape for o in outputs] == [(2, 3)] * (1 + states)
    numpy.testing.assert_array_equal(outputs[0], outputs[1])  # without return_sequences the output is h_T
    sequences = cls(3, return_sequences=True, return_state=True)(x)
    assert [o.shape for o in sequences] == [(2, 5, 3)] + [(2, 3)] * states


@pytest.mark.parametrize("cls", [layers.SimpleRNN, layers.GRU, layers.LSTM])
def test_go_backwards_returns_outputs_in_processing_order(cls):
    """Keras: go_backwards reads x[:, T-1] first and out[:, k] is the state after x[:, T-1-k], so out[:, -1] == h_T:
    the same numbers as the forward layer on the time-reversed input."""
    x = numpy.random.default_rng(1).normal(size=(2, 5, 4)).astype("float32")
    backwards = cls(3, go_backwards=True, return_sequences=True, return_state=True)
    out, h_T = backwards(x)[:2]
    numpy.testing.assert_array_equal(out[:, -1], h_T)
    forwards = cls(3, return_sequences=True)
    forwards(x)
    forwards.set_weights(backwards.get_weights())
    numpy.testing.assert_allclose(out, forwards(x[:, ::-1]), rtol=1e-6, atol=1e-7)


def test_lstm_weights_are_kernel_recurrent_kernel_bias_with_forget_block_one():
    lstm = layers.LSTM(3)
    lstm(numpy.ones((2, 5, 4), "float32"))
    W, U, b = lstm.get_weights()
    assert (W.shape, U.shape, b.shape) == ((4, 12), (3, 12), (12,))
    # blocks [i | f | c | o]: unit_forget_bias starts the forget gate at 1
    numpy.testing.assert_array_equal(b, numpy.repeat([0.0, 1.0, 0.0, 0.0], 3))
    assert all(w.dtype == numpy.float32 for w in (W, U, b))


def test_lstm_without_unit_forget_bias_starts_from_a_zero_bias():
    lstm = layers.LSTM(3, unit_forget_bias=False)
    lstm(numpy.ones((1, 2, 4), "float32"))
    numpy.testing.assert_array_equal(lstm.get_weights()[2], numpy.zeros(12))


@pytest.mark.parametrize("reset_after,bias_shape", [(True, (2, 9)), (False, (9,))])
def test_gru_weight_shapes_follow_keras_for_both_variants(reset_after, bias_shape):
    """reset_after=True keeps separate input and recurrent biases: b is (2, 3H), row 0 input, row 1 recurrent."""
    gru = layers.GRU(3, reset_after=reset_after)
    gru(numpy.ones((2, 5, 4), "float32"))
    assert [w.shape for w in gru.get_weights()] == [(4, 9), (3, 9), bias_shape]


def test_simple_rnn_and_dense_weight_shapes_follow_keras():
    rnn = layers.SimpleRNN(3)
    rnn(numpy.ones((2, 5, 4), "float32"))
    assert [w.shape for w in rnn.get_weights()] == [(4, 3), (3, 3), (3,)]
    dense = layers.Dense(6)
    dense(numpy.ones((2, 4), "float32"))
    assert [w.shape for w in dense.get_weights()] == [(4, 6), (6,)]
    no_bias = layers.LSTM(3, use_bias=False)
    no_bias(numpy.ones((1, 2, 4), "float32"))
    assert [w.shape for w in no_bias.get_weights()] == [(4, 12), (3, 12)]


def test_batch_normalization_weights_are_gamma_beta_moving_mean_moving_variance():
    bn = layers.BatchNormalization()
    bn(numpy.ones((2, 3), "float32"))
    gamma, beta, moving_mean, moving_variance = bn.get_weights()
    for value, expected in ((gamma, 1), (beta, 0), (moving_mean, 0), (moving_variance, 1)):
        numpy.testing.assert_array_equal(value, numpy.full(3, expected, "float32"))
    assert [v.trainable for v in bn.variables] == [True, True, False, False]


def test_model_weights_and_gradients_are_in_keras_order_with_none_for_moving_statistics():
    model = dr.Sequential([layers.Input((5, 2)), layers.LSTM(3), layers.BatchNormalization(),
                           layers.Dense(4, activation="softmax")])
    model.compile(loss="categorical_crossentropy")
    shapes = [(2, 12), (3, 12), (12,), (3,), (3,), (3,), (3,), (3, 4), (4,)]
    assert [w.shape for w in model.get_weights()] == shapes
    x = numpy.random.default_rng(0).normal(size=(4, 5, 2))
    y = numpy.eye(4)[[0, 1, 2, 3]]
    loss, grads = model.loss_and_gradients(x, y)
    assert numpy.isfinite(loss)
    assert [None if g is None else g.shape for g in grads] == shapes[:5] + [None, None] + shapes[7:]


def test_set_weights_round_trips_and_rejects_a_wrong_shape():
    lstm = layers.LSTM(3)
    lstm(numpy.ones((1, 2, 4), "float32"))
    rng = numpy.random.default_rng(0)
    new = [rng.normal(size=w.shape).astype("float32") for w in lstm.get_weights()]
    lstm.set_weights(new)
    for got, expected in zip(lstm.get_weights(), new):
        numpy.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match=r"\(3, 12\).*\(12, 3\)"):
        lstm.set_weights([new[0], new[1].T, new[2]])


def test_set_weights_copies_so_training_never_writes_into_the_callers_arrays():
    """Keras assigns values into its variables; the arrays passed to set_weights stay the caller's."""
    model = dr.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    weights = [w.copy() for w in model.get_weights()]
    before = [w.copy() for w in weights]
    model.set_weights(weights)
    model.train_on_batch(numpy.ones((2, 3), "float32"), numpy.array([0, 1]))
    assert not numpy.array_equal(model.get_weights()[0], before[0]), "the step must change the model"
    for passed, original in zip(weights, before):
        numpy.testing.assert_array_equal(passed, original)


# -- initializers ---------------------------------------------------------------------------------------------------

def test_glorot_uniform_draws_within_its_limit_over_the_whole_concatenated_kernel():
    """Keras: L = sqrt(6 / (fan_in + fan_out)) with fan_out = 4H for an LSTM kernel, not per gate."""
    D, H = 40, 30
    lstm = layers.LSTM(H)
    lstm(numpy.ones((1, 2, D), "float32"))
    W = lstm.get_weights()[0]
    limit = numpy.sqrt(6 / (D + 4 * H))
    assert numpy.abs(W).max() <= limit
    assert numpy.abs(W).max() > 0.98 * limit  # and it uses the range: 4800 uniform draws reach its edge
    assert abs(W.mean()) < 0.05 * limit


@pytest.mark.parametrize("cls,gates", [(layers.SimpleRNN, 1), (layers.GRU, 3), (layers.LSTM, 4)])
def test_orthogonal_recurrent_kernel_has_orthonormal_rows_over_the_whole_matrix(cls, gates):
    """U (H, G*H) is orthogonal as one matrix (U U^T = I), as Keras draws it; not gate by gate."""
    H = 5
    layer = cls(H)
    layer(numpy.ones((1, 2, 3), "float32"))
    U = layer.get_weights()[1].astype("float64")
    assert U.shape == (H, gates * H)
    numpy.testing.assert_allclose(U @ U.T, numpy.eye(H), atol=1e-6)
    if gates > 1:
        block = U[:, :H]
        assert not numpy.allclose(block @ block.T, numpy.eye(H), atol=1e-3)


def test_constant_zeros_and_ones_initializers_fill_as_named():
    dense = layers.Dense(3, kernel_initializer="ones", bias_initializer=initializers.Constant(0.25))
    dense(numpy.ones((1, 2), "float32"))
    W, b = dense.get_weights()
    numpy.testing.assert_array_equal(W, numpy.ones((2, 3)))
    numpy.testing.assert_array_equal(b, numpy.full(3, 0.25))
    rnn = layers.SimpleRNN(2, kernel_initializer="zeros", recurrent_initializer=initializers.Constant(-1.5))
    rnn(numpy.ones((1, 2, 3), "float32"))
    numpy.testing.assert_array_equal(rnn.get_weights()[0], numpy.zeros((3, 2)))
    numpy.testing.assert_array_equal(rnn.get_weights()[1], numpy.full((2, 2), -1.5))


def test_an_unknown_initializer_name_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="he_normalish"):
        initializers.get("he_normalish")
    with pytest.raises(ValueError, match="he_normalish"):
        layers.Dense(3, kernel_initializer="he_normalish")(numpy.ones((1, 2), "float32"))


# -- seeds ------------------------------------------------------------------------------------------------------------

def tiny_model():
    return dr.Sequential([layers.Input((4, 2)), layers.GRU(3, return_sequences=True, recurrent_dropout=0.2),
                          layers.LSTM(3, dropout=0.2), layers.Dropout(0.3), layers.Dense(3, activation="softmax")])


def test_set_seed_makes_initial_weights_reproducible_and_a_different_seed_changes_them():
    dr.set_seed(7)
    first = tiny_model().get_weights()
    dr.set_seed(7)
    again = tiny_model().get_weights()
    dr.set_seed(8)
    other = tiny_model().get_weights()
    for a, b in zip(first, again):
        numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(first[0], other[0])


def test_set_seed_makes_dropout_masks_reproducible_and_a_different_seed_changes_them():
    x = numpy.ones((4, 10), "float32")
    dropout = layers.Dropout(0.5)
    dr.set_seed(3)
    first = dropout(x, training=True)
    dr.set_seed(3)
    again = dropout(x, training=True)
    dr.set_seed(4)
    other = dropout(x, training=True)
    numpy.testing.assert_array_equal(first, again)
    assert not numpy.array_equal(first, other)
    assert set(numpy.unique(first)) == {0.0, 2.0}
    numpy.testing.assert_array_equal(dropout(x, training=False), x)  # identity at inference


def trained_weights(seed):
    dr.set_seed(seed)
    model = tiny_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    rng = numpy.random.default_rng(0)  # the data is the same for every seed
    model.fit(rng.normal(size=(10, 4, 2)), rng.integers(0, 3, 10), epochs=2, batch_size=3, verbose=0)
    return model.get_weights()


def test_set_seed_makes_fit_with_shuffling_and_dropout_reproducible():
    first, again, other = trained_weights(11), trained_weights(11), trained_weights(12)
    for a, b in zip(first, again):
        numpy.testing.assert_array_equal(a, b)
    assert any(not numpy.array_equal(a, b) for a, b in zip(first, other))


def test_fit_shuffle_order_comes_from_the_seed():
    """No dropout and the same initial weights: only the epoch permutation depends on the seed."""
    dr.set_seed(0)
    initial = dr.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")]).get_weights()

    def run(seed):
        dr.set_seed(seed)
        model = dr.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
        model.set_weights([w.copy() for w in initial])
        model.compile(loss="sparse_categorical_crossentropy")
        rng = numpy.random.default_rng(0)
        model.fit(rng.normal(size=(9, 3)), rng.integers(0, 2, 9), epochs=1, batch_size=2, verbose=0)
        return model.get_weights()[0]

    numpy.testing.assert_array_equal(run(5), run(5))
    assert not numpy.array_equal(run(5), run(6))


def test_float64_mode_gives_float64_weights_and_outputs(float64):
    lstm = layers.LSTM(2)
    out = lstm(numpy.ones((1, 3, 2)))
    assert out.dtype == numpy.float64 and all(w.dtype == numpy.float64 for w in lstm.get_weights())
    assert dr.floatx() == "float64"


def test_summary_prints_each_layer_its_output_shape_and_parameter_count(capsys):
    model = dr.Sequential([layers.Input((7, 1)), layers.LSTM(4, return_sequences=True, name="first_lstm"),
                           layers.LSTM(4, name="second_lstm"), layers.BatchNormalization(name="norm"),
                           layers.Dense(5, activation="softmax", name="head")])
    model.summary()
    printed = capsys.readouterr().out
    lstm1 = 4 * (1 + 4 + 1) * 4  # 4 gates x (D + H + bias) x H = 96
    lstm2 = 4 * (4 + 4 + 1) * 4  # 144
    for name, kind, shape, count, runs in (("first_lstm", "LSTM", "(None, 7, 4)", lstm1, "fused (cpu_lstm)"),
                                           ("second_lstm", "LSTM", "(None, 4)", lstm2, "fused (cpu_lstm)"),
                                           ("norm", "BatchNormalization", "(None, 4)", 16, ""),
                                           ("head", "Dense", "(None, 5)", 25, "")):
        line = next(l for l in printed.splitlines() if l.startswith(f"{name} ({kind})"))
        assert shape in line and f" {count:,}" in line and line.endswith(runs), line
    total = lstm1 + lstm2 + 16 + 25
    assert f"Total params: {total:,}" in printed
    assert f"Trainable params: {total - 8:,}" in printed  # BatchNorm's moving mean and variance are not trained
    assert "Non-trainable params: 8" in printed


# -- what a recurrent cell declares ---------------------------------------------------------------------------------
def test_an_rnn_cell_without_its_step_functions_cannot_be_made():
    """RNN declares step_forward/step_backward abstract: a subclass that defines neither is refused when made."""
    class NoSteps(layers.RNN):
        pass

    with pytest.raises(TypeError, match="step_backward, step_forward|step_forward"):
        NoSteps(3)


def test_an_rnn_cell_must_declare_a_step_cache_with_the_fields_backward_reads():
    """A cell class is checked when it is defined: its step_cache namedtuple holds h_in (dU is formed from it)."""
    with pytest.raises(TypeError, match="step_cache.*h_in"):
        class NoRecurrentInput(layers.SimpleRNN):
            step_cache = namedtuple("Step", "a h")

    class Renamed(layers.SimpleRNN):   # a cell that keeps its parent's cache is fine
        pass

    assert Renamed.step_cache is layers.SimpleRNN.step_cache
