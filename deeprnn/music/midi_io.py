"""Reading and writing MIDI as a flat list of note events.

A file becomes a `NoteSequence`: `events` (one `NoteEvent` per sounding note, times in quarter notes), the first
tempo `qpm` and the first `time_signature`. Everything downstream (tokenizers, the corpus cache) sees only events,
so it does not care whether they came from a Standard MIDI File or a score in music21's corpus.

Why the low-level reader: `music21.converter.parse` builds a full score (quantization, voices, measures) and takes
about 0.2 s per Groove file; `music21.midi.MidiFile` only decodes the byte stream and takes about 8 ms. We pair
note-ons with note-offs ourselves, which also keeps drum hits as plain MIDI pitches instead of music21's
`Unpitched`/`PercussionChord` objects (the reason the tutorial's `get_notes()` finds nothing in Groove, see
docs/music-data.md).

music21 is imported inside the functions: importing it costs ~0.25 s, and a warm corpus load never needs it.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple

# General MIDI reserves channel 10 (1-based, as music21 counts) for percussion.
DRUM_CHANNEL = 10
PITCHED_CHANNEL = 1
# music21 writes notes without a dynamic at velocity 90; decoded tokens carry no velocity, so they use the same.
DEFAULT_VELOCITY = 90
MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")


class NoteEvent(NamedTuple):
    """One note: onset and length in quarter notes (tempo-independent), MIDI pitch 0-127, velocity 1-127.

    For a drum hit (`is_drum`) the pitch is the General MIDI percussion key (36 kick, 38 snare, ...) and the
    duration matters little: a drum machine plays the sample to its end.
    """

    start: float
    duration: float
    pitch: int
    velocity: int
    is_drum: bool


@dataclass
class NoteSequence:
    """What `read_events` returns: events sorted by (start, pitch), the first tempo and time signature.

    Files with tempo changes keep only the first tempo here; event times are in quarter notes, so they stay right.
    """

    events: list[NoteEvent]
    qpm: float = 120.0
    time_signature: tuple[int, int] = (4, 4)
    path: Path | None = field(default=None, compare=False)


class MidiReadError(ValueError):
    """A file could not be read as music; the message starts with the file's path."""


