"""The model's negative log-likelihood of a split's tokens: whole pieces (drums) or the tutorial's windows (seed).

- ``piece_nll``: every token after each piece's START, with its full context from that START. One piece per row
  of a batch (pieces sorted by length, so a batch's rows are alike and little is padded), the batch run through
  a stateful twin of the model a chunk at a time; ``reset_states()`` before each batch. Positions after a piece's
  end are padding and never scored.
- ``window_nll``: the target of each given window, the model run from zero state on that window.

A conditioned model (``--condition``) is told each piece's label ids: ``labels`` (P, K), a row per piece, held
over every token of the piece.

Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras's cross-entropy does, so the NLL here and the training loss
are the same function.
"""
import math
from dataclasses import dataclass

import numpy

from .. import backend
from ..errors import DataError
from ..losses import EPSILON
from .stepping import serving_model, stateful_twin


def clipped_nll(p):
    return -numpy.log(numpy.clip(p.astype(numpy.float64), EPSILON, 1 - EPSILON))


def pad_pieces(sequences):
    """Pieces as rows: tokens (P, L) int32 (0 after a piece's end) and lengths (P,). L = the longest piece."""
    lengths = numpy.array([len(s) for s in sequences], numpy.int64)
    tokens = numpy.zeros((len(sequences), int(lengths.max(initial=0))), numpy.int32)
    for row, sequence in enumerate(sequences):
        tokens[row, :len(sequence)] = sequence
    return tokens, lengths


def piece_nll(model, sequences, encoding, steps_of=None, rows=32, chunk=256, labels=None):
    """Sum of -log p(token | all earlier tokens of its piece) over every token but each piece's first, and the
    number of tokens scored. sequences: list of (T_i,) int arrays; ``rows`` pieces per batch, ``chunk`` steps per
    call; labels: (P, K) label ids of each piece for a conditioned model, else None."""
    total, count = 0.0, 0
    for scored in piece_distributions(model, sequences, encoding, steps_of, rows, chunk, labels):
        picked = numpy.take_along_axis(scored.probs, scored.targets[..., None].astype(numpy.int64), axis=-1)[..., 0]
        total += float(clipped_nll(picked[scored.valid]).sum())
        count += int(scored.valid.sum())
    return total, count


@dataclass
class ScoredChunk:
    """One call's worth of ``piece_distributions``: row r is piece ``pieces[r]``; column j is its token at
    ``positions[j]``, predicted by ``probs[r, j]`` (V,) from every token before it; ``valid``: inside the piece."""

    pieces: list
    positions: numpy.ndarray  # (W,)
    targets: numpy.ndarray  # (R, W)
    valid: numpy.ndarray  # (R, W) bool
    probs: numpy.ndarray  # (R, W, V)


def piece_distributions(model, sequences, encoding, steps_of=None, rows=32, chunk=256, labels=None):
    """The model's distribution over every token but each piece's first, given all earlier tokens of its piece
    (and, for a conditioned model, its label ids ``labels[p]``): yields ScoredChunks (what ``piece_nll`` sums, and
    what per-token statistics read)."""
    twin = stateful_twin(model)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for begin in range(0, len(order), rows):
        pieces = [numpy.asarray(sequences[i]) for i in order[begin:begin + rows]]
        tokens, lengths = pad_pieces(pieces)
        steps = None
        if steps_of is not None:
            steps = numpy.zeros_like(tokens)
            for row, piece in enumerate(pieces):
                steps[row, :len(piece)] = steps_of(piece)
        row_labels = None if labels is None else numpy.asarray(labels)[order[begin:begin + rows]]
        twin.reset_states()  # each row is one new piece
        width = tokens.shape[1] - 1  # the last position has no target
        for start in range(0, width, chunk):
            end = min(start + chunk, width)
            x = encoding.encode(tokens[:, start:end], None if steps is None else steps[:, start:end], row_labels)
            probs = backend.to_numpy(twin(x))
            positions = numpy.arange(start + 1, end + 1)
            valid = positions[None, :] < lengths[:, None]  # the target is in the piece
            yield ScoredChunk(order[begin:begin + rows], positions, tokens[:, start + 1:end + 1], valid, probs)


def window_nll(model, windows, starts, batch_size=256):
    """Sum of -log p(target) over the windows at ``starts`` (every position for NextTokenWindows, the last for
    LastTokenWindows), inference mode; and the number of targets."""
    served = serving_model(model)
    total, count = 0.0, 0
    for begin in range(0, len(starts), batch_size):
        x, y = windows.batch(starts[begin:begin + batch_size])
        probs = served.predict(x, batch_size=len(x))
        if y.ndim == probs.ndim:  # one-hot targets
            picked = (probs * y).sum(axis=-1)
        else:
            picked = numpy.take_along_axis(probs, y[..., None].astype(numpy.int64), axis=-1)[..., 0]
        total += float(clipped_nll(picked).sum())
        count += int(picked.size)
    return total, count


@dataclass
class Score:
    """A mean NLL per token (nats) over ``tokens`` targets; perplexity = exp(nll)."""

    nll: float
    tokens: int

    @property
    def perplexity(self):
        return math.exp(self.nll)

    @classmethod
    def from_sum(cls, total, count):
        if count == 0:
            raise DataError("nothing to score: the split has no target tokens")
        return cls(total / count, count)
