"""The fused single-token step (kernels/cpu_step.py, built by stepping.fused_step) against its reference, the
stateful twin called once per token: the same distributions to float32 rounding over hundreds of tokens, and for a
seed the very same tokens, greedy or sampled; a model it does not compute falls back to the twin and says why."""
import numpy
import pytest

from deeprnn import backend
from deeprnn.cli import main
from deeprnn.errors import SettingError
from deeprnn.kernels import cpu_step
from deeprnn.layers import GRU, LSTM, Dense, Dropout, Embedding, SimpleRNN, StepCounterEmbedding
from deeprnn.model import Sequential
from deeprnn.music import DrumGridTokenizer, ExpressiveDrumGridTokenizer, read_events
from deeprnn.music.labels import LabelVocabulary, PieceLabels
from deeprnn.pipeline.features import grid_steps
from deeprnn.pipeline.generation import (Primer, Sampling, TokenPicker, choose_token, generate_carrying_state,
                                         generate_from_checkpoint)
from deeprnn.pipeline.recipes import TrainConfig, get_recipe
from deeprnn.pipeline.stepping import StepUnavailable, fused_step

DRUMS = DrumGridTokenizer()
SAMPLINGS = [Sampling(greedy=True), Sampling(), Sampling(temperature=0.7), Sampling(temperature=1.5, top_k=5)]


def tiny_model(recipe_name="drums", tokenizer=DRUMS, cell="lstm", bar_position=True, labels=None, layers=2,
               seed=0):
    """A tiny recipe model with its weights spread out, so its distributions are peaked and move with the
    context."""
    backend.set_seed(seed)
    condition = None if labels is None else ",".join(labels.names)
    config = TrainConfig(recipe=recipe_name, cell=cell, layers=layers, units=12, embedding_dim=6,
                         bar_position=bar_position, seq_len=64, condition=condition).resolved()
    recipe = get_recipe(recipe_name)
    model = recipe.build_model(config, tokenizer.vocab_size, labels)
    rng = numpy.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.6, w.shape) for w in model.get_weights()])
    return recipe, model, recipe.input_encoding(config, tokenizer.vocab_size)


def primer_of(tokens, tokenizer=DRUMS, bar_position=True, labels=None):
    tokens = numpy.asarray(tokens)
    steps = grid_steps(tokens, tokenizer.start_token) if bar_position else None
    return Primer(tokens, steps, None, labels=None if labels is None else numpy.asarray(labels))


def both_ways(recipe, model, encoding, primer, num_steps, sampling, tokenizer=DRUMS, seed=0):
    """(fused, twin): the same generation by the fused step and by the stateful twin, each from rng(seed)."""
    made = []
    for step in ("fused", "twin"):
        picker = TokenPicker(recipe, tokenizer, sampling, numpy.random.default_rng(seed), primer.tokens)
        made.append(generate_carrying_state(model, encoding, primer, num_steps, picker, step=step))
    return made


def assert_same_generation(fused, twin, rtol=5e-5):
    """The same tokens, and the same distributions to ``rtol``: float32's rounding, which the two paths round in
    other orders and carry with the state over hundreds of steps (about 1e-5 after 300 here; float64: 1e-10)."""
    assert fused.method == "state-carrying, fused step (cpu_step)"
    assert twin.method == "state-carrying, stateful twin"
    assert fused.tokens.tolist() == twin.tokens.tolist()
    numpy.testing.assert_allclose(fused.probabilities, twin.probabilities, rtol=rtol, atol=rtol * 1e-4)


@pytest.mark.parametrize("bar_position", [True, False])
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=lambda s: s.describe())
def test_lstm_drums_model_fused_step_equals_the_stateful_twin_token_for_token(bar_position, sampling):
    recipe, model, encoding = tiny_model(bar_position=bar_position)
    primer = primer_of([DRUMS.start_token, 1, 0, 4, 2, 0, 5, 0], bar_position=bar_position)
    fused, twin = both_ways(recipe, model, encoding, primer, 300, sampling)
    assert_same_generation(fused, twin)
    # the test can fail: the distributions move from token to token (greedy settles into a loop, sampling does not)
    assert numpy.abs(numpy.diff(fused.probabilities[:6], axis=0)).sum(axis=1).mean() > 0.05
    assert sampling.greedy or len(set(fused.tokens.tolist())) > 5


