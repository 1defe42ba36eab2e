"""ExpressiveDrumGridTokenizer: the drum grid, each struck class followed by its (velocity bin, offset bin) token."""

from __future__ import annotations

import numpy as np
import pytest

from deeprnn.music import ExpressiveDrumGridTokenizer, NoteEvent, Tokenizer, read_events, write_midi
from deeprnn.music.drum_grid import DrumGridTokenizer

from midi_builders import CLOSED_HAT, KICK, SNARE

START, END = 512, 513
K, S, HH = 1 << 0, 1 << 1, 1 << 2


def test_a_hit_token_follows_each_struck_class_in_class_order():
    tokenizer = ExpressiveDrumGridTokenizer(velocity_bins=8, offset_bins=12)
    # 16th steps are 0.25 quarters: the hat is 0.1 step late, the kick 0.2 step early on step 1, the snare on time.
    events = [NoteEvent(0.025, 0.1, CLOSED_HAT, 60, True),   # step 0, offset +0.1
              NoteEvent(0.2, 0.1, KICK, 127, True),          # step 1, offset -0.2
              NoteEvent(0.25, 0.1, SNARE, 1, True)]          # step 1, offset 0
    hit = lambda velocity_bin, offset_bin: 514 + velocity_bin * 12 + offset_bin  # noqa: E731
    # velocity bins: (60-1)*8//127 = 3, 7, 0; offset bins: floor((o + .5) * 12) = 7, 3, 6
    assert tokenizer.encode(events).tolist() == [START, HH, hit(3, 7), K | S, hit(7, 3), hit(0, 6), END]
    assert tokenizer.vocab_size == 514 + 8 * 12


def test_the_step_tokens_are_the_drum_grids():
    events = [NoteEvent(start, 0.1, pitch, 90, True) for start, pitch in
              [(0.0, KICK), (0.26, CLOSED_HAT), (0.5, SNARE), (0.49, CLOSED_HAT), (1.75, KICK)]]
    expressive = ExpressiveDrumGridTokenizer().encode(events)
    steps_only = expressive[(expressive < 514)]
    assert steps_only.tolist() == DrumGridTokenizer().encode(events).tolist()


def test_a_flam_is_one_hit_the_loudest_with_its_own_offset():
    tokenizer = ExpressiveDrumGridTokenizer(velocity_bins=4, offset_bins=4)
    events = [NoteEvent(0.24, 0.1, SNARE, 30, True), NoteEvent(0.26, 0.1, SNARE, 120, True)]  # -0.04 and +0.04
    tokens = tokenizer.encode(events)
    assert tokens.tolist() == [START, 0, S, 514 + 3 * 4 + 2, END]


def random_performance(rng, hits=60):
    return [NoteEvent(float(rng.uniform(0, 16)), 0.1, int(pitch), int(velocity), True)
            for pitch, velocity in zip(rng.choice([KICK, SNARE, CLOSED_HAT, 46, 43, 47, 50, 49, 51], hits),
                                       rng.integers(1, 128, hits))]


@pytest.mark.parametrize("velocity_bins, offset_bins", [(8, 12), (32, 32), (1, 1)])
def test_velocity_and_offset_survive_encode_decode_within_a_bin(velocity_bins, offset_bins):
    tokenizer = ExpressiveDrumGridTokenizer(velocity_bins=velocity_bins, offset_bins=offset_bins)
    rng = np.random.default_rng(velocity_bins)
    events = random_performance(rng)
    steps, classes, velocities, offsets = tokenizer.quantize_with_offsets(events)
    loudest = {}
    for step, k, velocity, offset in zip(steps, classes, velocities, offsets):
        if (step, k) not in loudest or velocity >= loudest[step, k][0]:
            loudest[step, k] = (velocity, offset)
    tokens = tokenizer.encode(events)
    for decoding in (None, np.random.default_rng(1)):  # bin middles, and values drawn inside the bins
        d_steps, d_classes, d_velocities, d_offsets = tokenizer.decode_hits(tokens, decoding)
        assert sorted(zip(d_steps.tolist(), d_classes.tolist())) == sorted(loudest)
        for step, k, velocity, offset in zip(d_steps, d_classes, d_velocities, d_offsets):
            original_velocity, original_offset = loudest[step, k]
            assert abs(velocity - original_velocity) <= 127 / velocity_bins
            assert abs(offset - original_offset) < 1 / offset_bins
            assert tokenizer.velocity_bin(velocity) == tokenizer.velocity_bin(original_velocity)
            assert tokenizer.offset_bin(offset) == tokenizer.offset_bin(original_offset)


def test_decoded_notes_sit_off_the_grid_by_their_offset():
    tokenizer = ExpressiveDrumGridTokenizer(velocity_bins=8, offset_bins=10)
    # step 2, offset bin 2 of 10: middle -0.25 step = -0.0625 quarters
    events = tokenizer.decode([START, 0, 0, S, 514 + 5 * 10 + 2, END])
    assert [(event.start, event.pitch) for event in events] == [(pytest.approx(0.5 - 0.0625), SNARE)]


def test_encode_decode_write_read_encode_is_the_identity(tmp_path):
    tokenizer = ExpressiveDrumGridTokenizer()
    tokens = tokenizer.encode(random_performance(np.random.default_rng(3), hits=120))
    path = write_midi(tokenizer.decode(tokens), tmp_path / "played.mid", qpm=97)
    assert tokenizer.encode(read_events(path).events).tolist() == tokens.tolist()


def test_malformed_sequences_decode_and_the_owed_count_follows_the_grammar():
    tokenizer = ExpressiveDrumGridTokenizer(velocity_bins=2, offset_bins=2)
    # a stray hit token before any step, then kick+snare with one hit token only: the snare plays at 90 on the grid
    tokens = [START, 514, K | S, 517, END]
    events = tokenizer.decode(tokens)
    assert [(event.pitch, event.velocity) for event in events] == [(SNARE, 90), (KICK, 96)]
    assert [tokenizer.hits_owed(tokens[:n]) for n in range(1, 5)] == [0, 0, 2, 1]


def test_the_json_form_rebuilds_the_same_tokenizer_and_bins_are_checked():
    tokenizer = ExpressiveDrumGridTokenizer(velocity_bins=6, offset_bins=9)
    again = Tokenizer.from_json(tokenizer.to_json())
    assert type(again) is ExpressiveDrumGridTokenizer and again.config == tokenizer.config
    with pytest.raises(ValueError, match="offset_bins"):
        ExpressiveDrumGridTokenizer(offset_bins=0)
