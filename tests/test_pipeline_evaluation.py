"""NLL per token with full piece context, n-gram baselines that are true distributions, and statistics that
tell a collapsed generation from a varied one."""
import math

import numpy
import pytest

from deeprnn import backend
from deeprnn.music import DrumGridTokenizer
from deeprnn.pipeline.ngram import NGramModel, Triples, trigram_triples
from deeprnn.pipeline.recipes import TrainConfig, get_recipe
from deeprnn.pipeline.scoring import pad_pieces, piece_nll
from deeprnn.pipeline.sequence_statistics import token_statistics
from deeprnn.pipeline.stepping import serving_model


def triples_of(sequences, pad):
    return Triples.join(trigram_triples(s, numpy.arange(1, len(s)), pad) for s in sequences)


def test_ngram_distributions_sum_to_one_in_seen_and_unseen_contexts():
    V = 6
    train = [numpy.array([0, 1, 2, 1, 2, 1, 3]), numpy.array([0, 2, 2, 4])]
    model = NGramModel(triples_of(train, pad=V), V)
    assert sum(model.lambdas) == pytest.approx(1.0)
    targets = numpy.arange(V)
    for h2, h1 in [(1, 2), (0, 2), (5, 5), (V, 0), (4, 4)]:  # seen trigram context, seen bigram only, unseen
        p = model.trigram_prob(numpy.full(V, h2), numpy.full(V, h1), targets)
        assert p.sum() == pytest.approx(1.0) and (p > 0).all()
    assert model.unigram_prob(targets).sum() == pytest.approx(1.0)


def test_unigram_is_add_one_smoothed_counts():
    V = 4
    model = NGramModel(triples_of([numpy.array([0, 1, 1, 1, 2])], pad=V), V)
    # targets 1, 1, 1, 2: P(1) = (3 + 1) / (4 + 4), P(3) = (0 + 1) / 8
    assert model.unigram_prob(numpy.array([1, 3])).tolist() == [0.5, 0.125]


def test_a_deterministic_pattern_is_learned_by_the_trigram_not_the_unigram():
    pattern = numpy.tile([0, 1, 2, 3], 50)
    model = NGramModel(triples_of([pattern], pad=5), 5)
    unigram, trigram = model.nll(triples_of([pattern[:40]], pad=5))
    assert trigram / 39 < 0.2 < math.log(4) - 0.1 < unigram / 39


def test_padding_keeps_every_piece_whole_in_its_own_row():
    pieces = [numpy.arange(5) + 10, numpy.arange(3) + 20, numpy.arange(4) + 30]
    tokens, lengths = pad_pieces(pieces)
    assert tokens.shape == (3, 5) and lengths.tolist() == [5, 3, 4]
    for row, sequence in enumerate(pieces):
        assert tokens[row, :len(sequence)].tolist() == sequence.tolist()
        assert (tokens[row, len(sequence):] == 0).all()


def test_piece_nll_is_each_pieces_own_likelihood_from_its_start():
    backend.set_seed(0)
    tokenizer = DrumGridTokenizer()
    config = TrainConfig(recipe="drums", units=8, embedding_dim=4, layers=1).resolved()
    recipe = get_recipe("drums")
    model = recipe.build_model(config, tokenizer.vocab_size)
    encoding = recipe.input_encoding(config, tokenizer.vocab_size)
    steps_of = recipe.steps_of(config, tokenizer)
    rng = numpy.random.default_rng(0)
    pieces = [numpy.concatenate([[512], rng.integers(0, 512, n), [513]]) for n in (9, 4, 13, 6, 11)]
    # the reference: each piece alone through model.forward, from zero state
    expected, count = 0.0, 0
    for piece in pieces:
        x = encoding.encode(piece[None, :-1], steps_of(piece)[None, :-1])
        served = serving_model(model)   # probabilities from the logits the drums model trains on
        probs = backend.to_numpy(served.forward(served.prepare_input(x))[0])[0]
        expected -= numpy.log(probs[numpy.arange(len(piece) - 1), piece[1:]]).sum()
        count += len(piece) - 1
    total, scored = piece_nll(model, pieces, encoding, steps_of, rows=2, chunk=5)
    assert scored == count
    assert total == pytest.approx(expected, rel=1e-5)


def test_statistics_of_a_collapsed_and_of_a_looping_sequence():
    collapsed = token_statistics([7] * 500)
    assert (collapsed["distinct"], collapsed["longest_run"], collapsed["top_share"]) == (1, 500, 1.0)
    assert collapsed["entropy"] == 0.0

    loop = token_statistics([5, 9, 9, 1] * 30 + [2, 3])
    assert loop["distinct"] == 5 and loop["longest_run"] == 2
    assert (loop["longest_loop"], loop["loop_period"]) == (120, 4)

    varied = token_statistics(numpy.random.default_rng(0).integers(0, 300, 500))
    assert varied["distinct"] > 200 and varied["longest_loop"] <= 4
