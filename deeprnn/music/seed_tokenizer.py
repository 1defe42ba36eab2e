"""The tutorial's notes-and-chords vocabulary ("seed" = the project we start from), made to work on drums.

Pitched mode is the tutorial's `get_notes()` / `create_midi()` pair, faithfully:

- onsets snap to music21's default MIDI quantization grid (16ths and 8th triplets, `quarterLengthDivisors=(4, 3)`),
  as `converter.parse` does before the tutorial sees the notes; notes sharing an onset form a chord;
- a lone note is `str(pitch)` (`'E4'`, `'B-3'`: music21's spelling), a chord is its `normalOrder` joined by '.'
  (`'0.4.7'`: pitch classes, octave and voicing gone);
- the vocabulary is the sorted set of symbols of the training pieces (`fit`), id = position in that list;
- decoding steps a fixed 0.5 quarter per token; a note symbol plays its pitch for a quarter, a chord symbol plays
  its pitch classes in octave 4 (music21's `Note(int)` reading of the tutorial's `int(current_note)`).

Drum mode is the fix: with music21 >= 7 a drum hit is an `Unpitched` and the tutorial's isinstance tests drop it,
and even with a pitch, `normalOrder` would map kick+snare+hat (36, 38, 42) and any other hits with pitch classes
0, 2, 6 to one token. Drum mode keys every onset by its sorted MIDI pitches, `'36.38.42'`, so distinct drum
combinations never share a token, and decodes them back to those pitches on channel 10.

The mode is a constructor flag, or, left as None, chosen by `fit`: drums when most of the training events are
drums. A pitched tokenizer ignores drum events and a drum tokenizer ignores pitched ones.

Ids: the fitted symbols are 0..n-1 in sorted order, as in the tutorial; `unk_id = n` stands for any symbol not
seen in training (it decodes to a silent step), so `vocab_size = n + 1`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Iterable

import numpy as np

from deeprnn.music.midi_io import DEFAULT_VELOCITY, NoteEvent
from deeprnn.music.tokenizer import Tokenizer

DECODE_OFFSET = 0.5  # quarter notes between decoded symbols, the tutorial's `offset += 0.5`
PITCHED_DURATION = 1.0  # music21's default Note length, which the tutorial never changes
DRUM_DURATION = 0.5  # one decode step, so a repeated drum hit does not overlap itself


def quantized_onset(start: float) -> int:
    """Onset in twelfths of a quarter, snapped like music21's MIDI import: nearest 16th or 8th triplet.

    Twelfths hold both grids as integers (a 16th is 3, an 8th triplet 4), so equal onsets compare exactly.
    """
    sixteenths = math.floor(start * 4 + 0.5)
    triplets = math.floor(start * 3 + 0.5)
    # Ties prefer the 16th, the first divisor in music21's (4, 3).
    if abs(start - triplets / 3) < abs(start - sixteenths / 4):
        return triplets * 4
    return sixteenths * 3


@lru_cache(maxsize=None)
def pitch_name(midi_pitch: int) -> str:
    """music21's `str(pitch)` for a MIDI number, e.g. 64 -> 'E4', 63 -> 'E-4'."""
    from music21 import pitch

    spelled = pitch.Pitch()
    spelled.midi = midi_pitch
    return str(spelled)


@lru_cache(maxsize=None)
def normal_order_symbol(pitch_classes: frozenset) -> str:
    """The tutorial's chord symbol: '.'.join of music21's `Chord.normalOrder` for these pitch classes."""
    from music21 import chord

    return ".".join(str(pc) for pc in chord.Chord(sorted(pitch_classes)).normalOrder)


@lru_cache(maxsize=None)
def _pitch_from_name(name: str) -> int:
    from music21 import pitch

    return pitch.Pitch(name).midi


