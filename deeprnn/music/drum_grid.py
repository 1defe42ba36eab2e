"""Magenta's drum encoding: one token per grid step, the bitmask of the drum classes struck on it.

The Groove MIDI Dataset was recorded on a Roland TD-11 kit; the Groove paper (Gillick et al., 2019) reduces its
22 MIDI pitches to 9 classes, and Magenta's GrooVAE (`ROLAND_DRUM_PITCH_CLASSES` in music_vae/data.py) encodes a
step as the set of classes hit on it. Pitches the TD-11 never sends fall back to the General MIDI drum map of
Magenta's `drums_encoder_decoder.DEFAULT_DRUM_TYPE_PITCHES`, so any GM drum file (pitches 22 and 26-87) encodes.

Token layout (`velocity_bins=0`, vocab_size 514):

    0..511   one grid step; bit k set <=> class k struck (kick = bit 0 ... ride = bit 8); 0 is a silent step
    512      START
    513      END

A piece of S steps is `[START, m_0, ..., m_{S-1}, END]`, S = last struck step + 1. With `velocity_bins=B > 0`
(vocab_size 514 + B) every step token is followed by one velocity token per struck class, in class order:
`514 + b`, where bin b = (velocity - 1) * B // 127 splits 1..127 into B equal bins; decode plays the bin's
centre. The step tokens keep their meaning, so a model sees the same grid with velocities interleaved.

Decoding writes each class's canonical pitch, the first of its Roland list (36 38 42 46 43 47 50 49 51). Magenta's
general-MIDI list starts its toms with 45 and 48, but in the Roland map 45 is a mid tom and 48 a high tom, so
those would re-encode as the wrong class; the Roland firsts keep decode -> encode the identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprnn.music.limits import MAX_PIECE_QUARTERS, check_number
from deeprnn.music.midi_io import DEFAULT_VELOCITY, NoteEvent
from deeprnn.music.tokenizer import Tokenizer

DRUM_CLASS_NAMES = ("kick", "snare", "closed_hat", "open_hat", "low_tom", "mid_tom", "high_tom", "crash", "ride")

# Groove paper, Table 2 / Magenta ROLAND_DRUM_PITCH_CLASSES; the first pitch of each class is what decode writes.
ROLAND_DRUM_PITCH_CLASSES = (
    (36,),
    (38, 37, 40),
    (42, 22, 44),
    (46, 26),
    (43, 58),
    (47, 45),
    (50, 48),
    (49, 52, 55, 57),
    (51, 53, 59),
)

# Magenta drums_encoder_decoder.DEFAULT_DRUM_TYPE_PITCHES: General MIDI percussion keys grouped the same 9 ways.
GENERAL_MIDI_DRUM_PITCH_CLASSES = (
    (36, 35),
    (38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85),
    (42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22),
    (46, 67, 72, 74, 79, 81, 26),
    (45, 29, 41, 43, 61, 64, 84),
    (48, 47, 60, 63, 77, 86, 87),
    (50, 30, 62, 76, 83),
    (49, 52, 55, 57, 58),
    (51, 53, 59, 82),
)

CANONICAL_PITCHES = tuple(pitches[0] for pitches in ROLAND_DRUM_PITCH_CLASSES)
NUM_CLASSES = len(ROLAND_DRUM_PITCH_CLASSES)
NUM_MASKS = 1 << NUM_CLASSES  # 512
# Finer than 1/96 of a quarter no performance is played; the bound keeps the grid of a long piece in memory.
MAX_STEPS_PER_QUARTER = 96
# The longest grid encode builds: the longest piece the reader accepts, at the finest resolution (3 MiB of int64).
MAX_GRID_STEPS = MAX_PIECE_QUARTERS * MAX_STEPS_PER_QUARTER


def _pitch_to_class_table() -> np.ndarray:
    """(128,) int: drum class of each MIDI pitch, -1 where neither map knows the pitch."""
    table = np.full(128, -1, dtype=np.int64)
    # General MIDI first, then Roland over it: where the two disagree (43, 45, 48, 58) Groove's own kit wins.
    for pitch_classes in (GENERAL_MIDI_DRUM_PITCH_CLASSES, ROLAND_DRUM_PITCH_CLASSES):
        for drum_class, pitches in enumerate(pitch_classes):
            table[list(pitches)] = drum_class
    return table


PITCH_TO_CLASS = _pitch_to_class_table()


class DrumGridTokenizer(Tokenizer):
    """Drum hits -> one token per grid step (bitmask of 9 classes), plus START/END and optional velocity tokens.

    steps_per_quarter: grid resolution; 4 is Magenta's 16th-note grid. An onset goes to the nearest step.
    velocity_bins: 0 drops velocity; B > 0 adds B velocity tokens (layout in the module docstring).
    Pitched notes (is_drum False) and drum pitches outside both maps are ignored.
    """

    type_name = "drum_grid"

    def __init__(self, steps_per_quarter: int = 4, velocity_bins: int = 0):
        check_number("steps_per_quarter", steps_per_quarter, integer=True, minimum=1, maximum=MAX_STEPS_PER_QUARTER)
        check_number("velocity_bins", velocity_bins, integer=True, minimum=0, maximum=127)
        self.steps_per_quarter = int(steps_per_quarter)
        self.velocity_bins = int(velocity_bins)
        self.start_token = NUM_MASKS
        self.end_token = NUM_MASKS + 1
        self.first_velocity_token = NUM_MASKS + 2

    @property
    def config(self) -> dict[str, Any]:
        return {"steps_per_quarter": self.steps_per_quarter, "velocity_bins": self.velocity_bins}

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> "DrumGridTokenizer":
        return cls(**config)

    @property
    def vocab_size(self) -> int:
        return NUM_MASKS + 2 + self.velocity_bins

    def encodes_nothing(self, tokens) -> bool:
        """No struck step: a piece without a drum hit of a known pitch is START, END and nothing else."""
        tokens = np.asarray(tokens)
        return not np.any((tokens > 0) & (tokens < NUM_MASKS))

    @property
    def content_description(self) -> str:
        return "it needs drum hits (MIDI channel 10) of a General MIDI drum pitch"

    def velocity_bin(self, velocity):
        """velocity 1..127 (scalar or array) -> bin 0..B-1."""
        velocity = np.clip(velocity, 1, 127)
        return (velocity - 1) * self.velocity_bins // 127

    def bin_velocity(self, velocity_bin: int) -> int:
        """bin -> the velocity decode plays: the middle of the velocities in the bin, so it bins back to it."""
        # Bin b holds velocity - 1 in [ceil(b * 127 / B), ceil((b + 1) * 127 / B) - 1]; never empty for B <= 127.
        lowest = -(-velocity_bin * 127 // self.velocity_bins)
        highest = -(-(velocity_bin + 1) * 127 // self.velocity_bins) - 1
        return int(1 + (lowest + highest) // 2)

    def quantize(self, events: list[NoteEvent]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The drum hits on the grid: (step, class, velocity) arrays of shape (N,), hits of unknown pitch dropped.

        Nearest step, halves rounded up; negative onsets clamp to step 0.
        """
        steps, classes, velocities, _ = self.quantize_with_offsets(events)
        return steps, classes, velocities

    def quantize_with_offsets(self, events: list[NoteEvent]):
        """``quantize`` plus each hit's offset from its step, in steps: (N,) float in [-0.5, 0.5).

        With u = start * steps_per_quarter, the step is s = floor(u + 1/2) and the offset u - s (GrooVAE's
        microtiming); a negative onset clamped to step 0 keeps the offset of its unclamped step.
        """
        drums = [(event.start, event.pitch, event.velocity) for event in events if event.is_drum]
        if not drums:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, np.zeros(0)
        starts, pitches, velocities = (np.asarray(column) for column in zip(*drums))
        # The grid is allocated from the last onset: bound it before, so hostile times cannot ask for terabytes.
        last = starts.max() if np.all(np.isfinite(starts)) else np.inf
        if last * self.steps_per_quarter > MAX_GRID_STEPS:
            raise ValueError(f"a drum hit starts at {last} quarter notes: more than the {MAX_GRID_STEPS} grid steps "
                             f"a piece may have at {self.steps_per_quarter} steps per quarter")
        classes = PITCH_TO_CLASS[np.clip(pitches, 0, 127).astype(np.int64)]
        known = (classes >= 0) & (pitches >= 0) & (pitches <= 127)
        positions = starts[known] * self.steps_per_quarter  # u: the onset in steps
        steps = np.floor(positions + 0.5).astype(np.int64)
        offsets = np.clip(positions - steps, -0.5, np.nextafter(0.5, 0))  # rounding could reach 0.5 itself
        return np.maximum(steps, 0), classes[known], velocities[known].astype(np.int64), offsets

    def encode(self, events: list[NoteEvent]) -> np.ndarray:
        """events -> (T,) int32 tokens: START, one mask per step (velocity tokens after it if binned), END."""
        steps, classes, velocities = self.quantize(events)
        num_steps = int(steps.max()) + 1 if len(steps) else 0
        masks = np.zeros(num_steps, dtype=np.int64)
        # Several hits of one class on one step (a flam, two crash pitches) are one struck class.
        np.bitwise_or.at(masks, steps, 1 << classes)
        if not self.velocity_bins:
            return np.concatenate([[self.start_token], masks, [self.end_token]]).astype(np.int32)

        # The loudest hit speaks for its class on that step.
        loudest = np.zeros((num_steps, NUM_CLASSES), dtype=np.int64)
        np.maximum.at(loudest, (steps, classes), velocities)
        velocity_tokens = self.first_velocity_token + self.velocity_bin(loudest)
        tokens = [self.start_token]
        for step, mask in enumerate(masks.tolist()):
            tokens.append(mask)
            tokens.extend(velocity_tokens[step, [k for k in range(NUM_CLASSES) if mask >> k & 1]].tolist())
        tokens.append(self.end_token)
        return np.asarray(tokens, dtype=np.int32)

    def decode(self, tokens) -> list[NoteEvent]:
        """tokens -> drum events on the grid at each class's canonical pitch, one step long.

        START is skipped, END stops decoding; a velocity token with no struck class waiting for it is ignored
        (a sampled sequence can be malformed), and a class whose velocity token is missing plays at 90.
        """
        step_length = 1.0 / self.steps_per_quarter
        hits = grid_hits(tokens, self.start_token, self.end_token, self.velocity_of_token, DEFAULT_VELOCITY)
        events = [NoteEvent(step * step_length, step_length, CANONICAL_PITCHES[k], velocity, True)
                  for step, k, velocity in hits]
        events.sort(key=lambda event: (event.start, event.pitch))
        return events

    def velocity_of_token(self, token: int) -> int | None:
        """The velocity a velocity token stands for (its bin's middle); None for any other token."""
        if self.first_velocity_token <= token < self.vocab_size:
            return self.bin_velocity(token - self.first_velocity_token)
        return None


def grid_hits(tokens, start_token: int, end_token: int, hit_value, default) -> list[tuple[int, int, Any]]:
    """The hits a drum-grid token sequence describes: (step, class, value) for each struck class of each step.

    A grid-step token (< NUM_MASKS) opens a step with the classes its bitmask strikes; each token after it for which
    ``hit_value(token)`` is not None gives the next waiting class that value (the velocity and expressive tokenizers'
    per-hit tokens). START is skipped and END stops; a hit token with no class waiting is ignored, and a class whose
    hit token never came gets ``default`` (a sampled sequence can be malformed).
    """
    hits: list[tuple[int, int, Any]] = []
    step = -1
    pending: list[int] = []  # classes of the current step still waiting for their hit token
    for token in np.asarray(tokens, dtype=np.int64).tolist():
        if token == end_token:
            break
        if token == start_token:
            continue
        if token < NUM_MASKS:
            hits.extend((step, k, default) for k in pending)
            step += 1
            pending = [k for k in range(NUM_CLASSES) if token >> k & 1]
        elif pending:
            value = hit_value(token)
            if value is not None:
                hits.append((step, pending.pop(0), value))
    hits.extend((step, k, default) for k in pending)
    return hits
