"""The token splits a run works on: which files (``--data``, the official split, ``--max-files``) and their tokens.

``--data`` names a Groove folder or zip (its official 897/124/129 split is used), any folder of MIDI files or
``music21:COMPOSER`` (both split 80/10/10 by a fixed shuffle, the same on every run), or nothing: the Groove copy
``$DEEPRNN_GROOVE`` points at, else the one in the data cache, downloaded (3.2 MB) if missing.
``--max-files N`` keeps N files of each split, sampled with the run's seed (the tutorial's "200 random files").
"""
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from ..music import groove, read_corpus_events, resolve_data, tokenize_corpus
from ..music.corpus import MUSIC21_PREFIX

SPLITS = ("train", "validation", "test")
# Shuffle seed of the split of a corpus without an official one: fixed, so a split never depends on --seed.
SPLIT_SEED = 2019
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


@dataclass
class FileSplits:
    """Files of each split; ``source`` is the resolved ``--data`` (saved in the checkpoint)."""

    source: str
    train: list
    validation: list
    test: list
    official: bool = False

    def files(self, split):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, split)


@dataclass
class TokenSplit:
    """sequences[i]: (T_i,) int32 tokens of paths[i]."""

    sequences: list
    paths: list
    skipped: list = field(default_factory=list)

    @property
    def num_tokens(self):
        return int(sum(len(s) for s in self.sequences))


def resolve_source(data=None):
    """The ``--data`` argument as a stable string: an absolute path, ``music21:NAME``, or the default Groove copy."""
    if data is None:
        try:
            return str(groove.default_root().expanduser().resolve())
        except groove.GrooveDataError:
            print("Groove MIDI Dataset not found locally: downloading it (3.2 MB) ...", file=sys.stderr)
            return str(groove.download())
    text = str(data)
    if text.startswith(MUSIC21_PREFIX):
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data {text}: no such file or folder (give a Groove folder or zip, a folder of "
                                "MIDI files, or music21:COMPOSER)")
    return str(path.resolve())


def is_groove(source):
    path = Path(source)
    if path.is_dir():
        return (path / "info.csv").is_file() or (path / "groove" / "info.csv").is_file()
    return path.is_file() and zipfile.is_zipfile(path)


def split_files(source, max_files=None, seed=0):
    """FileSplits of a resolved source; ``max_files`` keeps that many files per split, sampled with ``seed``."""
    if is_groove(source):
        splits = {name: [record.path for record in groove.load(source, split=name)] for name in SPLITS}
        official = True
    else:
        files = resolve_data(source)
        if len(files) < 3:
            raise ValueError(f"--data {source}: {len(files)} file(s); need at least 3 for train/validation/test")
        order = numpy.random.default_rng(SPLIT_SEED).permutation(len(files))
        n_val = max(1, round(SPLIT_FRACTIONS[1] * len(files)))
        n_test = max(1, round(SPLIT_FRACTIONS[2] * len(files)))
        n_train = len(files) - n_val - n_test
        picks = {"train": order[:n_train], "validation": order[n_train:n_train + n_val],
                 "test": order[n_train + n_val:]}
        splits = {name: [files[i] for i in sorted(picks[name])] for name in SPLITS}
        official = False
    if max_files is not None:
        rng = numpy.random.default_rng(seed)
        for name in SPLITS:
            files = splits[name]
            if len(files) > max_files:
                keep = numpy.sort(rng.choice(len(files), max_files, replace=False))
                splits[name] = [files[i] for i in keep]
    return FileSplits(source, splits["train"], splits["validation"], splits["test"], official)


class MusicData:
    """Tokens of each split, loaded on first use through the corpus cache (``tokenize_corpus``)."""

    def __init__(self, files, tokenizer):
        self.files = files
        self.tokenizer = tokenizer
        self.loaded = {}

    def split(self, name):
        if name not in self.loaded:
            paths = self.files.files(name)
            if not paths:
                raise ValueError(f"the {name} split of {self.files.source} has no files")
            corpus = tokenize_corpus(paths, self.tokenizer)
            self.loaded[name] = TokenSplit(corpus.sequences, corpus.paths, corpus.skipped)
        return self.loaded[name]


def fit_tokenizer(tokenizer, files):
    """Fit a vocabulary-learning tokenizer (SeedTokenizer) on the training files only; returns the train split.

    The training events are encoded right away, so those files are parsed once.
    """
    events = read_corpus_events(files.train)
    tokenizer.fit(events.events)
    sequences, paths = [], []
    for piece, path in zip(events.events, events.paths):
        tokens = tokenizer.encode(piece)
        if len(tokens):
            sequences.append(tokens)
            paths.append(path)
    if not sequences:
        raise ValueError(f"empty corpus: no tokens in the {len(files.train)} training files of {files.source}")
    return TokenSplit(sequences, paths, events.skipped)


def open_data(tokenizer, data, config):
    """The splits of ``--data`` (None: the default Groove copy) as a run with ``config`` sees them: the one way
    every command opens a split (``open_data(...).split("validation")``)."""
    source = resolve_source(data)
    return load_data(tokenizer, split_files(source, config.max_files, config.seed))


def load_data(tokenizer, files):
    """MusicData for a run; fits the tokenizer on the training files first when it learns a vocabulary."""
    data = MusicData(files, tokenizer)
    if hasattr(tokenizer, "fit") and not getattr(tokenizer, "is_fitted", True):
        data.loaded["train"] = fit_tokenizer(tokenizer, files)
    return data