class SeedTokenizer(Tokenizer):
    """The tutorial's symbols for pitched music, MIDI-pitch-keyed symbols for drums, with an explicit UNK.

    Use: `tokenizer = SeedTokenizer().fit(training_event_lists)`, then `encode`/`decode` (module docstring).
    """

    type_name = "seed"

    def __init__(self, drum_mode: bool | None = None, vocabulary: Iterable[str] | None = None):
        if drum_mode not in (None, True, False):
            raise ValueError(f"drum_mode must be True, False or None, got {drum_mode!r}")
        self.drum_mode = drum_mode
        self.vocabulary: list[str] | None = None
        self._ids: dict[str, int] = {}
        if vocabulary is not None:
            self._set_vocabulary(vocabulary)

    def _set_vocabulary(self, symbols: Iterable[str]) -> None:
        self.vocabulary = sorted(set(symbols))
        self._ids = {symbol: index for index, symbol in enumerate(self.vocabulary)}

    # --- vocabulary ----------------------------------------------------------------------------------------
    def fit(self, pieces: Iterable[list[NoteEvent]]) -> "SeedTokenizer":
        """Build the vocabulary from the training pieces only (event lists); decides drum_mode if it is None."""
        pieces = list(pieces)
        if self.drum_mode is None:
            drum_events = sum(event.is_drum for piece in pieces for event in piece)
            total = sum(len(piece) for piece in pieces)
            self.drum_mode = total > 0 and 2 * drum_events > total
        self._set_vocabulary(symbol for piece in pieces for symbol in self.symbols(piece))
        return self

    @property
    def is_fitted(self) -> bool:
        return self.vocabulary is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("SeedTokenizer has no vocabulary yet: call fit(training_pieces) or load a saved one")

    @property
    def unk_id(self) -> int:
        self._require_fitted()
        return len(self.vocabulary)

    @property
    def vocab_size(self) -> int:
        return self.unk_id + 1

    @property
    def config(self) -> dict[str, Any]:
        return {"drum_mode": self.drum_mode, "vocabulary": self.vocabulary}

    @property
    def content_description(self) -> str:
        return "it needs drum hits (MIDI channel 10)" if self.drum_mode else "it needs pitched notes (not channel 10)"

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> "SeedTokenizer":
        return cls(drum_mode=config["drum_mode"], vocabulary=config["vocabulary"])

    # --- events <-> symbols <-> ids ------------------------------------------------------------------------
    def symbols(self, events: list[NoteEvent]) -> list[str]:
        """events -> one symbol per quantized onset: the tutorial's `get_notes()` list for one piece.

        Needs `drum_mode` decided (a flag, or a previous `fit`); `fit` calls this on every training piece.
        """
        if self.drum_mode is None:
            raise RuntimeError("drum_mode is undecided: pass drum_mode=True/False or call fit first")
        onsets: dict[int, list[int]] = {}
        for event in events:
            if bool(event.is_drum) == self.drum_mode:
                onsets.setdefault(quantized_onset(event.start), []).append(int(event.pitch))
        symbols = []
        for onset in sorted(onsets):
            pitches = onsets[onset]
            if self.drum_mode:
                symbols.append(".".join(str(pitch) for pitch in sorted(set(pitches))))
            elif len(pitches) == 1:
                symbols.append(pitch_name(pitches[0]))
            else:
                symbols.append(normal_order_symbol(frozenset(pitch % 12 for pitch in pitches)))
        return symbols

    def encode(self, events: list[NoteEvent]) -> np.ndarray:
        """events -> (T,) int32 ids, one per onset; symbols unseen in training map to `unk_id`."""
        self._require_fitted()
        unk = self.unk_id
        return np.asarray([self._ids.get(symbol, unk) for symbol in self.symbols(events)], dtype=np.int32)

    def decode(self, tokens) -> list[NoteEvent]:
        """ids -> events, symbol i at 0.5 * i quarters (UNK and out-of-range ids are silent steps)."""
        self._require_fitted()
        events = []
        for index, token in enumerate(np.asarray(tokens, dtype=np.int64).tolist()):
            if 0 <= token < len(self.vocabulary):
                events.extend(self._symbol_events(self.vocabulary[token], index * DECODE_OFFSET))
        events.sort(key=lambda event: (event.start, event.pitch))
        return events

    def _symbol_events(self, symbol: str, start: float) -> list[NoteEvent]:
        if self.drum_mode:
            return [NoteEvent(start, DRUM_DURATION, int(p), DEFAULT_VELOCITY, True) for p in symbol.split(".")]
        if "." in symbol or symbol.isdigit():
            pitch_classes = [int(pc) for pc in symbol.split(".")]
            # The tutorial's `note.Note(int(pc))` is pitch class pc in octave 4, MIDI 60 + pc.
            pitches = [60 + pc for pc in pitch_classes]
            if len(pitch_classes) == 1:
                # A one-class chord (C4 + C5 has normalOrder [0]) sounds as that octave pair, not as a lone C4
                # that would re-encode as the note symbol 'C4'; this keeps encode(decode(ids)) == ids.
                pitches.append(72 + pitch_classes[0])
            return [NoteEvent(start, PITCHED_DURATION, p, DEFAULT_VELOCITY, False) for p in pitches]
        return [NoteEvent(start, PITCHED_DURATION, _pitch_from_name(symbol), DEFAULT_VELOCITY, False)]
