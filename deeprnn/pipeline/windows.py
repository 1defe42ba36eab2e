"""Training windows over a split, as views of one token array: never the corpus copied T times over.

A split's pieces are laid end to end in one array (``TokenStream``); ``numpy.lib.stride_tricks.
sliding_window_view`` turns it into every window of length T+1 without copying a byte (row i is
``tokens[i:i + T + 1]``, sharing memory with ``tokens``). A batch indexes B rows of that view, so the only copy is
the batch itself, (B, T+1).

- ``NextTokenWindows`` (drums): x = w[:, :T], y = w[:, 1:], the next token at every position (return_sequences).
  An epoch takes non-overlapping windows, stride T, from a random offset in [0, T): every token is a target once
  per epoch and the cut points move from epoch to epoch. Windows may cross a piece boundary; the END and START
  tokens between two pieces tell the model so.
- ``LastTokenWindows`` (seed): the tutorial's ``network_input[i] = notes[i:i + 100]``, ``network_output[i] =
  notes[i + 100]``, every start position (stride 1) each epoch, over the pieces joined as the tutorial joins them;
  y one-hot (the tutorial's ``to_categorical``), built per batch.

A conditioned run (``--condition``) gives each token its piece's label ids too (``TokenStream.labels``, (N, K)), a
view of which rides with every window: where a window crosses into the next piece, its labels switch with it.
"""
from dataclasses import dataclass

import numpy
from numpy.lib.stride_tricks import sliding_window_view

from .. import backend
from ..data import PyDataset
from ..errors import DataError


@dataclass
class TokenStream:
    """tokens (N,) int32: the pieces end to end; steps (N,) int32: each token's grid step in its piece (or None);
    piece_starts (P,): where each piece begins; labels (N, K) int32: each token's piece's label ids (or None)."""

    tokens: numpy.ndarray
    steps: numpy.ndarray | None
    piece_starts: numpy.ndarray
    labels: numpy.ndarray | None = None

    @classmethod
    def from_sequences(cls, sequences, steps_of=None, labels=None):
        """Join the pieces; ``steps_of(piece)`` gives the grid steps when the model's input needs them, ``labels``
        (P, K) the label ids of each piece when the model is conditioned."""
        sequences = [numpy.asarray(s, dtype=numpy.int32) for s in sequences]
        lengths = numpy.array([len(s) for s in sequences], dtype=numpy.int64)
        starts = numpy.concatenate([[0], numpy.cumsum(lengths)[:-1]]) if len(lengths) else numpy.zeros(0, int)
        tokens = numpy.concatenate(sequences) if sequences else numpy.zeros(0, numpy.int32)
        steps = numpy.concatenate([steps_of(s) for s in sequences]).astype(numpy.int32) if steps_of else None
        if labels is not None:
            labels = numpy.repeat(numpy.asarray(labels, dtype=numpy.int32), lengths, axis=0)
        return cls(tokens, steps, starts, labels)

    def __len__(self):
        return len(self.tokens)


class WindowsBase:
    def __init__(self, stream, seq_len, encoding):
        if len(stream) <= seq_len:
            raise DataError(f"the corpus has {len(stream)} tokens, not enough for one window of --seq-len "
                             f"{seq_len} plus its target; lower --seq-len or add files")
        self.stream, self.seq_len, self.encoding = stream, int(seq_len), encoding
        self.view = sliding_window_view(stream.tokens, self.seq_len + 1)  # (N - T, T + 1), a view
        self.step_view = None if stream.steps is None else sliding_window_view(stream.steps, self.seq_len + 1)
        # (N - T, K, T + 1), a view: the window axis comes last
        self.label_view = None if stream.labels is None else sliding_window_view(stream.labels, self.seq_len + 1,
                                                                                 axis=0)

    @property
    def num_windows(self):
        return self.view.shape[0]

    def rows(self, starts):
        """The windows starting at ``starts``: tokens (B, T+1), steps (B, T+1) or None, labels (B, T+1, K) or None
        (copies of B rows)."""
        steps = None if self.step_view is None else self.step_view[starts]
        labels = None if self.label_view is None else self.label_view[starts].transpose(0, 2, 1)
        return self.view[starts], steps, labels


class NextTokenWindows(WindowsBase):
    """x: encoding of w[:, :T]; y: w[:, 1:] (B, T) int, for sparse_categorical_crossentropy."""

    def epoch_starts(self, rng):
        offset = int(rng.integers(self.seq_len))
        return rng.permutation(numpy.arange(offset, self.num_windows, self.seq_len))

    def evaluation_starts(self, stride=None):
        return numpy.arange(0, self.num_windows, stride or self.seq_len)

    @property
    def per_epoch(self):
        return -(-self.num_windows // self.seq_len)

    def batch(self, starts):
        tokens, steps, labels = self.rows(starts)
        x = self.encoding.encode(tokens[:, :-1], None if steps is None else steps[:, :-1],
                                 None if labels is None else labels[:, :-1])
        return x, tokens[:, 1:]


class LastTokenWindows(WindowsBase):
    """x: encoding of w[:, :T]; y: one-hot of w[:, T], (B, V), for categorical_crossentropy."""

    def __init__(self, stream, seq_len, encoding, vocab_size):
        super().__init__(stream, seq_len, encoding)
        self.vocab_size = int(vocab_size)

    def epoch_starts(self, rng):
        return rng.permutation(self.num_windows)

    def evaluation_starts(self, stride=1):
        return numpy.arange(0, self.num_windows, stride)

    @property
    def per_epoch(self):
        return self.num_windows

    def batch(self, starts):
        tokens, _, _ = self.rows(starts)
        targets = tokens[:, -1]
        y = numpy.zeros((len(targets), self.vocab_size), dtype=numpy.float32)
        y[numpy.arange(len(targets)), targets] = 1
        return self.encoding.encode(tokens[:, :-1]), y


class TrainingWindows(PyDataset):
    """The data source ``fit`` trains on (Keras's ``PyDataset``): batches of ``windows``' epoch in a fresh order.

    ``on_epoch_begin`` draws the epoch's window starts from the shuffle stream (``windows.epoch_starts``), so a
    resumed run, whose RNG state was restored, draws what an uninterrupted one would; ``self[i]`` is batch i.
    """

    def __init__(self, windows, batch_size):
        self.windows, self.batch_size = windows, int(batch_size)
        self.starts = None  # drawn per epoch, not here: building the source leaves the random streams alone

    def on_epoch_begin(self):
        self.starts = self.windows.epoch_starts(backend.shuffle_rng())

    def __len__(self):
        count = self.windows.per_epoch if self.starts is None else len(self.starts)
        return -(-count // self.batch_size)

    def __getitem__(self, index):
        return self.windows.batch(self.starts[index * self.batch_size:(index + 1) * self.batch_size])
