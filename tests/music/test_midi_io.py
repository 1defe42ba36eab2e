"""read_events / write_midi: note events in quarter notes, drums on channel 10, and errors that name the file."""

from __future__ import annotations

import mido
import pytest
from music21 import converter, note, percussion, tempo

from deeprnn.music import MidiReadError, NoteEvent, read_events, write_midi

from midi_builders import CLOSED_HAT, KICK, SNARE, TICKS_PER_QUARTER as Q


def test_reads_drum_hits_in_quarter_notes_with_tempo_and_meter(rock_beat):
    song = read_events(rock_beat)

    assert song.qpm == pytest.approx(100.0)
    assert song.time_signature == (4, 4)
    assert all(event.is_drum for event in song.events)
    kicks = [event.start for event in song.events if event.pitch == KICK]
    snares = [event.start for event in song.events if event.pitch == SNARE]
    hats = [event.start for event in song.events if event.pitch == CLOSED_HAT]
    assert kicks == [0.0, 2.0] and snares == [1.0, 3.0]
    assert hats == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    # Events sort by onset, then pitch: the kick (36) before the hat (42) on beat 1.
    assert song.events[:2] == [NoteEvent(start=0.0, duration=60 / Q, pitch=KICK, velocity=110, is_drum=True),
                               NoteEvent(start=0.0, duration=60 / Q, pitch=CLOSED_HAT, velocity=70, is_drum=True)]


def test_pitched_notes_keep_duration_and_velocity_and_are_not_drums(make_midi):
    # A half-note C4 on channel 1 and a dotted-quarter E4 starting on beat 2, with a 3/4 meter.
    path = make_midi("melody.mid", [(0, 2 * Q, 60, 80, 1), (Q, 3 * Q // 2, 64, 50, 1)], time_signature=(3, 4))

    song = read_events(path)

    assert song.events == [NoteEvent(0.0, 2.0, 60, 80, False), NoteEvent(1.0, 1.5, 64, 50, False)]
    assert song.time_signature == (3, 4)


def test_a_restruck_drum_pairs_note_offs_first_in_first_out(make_midi):
    # Two snare hits 120 ticks apart, each 240 ticks long: the second note-on comes before the first note-off.
    path = make_midi("flam.mid", [(0, 240, SNARE, 90, 10), (120, 240, SNARE, 40, 10)])

    starts_and_lengths = [(e.start, e.duration, e.velocity) for e in read_events(path).events]

    assert starts_and_lengths == [(0.0, 0.5, 90), (0.25, 0.5, 40)]


def test_note_on_with_velocity_zero_ends_a_note(tmp_path):
    track = mido.MidiTrack([mido.Message("note_on", note=KICK, velocity=100, channel=9, time=0),
                            mido.Message("note_on", note=KICK, velocity=0, channel=9, time=Q)])
    midi_file = mido.MidiFile(type=0, ticks_per_beat=Q)
    midi_file.tracks.append(track)
    midi_file.save(tmp_path / "running.mid")

    assert read_events(tmp_path / "running.mid").events == [NoteEvent(0.0, 1.0, KICK, 100, True)]


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "not a Standard MIDI File"),
])
def test_empty_and_non_midi_files_raise_an_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken.mid"
    path.write_bytes(content)

    with pytest.raises(MidiReadError, match=message) as caught:
        read_events(path)
    assert str(path) in str(caught.value)


def test_a_truncated_file_is_an_error_not_a_shorter_song(rock_beat, tmp_path):
    data = rock_beat.read_bytes()
    truncated = tmp_path / "truncated.mid"
    truncated.write_bytes(data[: len(data) - 20])

    with pytest.raises(MidiReadError, match="truncated") as caught:
        read_events(truncated)
    assert str(truncated) in str(caught.value)


def test_a_missing_file_raises_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.mid"):
        read_events(tmp_path / "nowhere.mid")


MIXED = [
    NoteEvent(0.0, 2.0, 60, 100, False),   # C4 half note
    NoteEvent(0.0, 2.0, 64, 80, False),    # E4 with it: a chord
    NoteEvent(2.0, 0.5, 67, 30, False),    # G4 eighth, soft
    NoteEvent(0.0, 0.25, KICK, 127, True),
    NoteEvent(1.0, 0.25, SNARE, 90, True),
    NoteEvent(1.5, 0.25, CLOSED_HAT, 40, True),
]


def test_write_then_read_returns_the_same_events_tempo_and_meter(tmp_path):
    path = write_midi(MIXED, tmp_path / "mixed.mid", qpm=90, time_signature=(3, 4))

    song = read_events(path)

    assert song.events == sorted(MIXED, key=lambda e: (e.start, e.pitch))
    assert song.qpm == pytest.approx(90.0)
    assert song.time_signature == (3, 4)


def test_written_file_reads_back_with_mido_drums_on_channel_10(tmp_path):
    path = write_midi(MIXED, tmp_path / "mixed.mid", qpm=90)
    midi_file = mido.MidiFile(path)

    note_ons = [m for track in midi_file.tracks for m in track if m.type == "note_on" and m.velocity > 0]
    tempos = [m.tempo for track in midi_file.tracks for m in track if m.type == "set_tempo"]

    # mido counts channels from 0: General MIDI's drum channel 10 is 9.
    assert sorted((m.note, m.velocity) for m in note_ons if m.channel == 9) == [(KICK, 127), (SNARE, 90),
                                                                                (CLOSED_HAT, 40)]
    assert sorted((m.note, m.velocity) for m in note_ons if m.channel == 0) == [(60, 100), (64, 80), (67, 30)]
    assert tempos == [mido.bpm2tempo(90)]


def test_written_file_reads_back_with_music21_as_piano_notes_and_percussion(tmp_path):
    path = write_midi(MIXED, tmp_path / "mixed.mid", qpm=90)
    score = converter.parse(str(path))

    pitched = [p.midi for n in score.recurse().notes if not isinstance(n, (note.Unpitched, percussion.PercussionChord))
               for p in n.pitches]
    percussive = list(score.recurse().getElementsByClass((note.Unpitched, percussion.PercussionChord)))
    marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))

    assert sorted(pitched) == [60, 64, 67]
    assert len(percussive) == 3  # kick, snare, hat at three different onsets
    assert marks[0].number == pytest.approx(90)


def test_score_formats_are_read_through_music21(tmp_path):
    # A MusicXML file with a C-major triad then a D4: the path for music21's bundled corpus.
    from music21 import chord, stream

    part = stream.Part([chord.Chord(["C4", "E4", "G4"], quarterLength=1.0), note.Note("D4", quarterLength=2.0)])
    path = tmp_path / "tiny.musicxml"
    stream.Score([part]).write("musicxml", fp=str(path))

    song = read_events(path)

    assert [(e.start, e.duration, e.pitch) for e in song.events] == [(0.0, 1.0, 60), (0.0, 1.0, 64),
                                                                     (0.0, 1.0, 67), (1.0, 2.0, 62)]
    assert not any(e.is_drum for e in song.events)