def read_events(path: str | Path) -> NoteSequence:
    """Read a MIDI file (or, through music21's converter, any score format it knows) into note events.

    MIDI (`.mid`, `.midi`, ...) takes the fast path through `music21.midi.MidiFile`; other suffixes (`.mxl`,
    `.xml`, `.krn`, ...) go through `music21.converter.parse`, which is ~50x slower but lets the seed tokenizer
    be demoed on music21's bundled corpus without any download.

    Raises FileNotFoundError for a missing file and MidiReadError (naming the file) for an empty, truncated or
    non-MIDI file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() in MIDI_SUFFIXES:
        return _read_midi_file(path)
    return _read_score_file(path)


def _read_midi_file(path: Path) -> NoteSequence:
    data = path.read_bytes()
    _check_midi_chunks(path, data)
    from music21 import midi

    midi_file = midi.MidiFile()
    try:
        midi_file.readstr(data)
    except Exception as error:  # music21 raises IndexError, MidiException, ... on corrupt track data
        raise MidiReadError(f"{path}: corrupt MIDI data ({type(error).__name__}: {error})") from error
    events, qpm, time_signature = _events_from_midi_file(midi_file)
    return NoteSequence(events, qpm, time_signature, path)


def _check_midi_chunks(path: Path, data: bytes) -> None:
    """Reject empty, non-MIDI and truncated files before music21 sees them.

    music21's reader slices past the end of a short buffer without complaint, so a truncated download would
    silently lose its last notes; the chunk lengths in the file say exactly how many bytes must be there.
    """
    if not data:
        raise MidiReadError(f"{path}: empty file (0 bytes)")
    if data[:4] != b"MThd" or len(data) < 14:
        raise MidiReadError(f"{path}: not a Standard MIDI File (does not start with an MThd header)")
    header_length = int.from_bytes(data[4:8], "big")
    track_count = int.from_bytes(data[10:12], "big")
    position = 8 + header_length
    for track in range(track_count):
        if position + 8 > len(data):
            raise MidiReadError(f"{path}: truncated: the header announces {track_count} tracks, "
                                f"the file ends after {track}")
        if data[position:position + 4] != b"MTrk":
            raise MidiReadError(f"{path}: corrupt MIDI data: expected track chunk {track} at byte {position}")
        length = int.from_bytes(data[position + 4:position + 8], "big")
        position += 8 + length
        if position > len(data):
            raise MidiReadError(f"{path}: truncated: track {track} needs {position - len(data)} more bytes")


def _events_from_midi_file(midi_file) -> tuple[list[NoteEvent], float, tuple[int, int]]:
    from music21.midi import ChannelVoiceMessages, MetaEvents

    note_on, note_off = ChannelVoiceMessages.NOTE_ON, ChannelVoiceMessages.NOTE_OFF
    set_tempo, time_signature_event = MetaEvents.SET_TEMPO, MetaEvents.TIME_SIGNATURE
    tempo_changes: list[tuple[int, float]] = []
    time_signatures: list[tuple[int, tuple[int, int]]] = []
    # (on_tick, off_tick, pitch, velocity, is_drum)
    notes: list[tuple[int, int, int, int, bool]] = []
    for track in midi_file.tracks:
        tick = 0
        # A re-struck key before its note-off is common in drum files; first-in first-out pairing gives each
        # note-off to the oldest sounding note of that key, the convention of most sequencers.
        sounding: dict[tuple[int, int], deque] = defaultdict(deque)
        for event in track.events:
            kind = event.type
            if kind == "DeltaTime":
                tick += event.time
            elif kind is note_on and event.velocity > 0:
                sounding[event.channel, event.pitch].append((tick, event.velocity))
            elif kind is note_off or kind is note_on:  # note-on with velocity 0 is a note-off
                queue = sounding.get((event.channel, event.pitch))
                if queue:
                    on_tick, velocity = queue.popleft()
                    notes.append((on_tick, tick, event.pitch, velocity, event.channel == DRUM_CHANNEL))
            elif kind is set_tempo:
                tempo_changes.append((tick, 60_000_000 / int.from_bytes(event.data[:3], "big")))
            elif kind is time_signature_event and len(event.data) >= 2:
                time_signatures.append((tick, (event.data[0], 2 ** event.data[1])))
        # Notes never switched off end with their track.
        for (channel, pitch), queue in sounding.items():
            for on_tick, velocity in queue:
                notes.append((on_tick, tick, pitch, velocity, channel == DRUM_CHANNEL))

    qpm = min(tempo_changes)[1] if tempo_changes else 120.0
    time_signature = min(time_signatures)[1] if time_signatures else (4, 4)
    if midi_file.ticksPerSecond:
        # SMPTE time division counts ticks per second; tempo events do not apply, the first qpm converts.
        ticks_per_quarter = midi_file.ticksPerSecond * 60.0 / qpm
    else:
        ticks_per_quarter = midi_file.ticksPerQuarterNote
    events = [NoteEvent(on / ticks_per_quarter, (off - on) / ticks_per_quarter, pitch, velocity, is_drum)
              for on, off, pitch, velocity, is_drum in notes]
    events.sort(key=lambda event: (event.start, event.pitch))
    return events, qpm, time_signature


def _read_score_file(path: Path) -> NoteSequence:
    """Non-MIDI scores (MusicXML, Humdrum, ...) through music21's converter: slow, but it knows every format."""
    from music21 import chord, converter, meter, note, tempo

    try:
        score = converter.parse(str(path))
    except Exception as error:
        raise MidiReadError(f"{path}: music21 cannot parse it ({type(error).__name__}: {error})") from error
    # Tied notes are one sounding note; a MIDI file would hold them as one note-on too.
    flat = score.stripTies().flatten()
    events = []
    for element in flat.notes:
        start, duration = float(element.offset), float(element.quarterLength)
        velocity = element.volume.velocity or DEFAULT_VELOCITY
        if isinstance(element, chord.Chord):
            pitches = [p.midi for p in element.pitches]
        elif isinstance(element, note.Note):
            pitches = [element.pitch.midi]
        else:  # Unpitched / PercussionChord: no MIDI pitch of their own in music21 >= 7, skip rather than guess
            continue
        events.extend(NoteEvent(start, duration, pitch, int(velocity), False) for pitch in pitches)
    events.sort(key=lambda event: (event.start, event.pitch))
    marks = list(flat.getElementsByClass(tempo.MetronomeMark))
    signatures = list(flat.getElementsByClass(meter.TimeSignature))
    qpm = float(marks[0].getQuarterBPM()) if marks and marks[0].number else 120.0
    time_signature = (signatures[0].numerator, signatures[0].denominator) if signatures else (4, 4)
    return NoteSequence(events, qpm, time_signature, path)


