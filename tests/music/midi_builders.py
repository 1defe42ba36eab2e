"""Tiny MIDI files written in code with mido (not with deeprnn's writer, so reading tests do not lean on the
code they check). A note is (start_tick, length_ticks, pitch, velocity, channel), channels counted from 1 as in
General MIDI, so drums are channel 10; 480 ticks per quarter.
"""

from __future__ import annotations

from pathlib import Path

import mido

TICKS_PER_QUARTER = 480

KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 42, 46, 49, 51


def build_midi(path: Path, notes, qpm: float = 120.0, time_signature=(4, 4)) -> Path:
    """Write a format-1 file: a conductor track (tempo, meter) and one track with the notes."""
    midi_file = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    conductor = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm), time=0),
        mido.MetaMessage("time_signature", numerator=time_signature[0], denominator=time_signature[1], time=0),
    ])
    messages = []
    for start, length, pitch, velocity, channel in notes:
        messages.append((start, 1, mido.Message("note_on", note=pitch, velocity=velocity, channel=channel - 1)))
        messages.append((start + length, 0, mido.Message("note_off", note=pitch, velocity=0, channel=channel - 1)))
    messages.sort(key=lambda item: (item[0], item[1]))
    track, now = mido.MidiTrack(), 0
    for tick, _, message in messages:
        track.append(message.copy(time=tick - now))
        now = tick
    midi_file.tracks.extend([conductor, track])
    midi_file.save(path)
    return Path(path)


