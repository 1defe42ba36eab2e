"""Generation carrying the recurrent state gives the tutorial's window re-run probabilities where the contexts
are the same, at one step per token instead of one window per token."""
import re

import numpy
import pytest

from deeprnn import backend
from deeprnn.layers import RNN
from deeprnn.music import DrumGridTokenizer
from deeprnn.pipeline.features import grid_steps
from deeprnn.pipeline.generation import (Primer, Sampling, TokenPicker, choose_token, generate_carrying_state,
                                         generate_window_rerun)
from deeprnn.pipeline.recipes import TrainConfig, get_recipe
from deeprnn.pipeline.stepping import serving_model, stateful_twin

TOKENIZER = DrumGridTokenizer()


class FixedVocabulary:
    """What the seed recipe needs of a fitted SeedTokenizer: its size and UNK id."""

    vocab_size = 30
    unk_id = 29


def drums_model(cell="lstm", bar_position=True, seed=0):
    """A tiny drums model with weights scaled up, so its distributions are peaked and depend on the context."""
    backend.set_seed(seed)
    config = TrainConfig(recipe="drums", cell=cell, layers=2, units=12, embedding_dim=6,
                         bar_position=bar_position, seq_len=64).resolved()
    model = get_recipe("drums").build_model(config, TOKENIZER.vocab_size)
    rng = numpy.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.6, w.shape) for w in model.get_weights()])
    return model, config


def drum_primer(length=6, bar_position=True):
    tokens = numpy.array([TOKENIZER.start_token, 1, 0, 4, 2, 0, 5, 0][:length])
    return Primer(tokens, grid_steps(tokens, TOKENIZER.start_token) if bar_position else None, None)


def picker(recipe_name, tokenizer, greedy=True, seed=0):
    return TokenPicker(get_recipe(recipe_name), tokenizer, Sampling(greedy=greedy), numpy.random.default_rng(seed))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bar_position", [True, False])
def test_state_carrying_equals_window_rerun_while_the_window_holds_the_whole_context(cell, bar_position):
    model, config = drums_model(cell, bar_position)
    encoding = get_recipe("drums").input_encoding(config, TOKENIZER.vocab_size)
    primer = drum_primer(bar_position=bar_position)
    # sampling with the same seed: equal distributions draw equal tokens, so the contexts stay equal
    carried = generate_carrying_state(model, encoding, primer, 30, picker("drums", TOKENIZER, greedy=False))
    rerun = generate_window_rerun(model, encoding, primer, 30, picker("drums", TOKENIZER, greedy=False), window=64)
    assert carried.tokens.tolist() == rerun.tokens.tolist()
    numpy.testing.assert_allclose(carried.probabilities, rerun.probabilities, rtol=1e-4, atol=1e-6)
    # the context matters: the distribution moves from token to token (L1 distance between consecutive steps)
    assert numpy.abs(numpy.diff(carried.probabilities, axis=0)).sum(axis=1).mean() > 0.1


def test_a_short_window_forgets_what_state_carrying_remembers():
    model, config = drums_model()
    encoding = get_recipe("drums").input_encoding(config, TOKENIZER.vocab_size)
    primer = drum_primer()
    carried = generate_carrying_state(model, encoding, primer, 12, picker("drums", TOKENIZER))
    rerun = generate_window_rerun(model, encoding, primer, 12, picker("drums", TOKENIZER), window=4)
    # the window holds the whole context for no prediction here (primer 6 > 4): the distributions differ
    assert not numpy.allclose(carried.probabilities[0], rerun.probabilities[0], atol=1e-4)


def test_seed_model_first_note_after_the_window_is_the_same_either_way():
    backend.set_seed(1)
    config = TrainConfig(recipe="seed", units=10, seq_len=12).resolved()
    recipe = get_recipe("seed")
    model = recipe.build_model(config, FixedVocabulary.vocab_size)
    rng = numpy.random.default_rng(1)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) * (w.ndim > 1) for w in model.get_weights()])
    encoding = recipe.input_encoding(config, FixedVocabulary.vocab_size)
    primer = Primer(rng.integers(0, 29, 12), None, None)
    carried = generate_carrying_state(model, encoding, primer, 5, picker("seed", FixedVocabulary))
    rerun = generate_window_rerun(model, encoding, primer, 5, picker("seed", FixedVocabulary), window=12)
    numpy.testing.assert_allclose(carried.probabilities[0], rerun.probabilities[0], rtol=1e-4, atol=1e-6)


