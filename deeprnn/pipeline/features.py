"""What a recipe feeds its model: token windows turned into the model's input array.

Three encodings, one per way the recipes see a token window ``tokens: (B, T)`` int:

- ``TokenInput``: the ids themselves, for an ``Embedding`` (the drums recipe);
- ``TokenStepInput``: ids and each token's grid step stacked, ``(B, T, 2)``, for the bar-position layer
  ``deeprnn.layers.StepCounterEmbedding`` (the drums recipe with ``--bar-position``);
- ``ScaledIndexInput``: the tutorial's ``index / vocab`` as one float feature, ``(B, T, 1)`` (the seed recipe).

and ``ConditionedInput``, which puts a piece's label ids (style, tempo bin, fill: ``deeprnn.music.labels``) after
either integer encoding's columns, for ``deeprnn.layers.ConditionedEmbedding`` (``--condition``). The encodings
without label columns take ``labels`` and leave them out: an unconditioned model is told nothing.
"""
import numpy

from .. import backend
from ..errors import SettingError
from ..music.labels import UNKNOWN, LabelVocabulary, labels_of, read_labels, tempo_bin


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

    def encode(self, tokens, steps=None, labels=None):
        return numpy.asarray(tokens)


class TokenStepInput:
    """x = [tokens, steps] stacked on a last axis: (B, T, 2) int, for StepCounterEmbedding."""

    name = "tokens+steps"

    def encode(self, tokens, steps=None, labels=None):
        if steps is None:
            raise ValueError("the bar-position input needs the grid step of every token")
        return numpy.stack([numpy.asarray(tokens), numpy.asarray(steps)], axis=-1).astype(numpy.int64)


class ScaledIndexInput:
    """The tutorial's input: x = index / vocab as a float feature, (B, T, 1)."""

    name = "scaled-index"

    def __init__(self, vocab_size):
        self.vocab_size = int(vocab_size)

    def encode(self, tokens, steps=None, labels=None):
        scaled = numpy.asarray(tokens, dtype="float64") / float(self.vocab_size)
        return scaled[..., None].astype(backend.floatx())


class ConditionedInput:
    """x = [the inner encoding's columns, label ids]: (B, T, 1 + S + K) int, for ConditionedEmbedding.

    labels: (B, K), one row of ids per piece (held over its tokens), or (B, T, K), a row per token (a training
    window that crosses into the next piece switches labels where the piece does).
    """

    SUFFIX = "+labels"

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name + self.SUFFIX

    def encode(self, tokens, steps=None, labels=None):
        if labels is None:
            raise ValueError("a conditioned model's input needs the label ids of every piece")
        columns = numpy.asarray(self.inner.encode(tokens, steps)).astype(numpy.int64)
        if columns.ndim == 2:
            columns = columns[..., None]
        labels = numpy.asarray(labels, dtype=numpy.int64)
        if labels.ndim == 2:
            labels = numpy.broadcast_to(labels[:, None, :], columns.shape[:2] + labels.shape[-1:])
        return numpy.concatenate([columns, labels], axis=-1)


def fit_labels(conditions, train_paths, source):
    """The LabelVocabulary of ``conditions`` (names) from the training files of ``source``."""
    return LabelVocabulary.fit(conditions, labels_of(train_paths, read_labels(source)))


def label_ids(vocabulary, paths, source):
    """(P, K) int32: the label ids of each file of a split, ``unknown`` where ``source`` says nothing of it."""
    table = read_labels(source)
    ids = [vocabulary.ids(labels) for labels in labels_of(paths, table)]
    return numpy.array(ids, dtype=numpy.int32).reshape(len(ids), len(vocabulary.names))


def requested_labels(vocabulary, style=None, bpm=None, fill=None, base=None):
    """(K,) the label ids generation tells a conditioned model: each condition asked for (``--style``, the tempo
    bin of ``--bpm``, ``--fill``: True fill, False beat), else ``base``'s (the primer piece's ids), else unknown.

    Asking for a label the model was not trained with is a SettingError naming the flag and what it knows.
    """
    if vocabulary is None:
        if style is not None or fill:
            flag = "--style" if style is not None else "--fill"
            raise SettingError(f"{flag}: this checkpoint was trained without --condition; it knows no labels")
        return None
    names = vocabulary.names
    ids = list(base) if base is not None else [vocabulary.id_of(name, UNKNOWN) for name in names]
    asked = {"style": (style, "--style"), "tempo": (None if bpm is None else tempo_bin(bpm), "--bpm"),
             "fill": (None if fill is None else ("fill" if fill else "beat"), "--fill")}
    for name, (label, flag) in asked.items():
        if name in names and label is not None:
            ids[names.index(name)] = vocabulary.id_of(name, label, flag)
        elif label is not None and name != "tempo" and (name != "fill" or fill):
            vocabulary.id_of(name, label, flag)  # not a condition of this model: the error says so
    return numpy.array(ids, dtype=numpy.int64)


def describe_labels(vocabulary, ids):
    """Label ids in words: 'style funk, tempo 80-100, fill beat'."""
    return ", ".join(f"{name} {vocabulary.vocabularies[name][int(i)]}" for name, i in zip(vocabulary.names, ids))


def input_encoding(name, vocab_size):
    """The encoding a checkpoint names (``TokenInput.name`` etc.)."""
    if name.endswith(ConditionedInput.SUFFIX):
        return ConditionedInput(input_encoding(name[:-len(ConditionedInput.SUFFIX)], vocab_size))
    if name == TokenInput.name:
        return TokenInput()
    if name == TokenStepInput.name:
        return TokenStepInput()
    if name == ScaledIndexInput.name:
        return ScaledIndexInput(vocab_size)
    raise ValueError(f"unknown input encoding {name!r}")
