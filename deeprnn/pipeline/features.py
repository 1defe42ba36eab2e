"""What a recipe feeds its model: token windows turned into the model's input array, and the bar-position layer.

Three encodings, one per way the recipes see a token window ``tokens: (B, T)`` int:

- ``TokenInput``: the ids themselves, for an ``Embedding`` (the drums recipe);
- ``TokenStepInput``: ids and each token's grid step stacked, ``(B, T, 2)``, for ``StepCounterEmbedding``
  (the drums recipe with ``--bar-position``);
- ``ScaledIndexInput``: the tutorial's ``index / vocab`` as one float feature, ``(B, T, 1)`` (the seed recipe).

``StepCounterEmbedding`` is Magenta's drums input (``drums_rnn``, ``binary_counter_bits``): next to the token's
embedding it appends the binary digits of the step counter as +-1 features, so the network knows where in the bar
(bits 0-3 on a 16th grid) and where in a 4-bar phrase (bits 4-5) it is without having to count.
"""
import numpy

from .. import backend, saving
from ..layers.base import Layer


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


class StepCounterEmbedding(Layer):
    """Token embedding plus binary step counters.  x: (B, T, 2) int [token, step] -> y: (B, T, E + bits).

    y[b, t] = [ E[token] | c(step) ],   c_k(s) = +1 if bit k of (s mod 2^bits) is set, else -1.
    Backward: dE[k] = sum of dy[b, t, :E] where token == k (as Embedding); the counters have no weights.
    """

    def __init__(self, input_dim, output_dim, counter_bits=6, embeddings_initializer="uniform", name=None):
        super().__init__(name)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.counter_bits = int(counter_bits)
        self.embeddings_initializer = embeddings_initializer

    def build(self, input_shape):
        self.E = self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim + self.counter_bits,)

    def forward(self, x, training=False):
        xp = backend.array_module(x)
        if x.ndim != 3 or x.shape[-1] != 2 or x.dtype.kind not in "iu":
            raise ValueError(f"layer {self.name!r} (StepCounterEmbedding): expected integer input of shape "
                             f"(batch, T, 2) = [token, step], received {tuple(x.shape)} {x.dtype}")
        tokens, steps = x[..., 0], x[..., 1]
        if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= self.input_dim):
            raise ValueError(f"layer {self.name!r} (StepCounterEmbedding): token ids must be in "
                             f"[0, {self.input_dim}), received min {int(tokens.min())}, max {int(tokens.max())}")
        # mod 2^bits first, so START's step -1 reads as the last step of a cycle (all bits set)
        cycle = steps % (1 << self.counter_bits)
        bits = (cycle[..., None] >> xp.arange(self.counter_bits)) & 1
        counters = (2 * bits - 1).astype(self.E.value.dtype)
        return xp.concatenate([self.E.value[tokens], counters], axis=-1), tokens

    def backward(self, dy, cache):
        tokens = cache
        xp = backend.array_module(dy)
        dE = xp.zeros_like(self.E.value)
        backend.scatter_add(dE, tokens.reshape(-1), dy[..., :self.output_dim].reshape(-1, self.output_dim))
        return None, [dE]

    def get_config(self):
        return {"name": self.name, "input_dim": self.input_dim, "output_dim": self.output_dim,
                "counter_bits": self.counter_bits}


# saving.load_model rebuilds layers by class name from this table; a checkpoint with the bar-position input must
# find this layer there. (A public saving.register_layer_class would be the cleaner hook.)
saving.register_layer_class(StepCounterEmbedding)