@pytest.mark.parametrize("bar_position", [True, False])
def test_a_conditioned_lstm_model_fused_step_equals_the_twin_and_hears_the_labels(bar_position):
    vocabulary = LabelVocabulary.fit(("style", "tempo"), [PieceLabels("funk"), PieceLabels("jazz")])
    recipe, model, encoding = tiny_model(bar_position=bar_position, labels=vocabulary)
    first = []
    for style in ("funk", "jazz"):
        labels = vocabulary.ids(PieceLabels(style, 100))
        primer = primer_of([DRUMS.start_token, 1, 0, 4, 2], bar_position=bar_position, labels=labels)
        fused, twin = both_ways(recipe, model, encoding, primer, 200, Sampling())
        assert_same_generation(fused, twin)
        first.append(fused.probabilities[0])
    assert not numpy.allclose(first[0], first[1], atol=1e-4)  # the style reaches the first prediction


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_gru_and_simple_rnn_models_fused_step_equals_the_twin(cell):
    recipe, model, encoding = tiny_model(cell=cell)
    primer = primer_of([DRUMS.start_token, 1, 0, 4, 2, 0, 5, 0])
    for sampling in SAMPLINGS[:2]:
        assert_same_generation(*both_ways(recipe, model, encoding, primer, 200, sampling))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_in_float64_the_fused_step_equals_the_twin_to_1e_10(cell, float64):
    recipe, model, encoding = tiny_model(cell=cell)
    primer = primer_of([DRUMS.start_token, 1, 0, 4, 2, 0, 5, 0])
    fused, twin = both_ways(recipe, model, encoding, primer, 300, Sampling())
    assert fused.probabilities.dtype == numpy.float64
    assert_same_generation(fused, twin, rtol=1e-10)


@pytest.mark.parametrize("layers", [1, 3])
def test_one_and_three_layer_stacks_fused_step_equals_the_twin(layers):
    """One layer: its bias in the table and the head reads [h_1 | 1]; three: the middle layer adds its own bias."""
    recipe, model, encoding = tiny_model(layers=layers)
    primer = primer_of([DRUMS.start_token, 1, 0, 4, 2, 0, 5, 0])
    assert_same_generation(*both_ways(recipe, model, encoding, primer, 150, Sampling()))


def test_a_stack_of_mixed_cells_and_widths_with_a_softmax_head_fused_step_equals_the_twin():
    """LSTM(7) -> GRU(5) -> SimpleRNN(6) -> Dense(softmax): each [h_{l-1} | h_l] slice of S has its own widths."""
    backend.set_seed(3)
    model = Sequential([Embedding(DRUMS.vocab_size, 4), LSTM(7, return_sequences=True),
                        GRU(5, return_sequences=True), Dropout(0.5), SimpleRNN(6, return_sequences=True),
                        Dense(DRUMS.vocab_size, activation="softmax")])
    model.build((None, None))
    rng = numpy.random.default_rng(3)
    # spread less than tiny_model's: at 0.8 this stack is chaotic and float32's rounding grows to 1e-4 in 200 steps
    # (float64: 1e-13)
    model.set_weights([w + rng.normal(0, 0.4, w.shape) for w in model.get_weights()])
    recipe = get_recipe("drums")
    encoding = recipe.input_encoding(TrainConfig(recipe="drums", bar_position=False).resolved(), DRUMS.vocab_size)
    primer = primer_of([DRUMS.start_token, 1, 0, 4, 2], bar_position=False)
    assert_same_generation(*both_ways(recipe, model, encoding, primer, 200, Sampling()))


def test_groove_model_fused_step_keeps_the_grammar_and_draws_the_twins_tokens():
    tokenizer = ExpressiveDrumGridTokenizer()
    recipe, model, encoding = tiny_model("groove", tokenizer)
    primer = primer_of([tokenizer.start_token, 3], tokenizer)  # a step that strikes two classes: two hits owed
    fused, twin = both_ways(recipe, model, encoding, primer, 300, Sampling(), tokenizer)
    assert_same_generation(fused, twin)
    owed = tokenizer.hits_owed(primer.tokens)
    for token in fused.tokens.tolist():
        assert tokenizer.is_hit_token(token) == (owed > 0), token
        owed = tokenizer.owed_after(owed, token)


def test_the_logit_sampler_draws_what_choose_token_draws_from_the_same_stream():
    rng = numpy.random.default_rng(4)
    forbidden = [3, 7]
    for sampling in SAMPLINGS:
        for trial in range(200):
            logits = (rng.standard_normal(20) * 3).astype(numpy.float32)
            probs = cpu_step.softmax(logits[None])[0]
            seed = int(rng.integers(1 << 30))
            expected = choose_token(probs, sampling, numpy.random.default_rng(seed), forbidden)
            u = None if sampling.greedy else numpy.random.default_rng(seed).random()
            token = cpu_step.draw(logits, cpu_step.forbidding_mask(forbidden, 20), u, 1 / sampling.temperature,
                                  sampling.top_k)
            assert token == expected, (sampling.describe(), trial)
            assert token not in forbidden


def test_the_counter_table_holds_step_counter_embeddings_features():
    layer = StepCounterEmbedding(5, 2, counter_bits=3)
    layer.build((None, None, 2))
    steps = numpy.arange(-1, 17)
    x = numpy.stack([numpy.zeros_like(steps), steps], axis=-1)[None]
    features = backend.to_numpy(layer(x))[0, :, 2:]
    numpy.testing.assert_array_equal(features, cpu_step.counters(3)[steps % 8])


