"""From a `--data` source to the token splits a run works on, in one call: `load_splits(source, tokenizer, ...)`.

    splits = load_splits("/data/groove", DrumGridTokenizer(), max_files=200, seed=0)
    splits.split("train").sequences          # (T_i,) int32 token arrays, tokenized through the corpus cache

The steps, in order: the source (`resolve_source`: a Groove folder or zip, any folder of MIDI files, one of
music21's composers, or nothing: the Groove copy `groove.default_root` finds, downloaded if missing) -> its files
and their split (`split_files`: the Groove's official 897/124/129 split from info.csv, else 80/10/10 by a shuffle
with a fixed seed, the same on every run) -> `max_files` of each split, sampled with the run's seed -> tokens
(`Splits.split`, each split read on first use through `tokenize_corpus`; a tokenizer that learns its vocabulary
is fitted on the training files first).

What was found, where, and how it is split is said in one line before anything is read ("data: 42 MIDI files in
/x (no info.csv): split 80/10/10 by a fixed shuffle"), and every file left out in one line of its own, through
`report` (default: stderr). A plain folder is searched below for MIDI files, leaving out what is never training
data: hidden files and folders, virtualenvs (a folder holding `pyvenv.cfg`: a `.venv`'s test files) and deeprnn's
own run folders (`best.npz`, `last.npz`, or `config.json` beside `history.csv`: their `generated.mid`).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from deeprnn.errors import DataError
from deeprnn.music import groove
from deeprnn.music.corpus import print_line, read_corpus_events, tokenize_corpus
from deeprnn.music.midi_io import MIDI_SUFFIXES
from deeprnn.music.tokenizer import Tokenizer

SPLITS = groove.SPLITS
MUSIC21_PREFIX = "music21:"
# Scores music21's converter turns into notes; its corpus also holds Roman-numeral analyses (.rntxt), which are
# harmony labels rather than music someone played, so they stay out of a training corpus.
MUSIC21_SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mid", ".midi")
# Shuffle seed of the split of a corpus without an official one: fixed, so a split never depends on --seed.
SPLIT_SEED = 2019
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
# A folder holding one of these is a deeprnn run (its checkpoints, its generated.mid), not data.
RUN_MARKERS = ("best.npz", "last.npz")
RUN_MARKER_PAIR = ("config.json", "history.csv")
VIRTUALENV_MARKER = "pyvenv.cfg"


@dataclass
class TokenSplit:
    """sequences[i]: (T_i,) int32 tokens of paths[i]; skipped: (path, reason) of the files left out."""

    sequences: list
    paths: list
    skipped: list = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return int(sum(len(s) for s in self.sequences))


@dataclass
class FileSplits:
    """Files of each split; `source` is the resolved `--data` (saved in the checkpoint), `description` the line
    that says what was found and how it is split."""

    source: str
    train: list
    validation: list
    test: list
    official: bool = False
    description: str = ""

    def files(self, split: str) -> list:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return getattr(self, split)


class Splits:
    """The tokens of each split, read on first use through the corpus cache (`tokenize_corpus`)."""

    def __init__(self, files: FileSplits, tokenizer: Tokenizer, report: Callable[[str], None] = print_line):
        self.files = files
        self.tokenizer = tokenizer
        self.report = report
        self.loaded: dict[str, TokenSplit] = {}
        if not getattr(tokenizer, "is_fitted", True):
            self.loaded["train"] = self._fit_tokenizer()

    @property
    def source(self) -> str:
        return self.files.source

    def split(self, name: str) -> TokenSplit:
        if name not in self.loaded:
            paths = self.files.files(name)
            if not paths:
                raise DataError(f"the {name} split of {self.files.source} has no files")
            corpus = tokenize_corpus(paths, self.tokenizer, report=self.report)
            self.loaded[name] = TokenSplit(corpus.sequences, corpus.paths, corpus.skipped)
        return self.loaded[name]

    def _fit_tokenizer(self) -> TokenSplit:
        """Fit a vocabulary-learning tokenizer (SeedTokenizer) on the training files only; returns the train split,
        encoded right away so those files are parsed once."""
        events = read_corpus_events(self.files.train, report=self.report)
        self.tokenizer.fit(events.events)
        sequences, paths = [], []
        for piece, path in zip(events.events, events.paths):
            tokens = self.tokenizer.encode(piece)
            if len(tokens):
                sequences.append(tokens)
                paths.append(path)
        if not sequences:
            raise DataError(f"empty corpus: no tokens in the {len(self.files.train)} training files of "
                            f"{self.files.source}")
        return TokenSplit(sequences, paths, events.skipped)


def load_splits(source: str | Path | None, tokenizer: Tokenizer, max_files: int | None = None, seed: int = 0,
                report: Callable[[str], None] = print_line) -> Splits:
    """The splits of `source` (a `--data` argument; None: the default Groove copy) as `tokenizer` encodes them.

    max_files: keep that many files of each split, sampled with `seed`. The line saying what was found is sent to
    `report` here; the tokens are read when a split is first asked for (`Splits.split`), except the training
    split of a tokenizer that still has to learn its vocabulary, which is read and fitted now.
    """
    files = split_files(resolve_source(source, report), max_files, seed)
    report(files.description)
    return Splits(files, tokenizer, report)


# --- where the files come from -------------------------------------------------------------------------------
def resolve_source(data: str | Path | None = None, report: Callable[[str], None] = print_line) -> str:
    """A `--data` argument as a stable string: an absolute path, `music21:NAME`, or the default Groove copy
    (downloaded, 3.2 MB, when there is none). Resolving a resolved source gives it back unchanged."""
    if data is None:
        try:
            return str(groove.default_root().expanduser().resolve())
        except groove.GrooveDataError:
            report("Groove MIDI Dataset not found locally: downloading it (3.2 MB) ...")
            return str(groove.download())
    text = str(data)
    if text.startswith(MUSIC21_PREFIX):
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data {text}: no such file or folder (give a Groove folder or zip, a folder of "
                                "MIDI files, or music21:COMPOSER)")
    return str(path.resolve())


def is_groove(source: str | Path) -> bool:
    """Whether a source is a Groove dataset: a folder with info.csv (or groove/info.csv), or a zip."""
    path = Path(source)
    if path.is_dir():
        return any(os.path.lexists(folder / "info.csv") for folder in (path, path / "groove"))
    return path.is_file() and zipfile.is_zipfile(path)


def find_midi_files(folder: Path) -> tuple[list[Path], list[str]]:
    """(MIDI files below `folder`, sorted; what was left out, one short phrase each).

    Left out: hidden files and folders, virtualenvs and deeprnn's run folders (see the module's docstring).
    Symlinked folders are not followed (a link cycle would never end); a symlinked file is listed, and the reader
    judges what it names. A folder named `x.mid` is a folder, searched like any other.
    """
    found, left_out = [], []
    for directory, subfolders, names in os.walk(folder):
        here = Path(directory)
        kept = []
        for name in sorted(subfolders):
            reason = _not_data(here / name)
            if reason:
                left_out.append(f"{(here / name).relative_to(folder)} ({reason})")
            else:
                kept.append(name)
        subfolders[:] = kept
        found += [here / name for name in names
                  if Path(name).suffix.lower() in MIDI_SUFFIXES and not name.startswith(".")]
    return sorted(found), left_out


def _not_data(folder: Path) -> str | None:
    """Why a folder below a data folder is not searched, or None."""
    if (folder / VIRTUALENV_MARKER).exists():
        return "a virtualenv"
    if any((folder / name).exists() for name in RUN_MARKERS) or all((folder / name).exists()
                                                                    for name in RUN_MARKER_PAIR):
        return "a deeprnn run"
    if folder.name.startswith("."):
        return "hidden"
    return None


def music21_corpus_paths(composer: str, limit: int | None = None) -> list[Path]:
    """Score files of one composer in music21's bundled corpus (e.g. 'bach': ~400 chorales), sorted; offline.

    `read_events` reads them through music21's converter (slow: ~0.1-1 s per score).
    """
    from music21 import corpus

    paths = sorted(Path(path) for path in corpus.getComposer(composer)
                   if Path(path).suffix.lower() in MUSIC21_SCORE_SUFFIXES)
    if not paths:
        raise DataError(f"music21's corpus has no scores for composer {composer!r} (try 'bach', 'beethoven', "
                        f"'mozart', 'palestrina')")
    return paths[:limit] if limit is not None else paths


def resolve_data(spec: str | Path, split: str | None = None) -> list[Path]:
    """What a `--data` argument names, as a list of files.

    - `music21:NAME`: that composer in music21's bundled corpus (split ignored);
    - a Groove folder or zip (has info.csv): its MIDI files, only `split` if given;
    - any other folder: every MIDI file below it (`find_midi_files`), sorted; a single file: itself.
    """
    return _files_of(spec, split)[0]


def _files_of(spec: str | Path, split: str | None = None) -> tuple[list[Path], list[str]]:
    text = str(spec)
    if text.startswith(MUSIC21_PREFIX):
        return music21_corpus_paths(text[len(MUSIC21_PREFIX):]), []
    path = Path(text).expanduser()
    if is_groove(path):
        return [record.path for record in groove.load(path, split=split)], []
    if path.is_dir():
        return find_midi_files(path)
    if path.exists():
        return [path], []
    raise FileNotFoundError(f"--data {text}: no such file or folder (or use music21:COMPOSER)")


# --- splitting -----------------------------------------------------------------------------------------------
def split_files(source: str, max_files: int | None = None, seed: int = 0) -> FileSplits:
    """FileSplits of a resolved source; `max_files` keeps that many files per split, sampled with `seed`."""
    if is_groove(source):
        records = groove.load(source)
        splits = {name: [record.path for record in records if record.split == name] for name in SPLITS}
        official = True
        found = f"the Groove MIDI Dataset in {source} ({len(records)} files in its info.csv)"
        how = "its official split " + "/".join(str(len(splits[name])) for name in SPLITS)
    else:
        files, left_out = _files_of(source)
        if len(files) < 3:
            raise DataError(f"--data {source}: {len(files)} MIDI file(s) found; need at least 3 for "
                            f"train/validation/test" + _left_out_note(left_out))
        order = np.random.default_rng(SPLIT_SEED).permutation(len(files))
        n_val = max(1, round(SPLIT_FRACTIONS[1] * len(files)))
        n_test = max(1, round(SPLIT_FRACTIONS[2] * len(files)))
        n_train = len(files) - n_val - n_test
        picks = {"train": order[:n_train], "validation": order[n_train:n_train + n_val],
                 "test": order[n_train + n_val:]}
        splits = {name: [files[i] for i in sorted(picks[name])] for name in SPLITS}
        official = False
        if source.startswith(MUSIC21_PREFIX):
            found = f"{len(files)} scores of music21's corpus ({source[len(MUSIC21_PREFIX):]})"
        else:
            found = f"{len(files)} MIDI files in {source} (no info.csv{_left_out_note(left_out)})"
        how = (f"split {n_train}/{n_val}/{len(files) - n_train - n_val} "
               f"({'/'.join(str(round(100 * f)) for f in SPLIT_FRACTIONS)}) by a fixed shuffle")
    if max_files is not None:
        rng = np.random.default_rng(seed)
        for name in SPLITS:
            files = splits[name]
            if len(files) > max_files:
                keep = np.sort(rng.choice(len(files), max_files, replace=False))
                splits[name] = [files[i] for i in keep]
        how += (f"; --max-files {max_files} keeps " + "/".join(str(len(splits[name])) for name in SPLITS)
                + f" (sampled with seed {seed})")
    return FileSplits(source, splits["train"], splits["validation"], splits["test"], official,
                      f"data: {found}: {how}")


def _left_out_note(left_out: list[str], shown: int = 3) -> str:
    if not left_out:
        return ""
    more = f" and {len(left_out) - shown} more" if len(left_out) > shown else ""
    return f"; left out {', '.join(left_out[:shown])}{more}"
