"""How good a model is: mean negative log-likelihood per token (nats) and perplexity, next to n-gram baselines
computed on exactly the same target tokens; and statistics of generated sequences.

Which tokens are scored:
- drums: every token after START of every piece of the split (grid steps and END), each with its full context
  from the piece's START: pieces are packed into rows and run with ``StackRunner``, the state zeroed where a new
  piece begins. This is the likelihood of the piece, not of a 64-step window.
- seed: the tutorial's task, token i + T predicted from the T tokens before it, for every window of the split's
  pieces joined end to end (``stride`` > 1 scores every stride-th window).

Baselines (``NGramModel``, fitted on the training split's tokens):
- unigram with add-k smoothing (k = 1): P(c) = (n(c) + k) / (N + k V);
- trigram, Jelinek-Mercer interpolation of the trigram, bigram (maximum likelihood) and the add-k unigram, the
  weights set by deleted interpolation (Brants 2000, TnT): each training trigram votes, with its count, for the
  order whose estimate without that very occurrence is highest. Where a context was never seen, its order drops
  out and the others are renormalised, so every distribution sums to 1.

Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras's cross-entropy does, so the NLL here and the training
loss are the same function.
"""
import math
from dataclasses import dataclass

import numpy

from .. import backend
from ..losses import EPSILON
from .stepping import StackRunner


# --- the model's NLL ------------------------------------------------------------------------------------------------
def pack_pieces(sequences, rows):
    """Lay pieces end to end in ``rows`` rows of nearly equal length (longest piece first into the shortest row).

    Returns tokens (R, L+1) int32 (0 as padding), piece (R, L+1) int (-1 as padding; a piece's index otherwise),
    starts (R, L+1) bool (True at each piece's first token). The extra column holds no token: it is the target
    position after the last input.
    """
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    rows = max(1, min(rows, len(sequences)))
    contents, lengths = [[] for _ in range(rows)], [0] * rows
    for index in order:
        row = min(range(rows), key=lengths.__getitem__)
        contents[row].append(index)
        lengths[row] += len(sequences[index])
    width = max(lengths) + 1
    tokens = numpy.zeros((rows, width), numpy.int32)
    piece = numpy.full((rows, width), -1, numpy.int64)
    starts = numpy.zeros((rows, width), bool)
    for row, indices in enumerate(contents):
        position = 0
        for index in indices:
            sequence = sequences[index]
            tokens[row, position:position + len(sequence)] = sequence
            piece[row, position:position + len(sequence)] = index
            starts[row, position] = True
            position += len(sequence)
    return tokens, piece, starts


def clipped_nll(p):
    return -numpy.log(numpy.clip(p.astype(numpy.float64), EPSILON, 1 - EPSILON))


def piece_nll(model, sequences, encoding, steps_of=None, rows=32, chunk=256):
    """Sum of -log p(token | all earlier tokens of its piece) over every token but each piece's first, and the
    number of tokens scored. sequences: list of (T_i,) int arrays."""
    tokens, piece, starts = pack_pieces(sequences, rows)
    steps = None
    if steps_of is not None:
        steps = numpy.zeros_like(tokens)
        for row in range(tokens.shape[0]):
            for index in numpy.unique(piece[row][piece[row] >= 0]):
                where = piece[row] == index
                steps[row, where] = steps_of(tokens[row, where])
    runner = StackRunner(model)
    states = runner.zero_states(tokens.shape[0])
    total, count = 0.0, 0
    width = tokens.shape[1] - 1
    for begin in range(0, width, chunk):
        end = min(begin + chunk, width)
        x = encoding.encode(tokens[:, begin:end], None if steps is None else steps[:, begin:end])
        probs, states = runner.run(x, states, resets=starts[:, begin:end])
        probs = backend.to_numpy(probs)
        targets = tokens[:, begin + 1:end + 1]
        valid = (piece[:, begin:end] >= 0) & (piece[:, begin:end] == piece[:, begin + 1:end + 1])
        picked = numpy.take_along_axis(probs, targets[..., None].astype(numpy.int64), axis=-1)[..., 0]
        total += float(clipped_nll(picked[valid]).sum())
        count += int(valid.sum())
    return total, count


def window_nll(model, windows, starts, batch_size=256):
    """Sum of -log p(target) over the windows at ``starts`` (every position for NextTokenWindows, the last for
    LastTokenWindows), inference mode; and the number of targets."""
    total, count = 0.0, 0
    for begin in range(0, len(starts), batch_size):
        x, y = windows.batch(starts[begin:begin + batch_size])
        probs = backend.to_numpy(model.forward(model.prepare_input(x), training=False)[0])
        if y.ndim == probs.ndim:  # one-hot targets
            picked = (probs * y).sum(axis=-1)
        else:
            picked = numpy.take_along_axis(probs, y[..., None].astype(numpy.int64), axis=-1)[..., 0]
        total += float(clipped_nll(picked).sum())
        count += int(picked.size)
    return total, count


# --- n-gram baselines -----------------------------------------------------------------------------------------------
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


# --- reports ----------------------------------------------------------------------------------------------------------
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
            raise ValueError("nothing to score: the split has no target tokens")
        return cls(total / count, count)