def test_the_step_that_runs_is_named_on_each_device(device):
    """NumPy runs the fused step; on the GPU the model's weights are CuPy arrays and the twin runs, saying why."""
    recipe, model, encoding = tiny_model()
    primer = primer_of([DRUMS.start_token, 1, 0, 4])
    picker = TokenPicker(recipe, DRUMS, Sampling(), numpy.random.default_rng(0))
    generated = generate_carrying_state(model, encoding, primer, 20, picker)
    if device == "cpu":
        assert generated.method == "state-carrying, fused step (cpu_step)"
    else:
        assert generated.method == ("state-carrying, stateful twin (no fused step: the fused step runs on NumPy "
                                    "arrays; this model's weights are on the GPU)")
    assert len(generated.tokens) == 20


def unsupported_model():
    """Embedding -> GRU(reset_after=False) -> Dense(softmax): a GRU variant the fused step does not compute."""
    backend.set_seed(0)
    model = Sequential([Embedding(DRUMS.vocab_size, 4), GRU(8, reset_after=False, return_sequences=True),
                        Dense(DRUMS.vocab_size, activation="softmax")])
    model.build((None, None))
    return model


def test_a_model_the_fused_step_does_not_compute_is_generated_by_the_twin_which_says_why():
    model = unsupported_model()
    recipe, encoding = get_recipe("drums"), get_recipe("drums").input_encoding(
        TrainConfig(recipe="drums", bar_position=False).resolved(), DRUMS.vocab_size)
    primer = primer_of([DRUMS.start_token, 1, 0, 4], bar_position=False)
    picker = TokenPicker(recipe, DRUMS, Sampling(), numpy.random.default_rng(0))
    generated = generate_carrying_state(model, encoding, primer, 10, picker)
    assert generated.method.startswith("state-carrying, stateful twin (no fused step: layer ")
    assert "reset_after=True" in generated.method
    with pytest.raises(StepUnavailable, match="reset_after=True"):
        generate_carrying_state(model, encoding, primer, 10, picker, step="fused")


def test_what_the_fused_step_refuses_is_named():
    backend.set_seed(0)
    no_softmax = Sequential([Embedding(10, 4), LSTM(6, return_sequences=True), Dense(10)])  # not trained on logits
    no_softmax.build((None, None))
    with pytest.raises(StepUnavailable, match="one softmax"):
        fused_step(no_softmax)
    no_recurrence = Sequential([Embedding(10, 4), Dense(10, activation="softmax")])
    no_recurrence.build((None, None))
    with pytest.raises(StepUnavailable, match="has none after its embedding"):
        fused_step(no_recurrence)
    backwards = Sequential([Embedding(10, 4), LSTM(6, go_backwards=True, return_sequences=True),
                            Dense(10, activation="softmax")])
    backwards.build((None, None))
    with pytest.raises(StepUnavailable, match="runs backwards"):
        fused_step(backwards)
    config = TrainConfig(recipe="seed", units=6, seq_len=12).resolved()
    seed_model = get_recipe("seed").build_model(config, 30)
    with pytest.raises(StepUnavailable, match="starts from a token embedding, not layer .* \\(LSTM\\)"):
        fused_step(seed_model)


def test_reference_step_with_window_rerun_is_one_line_naming_both():
    with pytest.raises(SettingError, match="--reference-step .* --window-rerun .*: give one of them"):
        generate_from_checkpoint("unused.npz", "unused.mid", reference_step=True, window_rerun=True)


def test_deeprnn_generate_runs_the_fused_step_and_reference_step_the_twin_with_the_same_music(groove, tmp_path,
                                                                                              capsys):
    out = tmp_path / "drums"
    assert main(["train", "--data", groove, "--max-files", "6", "--epochs", "1", "--units", "16", "--seq-len", "16",
                 "--batch-size", "8", "--quiet", "--out", str(out)]) == 0
    printed = {}
    for name, extra in (("fused", []), ("twin", ["--reference-step"])):
        capsys.readouterr()
        assert main(["generate", "--checkpoint", str(out / "best.npz"), "--num-steps", "200", "--seed", "7",
                     "--out", str(tmp_path / f"{name}.mid"), *extra]) == 0
        printed[name] = capsys.readouterr().out
    assert "(sampling, temperature 1, state-carrying, fused step (cpu_step))" in printed["fused"]
    assert "(sampling, temperature 1, state-carrying, stateful twin)" in printed["twin"]
    tokens_line = [next(line for line in text.splitlines() if line.startswith("tokens: ")) for text in printed.values()]
    assert tokens_line[0] == tokens_line[1]
    fused, twin = (read_events(tmp_path / f"{name}.mid") for name in ("fused", "twin"))
    assert fused.events and fused.events == twin.events
