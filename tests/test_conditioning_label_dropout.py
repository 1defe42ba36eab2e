"""ConditionedEmbedding's label dropout: in training, a window's label of each kind reads as unknown (the last id
of its table) with probability label_dropout, the same for every step of the window; inference is untouched."""
import numpy
import pytest

import deeprnn as dr
from deeprnn import backend, gradcheck, saving
from deeprnn.errors import SettingError
from deeprnn.layers import ConditionedEmbedding
from deeprnn.music.labels import LabelVocabulary
from deeprnn.pipeline import TrainConfig, get_recipe

CONDITIONS = [("style", 4, 3), ("tempo", 3, 2)]  # unknown: style id 3, tempo id 2
WIDTH = 4  # the token embedding's


def labelled(tokens, labels):
    """x = [token, labels...] (B, T, 1 + K) from tokens (B, T) and labels (B, K) held over each row."""
    tokens = numpy.asarray(tokens)
    labels = numpy.broadcast_to(numpy.asarray(labels)[:, None, :], tokens.shape + (len(labels[0]),))
    return numpy.concatenate([tokens[..., None], labels], axis=-1).astype(numpy.int64)


def told(layer, y):
    """(B, T, K) the label id each step was told, read back from y by matching each table's rows."""
    columns, offset = [], WIDTH
    for table in layer.C:
        rows = numpy.asarray(table.value)
        part = y[..., offset:offset + rows.shape[1]]
        columns.append(numpy.argmin(((part[..., None, :] - rows) ** 2).sum(-1), axis=-1))
        offset += rows.shape[1]
    return numpy.stack(columns, axis=-1)


def test_at_inference_label_dropout_changes_nothing():
    dr.set_seed(0)
    plain = ConditionedEmbedding(6, WIDTH, CONDITIONS)
    dropping = ConditionedEmbedding(6, WIDTH, CONDITIONS, label_dropout=0.5)
    x = labelled(numpy.arange(12).reshape(4, 3) % 6, [[0, 1], [1, 0], [2, 1], [0, 0]])
    plain.ensure_built(x.shape)
    dropping.ensure_built(x.shape)
    dropping.set_weights(plain.get_weights())
    assert numpy.array_equal(dropping(x), plain(x))
    assert numpy.array_equal(dropping.forward(x, training=False)[0], plain.forward(x, training=True)[0])


def test_in_training_about_p_of_the_windows_see_unknown_for_every_step_and_each_kind_is_drawn_apart():
    dr.set_seed(5)
    p = 0.3
    layer = ConditionedEmbedding(6, WIDTH, CONDITIONS, label_dropout=p)
    batch = 4000
    x = labelled(numpy.zeros((batch, 5), numpy.int64), [[1, 0]] * batch)
    layer.ensure_built(x.shape)
    y, cache = layer.forward(x, training=True)
    ids = told(layer, numpy.asarray(y))
    assert numpy.array_equal(ids, numpy.asarray(cache.labels))  # the cache holds the ids the forward used
    assert (ids == ids[:, :1]).all()  # one draw per window: every step told the same
    style, tempo = ids[:, 0, 0], ids[:, 0, 1]
    assert set(style) == {1, 3} and set(tempo) == {0, 2}  # the true label or unknown, nothing else
    dropped_style, dropped_tempo = style == 3, tempo == 2
    # binomial(4000, 0.3): standard deviation 0.007, so 0.03 is over 4 of them
    assert abs(dropped_style.mean() - p) < 0.03 and abs(dropped_tempo.mean() - p) < 0.03
    assert abs((dropped_style & dropped_tempo).mean() - p * p) < 0.03  # independent draws per kind