def format_report(split, scores, lambdas=None):
    """A small table: one line per model, NLL and perplexity."""
    lines = [f"{split}: {next(iter(scores.values())).tokens:,} target tokens",
             f"  {'model':<34} {'NLL (nats/token)':>16} {'perplexity':>11}"]
    for name, score in scores.items():
        lines.append(f"  {name:<34} {score.nll:>16.4f} {score.perplexity:>11.2f}")
    if lambdas is not None:
        lines.append("  trigram weights (unigram, bigram, trigram) by deleted interpolation: "
                     + ", ".join(f"{w:.3f}" for w in lambdas))
    return "\n".join(lines)


# --- generated sequences ----------------------------------------------------------------------------------------------
def token_statistics(tokens, max_period=64):
    """How varied a generated sequence is: the tutorial's greedy output tends to collapse to one repeated note.

    Returns a dict: ``length``; ``distinct`` tokens; ``top_share``, the share of the most frequent token;
    ``longest_run``, the longest stretch of one token repeated; ``longest_loop`` and ``loop_period``, the longest
    stretch that repeats itself with one period p <= max_period (tokens[t] == tokens[t - p] throughout, for at
    least two periods; the stretch counts its first period too), i.e. a pattern looped (0 period: none);
    ``entropy`` of the token histogram in nats.
    """
    tokens = numpy.asarray(tokens, numpy.int64)
    n = len(tokens)
    if n == 0:
        return {"length": 0, "distinct": 0, "top_share": 0.0, "longest_run": 0, "longest_loop": 0,
                "loop_period": 0, "entropy": 0.0}
    _, counts = numpy.unique(tokens, return_counts=True)
    shares = counts / n
    best_loop, best_period = 1, 0
    for period in range(1, min(max_period, n - 1) + 1):
        run = longest_true_run(tokens[period:] == tokens[:-period])
        # at least two full periods, so a chance match of two tokens p apart is not a loop
        if run >= period and run + period > best_loop:
            best_loop, best_period = run + period, period
    return {"length": int(n), "distinct": int(len(counts)), "top_share": float(shares.max()),
            "longest_run": longest_true_run(tokens[1:] == tokens[:-1]) + 1,
            "longest_loop": int(best_loop), "loop_period": int(best_period),
            "entropy": float(abs((shares * numpy.log(shares)).sum()))}


def longest_true_run(flags):
    """Length of the longest stretch of consecutive True values."""
    best = current = 0
    for flag in numpy.asarray(flags, bool).tolist():
        current = current + 1 if flag else 0
        best = max(best, current)
    return best


def format_statistics(stats):
    return (f"{stats['length']} tokens, {stats['distinct']} distinct, most frequent {stats['top_share']:.0%}, "
            f"longest run of one token {stats['longest_run']}, longest loop {stats['longest_loop']} tokens "
            f"(period {stats['loop_period']}), entropy {stats['entropy']:.2f} nats")


# --- the whole job --------------------------------------------------------------------------------------------------
@dataclass
class EvaluationReport:
    split: str
    scores: dict  # name -> Score
    lambdas: tuple

    def to_dict(self):
        return {"split": self.split, "trigram_lambdas": list(self.lambdas),
                **{name: {"nll": score.nll, "perplexity": score.perplexity, "tokens": score.tokens}
                   for name, score in self.scores.items()}}


def evaluate_checkpoint(checkpoint_path, split="validation", data=None, stride=1, log=print):
    """Mean NLL per token and perplexity of a checkpoint on a split, with unigram and trigram baselines fitted on
    the training split and scored on the same target tokens."""
    # imported here: checkpoints -> recipes -> this module
    from .checkpoints import load_checkpoint
    from .datasets import load_data, resolve_source, split_files

    checkpoint = load_checkpoint(checkpoint_path)
    recipe, tokenizer, config = checkpoint.recipe, checkpoint.tokenizer, checkpoint.config
    source = resolve_source(data if data is not None else checkpoint.source)
    music = load_data(tokenizer, split_files(source, config.max_files, config.seed))
    sequences = music.split(split).sequences
    model_score = Score.from_sum(*recipe.score(checkpoint.model, sequences, config, tokenizer, stride=stride))
    ngram = NGramModel(recipe.training_triples(music.split("train").sequences, config, tokenizer),
                       tokenizer.vocab_size)
    triples = recipe.scored_triples(sequences, config, tokenizer, stride=stride)
    if len(triples.target) != model_score.tokens:
        raise AssertionError(f"baselines score {len(triples.target)} tokens, the model {model_score.tokens}")
    unigram, trigram = ngram.nll(triples)
    name = f"{config.recipe} {config.layers}x{config.cell.upper()}({config.units})"
    epoch = checkpoint.training.get("epoch")
    scores = {name + (f" epoch {epoch}" if epoch else ""): model_score,
              "unigram (add-1)": Score.from_sum(unigram, len(triples.target)),
              "trigram (interpolated)": Score.from_sum(trigram, len(triples.target))}
    report = EvaluationReport(split, scores, ngram.lambdas)
    log(format_report(split, scores, ngram.lambdas))
    return report
