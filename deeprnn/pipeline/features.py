"""What a recipe feeds its model: token windows turned into the model's input array.

Three encodings, one per way the recipes see a token window ``tokens: (B, T)`` int:

- ``TokenInput``: the ids themselves, for an ``Embedding`` (the drums recipe);
- ``TokenStepInput``: ids and each token's grid step stacked, ``(B, T, 2)``, for the bar-position layer
  ``deeprnn.layers.StepCounterEmbedding`` (the drums recipe with ``--bar-position``);
- ``ScaledIndexInput``: the tutorial's ``index / vocab`` as one float feature, ``(B, T, 1)`` (the seed recipe).
"""
import numpy

from .. import backend


def grid_steps(tokens, start_token):
    """Step index of every token of one piece that begins with START: -1 for START, 0 for the first grid step...

    Grid-step tokens are the ids below ``start_token`` (DrumGridTokenizer's layout); velocity tokens and END keep
    the step of the grid token before them. tokens: (T,) -> (T,) int32.
    """
    tokens = numpy.asarray(tokens)
    return (numpy.cumsum(tokens < start_token) - 1).astype(numpy.int32)


class TokenInput:
    """x = tokens: (B, T) int, for an Embedding."""

    name = "tokens"

    def encode(self, tokens, steps=None):
        return numpy.asarray(tokens)


class TokenStepInput:
    """x = [tokens, steps] stacked on a last axis: (B, T, 2) int, for StepCounterEmbedding."""

    name = "tokens+steps"

    def encode(self, tokens, steps=None):
        if steps is None:
            raise ValueError("the bar-position input needs the grid step of every token")
        return numpy.stack([numpy.asarray(tokens), numpy.asarray(steps)], axis=-1).astype(numpy.int64)


class ScaledIndexInput:
    """The tutorial's input: x = index / vocab as a float feature, (B, T, 1)."""

    name = "scaled-index"

    def __init__(self, vocab_size):
        self.vocab_size = int(vocab_size)

    def encode(self, tokens, steps=None):
        scaled = numpy.asarray(tokens, dtype="float64") / float(self.vocab_size)
        return scaled[..., None].astype(backend.floatx())


def input_encoding(name, vocab_size):
    """The encoding a checkpoint names (``TokenInput.name`` etc.)."""
    if name == TokenInput.name:
        return TokenInput()
    if name == TokenStepInput.name:
        return TokenStepInput()
    if name == ScaledIndexInput.name:
        return ScaledIndexInput(vocab_size)
    raise ValueError(f"unknown input encoding {name!r}")
