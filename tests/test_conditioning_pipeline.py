"""The labels through the pipeline: input columns, training windows, whole-piece scoring."""
import numpy
import pytest

import deeprnn as dr
from deeprnn.layers import ConditionedEmbedding
from deeprnn.pipeline.features import (ConditionedInput, TokenInput, TokenStepInput, fit_labels, input_encoding,
                                       label_ids)
from deeprnn.pipeline.scoring import clipped_nll, piece_nll
from deeprnn.pipeline.windows import NextTokenWindows, TokenStream
from test_conditioning_labels import write_info


def test_label_columns_follow_the_token_and_step_columns_held_over_the_piece():
    tokens, steps = numpy.array([[3, 4, 5]]), numpy.array([[-1, 0, 1]])
    x = ConditionedInput(TokenStepInput()).encode(tokens, steps, numpy.array([[7, 2]]))
    assert x.shape == (1, 3, 4) and x.dtype == numpy.int64
    assert x[0].tolist() == [[3, -1, 7, 2], [4, 0, 7, 2], [5, 1, 7, 2]]
    per_token = ConditionedInput(TokenInput()).encode(tokens, None, numpy.array([[[1], [1], [2]]]))
    assert per_token[0].tolist() == [[3, 1], [4, 1], [5, 2]]
    assert input_encoding("tokens+steps+labels", 10).name == "tokens+steps+labels"
    with pytest.raises(ValueError, match="needs the label ids"):
        ConditionedInput(TokenInput()).encode(tokens)


def test_a_training_window_that_crosses_into_the_next_piece_switches_labels_there():
    pieces = [numpy.array([10, 1, 2, 3, 11]), numpy.array([10, 4, 5, 11])]
    stream = TokenStream.from_sequences(pieces, labels=numpy.array([[0, 1], [2, 0]]))
    assert stream.labels[:, 0].tolist() == [0] * 5 + [2] * 4
    windows = NextTokenWindows(stream, 4, ConditionedInput(TokenInput()))
    x, y = windows.batch(numpy.array([3]))
    assert x[0].tolist() == [[3, 0, 1], [11, 0, 1], [10, 2, 0], [4, 2, 0]]
    assert y[0].tolist() == [11, 10, 4, 5]


