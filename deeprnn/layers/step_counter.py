"""StepCounterEmbedding: a token embedding with the bar position beside it.  x: (B, T, 2) [token, step] -> y.

Magenta's drums input (``drums_rnn``, ``binary_counter_bits``): next to the token's embedding it appends the binary
digits of the step counter as +-1 features, so the network knows where in the bar (bits 0-3 on a 16th grid) and
where in a 4-bar phrase (bits 4-5) it is without having to count.

    y[b, t] = [ E[token] | c(step) ],   c_k(s) = +1 if bit k of (s mod 2^bits) is set, else -1.

Backward: dE[k] = sum of dy[b, t, :E] where token == k (as Embedding, see docs/embedding.md); the counters have
no weights, and integer input gets no gradient.
"""
from .. import arguments, backend
from .base import Backward, Layer


class StepCounterEmbedding(Layer):
    """x: (B, T, 2) int [token, step] -> y: (B, T, output_dim + counter_bits). Weight: embeddings (V, E)."""

    def __init__(self, input_dim, output_dim, counter_bits=6, embeddings_initializer="uniform", name=None):
        super().__init__(name)
        self.input_dim = arguments.integer("StepCounterEmbedding: input_dim", input_dim, minimum=1)
        self.output_dim = arguments.integer("StepCounterEmbedding: output_dim", output_dim, minimum=1)
        # the counter is a shift of int64 steps: more than 62 bits would overflow
        self.counter_bits = arguments.integer("StepCounterEmbedding: counter_bits", counter_bits, minimum=0,
                                              maximum=62)
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
        if tokens.size:
            low, high = backend.value_range(tokens)   # one host read of both bounds (a sync on the GPU)
            if low < 0 or high >= self.input_dim:
                raise ValueError(f"layer {self.name!r} (StepCounterEmbedding): token ids must be in "
                                 f"[0, {self.input_dim}), received min {low}, max {high}")
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
        return Backward(None, [dE])

    def get_config(self):
        return {"name": self.name, "input_dim": self.input_dim, "output_dim": self.output_dim,
                "counter_bits": self.counter_bits}
