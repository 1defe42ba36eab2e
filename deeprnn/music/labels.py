"""The labels a conditioned model is told: a piece's style, its tempo bin, and beat or fill (Groove's info.csv).

- **style**: the first word of info.csv's style (``funk/groove1`` -> ``funk``). A style with fewer than
  ``MIN_STYLE_SHARE`` = 2% of the training files shares the label ``other``: on the official training split (897
  files, so at least 18) that keeps the ten styles with a few dozen files or more (rock 275, funk 122, hiphop 80,
  jazz 79, latin 73, afrocuban 53, punk 45, neworleans 44, soul 36, country 21) and pools the eight with 17 or
  fewer (pop 17 ... highlife 1), too few for an embedding of their own to learn from. A share rather than a count,
  so that a run on a few files (``--max-files``) still knows its styles.
- **tempo**: a bin of info.csv's bpm, edges ``TEMPO_EDGES`` = 80, 100, 120, 140: five bins of about 20 bpm around
  the training median 110 (a quarter of the files lie under 94, a quarter over 124).
- **fill**: ``beat`` or ``fill`` (info.csv's beat_type).

A file without labels (a plain MIDI folder, or a file info.csv does not list) has the label ``unknown`` in every
vocabulary. ``LabelVocabulary`` turns labels into the integer ids a ``ConditionedEmbedding`` reads, and is saved
in the checkpoint (``to_json``), so generation asks for ``--style funk`` by name.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from deeprnn.errors import SettingError
from deeprnn.music import groove

CONDITIONS = ("style", "tempo", "fill")
UNKNOWN = "unknown"
OTHER = "other"
MIN_STYLE_SHARE = 0.02
TEMPO_EDGES = (80, 100, 120, 140)
TEMPO_BINS = ("<80", "80-100", "100-120", "120-140", "140+")
FILL_LABELS = ("beat", "fill")


@dataclass(frozen=True)
class PieceLabels:
    """What info.csv says of one file: style's first word, bpm, beat_type. None: not known."""

    style: str | None = None
    bpm: float | None = None
    beat_type: str | None = None


def style_word(style):
    """info.csv's style -> its first word: ``latin/brazilian-samba`` -> ``latin``."""
    return style.split("/")[0].strip().lower()


def tempo_bin(bpm):
    """The tempo label of ``bpm``: bin i holds TEMPO_EDGES[i-1] <= bpm < TEMPO_EDGES[i]."""
    return TEMPO_BINS[sum(bpm >= edge for edge in TEMPO_EDGES)]


def read_labels(source):
    """{resolved MIDI path: PieceLabels} of a Groove folder or zip (through ``groove.load``); {} for any other
    source (a plain MIDI folder, ``music21:NAME``): its files are ``unknown``."""
    if str(source).startswith("music21:"):
        return {}
    try:
        records = groove.load(source)
    except groove.GrooveDataError:
        return {}
    return {Path(record.path).resolve(): PieceLabels(style_word(record.style), float(record.bpm), record.beat_type)
            for record in records}


def labels_of(paths, table):
    """The PieceLabels of each path (an empty one, all unknown, where ``table`` has none)."""
    return [table.get(Path(path).resolve(), PieceLabels()) for path in paths]


def parse_conditions(text):
    """``--condition style,tempo`` -> ("style", "tempo"); empty or None -> (). ValueError naming the flag."""
    if not text:
        return ()
    names = tuple(name.strip() for name in str(text).split(","))
    unknown = [name for name in names if name not in CONDITIONS]
    if unknown or len(set(names)) != len(names):
        raise SettingError(f"--condition takes a comma-separated list of {', '.join(CONDITIONS)} (each once), "
                           f"got {text!r}")
    return tuple(name for name in CONDITIONS if name in names)  # the columns' order is fixed, whatever the flag's


class LabelVocabulary:
    """The labels of each condition a model is told, in column order: ``vocabularies[name]`` lists its labels, the
    id of a label is its index. ``unknown`` is always the last label of each."""

    def __init__(self, vocabularies):
        self.vocabularies = {name: list(labels) for name, labels in vocabularies.items()}

    @classmethod
    def fit(cls, names, train_labels, min_style_share=MIN_STYLE_SHARE):
        """The vocabularies of ``names`` from the training split's PieceLabels: a style with at least
        ``min_style_share`` of the training files has a label of its own."""
        vocabularies = {}
        for name in names:
            if name == "style":
                counts = Counter(labels.style for labels in train_labels if labels.style is not None)
                least = min_style_share * len(train_labels)
                vocabularies[name] = sorted(s for s, n in counts.items() if n >= least) + [OTHER, UNKNOWN]
            elif name == "tempo":
                vocabularies[name] = [*TEMPO_BINS, UNKNOWN]
            else:
                vocabularies[name] = [*FILL_LABELS, UNKNOWN]
        return cls(vocabularies)

    @property
    def names(self):
        return tuple(self.vocabularies)

    @property
    def sizes(self):
        return [len(labels) for labels in self.vocabularies.values()]

    def label(self, name, labels):
        """The label of condition ``name`` for one piece's PieceLabels."""
        if name == "style":
            if labels.style is None:
                return UNKNOWN
            return labels.style if labels.style in self.vocabularies[name] else OTHER
        if name == "tempo":
            return UNKNOWN if labels.bpm is None else tempo_bin(labels.bpm)
        return labels.beat_type if labels.beat_type in FILL_LABELS else UNKNOWN

    def ids(self, labels):
        """One piece's PieceLabels -> its label ids, one per condition in column order."""
        return [self.vocabularies[name].index(self.label(name, labels)) for name in self.names]

    def id_of(self, name, label, flag=None):
        """The id of a label asked for by name; a SettingError listing the known ones."""
        known = self.vocabularies.get(name)
        if known is None:
            raise SettingError(f"{flag or name}: this model was not trained with the {name} condition "
                               f"(its conditions: {', '.join(self.names) or 'none'})")
        if label not in known:
            raise SettingError(f"{flag or name} {label!r} is not one this model knows; known: {', '.join(known)}")
        return known.index(label)

    def to_json(self):
        return {name: list(labels) for name, labels in self.vocabularies.items()}

    @classmethod
    def from_json(cls, values):
        return cls(values)

    def __eq__(self, other):
        return isinstance(other, LabelVocabulary) and self.vocabularies == other.vocabularies