def conditioned_model(vocab=6):
    dr.set_seed(3)
    model = dr.Sequential([ConditionedEmbedding(vocab, 3, [("style", 3, 2)]), dr.layers.GRU(5, return_sequences=True),
                           dr.layers.Dense(vocab)])
    model.build((None, None, 2))
    model.compile(optimizer="adam", loss=dr.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_whole_piece_scoring_tells_each_piece_its_own_labels_as_one_forward_pass_would():
    """piece_nll (rows of pieces, chunks through a stateful twin) equals the model run over each whole piece from
    zero state with that piece's labels; and other labels give another score."""
    model = conditioned_model()
    rng = numpy.random.default_rng(0)
    pieces = [rng.integers(0, 6, n) for n in (7, 12, 4)]
    labels = numpy.array([[0], [2], [1]])
    encoding = ConditionedInput(TokenInput())
    total, count = piece_nll(model, pieces, encoding, rows=2, chunk=5, labels=labels)
    expected = 0.0
    for piece, label in zip(pieces, labels):
        logits = model.predict(encoding.encode(piece[None, :-1], None, label[None]))
        p = numpy.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        expected += clipped_nll(p[0, numpy.arange(len(piece) - 1), piece[1:]]).sum()
    assert count == sum(len(p) - 1 for p in pieces)
    assert total == pytest.approx(expected, rel=1e-5)
    shuffled, _ = piece_nll(model, pieces, encoding, labels=labels[[1, 2, 0]])
    assert shuffled != pytest.approx(total, rel=1e-6)


def test_label_ids_of_a_split_are_unknown_for_files_info_csv_does_not_list(tmp_path):
    write_info(tmp_path, [(f"f{i}.mid", style, 96 + 30 * i, "beat", "train")
                          for i, style in enumerate(["funk/a", "funk/b", "jazz/c"])])
    paths = [tmp_path / "f0.mid", tmp_path / "f1.mid", tmp_path / "f2.mid"]
    vocabulary = fit_labels(("style", "tempo"), paths, str(tmp_path))
    assert vocabulary.vocabularies["style"] == ["funk", "jazz", "other", "unknown"]
    ids = label_ids(vocabulary, paths + [tmp_path / "elsewhere.mid"], str(tmp_path))
    assert ids.tolist() == [[0, 1], [0, 3], [1, 4], [3, 5]]


def test_a_request_asks_for_style_tempo_bin_and_fill_by_name_and_keeps_the_primer_s_other_labels():
    from deeprnn.music.labels import LabelVocabulary, PieceLabels
    from deeprnn.pipeline.features import requested_labels
    vocabulary = LabelVocabulary.fit(("style", "tempo", "fill"), [PieceLabels("funk"), PieceLabels("jazz")])
    names = vocabulary.vocabularies
    assert requested_labels(vocabulary, "funk", 96, True).tolist() == [
        names["style"].index("funk"), names["tempo"].index("80-100"), names["fill"].index("fill")]
    base = vocabulary.ids(PieceLabels("jazz", 130, "fill"))
    assert requested_labels(vocabulary, None, 96, None, base=base).tolist() == [base[0], 1, base[2]]
    assert requested_labels(vocabulary, None, None, False, base=base).tolist() == [*base[:2], 0]
    assert requested_labels(vocabulary).tolist() == [len(names["style"]) - 1, 5, 2]  # unknown, unknown, unknown
    with pytest.raises(ValueError, match="^--style 'polka' is not one this model knows; known: funk, jazz, other, "
                                         "unknown$"):
        requested_labels(vocabulary, "polka")


def test_a_request_for_a_label_the_model_lacks_names_the_flag():
    from deeprnn.music.labels import LabelVocabulary
    from deeprnn.pipeline.features import requested_labels
    tempo_only = LabelVocabulary.fit(("tempo",), [])
    with pytest.raises(ValueError, match="^--style: this model was not trained with the style condition"):
        requested_labels(tempo_only, style="funk")
    with pytest.raises(ValueError, match="^--fill: this model was not trained with the fill condition"):
        requested_labels(tempo_only, fill=True)
    assert requested_labels(tempo_only, bpm=150, fill=False).tolist() == [4]
    assert requested_labels(None, bpm=150) is None
    with pytest.raises(ValueError, match="^--style: this checkpoint was trained without --condition"):
        requested_labels(None, style="funk")


def test_a_conditioned_drums_model_generates_the_same_carrying_state_as_re_running_the_window():
    """The stateful twin is told the labels with every token, as the window re-run is with every window."""
    from deeprnn import backend
    from deeprnn.music import DrumGridTokenizer
    from deeprnn.music.labels import LabelVocabulary, PieceLabels
    from deeprnn.pipeline.features import grid_steps
    from deeprnn.pipeline.generation import (Primer, Sampling, TokenPicker, generate_carrying_state,
                                             generate_window_rerun)
    from deeprnn.pipeline.recipes import TrainConfig, get_recipe
    tokenizer, recipe = DrumGridTokenizer(), get_recipe("drums")
    vocabulary = LabelVocabulary.fit(("style", "tempo"), [PieceLabels("funk"), PieceLabels("jazz")])
    backend.set_seed(0)
    config = TrainConfig(recipe="drums", layers=2, units=10, embedding_dim=5, seq_len=64,
                         condition="style,tempo").resolved()
    model = recipe.build_model(config, tokenizer.vocab_size, vocabulary)
    assert isinstance(model.layers[0], ConditionedEmbedding)
    rng = numpy.random.default_rng(0)
    model.set_weights([w + rng.normal(0, 0.6, w.shape) for w in model.get_weights()])
    encoding = recipe.input_encoding(config, tokenizer.vocab_size)
    tokens = numpy.array([tokenizer.start_token, 1, 0, 4, 2])
    results = []
    for style in ("funk", "jazz"):
        labels = vocabulary.ids(PieceLabels(style, 100))
        primer = Primer(tokens, grid_steps(tokens, tokenizer.start_token), None, labels=numpy.array(labels))
        pickers = [TokenPicker(recipe, tokenizer, Sampling(), numpy.random.default_rng(1)) for _ in range(2)]
        carried = generate_carrying_state(model, encoding, primer, 20, pickers[0])
        rerun = generate_window_rerun(model, encoding, primer, 20, pickers[1], window=64)
        assert carried.tokens.tolist() == rerun.tokens.tolist()
        numpy.testing.assert_allclose(carried.probabilities, rerun.probabilities, rtol=1e-4, atol=1e-6)
        results.append(carried.probabilities[0])
    assert not numpy.allclose(results[0], results[1], atol=1e-4)  # the style reaches the first prediction
