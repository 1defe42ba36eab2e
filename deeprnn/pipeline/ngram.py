"""N-gram baselines, fitted on the training split's tokens and scored on exactly the model's target tokens.

- unigram with add-k smoothing (k = 1): P(c) = (n(c) + k) / (N + k V);
- trigram, Jelinek-Mercer interpolation of the trigram, bigram (maximum likelihood) and the add-k unigram, the
  weights set by deleted interpolation (Brants 2000, TnT): each training trigram votes, with its count, for the
  order whose estimate without that very occurrence is highest. Where a context was never seen, its order drops
  out and the others are renormalised, so every distribution sums to 1.
"""
from dataclasses import dataclass

import numpy

from .scoring import clipped_nll


def trigram_triples(sequence, positions, pad):
    """(h2, h1, target) arrays for the targets at ``positions`` of ``sequence``; history before 0 is ``pad``."""
    sequence = numpy.asarray(sequence, numpy.int64)
    positions = numpy.asarray(positions, numpy.int64)
    padded = numpy.concatenate([[pad, pad], sequence])
    return padded[positions], padded[positions + 1], sequence[positions]


@dataclass
class Triples:
    """Targets and their two-token histories, concatenated over pieces."""

    h2: numpy.ndarray
    h1: numpy.ndarray
    target: numpy.ndarray

    @classmethod
    def join(cls, parts):
        parts = list(parts)
        if not parts:
            empty = numpy.zeros(0, numpy.int64)
            return cls(empty, empty, empty)
        return cls(*(numpy.concatenate([p[k] for p in parts]) for k in range(3)))


class NGramModel:
    """Unigram (add-k) and interpolated trigram fitted on training triples; ``nll`` scores other triples."""

    def __init__(self, triples, vocab_size, k=1.0):
        self.V, self.k = int(vocab_size), float(k)
        self.base = self.V + 1  # ids 0..V-1 and the history pad V
        h2, h1, c = triples.h2, triples.h1, triples.target
        self.N = len(c)
        self.unigram = numpy.bincount(c, minlength=self.V).astype(numpy.float64)
        self.bigram = Counts(h1 * self.base + c)
        self.bigram_context = Counts(h1)
        self.trigram = Counts((h2 * self.base + h1) * self.base + c)
        self.trigram_context = Counts(h2 * self.base + h1)
        self.lambdas = self.deleted_interpolation()

    def deleted_interpolation(self):
        """(l1, l2, l3): each distinct training trigram adds its count to the order that predicts it best once
        that occurrence is removed from the counts."""
        keys, f3 = self.trigram.keys, self.trigram.counts
        c = keys % self.base
        h1 = (keys // self.base) % self.base
        h2 = keys // (self.base * self.base)
        f_ctx3 = self.trigram_context.lookup(h2 * self.base + h1)
        f2 = self.bigram.lookup(h1 * self.base + c)
        f_ctx2 = self.bigram_context.lookup(h1)
        f1 = self.unigram[c]
        with numpy.errstate(divide="ignore", invalid="ignore"):
            r3 = numpy.where(f_ctx3 > 1, (f3 - 1) / (f_ctx3 - 1), 0.0)
            r2 = numpy.where(f_ctx2 > 1, (f2 - 1) / (f_ctx2 - 1), 0.0)
            r1 = (f1 - 1) / max(self.N - 1, 1)
        winner = numpy.argmax(numpy.stack([r1, r2, r3]), axis=0)
        votes = numpy.bincount(winner, weights=f3, minlength=3)
        return tuple(votes / votes.sum())

    def unigram_prob(self, target):
        return (self.unigram[target] + self.k) / (self.N + self.k * self.V)

    def trigram_prob(self, h2, h1, target):
        l1, l2, l3 = self.lambdas
        ctx3 = self.trigram_context.lookup(h2 * self.base + h1)
        ctx2 = self.bigram_context.lookup(h1)
        with numpy.errstate(divide="ignore", invalid="ignore"):
            p3 = numpy.where(ctx3 > 0, self.trigram.lookup((h2 * self.base + h1) * self.base + target) / ctx3, 0.0)
            p2 = numpy.where(ctx2 > 0, self.bigram.lookup(h1 * self.base + target) / ctx2, 0.0)
        w3 = numpy.where(ctx3 > 0, l3, 0.0)
        w2 = numpy.where(ctx2 > 0, l2, 0.0)
        return (w3 * p3 + w2 * p2 + l1 * self.unigram_prob(target)) / (w3 + w2 + l1)

    def nll(self, triples):
        """(unigram, trigram) sums of -log p over the triples."""
        unigram = float(clipped_nll(self.unigram_prob(triples.target)).sum())
        trigram = float(clipped_nll(self.trigram_prob(triples.h2, triples.h1, triples.target)).sum())
        return unigram, trigram


class Counts:
    """Counts of integer keys, looked up by binary search (0 for an unseen key)."""

    def __init__(self, keys):
        self.keys, counts = numpy.unique(numpy.asarray(keys, numpy.int64), return_counts=True)
        self.counts = counts.astype(numpy.float64)

    def lookup(self, keys):
        keys = numpy.asarray(keys, numpy.int64)
        if not len(self.keys):
            return numpy.zeros(keys.shape)
        index = numpy.clip(numpy.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        return numpy.where(self.keys[index] == keys, self.counts[index], 0.0)