def test_a_stateful_twin_in_chunks_equals_one_pass_and_reset_states_starts_a_piece_afresh():
    """Keras's stateful=True: each call continues from the state the last one left, until reset_states()."""
    model, config = drums_model()
    encoding = get_recipe("drums").input_encoding(config, TOKENIZER.vocab_size)
    rng = numpy.random.default_rng(2)
    tokens = rng.integers(0, 512, (3, 20))
    steps = numpy.tile(numpy.arange(20), (3, 1))
    served = serving_model(model)   # the drums model trains on logits: served with a softmax appended
    whole = served.predict(encoding.encode(tokens, steps))
    numpy.testing.assert_allclose(whole.sum(axis=-1), 1, rtol=1e-5)
    twin = stateful_twin(model)
    assert all(layer.stateful for layer in twin.layers if isinstance(layer, RNN))
    assert not any(layer.stateful for layer in model.layers if isinstance(layer, RNN))
    first = backend.to_numpy(twin(encoding.encode(tokens[:, :7], steps[:, :7])))
    second = backend.to_numpy(twin(encoding.encode(tokens[:, 7:], steps[:, 7:])))
    numpy.testing.assert_allclose(numpy.concatenate([first, second], axis=1), whole, rtol=1e-4, atol=1e-6)

    twin.reset_states()
    again = backend.to_numpy(twin(encoding.encode(tokens[:, 7:], steps[:, 7:])))
    alone = served.predict(encoding.encode(tokens[:, 7:], steps[:, 7:]))
    numpy.testing.assert_allclose(again, alone, rtol=1e-4, atol=1e-6)
    assert not numpy.allclose(again, second, atol=1e-4)  # without the reset the context was different


def test_forbidden_tokens_are_never_chosen():
    probs = numpy.array([0.1, 0.6, 0.3])
    rng = numpy.random.default_rng(0)
    assert choose_token(probs, Sampling(greedy=True), rng) == 1
    assert choose_token(probs, Sampling(greedy=True), rng, forbidden=[1]) == 2
    draws = [choose_token(probs, Sampling(temperature=1.0), rng, forbidden=[1]) for _ in range(200)]
    assert set(draws) == {0, 2}


def test_top_1_and_a_cold_temperature_are_greedy_and_a_hot_one_spreads():
    probs = numpy.array([0.2, 0.5, 0.3])
    rng = numpy.random.default_rng(0)
    assert {choose_token(probs, Sampling(top_k=1), rng) for _ in range(50)} == {1}
    assert {choose_token(probs, Sampling(temperature=0.01), rng) for _ in range(50)} == {1}
    assert {choose_token(probs, Sampling(temperature=5.0), rng) for _ in range(200)} == {0, 1, 2}
    assert Sampling(temperature=0).greedy  # the limit of p^(1/T) as T -> 0
    assert {choose_token(probs, Sampling(temperature=0), rng) for _ in range(20)} == {1}


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=-1.0), "--temperature must be 0 or a finite number >= 0.001 and <= 100, got -1.0"),
    (dict(temperature=float("nan")), "--temperature must be 0 or a finite number >= 0.001 and <= 100, got nan"),
    (dict(temperature=1e-320), "--temperature must be 0 or a finite number >= 0.001 and <= 100, got 1e-320"),
    (dict(temperature="hot"), "--temperature must be 0 or a finite number >= 0.001 and <= 100, got 'hot'"),
    (dict(top_k=0), "--top-k must be an integer >= 1 and <= 100000, got 0"),
    (dict(top_k=2.5), "--top-k must be an integer >= 1 and <= 100000, got 2.5"),
    (dict(greedy=True, temperature=0.7), "--greedy takes the most likely token, --temperature 0.7 samples"),
    (dict(greedy=True, top_k=5), "--greedy takes the most likely token, so --top-k 5 would do nothing"),
    (dict(temperature=0, top_k=5), "--temperature 0 takes the most likely token, so --top-k 5 would do nothing"),
])
def test_sampling_settings_are_checked_and_contradictions_name_both(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Sampling(**settings)


def test_drum_primers_start_on_a_downbeat_and_the_output_keeps_its_place_in_the_bar():
    recipe = get_recipe("drums")
    piece = numpy.concatenate([[TOKENIZER.start_token], numpy.arange(1, 41), [TOKENIZER.end_token]])
    # 4/4 on a 16th grid: bars begin at steps 0, 16, 32 (tokens 1, 17, 33); a 12-token window must fit
    assert recipe.window_starts(piece, 12, (4, 4), TOKENIZER).tolist() == [1, 17]
    assert recipe.window_starts(piece, 12, (6, 8), TOKENIZER).tolist() == [1, 13, 25]  # 12 steps a bar
    primer = Primer(piece[17:27], None, None, start=4.0)  # 10 steps from bar 2's downbeat
    assert primer.bar_phase(recipe, TOKENIZER, include_primer=True) == 0.0
    assert primer.bar_phase(recipe, TOKENIZER, include_primer=False) == 2.5  # the continuation starts at step 10


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
def test_sampling_draws_what_rng_choice_draws_from_the_same_stream(temperature):
    """choose_token's inverse CDF takes one uniform per token, exactly as rng.choice(V, p=...) does: the same seed
    gives the same tokens as the plain formula p ** (1 / T), normalized, passed to rng.choice."""
    probs = numpy.random.default_rng(5).random(40) ** 4
    probs /= probs.sum()
    ours, plain = numpy.random.default_rng(1), numpy.random.default_rng(1)
    for _ in range(500):
        weights = probs ** (1 / temperature)
        weights[[0, 1]] = 0.0
        expected = int(plain.choice(40, p=weights / weights.sum()))
        assert choose_token(probs, Sampling(temperature=temperature), ours, forbidden=[0, 1]) == expected
