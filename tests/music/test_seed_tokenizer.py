"""SeedTokenizer: the tutorial's get_notes()/create_midi() vocabulary, and its drum-safe variant."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from music21 import chord

from deeprnn.music import NoteEvent, SeedTokenizer, Tokenizer, read_events, write_midi

from midi_builders import CLOSED_HAT, KICK, SNARE


def piano(start, pitch, duration=1.0):
    return NoteEvent(start, duration, pitch, 80, False)


def drum(start, pitch):
    return NoteEvent(start, 0.1, pitch, 100, True)


# E4, then a C-major triad, then B-flat 3: the tutorial's symbols are 'E4', '0.4.7', 'B-3'.
MELODY = [piano(0.0, 64), piano(1.0, 60), piano(1.0, 64), piano(1.0, 67), piano(2.0, 58)]


def test_pitched_symbols_are_the_tutorials_str_pitch_and_normal_order():
    tokenizer = SeedTokenizer(drum_mode=False)

    assert tokenizer.symbols(MELODY) == ["E4", "0.4.7", "B-3"]


def test_onsets_snap_to_music21s_sixteenth_and_triplet_grid_before_grouping():
    # A humanized chord (notes 10 ms apart) is one chord after music21's quantization, as in the tutorial.
    loose_chord = [piano(1.01, 60), piano(0.99, 64), piano(1.0, 67)]
    triplet = [piano(1 / 3 + 0.01, 62)]

    assert SeedTokenizer(drum_mode=False).symbols(triplet + loose_chord) == ["D4", "0.4.7"]


def test_normal_order_collides_on_drums_and_drum_mode_keys_by_midi_pitch():
    kick_snare_hat = [KICK, SNARE, CLOSED_HAT]  # 36 38 42: pitch classes 0 2 6
    two_toms_and_a_hat_pedal = [48, 50, 54]  # also pitch classes 0 2 6
    # The tutorial's chord symbol cannot tell them apart ...
    assert chord.Chord(kick_snare_hat).normalOrder == chord.Chord(two_toms_and_a_hat_pedal).normalOrder
    # ... drum mode can.
    tokenizer = SeedTokenizer(drum_mode=True)
    events = [drum(0.0, p) for p in kick_snare_hat] + [drum(0.5, p) for p in two_toms_and_a_hat_pedal]
    assert tokenizer.symbols(events) == ["36.38.42", "48.50.54"]


def test_fit_builds_a_sorted_vocabulary_from_training_pieces_and_unknowns_map_to_unk():
    tokenizer = SeedTokenizer().fit([MELODY])

    assert tokenizer.drum_mode is False  # chosen by fit: no drums in the training pieces
    assert tokenizer.vocabulary == ["0.4.7", "B-3", "E4"]
    assert tokenizer.unk_id == 3 and tokenizer.vocab_size == 4
    unseen_d4 = piano(3.0, 62)
    assert tokenizer.encode(MELODY + [unseen_d4]).tolist() == [2, 0, 1, tokenizer.unk_id]


def test_fit_picks_drum_mode_when_most_events_are_drums():
    beat = [drum(0.0, KICK), drum(0.0, CLOSED_HAT), drum(0.5, CLOSED_HAT), drum(1.0, SNARE)]

    tokenizer = SeedTokenizer().fit([beat])

    assert tokenizer.drum_mode is True
    assert tokenizer.vocabulary == ["36.42", "38", "42"]


def test_decode_steps_a_fixed_eighth_note_like_the_tutorial():
    tokenizer = SeedTokenizer().fit([MELODY])

    decoded = tokenizer.decode([2, 0, tokenizer.unk_id, 1])  # E4, C major, (unknown: silent), B-flat 3

    assert [(e.start, e.pitch) for e in decoded] == [(0.0, 64), (0.5, 60), (0.5, 64), (0.5, 67), (1.5, 58)]
    assert all(e.duration == 1.0 and not e.is_drum for e in decoded)


def test_encode_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="fit"):
        SeedTokenizer().encode(MELODY)


def test_vocabulary_is_saved_as_json_with_the_model(tmp_path):
    tokenizer = SeedTokenizer().fit([MELODY])

    loaded = Tokenizer.load(tokenizer.save(tmp_path / "seed.json"))

    assert isinstance(loaded, SeedTokenizer) and loaded == tokenizer
    np.testing.assert_array_equal(loaded.encode(MELODY), tokenizer.encode(MELODY))


# --- round trips on random pieces -----------------------------------------------------------------------------
onsets = st.integers(0, 64).map(lambda sixteenth: sixteenth / 4)
pitched_pieces = st.lists(st.builds(piano, onsets, st.integers(36, 96)), min_size=1, max_size=30)
drum_pieces = st.lists(st.builds(drum, onsets, st.sampled_from([35, 36, 37, 38, 42, 44, 46, 49, 51, 56])),
                       min_size=1, max_size=30)


@settings(max_examples=40, deadline=None)
@given(st.one_of(pitched_pieces, drum_pieces))
def test_encode_write_read_encode_is_the_identity(tmp_path_factory, events):
    tokenizer = SeedTokenizer().fit([events])
    tokens = tokenizer.encode(events)
    path = tmp_path_factory.mktemp("seed") / "decoded.mid"

    write_midi(tokenizer.decode(tokens), path)

    np.testing.assert_array_equal(tokenizer.encode(read_events(path).events), tokens)
    assert tokenizer.unk_id not in tokens  # every symbol was in the training piece


@settings(max_examples=60, deadline=None)
@given(drum_pieces)
def test_drum_mode_decode_reproduces_every_hit_at_its_onset_index(events):
    tokenizer = SeedTokenizer(drum_mode=True).fit([events])

    decoded = tokenizer.decode(tokenizer.encode(events))

    onset_order = sorted({e.start for e in events})
    expected = {(onset_order.index(e.start) * 0.5, e.pitch) for e in events}
    assert {(e.start, e.pitch) for e in decoded} == expected
