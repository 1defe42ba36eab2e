"""A corpus of files -> token sequences, in parallel and cached.

`tokenize_corpus(paths, tokenizer)` reads and encodes every file, skipping (with one line naming it and the reason,
through `report`) any file that is missing, not a regular file, not MIDI, truncated, malformed, over the size or
length limits, or without a note the tokenizer encodes (a drum tokenizer skips a file with no drum hits). Whatever
fails inside the reader or the tokenizer on one file is that file's skip, never the corpus's traceback: one bad
file never costs a whole run. Where the files come from (`--data`) and how they are split is `splits.py`.

The cache: `<cache_dir>/<tokenizer.cache_key()>/<sha256 of the file's bytes>.npz` holding one int array,
`tokens`, and `quarters`, the piece's length (so a cached piece still obeys a lower `max_quarters`), plus
`tokenizer.json` in the same folder saying which tokenizer wrote it. Keying by content rather than
path means a moved or renamed file still hits, an edited file misses, and a different tokenizer config never
sees another's tokens. The bytes are hashed through the same guard as the reader's (a regular file of at most
`MAX_MIDI_BYTES`, checked before a byte is read), so a named pipe or `/dev/zero` posing as `x.mid` is a skip, not
a hang. The arrays are read with `allow_pickle=False`. A warm run hashes the files and loads the arrays, never
parsing MIDI (nor importing music21).

Tokenizers that learn a vocabulary (`SeedTokenizer`) must be fitted before `tokenize_corpus`; read the
training files with `read_corpus_events` to fit them.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from deeprnn.errors import DataError
from deeprnn.files import atomic_write, read_regular_file
from deeprnn.music.data_cache import data_cache_dir
from deeprnn.music.limits import MAX_MIDI_BYTES, MAX_PIECE_QUARTERS, check_number
from deeprnn.music.midi_io import MidiReadError, NoteEvent, read_events
from deeprnn.music.tokenizer import Tokenizer

# Below this many files to parse, starting worker processes (each imports music21) costs more than it saves.
MIN_FILES_FOR_POOL = 16


def print_line(line: str) -> None:
    """The default `report` of the loaders: one line on stderr, beside the program's own output."""
    print(line, file=sys.stderr)


@dataclass
class TokenizedCorpus:
    """sequences[i] (T_i,) int32 are the tokens of paths[i]; skipped lists (path, reason) for files left out."""

    sequences: list[np.ndarray]
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sequences)


@dataclass
class EventCorpus:
    """events[i] are the note events of paths[i] (as `read_events` returns them); skipped as in TokenizedCorpus."""

    events: list[list[NoteEvent]]
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)


# --- tokenizing ----------------------------------------------------------------------------------------------
def tokenize_corpus(paths: Iterable[str | Path], tokenizer: Tokenizer, cache_dir: str | Path | None = None,
                    workers: int | None = None, use_cache: bool = True,
                    max_quarters: float = MAX_PIECE_QUARTERS,
                    report: Callable[[str], None] = print_line) -> TokenizedCorpus:
    """Encode every file with `tokenizer`, in input order, reusing cached tokens where the bytes are unchanged.

    cache_dir: default `<data cache>/tokens`. workers: processes for the files not in the cache, default
    min(2, cpu count); 1 keeps everything in this process. max_quarters: longer pieces are skipped (see
    `read_events`). Each unusable file is skipped with one line to `report` ("skipping PATH: REASON"; default
    stderr) and listed in `skipped`. Raises DataError on an empty corpus (no paths, or no file usable).
    """
    workers = _check_workers(workers)
    check_number("max_quarters", max_quarters, minimum=0, exclusive_minimum=True)
    paths = [Path(path) for path in paths]
    if not paths:
        raise DataError("empty corpus: no files given")
    if not getattr(tokenizer, "is_fitted", True):
        raise RuntimeError(f"{type(tokenizer).__name__} has no vocabulary yet: fit it on the training files "
                           f"(read_corpus_events(train_paths).events) before tokenize_corpus")
    cache_folder = None
    if use_cache:
        cache_folder = Path(cache_dir) if cache_dir is not None else data_cache_dir() / "tokens"
        cache_folder = cache_folder / tokenizer.cache_key()
        cache_folder.mkdir(parents=True, exist_ok=True)
        if not (cache_folder / "tokenizer.json").exists():
            tokenizer.save(cache_folder / "tokenizer.json")

    outcomes: list[tuple[str, object] | None] = [None] * len(paths)
    misses: list[tuple[int, Path, Path | None]] = []
    for index, path in enumerate(paths):
        cache_file = _cache_file(cache_folder, path) if cache_folder else None
        cached = _load_cached(cache_file) if cache_file else None
        if cached is not None:
            tokens, quarters = cached
            outcomes[index] = _checked_piece(tokenizer, tokens, quarters, max_quarters)
        else:
            misses.append((index, path, cache_file))

    jobs = [(path, cache_file, max_quarters) for _, path, cache_file in misses]
    results = _map_in_workers(_tokenize_file, jobs, workers, initializer=_set_worker_tokenizer,
                              initargs=(tokenizer.to_json(),), local_setup=lambda: _set_worker_tokenizer(tokenizer))
    for (index, _, _), outcome in zip(misses, results):
        outcomes[index] = outcome
    sequences, kept, skipped = _collect(paths, outcomes, report)
    return TokenizedCorpus(sequences, kept, skipped)


