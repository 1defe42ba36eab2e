"""A corpus survives any file: each hostile MIDI file named in issue 11 is one skip with a reason, never a crash,
never millions of silent tokens; limits are checked before anything large is built; writers validate arguments."""

from __future__ import annotations

import os

import pytest

from deeprnn.music import (DrumGridTokenizer, MidiReadError, NoteEvent, SeedTokenizer, read_events, tokenize_corpus,
                           write_midi)
from deeprnn.music import corpus as corpus_module
from deeprnn.music.limits import MAX_PIECE_QUARTERS

from hostile_midi import END_OF_TRACK, meta, midi_file, note, variable_length
from midi_builders import KICK, SNARE

ONE_KICK = midi_file(note(0, KICK) + END_OF_TRACK)


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, reason", [
    ("division0.mid", midi_file(note(0) + END_OF_TRACK, division=0), "time division: 0 ticks per quarter"),
    ("smpte0.mid", midi_file(note(0) + END_OF_TRACK, division=0xE700), "invalid SMPTE time division"),
    ("tempo0.mid", midi_file(meta(0, 0x51, b"\x00\x00\x00") + note(0) + END_OF_TRACK), "invalid tempo event"),
    ("tempo_short.mid", midi_file(meta(0, 0x51, b"") + note(0) + END_OF_TRACK), "invalid tempo event"),
    ("meter.mid", midi_file(meta(0, 0x58, b"\x04\xff\x18\x08") + note(0) + END_OF_TRACK), "invalid time signature"),
    ("format9.mid", midi_file(note(0) + END_OF_TRACK, midi_format=9), "unknown MIDI file format 9"),
    # garbage after a valid header: a delta time of 0xFF bytes that never ends (music21 allocated 8 GiB here)
    ("garbage.mid", midi_file(b"\xff" * 64), "variable-length number longer than 4 bytes"),
    ("no_status.mid", midi_file(b"\x00\x24\x40" + END_OF_TRACK), "data byte where a status byte must be"),
    ("meta_overrun.mid", midi_file(b"\x00\xff\x01\x7f" + b"abc"), "meta event of track 0 runs past its end"),
    ("realtime.mid", midi_file(b"\x00\xf8" + END_OF_TRACK), "real-time message"),
    ("data_byte.mid", midi_file(b"\x00\x99\x24\xc0" + END_OF_TRACK), "data byte >= 128"),
])
def test_malformed_midi_is_one_midi_read_error_naming_the_file_and_the_reason(tmp_path, name, data, reason):
    path = write(tmp_path, name, data)
    with pytest.raises(MidiReadError, match=reason) as caught:
        read_events(path)
    assert str(caught.value).startswith(str(path))


def test_one_maximal_delta_time_is_refused_not_turned_into_millions_of_silent_steps(tmp_path):
    # 45 bytes: a kick after 0x0FFFFFFF ticks = 559,240 quarters = 2.2 million drum-grid steps
    path = write(tmp_path, "far.mid", midi_file(note(0, KICK) + note(0x0FFFFFFF, SNARE) + END_OF_TRACK))
    assert path.stat().st_size == 45
    with pytest.raises(MidiReadError, match=r"559241 quarter notes long, more than the limit of 8192 \(max_quarters\)"):
        read_events(path)
    # the limit is an argument: a user who means it reads the file
    assert len(read_events(path, max_quarters=600_000).events) == 2


def test_the_file_size_limit_is_an_argument(tmp_path):
    path = write(tmp_path, "big.mid", ONE_KICK)
    with pytest.raises(MidiReadError, match=f"{len(ONE_KICK)} bytes, more than the 16 bytes a MIDI file may have"):
        read_events(path, max_bytes=16)
    assert len(read_events(path, max_bytes=len(ONE_KICK)).events) == 1


@pytest.mark.parametrize("argument, value", [("max_quarters", 0), ("max_quarters", float("nan")),
                                             ("max_bytes", 2.5), ("max_bytes", True)])
def test_read_limits_are_validated(tmp_path, argument, value):
    with pytest.raises(ValueError, match=argument):
        read_events(write(tmp_path, "a.mid", ONE_KICK), **{argument: value})


def test_hostile_files_are_skipped_by_name_and_the_corpus_keeps_the_good_one(tmp_path):
    good = write(tmp_path, "good.mid", ONE_KICK)
    hostile = [write(tmp_path, "tempo0.mid", midi_file(meta(0, 0x51, b"\0\0\0") + note(0) + END_OF_TRACK)),
               write(tmp_path, "division0.mid", midi_file(note(0) + END_OF_TRACK, division=0)),
               write(tmp_path, "far.mid", midi_file(note(0) + note(0x0FFFFFFF) + END_OF_TRACK)),
               write(tmp_path, "piano.mid", midi_file(note(0, 60, channel=1) + END_OF_TRACK))]
    lines = []
    corpus = tokenize_corpus([*hostile, good], DrumGridTokenizer(), cache_dir=tmp_path / "cache", workers=1,
                             report=lines.append)
    assert corpus.paths == [good]
    assert [path.name for path, _ in corpus.skipped] == ["tempo0.mid", "division0.mid", "far.mid", "piano.mid"]
    assert lines == [f"skipping {path}: {reason}" for path, reason in corpus.skipped]
    # a file with no drum hits is not an empty drum piece [START, END]
    assert "no notes this tokenizer encodes" in corpus.skipped[3][1] and "drum hits" in corpus.skipped[3][1]