def test_the_draws_repeat_after_set_seed_and_continue_from_a_saved_rng_state_as_a_resume_does():
    layer = ConditionedEmbedding(6, WIDTH, CONDITIONS, label_dropout=0.5)
    x = labelled(numpy.zeros((64, 2), numpy.int64), [[0, 0]] * 64)
    layer.ensure_built(x.shape)
    dr.set_seed(7)
    first = numpy.asarray(layer.forward(x, training=True)[1].labels)
    state = backend.get_rng_state()  # what a checkpoint saves
    second = numpy.asarray(layer.forward(x, training=True)[1].labels)
    dr.set_seed(7)
    assert numpy.array_equal(numpy.asarray(layer.forward(x, training=True)[1].labels), first)
    dr.set_seed(123)
    backend.set_rng_state(state)  # what --resume restores
    assert numpy.array_equal(numpy.asarray(layer.forward(x, training=True)[1].labels), second)
    assert not numpy.array_equal(first, second)


def test_with_label_dropout_the_gradients_equal_central_differences_and_reach_only_the_rows_read(device, float64):
    """The gradient check reseeds before every forward, so each one drops the same labels; the backward scatters
    into the rows the forward read (from its cache), and a dropped label's own row gets nothing from that window."""
    layer = ConditionedEmbedding(5, 3, CONDITIONS, label_dropout=0.5)
    rng = numpy.random.default_rng(0)
    x = labelled(rng.integers(0, 5, (8, 4)), [[1, 1]] * 8)
    errors = gradcheck.check_layer_gradients(layer, x, seed=3)
    assert len(errors) == 3 and max(errors.values()) < 1e-7, errors
    dr.set_seed(3)
    y, cache = layer.forward(backend.to_device(x), training=True)
    dC_style = backend.to_numpy(layer.backward(y * 0 + 1, cache).grads[1])
    read = backend.to_numpy(cache.labels)[:, 0, 0]
    assert set(read) == {1, 3}  # seed 3 drops some styles and keeps others
    assert numpy.allclose(dC_style[[1, 3], 0], [4 * (read == 1).sum(), 4 * (read == 3).sum()])
    assert not dC_style[[0, 2]].any()


def test_label_dropout_is_saved_with_the_model_and_checked(tmp_path):
    model = dr.Sequential([ConditionedEmbedding(6, WIDTH, CONDITIONS, label_dropout=0.25), dr.layers.Dense(6)])
    model.build((None, None, 3))
    model.save(tmp_path / "m.npz")
    assert saving.load_model(tmp_path / "m.npz").layers[0].label_dropout == 0.25
    with pytest.raises(ValueError, match=r"label_dropout must be .*< 1, got 1"):
        ConditionedEmbedding(6, WIDTH, CONDITIONS, label_dropout=1)


# --- the recipes' --condition-dropout ----------------------------------------------------------------------------

def test_the_recipes_pass_condition_dropout_to_the_layer_default_0_3():
    labels = LabelVocabulary.fit(("style", "tempo"), [])
    for given, expected in ((None, 0.3), (0.1, 0.1), (0.0, 0.0)):
        config = TrainConfig(recipe="groove", condition="style,tempo", condition_dropout=given, layers=1, units=4,
                             embedding_dim=4).resolved()
        model = get_recipe("groove").build_model(config, 20, labels)
        assert isinstance(model.layers[0], ConditionedEmbedding)
        assert model.layers[0].label_dropout == expected


@pytest.mark.parametrize("values, message", [
    (dict(recipe="seed", condition_dropout=0.3), "--condition-dropout belongs to the drums and groove recipes"),
    (dict(recipe="drums", condition_dropout=0.5), "--condition-dropout drops the labels of --condition; this run "
                                                  "has none"),
    (dict(recipe="drums", condition="style", condition_dropout=1.0), "--condition-dropout must be"),
])
def test_condition_dropout_without_labels_to_drop_or_out_of_range_is_one_line(values, message):
    with pytest.raises(SettingError) as caught:
        TrainConfig(**values).resolved()
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    TrainConfig(recipe="drums", condition_dropout=0.3).resolved()  # the default, said aloud: nothing to refuse
