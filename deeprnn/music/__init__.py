"""Music data for deeprnn: MIDI events in and out, tokenizers, the Groove MIDI Dataset and a cached corpus loader.

    from deeprnn.music import groove, load_splits, read_events, write_midi, DrumGridTokenizer, tokenize_corpus

    splits = load_splits(None, DrumGridTokenizer(), max_files=200)  # the Groove copy, its official split, tokens
    records = groove.load(split="train")                     # info.csv rows, absolute paths
    tokenizer = DrumGridTokenizer()                          # Magenta's 9-class drum grid, 16th steps
    corpus = tokenize_corpus([r.path for r in records], tokenizer)
    write_midi(tokenizer.decode(corpus.sequences[0]), "groove.mid", qpm=records[0].bpm)

The encodings, the split and the cache are explained in docs/music-data.md. Only this package imports music21,
and only when it parses or writes a file.
"""

from deeprnn.music import groove
from deeprnn.music.corpus import EventCorpus, TokenizedCorpus, read_corpus_events, tokenize_corpus
from deeprnn.music.drum_grid import DrumGridTokenizer
from deeprnn.music.expressive_grid import ExpressiveDrumGridTokenizer
from deeprnn.music.midi_io import MidiReadError, NoteEvent, NoteSequence, read_events, write_midi
from deeprnn.music.seed_tokenizer import SeedTokenizer
from deeprnn.music.splits import (FileSplits, Splits, TokenSplit, load_splits, music21_corpus_paths, resolve_data,
                                  resolve_source)
from deeprnn.music.tokenizer import Tokenizer, load_tokenizer

__all__ = [
    "DrumGridTokenizer",
    "EventCorpus",
    "ExpressiveDrumGridTokenizer",
    "FileSplits",
    "MidiReadError",
    "NoteEvent",
    "NoteSequence",
    "SeedTokenizer",
    "Splits",
    "TokenSplit",
    "TokenizedCorpus",
    "Tokenizer",
    "groove",
    "load_splits",
    "load_tokenizer",
    "music21_corpus_paths",
    "read_corpus_events",
    "read_events",
    "resolve_data",
    "resolve_source",
    "tokenize_corpus",
    "write_midi",
]