def test_whatever_fails_inside_the_reader_or_tokenizer_skips_only_that_file(tmp_path, monkeypatch):
    good, cursed = write(tmp_path, "good.mid", ONE_KICK), write(tmp_path, "cursed.mid", ONE_KICK + b"\0")
    real_read = corpus_module.read_events

    def read_with_an_unforeseen_bug(path, **kwargs):
        if path.name == "cursed.mid":
            raise ZeroDivisionError("division by zero")
        return real_read(path, **kwargs)

    monkeypatch.setattr(corpus_module, "read_events", read_with_an_unforeseen_bug)
    lines = []
    corpus = tokenize_corpus([cursed, good], DrumGridTokenizer(), use_cache=False, workers=1, report=lines.append)
    assert corpus.paths == [good]
    assert lines == [f"skipping {cursed}: unexpected ZeroDivisionError while reading it: division by zero"]


def test_a_cached_piece_still_obeys_a_lower_length_limit(tmp_path):
    long_piece = write(tmp_path, "long.mid", midi_file(note(0) + note(480 * 100) + END_OF_TRACK))  # 100 quarters
    tokenizer, cache = DrumGridTokenizer(), tmp_path / "cache"
    assert len(tokenize_corpus([long_piece], tokenizer, cache_dir=cache, workers=1)) == 1
    with pytest.raises(ValueError, match="long.mid: the piece is 100 quarter notes long"):
        tokenize_corpus([long_piece], tokenizer, cache_dir=cache, workers=1, max_quarters=50, report=print)


def test_an_empty_drum_piece_left_in_an_old_cache_is_still_skipped(tmp_path):
    piano = write(tmp_path, "piano.mid", midi_file(note(0, 60, channel=1) + END_OF_TRACK))
    tokenizer, cache = DrumGridTokenizer(), tmp_path / "cache"
    for _ in range(2):  # cold, then from the cache
        with pytest.raises(ValueError, match="empty corpus: .*drum hits"):
            tokenize_corpus([piano], tokenizer, cache_dir=cache, workers=1, report=print)


def test_the_drum_grid_refuses_a_hit_too_far_away_before_allocating_the_grid():
    far = [NoteEvent(0.0, 1.0, KICK, 100, True), NoteEvent(1e12, 1.0, SNARE, 100, True)]
    with pytest.raises(ValueError, match="grid steps"):
        DrumGridTokenizer().encode(far)
    with pytest.raises(ValueError, match="grid steps"):
        DrumGridTokenizer().encode([NoteEvent(float("nan"), 1.0, KICK, 100, True)])


@pytest.mark.parametrize("kwargs, argument", [({"steps_per_quarter": 2.7}, "steps_per_quarter"),
                                              ({"steps_per_quarter": True}, "steps_per_quarter"),
                                              ({"steps_per_quarter": 0}, "steps_per_quarter"),
                                              ({"steps_per_quarter": 10**9}, "steps_per_quarter"),
                                              ({"velocity_bins": -1}, "velocity_bins"),
                                              ({"velocity_bins": float("inf")}, "velocity_bins")])
def test_drum_grid_arguments_are_validated_naming_the_argument_and_value(kwargs, argument):
    with pytest.raises(ValueError, match=rf"{argument} must .* got {kwargs[argument]!r}"):
        DrumGridTokenizer(**kwargs)


def test_seed_tokenizer_drum_mode_must_be_a_flag():
    with pytest.raises(ValueError, match="drum_mode must be True, False or None, got 'yes'"):
        SeedTokenizer(drum_mode="yes")


@pytest.mark.parametrize("kwargs, message", [
    ({"qpm": 0}, "qpm must be >= "), ({"qpm": float("nan")}, "qpm must be finite"), ({"qpm": 1e9}, "qpm must be <="),
    ({"ticks_per_quarter": 0}, "ticks_per_quarter must be >= 1"), ({"ticks_per_quarter": 480.5}, "ticks_per_quarter"),
    ({"time_signature": (4, 3)}, "power of two"), ({"time_signature": (0, 4)}, "numerator must be >= 1"),
    ({"time_signature": 4}, "must be a pair"),
    ({"events": [NoteEvent(float("nan"), 1.0, KICK, 100, True)]}, r"events\[0\] has start nan"),
    ({"events": [NoteEvent(0.0, 1.0, 200, 100, True)]}, r"events\[0\] has pitch 200"),
    ({"events": [NoteEvent(MAX_PIECE_QUARTERS + 1.0, 1.0, KICK, 100, True)]}, "end within"),
])
def test_write_midi_validates_before_writing_and_leaves_nothing_behind(tmp_path, kwargs, message):
    arguments = {"events": [NoteEvent(0.0, 1.0, KICK, 100, True)], "path": tmp_path / "out.mid", **kwargs}
    with pytest.raises(ValueError, match=message):
        write_midi(**arguments)
    assert os.listdir(tmp_path) == []


def test_write_midi_replaces_a_file_atomically(tmp_path, monkeypatch):
    path = write_midi([NoteEvent(0.0, 1.0, KICK, 100, True)], tmp_path / "out.mid")
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_midi([NoteEvent(0.0, 1.0, SNARE, 100, True)], path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["out.mid"]


def test_variable_length_helper_encodes_the_standards_examples(tmp_path):
    # the examples of the Standard MIDI File spec, so the hostile files above mean what they say
    assert variable_length(0x7F) == b"\x7f" and variable_length(0x80) == b"\x81\x00"
    assert variable_length(0x0FFFFFFF) == b"\xff\xff\xff\x7f"
    assert [event.pitch for event in read_events(write(tmp_path, "one.mid", ONE_KICK)).events] == [KICK]
