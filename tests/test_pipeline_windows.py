"""Training windows are views of one token array: the corpus is never copied once per window."""
import numpy
import pytest

from deeprnn.pipeline.features import ScaledIndexInput, TokenInput, TokenStepInput, grid_steps
from deeprnn.pipeline.windows import LastTokenWindows, NextTokenWindows, TokenStream, TrainingWindows

START, END = 512, 513


def pieces():
    """Two drum pieces as DrumGridTokenizer writes them: START, one bitmask per 16th step, END."""
    return [numpy.array([START, 1, 0, 4, 0, 3, 0, 4, 0, END]), numpy.array([START, 2, 2, 0, 1, END])]


def test_stream_joins_pieces_and_numbers_their_grid_steps():
    stream = TokenStream.from_sequences(pieces(), lambda s: grid_steps(s, START))
    assert stream.tokens.tolist() == pieces()[0].tolist() + pieces()[1].tolist()
    assert stream.piece_starts.tolist() == [0, 10]
    # START is step -1, then one step per grid token; END does not advance the grid
    assert stream.steps.tolist() == [-1, 0, 1, 2, 3, 4, 5, 6, 7, 7] + [-1, 0, 1, 2, 3, 3]


def test_every_window_is_a_view_of_the_stream_not_a_copy():
    stream = TokenStream.from_sequences(pieces(), lambda s: grid_steps(s, START))
    windows = NextTokenWindows(stream, seq_len=4, encoding=TokenInput())
    assert windows.view.shape == (len(stream) - 4, 5)
    assert numpy.shares_memory(windows.view, stream.tokens)
    assert numpy.shares_memory(windows.step_view, stream.steps)
    # writing through the stream shows up in the window: same bytes
    stream.tokens[3] = 77
    assert windows.view[1, 2] == 77


def test_a_large_corpus_costs_no_memory_per_window():
    tokens = numpy.arange(1_000_000, dtype=numpy.int32) % 512
    stream = TokenStream(tokens, None, numpy.array([0]))
    windows = LastTokenWindows(stream, seq_len=100, encoding=ScaledIndexInput(514), vocab_size=514)
    # 999,900 windows of 101 tokens would be ~400 MB materialized; the view owns no data
    assert windows.view.base is not None and not windows.view.flags.owndata
    assert numpy.shares_memory(windows.view, tokens)
    x, y = windows.batch(numpy.array([0, 5]))
    assert x.shape == (2, 100, 1) and y.shape == (2, 514)


def test_next_token_windows_predict_every_position():
    stream = TokenStream.from_sequences(pieces(), lambda s: grid_steps(s, START))
    windows = NextTokenWindows(stream, seq_len=4, encoding=TokenStepInput())
    x, y = windows.batch(numpy.array([1]))
    assert x[0, :, 0].tolist() == [1, 0, 4, 0] and x[0, :, 1].tolist() == [0, 1, 2, 3]
    assert y[0].tolist() == [0, 4, 0, 3]  # each input's next token


def test_an_epoch_makes_every_token_a_target_once_from_a_random_offset():
    tokens = numpy.arange(103, dtype=numpy.int32)
    windows = NextTokenWindows(TokenStream(tokens, None, numpy.array([0])), seq_len=10, encoding=TokenInput())
    rng = numpy.random.default_rng(0)
    for _ in range(3):
        starts = windows.epoch_starts(rng)
        _, y = windows.batch(numpy.sort(starts))
        targets = numpy.sort(y.reshape(-1))
        assert len(numpy.unique(targets)) == len(targets)  # no token twice
        assert len(targets) >= len(tokens) - 2 * 10  # all but at most the two cut ends


def test_last_token_windows_are_the_tutorials_pairs():
    notes = numpy.array([5, 6, 7, 8, 9, 10], dtype=numpy.int32)
    windows = LastTokenWindows(TokenStream(notes, None, numpy.array([0])), seq_len=3,
                               encoding=ScaledIndexInput(20), vocab_size=20)
    x, y = windows.batch(windows.evaluation_starts())
    # network_input[i] = notes[i:i+3] / n_vocab, network_output[i] = one-hot(notes[i+3])
    assert numpy.allclose(x[..., 0] * 20, [[5, 6, 7], [6, 7, 8], [7, 8, 9]])
    assert y.argmax(axis=1).tolist() == [8, 9, 10] and y.sum() == 3


def test_too_short_a_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="seq-len"):
        NextTokenWindows(TokenStream(numpy.arange(5), None, numpy.array([0])), seq_len=8, encoding=TokenInput())


def test_the_training_source_is_a_pydataset_of_the_epochs_windows_with_the_partial_last_batch():
    """Keras's PyDataset: len() batches, source[i] -> (x, y), the last batch partial; a new order every epoch."""
    from deeprnn import backend
    backend.set_seed(0)
    windows = LastTokenWindows(TokenStream(numpy.arange(12, dtype=numpy.int32), None, numpy.array([0])), seq_len=2,
                               encoding=ScaledIndexInput(20), vocab_size=20)
    source = TrainingWindows(windows, batch_size=4)
    source.on_epoch_begin()
    assert len(source) == 3  # 10 windows: batches of 4, 4 and 2
    targets = [source[i][1].argmax(axis=1).tolist() for i in range(3)]
    assert [len(t) for t in targets] == [4, 4, 2]
    assert sorted(sum(targets, [])) == list(range(2, 12))  # every window once
    source.on_epoch_begin()
    assert [source[i][1].argmax(axis=1).tolist() for i in range(3)] != targets