def read_corpus_events(paths: Iterable[str | Path], workers: int | None = None,
                       max_quarters: float = MAX_PIECE_QUARTERS,
                       report: Callable[[str], None] = print_line) -> EventCorpus:
    """Read the note events of every file (no cache), skipping bad files with one line each; for fitting a
    vocabulary on the training split before `tokenize_corpus`. Arguments as in `tokenize_corpus`."""
    workers = _check_workers(workers)
    check_number("max_quarters", max_quarters, minimum=0, exclusive_minimum=True)
    paths = [Path(path) for path in paths]
    if not paths:
        raise DataError("empty corpus: no files given")
    outcomes = _map_in_workers(_read_file_events, [(path, max_quarters) for path in paths], workers)
    events, kept, skipped = _collect(paths, outcomes, report)
    return EventCorpus(events, kept, skipped)


def _collect(paths: list[Path], outcomes, report) -> tuple[list, list[Path], list[tuple[Path, str]]]:
    values, kept, skipped = [], [], []
    for path, (status, value) in zip(paths, outcomes):
        if status == "ok":
            values.append(value)
            kept.append(path)
        else:
            skipped.append((path, value))
            report(f"skipping {path}: {value}")
    if not values:
        reasons = "; ".join(f"{path}: {reason}" for path, reason in skipped[:3])
        raise DataError(f"empty corpus: none of the {len(paths)} files could be used ({reasons}"
                        f"{' ...' if len(skipped) > 3 else ''})")
    return values, kept, skipped


def _cache_file(cache_folder: Path, path: Path) -> Path | None:
    try:
        digest = hashlib.sha256(read_regular_file(path, MAX_MIDI_BYTES, "MIDI file", MidiReadError)).hexdigest()
    except (OSError, DataError):
        return None  # missing, not a regular file, too large or unreadable: the worker says why
    return cache_folder / f"{digest}.npz"


def _load_cached(cache_file: Path) -> tuple[np.ndarray, float] | None:
    """(tokens, quarters) of a cache entry, or None for a miss (absent, damaged, or written before `quarters`)."""
    try:
        with np.load(cache_file, allow_pickle=False) as archive:
            return archive["tokens"], float(archive["quarters"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a damaged or outdated entry is a miss; it gets rewritten


def _store_cached(cache_file: Path, tokens: np.ndarray, quarters: float) -> None:
    # Atomic, so a reader (another worker, a concurrent run) sees a whole file or none.
    atomic_write(cache_file, lambda stream: np.savez(stream, tokens=tokens, quarters=np.float64(quarters)))


def _checked_piece(tokenizer: Tokenizer, tokens: np.ndarray, quarters: float, max_quarters: float):
    """The outcome for one encoded piece: kept, or skipped because it is too long or encodes nothing."""
    if quarters > max_quarters:
        return "skip", f"the piece is {quarters:.0f} quarter notes long, more than the limit of {max_quarters} " \
                       f"(max_quarters)"
    if tokenizer.encodes_nothing(tokens):
        return "skip", f"no notes this tokenizer encodes ({type(tokenizer).__name__}: {tokenizer.content_description})"
    return "ok", tokens


def _check_workers(workers):
    if workers is not None:
        check_number("workers", workers, integer=True, minimum=1, maximum=1024)
    return workers


# --- work done per file, in this process or a worker ---------------------------------------------------------
_worker_tokenizer: Tokenizer | None = None


def _set_worker_tokenizer(tokenizer: Tokenizer | str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer.from_json(tokenizer) if isinstance(tokenizer, str) else tokenizer


def _read_file_events(job: tuple[Path, float]) -> tuple[str, object]:
    path, max_quarters = job
    try:
        events = read_events(path, max_quarters=max_quarters).events
    except (OSError, MidiReadError) as error:
        return "skip", str(error).removeprefix(f"{path}: ")  # the skip line names the file once
    except Exception as error:  # whatever else goes wrong in one file is that file's skip
        return "skip", f"unexpected {type(error).__name__} while reading it: {error}"
    if not events:
        return "skip", "no notes"
    return "ok", events


def _tokenize_file(job: tuple[Path, Path | None, float]) -> tuple[str, object]:
    path, cache_file, max_quarters = job
    status, events = _read_file_events((path, max_quarters))
    if status != "ok":
        return status, events
    try:
        tokens = _worker_tokenizer.encode(events)
    except Exception as error:  # a tokenizer that cannot encode one file skips that file
        return "skip", f"{type(_worker_tokenizer).__name__} cannot encode it ({type(error).__name__}: {error})"
    quarters = max(event.start + event.duration for event in events)
    if cache_file is not None:
        _store_cached(cache_file, tokens, quarters)
    return _checked_piece(_worker_tokenizer, tokens, quarters, max_quarters)


def _map_in_workers(function: Callable, items: list, workers: int | None, initializer=None, initargs=(),
                    local_setup: Callable | None = None) -> list:
    """function over items, in order; a process pool when there is enough work and workers > 1."""
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if not items:
        return []
    if workers <= 1 or len(items) < MIN_FILES_FOR_POOL:
        if local_setup:
            local_setup()
        return [function(item) for item in items]
    # Several files per task: a Groove file parses in ~5 ms, comparable to the cost of a round trip to a worker.
    chunksize = max(1, len(items) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers, initializer=initializer, initargs=initargs) as pool:
        return list(pool.map(function, items, chunksize=chunksize))
