"""DrumGridTokenizer: Magenta's 9-class drum grid (GrooVAE's Roland map), one bitmask token per 16th step."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deeprnn.music import DrumGridTokenizer, NoteEvent, Tokenizer, read_events, write_midi
from deeprnn.music.drum_grid import CANONICAL_PITCHES, PITCH_TO_CLASS, ROLAND_DRUM_PITCH_CLASSES

from midi_builders import CLOSED_HAT, KICK, SNARE

START, END = 512, 513
# bit k of a step token <=> class k struck; classes in the Groove paper's order.
K, S, HH = 1 << 0, 1 << 1, 1 << 2


def test_rock_beat_becomes_one_token_per_sixteenth(rock_beat):
    tokens = DrumGridTokenizer().encode_file(rock_beat)

    # Beats 1 and 3: kick + hat; beats 2 and 4: snare + hat; the off-beat 8ths: hat alone; 16ths between: silent.
    one_beat_kick, one_beat_snare = [K | HH, 0, HH, 0], [S | HH, 0, HH, 0]
    bar = one_beat_kick + one_beat_snare + one_beat_kick + one_beat_snare
    # The piece ends on its last struck step (the hat on the "and" of 4), so the final silent 16th is not there.
    assert tokens.tolist() == [START] + bar[:-1] + [END]
    assert tokens.dtype == np.int32


def test_groove_papers_roland_map_sends_every_td11_pitch_to_its_class():
    expected = {"kick": [36], "snare": [38, 37, 40], "closed_hat": [42, 22, 44], "open_hat": [46, 26],
                "low_tom": [43, 58], "mid_tom": [47, 45], "high_tom": [50, 48], "crash": [49, 52, 55, 57],
                "ride": [51, 53, 59]}
    for drum_class, pitches in enumerate(expected.values()):
        assert [int(PITCH_TO_CLASS[p]) for p in pitches] == [drum_class] * len(pitches)


def test_every_general_midi_drum_pitch_has_a_class():
    # GM percussion keys run 35 (acoustic bass drum) to 81 (open triangle).
    assert all(PITCH_TO_CLASS[p] >= 0 for p in range(35, 82))
    assert PITCH_TO_CLASS[35] == 0  # acoustic bass drum is a kick
    assert PITCH_TO_CLASS[39] == 1  # hand clap counts as snare, as in Magenta


def test_canonical_pitches_belong_to_their_own_class():
    # Otherwise decode -> encode would move hits between classes.
    assert [int(PITCH_TO_CLASS[p]) for p in CANONICAL_PITCHES] == list(range(9))
    assert CANONICAL_PITCHES == tuple(pitches[0] for pitches in ROLAND_DRUM_PITCH_CLASSES)


def test_onsets_snap_to_the_nearest_sixteenth_and_pitched_notes_are_ignored():
    events = [NoteEvent(0.1, 0.1, KICK, 100, True),     # 0.4 steps -> step 0
              NoteEvent(0.14, 0.1, SNARE, 100, True),   # 0.56 steps -> step 1
              NoteEvent(0.0, 1.0, 60, 100, False)]      # a piano C4: not a drum

    assert DrumGridTokenizer().encode(events).tolist() == [START, K, S, END]


def test_decode_writes_canonical_pitches_on_the_grid():
    # Pitch 40 (snare rim) and 22 (hat edge) decode as the class's canonical snare 38 and closed hat 42.
    tokens = DrumGridTokenizer().encode([NoteEvent(0.0, 0.1, 40, 100, True), NoteEvent(0.5, 0.1, 22, 100, True)])

    assert DrumGridTokenizer().decode(tokens) == [NoteEvent(0.0, 0.25, 38, 90, True),
                                                  NoteEvent(0.5, 0.25, 42, 90, True)]


def test_velocity_bins_follow_each_step_token_in_class_order():
    tokenizer = DrumGridTokenizer(velocity_bins=4)  # bins of 1-127: [1-32], [33-64], [65-96], [97-127]
    events = [NoteEvent(0.0, 0.1, KICK, 120, True), NoteEvent(0.0, 0.1, CLOSED_HAT, 20, True),
              NoteEvent(0.25, 0.1, SNARE, 64, True)]

    tokens = tokenizer.encode(events).tolist()

    velocity = lambda b: 514 + b  # noqa: E731
    assert tokens == [START, K | HH, velocity(3), velocity(0), S, velocity(1), END]
    assert tokenizer.vocab_size == 514 + 4
    decoded = tokenizer.decode(tokens)
    assert [(e.pitch, tokenizer.velocity_bin(e.velocity)) for e in decoded] == [(36, 3), (42, 0), (38, 1)]


def test_json_round_trip_keeps_the_config(tmp_path):
    tokenizer = DrumGridTokenizer(steps_per_quarter=12, velocity_bins=8)

    loaded = Tokenizer.load(tokenizer.save(tmp_path / "tokenizer.json"))

    assert isinstance(loaded, DrumGridTokenizer) and loaded == tokenizer
    assert loaded.config == {"steps_per_quarter": 12, "velocity_bins": 8}
    assert '"type": "drum_grid"' in (tmp_path / "tokenizer.json").read_text()


# --- properties on random drum performances ----------------------------------------------------------------
ROLAND_PITCHES = sorted(p for pitches in ROLAND_DRUM_PITCH_CLASSES for p in pitches)
drum_hits = st.lists(
    st.builds(NoteEvent,
              start=st.integers(0, 16 * 480).map(lambda tick: tick / 480),  # MIDI ticks, 4 bars of 4/4
              duration=st.integers(1, 480).map(lambda tick: tick / 480),
              pitch=st.sampled_from(ROLAND_PITCHES),
              velocity=st.integers(1, 127),
              is_drum=st.just(True)),
    min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(drum_hits)
def test_decode_of_encode_reproduces_every_hit_on_the_grid(events):
    tokenizer = DrumGridTokenizer()

    decoded = tokenizer.decode(tokenizer.encode(events))

    expected = {(int(np.floor(e.start * 4 + 0.5)), int(PITCH_TO_CLASS[e.pitch])) for e in events}
    got = [(round(e.start * 4), int(PITCH_TO_CLASS[e.pitch])) for e in decoded]
    assert sorted(got) == sorted(expected)  # every (step, class) once, and nothing else


@settings(max_examples=30, deadline=None)
@given(drum_hits, st.sampled_from([0, 4, 16]))
def test_encode_write_read_encode_is_the_identity(tmp_path_factory, events, velocity_bins):
    tokenizer = DrumGridTokenizer(velocity_bins=velocity_bins)
    tokens = tokenizer.encode(events)
    path = tmp_path_factory.mktemp("roundtrip") / "decoded.mid"

    write_midi(tokenizer.decode(tokens), path, qpm=97)

    np.testing.assert_array_equal(tokenizer.encode(read_events(path).events), tokens)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 127), st.integers(1, 127))
def test_each_velocity_bins_centre_falls_back_in_its_bin(velocity, bins):
    tokenizer = DrumGridTokenizer(velocity_bins=bins)
    velocity_bin = tokenizer.velocity_bin(velocity)

    assert 0 <= velocity_bin < bins
    assert tokenizer.velocity_bin(tokenizer.bin_velocity(velocity_bin)) == velocity_bin

