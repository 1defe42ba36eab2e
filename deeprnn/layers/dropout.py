"""Dropout: y = x * m / (1 - rate) in training, m ~ Bernoulli(1 - rate); identity at inference.

The mask already holds the 1/(1 - rate) scale, so the backward is one line: dx = dy * mask.
See docs/dropout.md.
"""
from .. import arguments, backend
from .base import Backward, Layer


class Dropout(Layer):
    def __init__(self, rate, name=None):
        super().__init__(name)
        self.rate = float(arguments.real("Dropout: rate", rate, minimum=0, below=1))

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            return x, None
        mask = backend.dropout_mask(x.shape, self.rate, x.dtype)
        return x * mask, mask

    def backward(self, dy, cache):
        mask = cache
        return Backward(dy if mask is None else dy * mask, [])

    def get_config(self):
        return {"name": self.name, "rate": self.rate}
