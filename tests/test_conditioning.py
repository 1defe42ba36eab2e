"""ConditionedEmbedding: the condition's labels embedded and concatenated to the token at every step."""
import numpy
import pytest

import deeprnn as dr
from deeprnn import gradcheck, saving
from deeprnn.layers import ConditionedEmbedding, StepCounterEmbedding

CONDITIONS = [("style", 4, 3), ("tempo", 3, 2)]


def labelled(tokens, labels, steps=None):
    """x = [token, (step,) labels...] (B, T, columns) from tokens (B, T), labels (B, K) held over each row."""
    tokens = numpy.asarray(tokens)
    columns = [tokens[..., None]] + ([numpy.asarray(steps)[..., None]] if steps is not None else [])
    columns.append(numpy.broadcast_to(numpy.asarray(labels)[:, None, :], tokens.shape + (len(labels[0]),)))
    return numpy.concatenate(columns, axis=-1).astype(numpy.int64)


def test_each_step_is_the_token_row_then_each_label_row():
    layer = ConditionedEmbedding(6, 4, CONDITIONS)
    x = labelled([[1, 5, 1]], [[2, 0]])
    y = layer(x)
    assert y.shape == (1, 3, 4 + 3 + 2) == layer.compute_output_shape(x.shape)
    assert numpy.array_equal(y[0, :, :4], layer.E.value[[1, 5, 1]])
    assert numpy.array_equal(y[0, :, 4:7], numpy.repeat(layer.C[0].value[[2]], 3, axis=0))
    assert numpy.array_equal(y[0, :, 7:], numpy.repeat(layer.C[1].value[[0]], 3, axis=0))


def test_with_counters_the_bar_position_sits_between_token_and_labels_as_in_step_counter_embedding():
    layer = ConditionedEmbedding(6, 4, CONDITIONS, counter_bits=3)
    plain = StepCounterEmbedding(6, 4, counter_bits=3)
    tokens, steps = numpy.array([[2, 2, 4, 0]]), numpy.array([[-1, 0, 5, 9]])
    y = layer(labelled(tokens, [[3, 1]], steps))
    plain.ensure_built((1, 4, 2))
    plain.set_weights([layer.E.value])
    assert numpy.array_equal(y[..., :7], plain(numpy.stack([tokens, steps], axis=-1)))
    assert numpy.array_equal(y[0, :, 7:10], numpy.repeat(layer.C[0].value[[3]], 4, axis=0))


def test_gradients_of_the_token_and_label_tables_equal_central_differences(device, float64):
    """Labels repeated over time and over the batch: each row's gradient is the scatter-add of every step's."""
    layer = ConditionedEmbedding(5, 3, CONDITIONS, counter_bits=2)
    rng = numpy.random.default_rng(0)
    x = labelled(rng.integers(0, 5, (3, 6)), [[1, 2], [1, 0], [3, 2]], rng.integers(-1, 8, (3, 6)))
    errors = gradcheck.check_layer_gradients(layer, x)
    assert sorted(errors) == sorted(v.name for v in layer.variables) and len(errors) == 3
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("cell", [dr.layers.LSTM, dr.layers.GRU, dr.layers.SimpleRNN])
def test_a_conditioned_model_gradients_equal_central_differences_on_every_weight(float64, cell):
    """ConditionedEmbedding -> RNN -> Dense logits with a from_logits loss: the label tables' gradients reach
    them through the recurrent layer, a sum over every step, and agree with central differences to 1e-6."""
    dr.set_seed(1)
    model = dr.Sequential([ConditionedEmbedding(5, 3, CONDITIONS), cell(4, return_sequences=True),
                           dr.layers.Dense(5)])
    model.build((None, None, 3))
    model.compile(optimizer="adam", loss=dr.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = numpy.random.default_rng(2)
    x = labelled(rng.integers(0, 5, (2, 5)), [[0, 2], [3, 1]])
    y = rng.integers(0, 5, (2, 5))
    errors = gradcheck.check_model_gradients(model, x, y)
    table = model.layers[0].name
    assert {f"{table}/style_embeddings", f"{table}/tempo_embeddings"} <= set(errors)
    assert len(errors) == len(model.variables)
    assert max(errors.values()) < 1e-6, errors


def test_the_label_changes_the_prediction_and_a_model_with_the_layer_saves_and_loads(tmp_path):
    dr.set_seed(0)
    model = dr.Sequential([ConditionedEmbedding(8, 3, CONDITIONS, counter_bits=4),
                           dr.layers.LSTM(4, return_sequences=True), dr.layers.Dense(8),
                           dr.layers.Activation("softmax")])
    model.build((None, None, 4))
    x = labelled(numpy.arange(5)[None] % 8, [[1, 2]], numpy.arange(5)[None] - 1)
    other = x.copy()
    other[..., 2] = 3  # another style
    assert not numpy.allclose(model(x), model(other))
    model.save(tmp_path / "m.npz")
    loaded = saving.load_model(tmp_path / "m.npz")
    assert isinstance(loaded.layers[0], ConditionedEmbedding)
    assert loaded.layers[0].conditions == model.layers[0].conditions
    assert numpy.allclose(model(x), loaded(x))


@pytest.mark.parametrize("make_x, message", [
    (lambda: labelled([[1, 2]], [[4, 0]]), "style ids must be in [0, 4), received min 4, max 4"),
    (lambda: labelled([[1, 2]], [[0, -1]]), "tempo ids must be in [0, 3), received min -1, max -1"),
    (lambda: labelled([[1, 9]], [[0, 0]]), "token ids must be in [0, 6)"),
    (lambda: numpy.zeros((1, 2, 2), numpy.int64),
     "expected integer input of shape (batch, T, 3) = [token, style, tempo]"),
])
def test_bad_input_is_one_line_naming_the_layer_and_the_column(make_x, message):
    layer = ConditionedEmbedding(6, 2, CONDITIONS, name="cond")
    with pytest.raises(ValueError) as caught:
        layer(make_x())
    assert message in str(caught.value) and "'cond'" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("conditions, message", [
    ([], "conditions must name at least one label"),
    ([("style", 0, 2)], "ConditionedEmbedding: style input_dim must be an integer >= 1, got 0"),
    ([("style", 3)], "each condition is (name, input_dim, output_dim)"),
])
def test_bad_conditions_are_refused_naming_the_label(conditions, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ConditionedEmbedding(6, 2, conditions)
