"""The drum grid with the drummer in it: every struck class carries its velocity and its offset from the grid.

The Groove MIDI Dataset was recorded to capture how drummers play: a hit lands a few milliseconds off its 16th
note and at its own loudness. GrooVAE (Gillick et al., 2019) keeps, for every step and class, a hit flag, a
velocity and an offset in [-0.5, 0.5) of a step. Here that becomes tokens, so the same language model learns it.

Token layout (vocab_size 514 + V * O, with V velocity bins and O offset bins; defaults 8 and 12):

    0..511          one grid step: the bitmask of the classes struck on it (DrumGridTokenizer's step tokens)
    512, 513        START, END
    514 + b_v*O + b_o   one hit: velocity bin b_v, offset bin b_o

Each step token is followed by one hit token per struck class, in class order (kick first), like the drum grid's
velocity tokens: a piece of S steps with N struck (step, class) pairs is S + N + 2 tokens, about 2.2 S on Groove
(1.2 struck classes a step). One joint token per hit, not a velocity and an offset token, keeps that at one token
a hit instead of two, and lets the model learn how loudness and timing go together.

Bins (docs/expressive-drums.md): b_v = floor((v - 1) V / 127) as DrumGridTokenizer's; b_o = floor((o + 1/2) O).
Decoding plays the middle of each bin, or, given a random generator, a value drawn uniformly inside the bin, so
generated velocities and offsets spread like the data instead of sitting on V x O points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprnn.music.drum_grid import CANONICAL_PITCHES, NUM_CLASSES, NUM_MASKS, DrumGridTokenizer, grid_hits
from deeprnn.music.limits import check_number
from deeprnn.music.midi_io import DEFAULT_VELOCITY, NoteEvent


class ExpressiveDrumGridTokenizer(DrumGridTokenizer):
    """Drum hits -> step tokens, each followed by one (velocity bin, offset bin) token per struck class.

    steps_per_quarter: the grid (4: 16th notes); velocity_bins: V >= 1; offset_bins: O >= 1 bins of [-0.5, 0.5).
    Several hits of one class on one step (a flam) are one hit: the loudest, with its own offset.
    """

    type_name = "expressive_drum_grid"

    def __init__(self, steps_per_quarter: int = 4, velocity_bins: int = 8, offset_bins: int = 12):
        check_number("velocity_bins", velocity_bins, integer=True, minimum=1, maximum=127)
        check_number("offset_bins", offset_bins, integer=True, minimum=1, maximum=120)
        super().__init__(steps_per_quarter, velocity_bins)
        self.offset_bins = int(offset_bins)
        self.first_hit_token = self.first_velocity_token

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "offset_bins": self.offset_bins}

    @property
    def vocab_size(self) -> int:
        return NUM_MASKS + 2 + self.velocity_bins * self.offset_bins

    # --- bins -----------------------------------------------------------------------------------------------------
    def offset_bin(self, offset):
        """offset in [-0.5, 0.5) steps (scalar or array) -> bin 0..O-1."""
        bins = np.floor((np.asarray(offset, dtype=float) + 0.5) * self.offset_bins).astype(np.int64)
        return np.clip(bins, 0, self.offset_bins - 1)

    def bin_offset(self, offset_bin, rng=None):
        """bin -> an offset inside it: the middle, or drawn uniformly in [lower, upper) edge when rng is given."""
        where_in_bin = 0.5 if rng is None else rng.random(np.shape(offset_bin))
        return (np.asarray(offset_bin) + where_in_bin) / self.offset_bins - 0.5

    def velocity_in_bin(self, velocity_bin, rng):
        """A velocity drawn uniformly among the integers of the bin (``bin_velocity`` gives the middle)."""
        lowest = -(-velocity_bin * 127 // self.velocity_bins)
        highest = -(-(velocity_bin + 1) * 127 // self.velocity_bins) - 1
        return int(1 + rng.integers(lowest, highest + 1))

    def hit_token(self, velocity_bin, offset_bin):
        return self.first_hit_token + np.asarray(velocity_bin) * self.offset_bins + np.asarray(offset_bin)

    def is_hit_token(self, token) -> bool:
        return self.first_hit_token <= token < self.vocab_size

    # --- encode ---------------------------------------------------------------------------------------------------
    def played_hits(self, events: list[NoteEvent]):
        """One hit per struck (step, class), as encode keeps it: (step, class, velocity, offset) arrays, each (N,),
        sorted by (step, class). The loudest hit of a pair speaks for it, with its own offset."""
        steps, classes, velocities, offsets = self.quantize_with_offsets(events)
        order = np.lexsort((velocities, classes, steps))
        steps, classes, velocities, offsets = steps[order], classes[order], velocities[order], offsets[order]
        last = np.append((steps[1:] != steps[:-1]) | (classes[1:] != classes[:-1]), True)[:len(steps)]
        return steps[last], classes[last], velocities[last], offsets[last]

    def encode(self, events: list[NoteEvent]) -> np.ndarray:
        """events -> (T,) int32: START, per step its mask then one hit token per struck class, END."""
        steps, classes, velocities, offsets = self.played_hits(events)
        num_steps = int(steps.max()) + 1 if len(steps) else 0
        masks = np.zeros(num_steps, dtype=np.int64)
        np.bitwise_or.at(masks, steps, 1 << classes)
        hit_tokens = np.zeros((num_steps, NUM_CLASSES), dtype=np.int64)
        hit_tokens[steps, classes] = self.hit_token(self.velocity_bin(velocities), self.offset_bin(offsets))
        tokens = [self.start_token]
        for step, mask in enumerate(masks.tolist()):
            tokens.append(mask)
            tokens.extend(hit_tokens[step, [k for k in range(NUM_CLASSES) if mask >> k & 1]].tolist())
        tokens.append(self.end_token)
        return np.asarray(tokens, dtype=np.int32)

    # --- decode ---------------------------------------------------------------------------------------------------
    def decode_hits(self, tokens, rng=None):
        """tokens -> the hits as arrays (step, class, velocity, offset), each (N,), in token order.

        START is skipped, END stops; a hit token with no struck class waiting for it is ignored and a struck class
        whose hit token never came plays at velocity 90 on the grid (a sampled sequence can be malformed).
        rng: None decodes each bin's middle; a numpy Generator draws velocity and offset uniformly in the bins.
        """
        def played(token):
            """(velocity, offset) of a hit token, drawn in order (one draw each) when there is an rng."""
            if not self.is_hit_token(token):
                return None
            velocity_bin, offset_bin = divmod(token - self.first_hit_token, self.offset_bins)
            velocity = self.bin_velocity(velocity_bin) if rng is None else self.velocity_in_bin(velocity_bin, rng)
            return velocity, float(self.bin_offset(offset_bin, rng))

        hits = grid_hits(tokens, self.start_token, self.end_token, played, (DEFAULT_VELOCITY, 0.0))
        if not hits:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, np.zeros(0)
        steps, classes, values = zip(*hits)
        velocities, offsets = zip(*values)
        return (np.array(steps, np.int64), np.array(classes, np.int64), np.array(velocities, np.int64),
                np.array(offsets, float))

    def decode(self, tokens, rng=None) -> list[NoteEvent]:
        """tokens -> drum events at each class's canonical pitch, starting at (step + offset) / steps_per_quarter
        quarter notes (never before 0), one step long. rng: see ``decode_hits``."""
        step_length = 1.0 / self.steps_per_quarter
        steps, classes, velocities, offsets = self.decode_hits(tokens, rng)
        events = [NoteEvent(max(0.0, (step + offset) * step_length), step_length, CANONICAL_PITCHES[k], velocity,
                            True)
                  for step, k, velocity, offset in zip(steps.tolist(), classes.tolist(), velocities.tolist(),
                                                       offsets.tolist())]
        events.sort(key=lambda event: (event.start, event.pitch))
        return events

    # --- the grammar a sampler keeps ------------------------------------------------------------------------------
    def hits_owed(self, tokens) -> int:
        """How many hit tokens the last step token of ``tokens`` still waits for (0: a step token comes next)."""
        owed = 0
        for token in np.asarray(tokens, dtype=np.int64).tolist():
            owed = self.owed_after(owed, token)
        return owed

    def owed_after(self, owed: int, token: int) -> int:
        if token < NUM_MASKS:
            return bin(token).count("1")
        if self.is_hit_token(token):
            return max(owed - 1, 0)
        return 0  # START, END

    def forbidden_while(self, owed: int) -> range:
        """Tokens that would break the layout: any but a hit token while hits are owed, a hit token when none is."""
        return range(0, self.first_hit_token) if owed else range(self.first_hit_token, self.vocab_size)