def write_midi(events: Iterable[NoteEvent], path: str | Path, qpm: float = 120.0,
               time_signature: tuple[int, int] = (4, 4), ticks_per_quarter: int = 480) -> Path:
    """Write events as a General MIDI file that music21, mido and ordinary players read.

    Layout (format 1): track 0 holds the tempo and time signature; pitched notes go to channel 1 (program 0,
    piano, as in the tutorial), drum hits to channel 10 with their GM percussion keys. Velocities are kept
    (clamped to 1-127, since velocity 0 means note-off). `ticks_per_quarter=480` holds 16ths, triplets and 32nds
    exactly, so a quantized sequence reads back onto the same grid.
    """
    from music21 import midi

    numerator, denominator = time_signature
    if denominator <= 0 or denominator & (denominator - 1):
        raise ValueError(f"time signature denominator must be a power of two, got {denominator}")
    midi_file = midi.MidiFile()
    midi_file.format = 1
    midi_file.ticksPerQuarterNote = ticks_per_quarter

    conductor = midi.MidiTrack(0)
    tempo_event = midi.MidiEvent(conductor, type=midi.MetaEvents.SET_TEMPO)
    tempo_event.data = round(60_000_000 / qpm).to_bytes(3, "big")
    signature_event = midi.MidiEvent(conductor, type=midi.MetaEvents.TIME_SIGNATURE)
    # The last two bytes are MIDI clocks per metronome click and 32nds per quarter, the usual 24 and 8.
    signature_event.data = bytes([numerator, int(math.log2(denominator)), 24, 8])
    _finish_track(conductor, [(0, 0, tempo_event), (0, 0, signature_event)])
    midi_file.tracks.append(conductor)

    events = list(events)
    for channel, is_drum in ((PITCHED_CHANNEL, False), (DRUM_CHANNEL, True)):
        part = [event for event in events if bool(event.is_drum) == is_drum]
        if part:
            midi_file.tracks.append(_note_track(len(midi_file.tracks), part, channel, ticks_per_quarter))

    path = Path(path)
    path.write_bytes(midi_file.writestr())
    return path


def _note_track(index: int, events: list[NoteEvent], channel: int, ticks_per_quarter: int):
    from music21 import midi

    track = midi.MidiTrack(index)
    timed = []  # (tick, order, event): at equal ticks note-offs (order 0) go first, so a re-strike is not cut
    if channel != DRUM_CHANNEL:
        program = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.PROGRAM_CHANGE, channel=channel)
        program.data = 0  # acoustic grand piano
        timed.append((0, 0, program))
    for event in events:
        on_tick = max(0, round(event.start * ticks_per_quarter))
        # At least one tick long: a zero-length note would put its note-off before its own note-on.
        off_tick = max(on_tick + 1, round((event.start + event.duration) * ticks_per_quarter))
        velocity = min(127, max(1, int(event.velocity)))
        for tick, order, kind, note_velocity in ((on_tick, 1, midi.ChannelVoiceMessages.NOTE_ON, velocity),
                                                 (off_tick, 0, midi.ChannelVoiceMessages.NOTE_OFF, 0)):
            message = midi.MidiEvent(track, type=kind, channel=channel)
            message.pitch = int(event.pitch)
            message.velocity = note_velocity
            timed.append((tick, order, message))
    _finish_track(track, timed)
    return track


def _finish_track(track, timed: list) -> None:
    """Interleave delta times with the (tick, order, event) list and close the track with END_OF_TRACK."""
    from music21 import midi

    timed.sort(key=lambda item: (item[0], item[1]))
    last_tick = 0
    for tick, _, event in timed:
        track.events.append(midi.DeltaTime(track, time=tick - last_tick))
        track.events.append(event)
        last_tick = tick
    end = midi.MidiEvent(track, type=midi.MetaEvents.END_OF_TRACK)
    end.data = b""
    track.events.append(midi.DeltaTime(track, time=0))
    track.events.append(end)
