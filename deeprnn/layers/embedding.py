"""Embedding: integer tokens -> rows of a table.  y[b, t] = E[x[b, t]].

Backward: dE[k] = sum of dy[b, t] over the positions where x[b, t] == k (a scatter-add); no gradient to x.
See docs/embedding.md.
"""
from .. import arguments, backend
from .base import Backward, Layer


class Embedding(Layer):
    """x: (B, T) integers in [0, input_dim) -> y: (B, T, output_dim). Weight: embeddings (input_dim, output_dim)."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", name=None):
        super().__init__(name)
        self.input_dim = arguments.integer("Embedding: input_dim", input_dim, minimum=1)
        self.output_dim = arguments.integer("Embedding: output_dim", output_dim, minimum=1)
        self.embeddings_initializer = embeddings_initializer

    def build(self, input_shape):
        self.E = self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def forward(self, x, training=False):
        xp = backend.array_module(x)
        if x.dtype.kind not in "iu":
            if x.dtype.kind == "f" and bool(xp.all(x == xp.floor(x))):
                x = x.astype("int64")
            else:
                raise ValueError(f"layer {self.name!r} (Embedding): expected integer token ids, received dtype {x.dtype}")
        if x.size:
            low, high = backend.value_range(x)   # one host read of both bounds (a sync on the GPU)
            if low < 0 or high >= self.input_dim:
                raise ValueError(f"layer {self.name!r} (Embedding): token ids must be in [0, {self.input_dim}), "
                                 f"received min {low}, max {high}")
        return self.E.value[x], x

    def backward(self, dy, cache):
        x = cache
        xp = backend.array_module(dy)
        dE = xp.zeros_like(self.E.value)
        backend.scatter_add(dE, x.reshape(-1), dy.reshape(-1, self.output_dim))
        return Backward(None, [dE])

    def get_config(self):
        return {"name": self.name, "input_dim": self.input_dim, "output_dim": self.output_dim}
