"""Reading and writing MIDI as a flat list of note events.

A file becomes a `NoteSequence`: `events` (one `NoteEvent` per sounding note, times in quarter notes), the first
tempo `qpm` and the first `time_signature`. Everything downstream (tokenizers, the corpus cache) sees only events,
so it does not care whether they came from a Standard MIDI File or a score in music21's corpus.

Why our own byte-level reader: `music21.converter.parse` builds a full score (quantization, voices, measures) and
takes about 0.2 s per Groove file; decoding the Standard MIDI File's chunks and messages directly takes a few ms.
We pair note-ons with note-offs ourselves, which also keeps drum hits as plain MIDI pitches instead of music21's
`Unpitched`/`PercussionChord` objects (the reason the tutorial's `get_notes()` finds nothing in Groove, see
docs/music-data.md). Owning the reader is also what makes it safe on files nobody vetted: every length is checked
against the bytes that are there, a variable-length number has at most four bytes, the file size and the piece
length are bounded (`deeprnn.music.limits`) before anything is built from them, and whatever goes wrong is one
`MidiReadError` naming the file.

music21 is imported inside the functions that need it (writing MIDI, reading other score formats): importing it
costs ~0.25 s, and reading MIDI never needs it.
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple

from deeprnn.errors import DataError
from deeprnn.files import atomic_write_bytes, check_regular_file, read_regular_file
from deeprnn.music.limits import MAX_MIDI_BYTES, MAX_PIECE_QUARTERS, check_number

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


class MidiReadError(DataError):
    """A file could not be read as music; the message starts with the file's path and says why.

    Raised for what is not a regular file (a folder, a named pipe, a device: refused before anything is read from
    it), for empty, truncated and non-MIDI files, for malformed data (a division or tempo of 0, a delta time
    longer than four bytes, a data byte where a status byte must be, a length running past its chunk) and for
    files over the limits (`max_bytes`, `max_quarters`). The corpus loaders turn it into a skipped file.
    """


def read_events(path: str | Path, max_quarters: float = MAX_PIECE_QUARTERS,
                max_bytes: int = MAX_MIDI_BYTES) -> NoteSequence:
    """Read a MIDI file (or, through music21's converter, any score format it knows) into note events.

    MIDI (`.mid`, `.midi`, ...) takes the fast path, our own byte-level reader; other suffixes (`.mxl`, `.xml`,
    `.krn`, ...) go through `music21.converter.parse`, which is ~50x slower but lets the seed tokenizer be demoed
    on music21's bundled corpus without any download.

    max_quarters: the longest piece accepted, in quarter notes (the end of its last note); longer files are refused
    before any event list is built, so one hostile delta time cannot become millions of silent steps.
    max_bytes: the largest file accepted, checked before it is read.

    What `path` names (following symlinks) must be a regular file of at most `max_bytes`: a folder, a named pipe
    (which would block the read forever) or a device (`/dev/zero` never ends) is refused before any byte is read.

    Raises FileNotFoundError for a missing file, and MidiReadError (naming the file and the reason) for anything
    else that makes the file unusable: not a regular file, empty, truncated, malformed, or over a limit. Nothing
    else escapes: an unexpected parser failure is reported as a MidiReadError too.
    """
    check_number("max_quarters", max_quarters, minimum=0, exclusive_minimum=True)
    check_number("max_bytes", max_bytes, integer=True, minimum=1)
    path = Path(path)
    is_midi = path.suffix.lower() in MIDI_SUFFIXES
    what = "MIDI file" if is_midi else "score file"
    try:
        if is_midi:
            return _read_midi_file(path, read_regular_file(path, max_bytes, what, MidiReadError), max_quarters)
        check_regular_file(path, max_bytes, what, MidiReadError)  # music21 opens it itself
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    return _read_score_file(path, max_quarters)


def _read_midi_file(path: Path, data: bytes, max_quarters: float) -> NoteSequence:
    header, tracks = _split_chunks(path, data)
    try:
        division = _ticks_per_quarter_or_second(path, header)
        parsed = [_track_messages(path, index, track) for index, track in enumerate(tracks)]
        events, qpm, time_signature = _events_from_tracks(path, parsed, division, max_quarters)
    except MidiReadError:
        raise
    except Exception as error:  # a bug of ours on a file nobody foresaw: still one named, skippable error
        raise MidiReadError(f"{path}: unreadable MIDI data ({type(error).__name__}: {error})") from error
    return NoteSequence(events, qpm, time_signature, path)


def _split_chunks(path: Path, data: bytes) -> tuple[bytes, list[bytes]]:
    """The header chunk's body and each track chunk's body, every length checked against the file.

    A truncated download would otherwise silently lose its last notes; the chunk lengths in the file say exactly
    how many bytes must be there.
    """
    if not data:
        raise MidiReadError(f"{path}: empty file (0 bytes)")
    if data[:4] != b"MThd" or len(data) < 14:
        raise MidiReadError(f"{path}: not a Standard MIDI File (does not start with an MThd header)")
    header_length = int.from_bytes(data[4:8], "big")
    if header_length < 6 or 8 + header_length > len(data):
        raise MidiReadError(f"{path}: corrupt MIDI header (its length field says {header_length} bytes)")
    header = data[8:8 + header_length]
    track_count = int.from_bytes(header[2:4], "big")
    position = 8 + header_length
    tracks = []
    for track in range(track_count):
        if position + 8 > len(data):
            raise MidiReadError(f"{path}: truncated: the header announces {track_count} tracks, "
                                f"the file ends after {track}")
        if data[position:position + 4] != b"MTrk":
            raise MidiReadError(f"{path}: corrupt MIDI data: expected track chunk {track} at byte {position}")
        length = int.from_bytes(data[position + 4:position + 8], "big")
        if position + 8 + length > len(data):
            raise MidiReadError(f"{path}: truncated: track {track} needs {position + 8 + length - len(data)} "
                                f"more bytes")
        tracks.append(data[position + 8:position + 8 + length])
        position += 8 + length
    return header, tracks


def _ticks_per_quarter_or_second(path: Path, header: bytes) -> tuple[str, float]:
    """("quarter", ticks per quarter note) or, for SMPTE time division, ("second", ticks per second)."""
    midi_format = int.from_bytes(header[0:2], "big")
    if midi_format > 2:
        raise MidiReadError(f"{path}: unknown MIDI file format {midi_format} (expected 0, 1 or 2)")
    division = int.from_bytes(header[4:6], "big")
    if division & 0x8000:
        frames_per_second = 256 - (division >> 8)  # a negative byte: -24, -25, -29 (29.97) or -30
        ticks_per_frame = division & 0xFF
        if frames_per_second not in (24, 25, 29, 30) or ticks_per_frame == 0:
            raise MidiReadError(f"{path}: invalid SMPTE time division ({frames_per_second} frames per second, "
                                f"{ticks_per_frame} ticks per frame)")
        return "second", frames_per_second * ticks_per_frame
    if division == 0:
        raise MidiReadError(f"{path}: invalid time division: 0 ticks per quarter note")
    return "quarter", division


# status byte -> number of data bytes, for the channel voice messages (high nibble 0x8..0xE)
DATA_BYTES = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
NOTE_OFF, NOTE_ON, END_OF_TRACK, SET_TEMPO, TIME_SIGNATURE = 0x80, 0x90, 0x2F, 0x51, 0x58


def _variable_length(path: Path, track_index: int, data: bytes, position: int) -> tuple[int, int]:
    """A MIDI variable-length quantity at ``position``: (value, position after it). At most four bytes (the
    standard's limit, 0x0FFFFFFF), so a run of 0xFF bytes is an error rather than an ever-growing number."""
    value = 0
    for offset in range(4):
        if position + offset >= len(data):
            break
        byte = data[position + offset]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, position + offset + 1
    else:
        raise MidiReadError(f"{path}: corrupt MIDI data: track {track_index} has a variable-length number longer "
                            f"than 4 bytes at byte {position}")
    raise MidiReadError(f"{path}: corrupt MIDI data: track {track_index} ends inside a variable-length number")


def _track_messages(path: Path, track_index: int, data: bytes) -> list[tuple]:
    """One track's messages as (tick, kind, channel or meta type, first data, second data or meta bytes).

    Handles running status (a channel message without a status byte repeats the previous one). A system-exclusive
    event cancels it, as the standard says. A meta event does not, although the standard says it should: files in
    the wild continue running status after a meta event (a tempo or marker dropped between notes), mido and other
    readers read them so, and a data byte there has no other meaning, so nothing is misread (docs/music-data.md).
    Reading stops at End of Track.
    """
    messages = []
    tick = 0
    position = 0
    running = None
    while position < len(data):
        delta, position = _variable_length(path, track_index, data, position)
        tick += delta
        if position >= len(data):
            raise MidiReadError(f"{path}: truncated: track {track_index} ends after a delta time")
        status = data[position]
        if status & 0x80:
            position += 1
        elif running is None:
            raise MidiReadError(f"{path}: corrupt MIDI data: track {track_index} has a data byte where a status "
                                f"byte must be (byte {position})")
        else:
            status = running
        if status == 0xFF:
            if position >= len(data):
                raise MidiReadError(f"{path}: truncated: track {track_index} ends inside a meta event")
            meta_type = data[position]
            length, position = _variable_length(path, track_index, data, position + 1)
            if position + length > len(data):
                raise MidiReadError(f"{path}: truncated: a meta event of track {track_index} runs past its end")
            messages.append((tick, "meta", meta_type, data[position:position + length]))
            position += length
            if meta_type == END_OF_TRACK:
                break
        elif status in (0xF0, 0xF7):
            running = None
            length, position = _variable_length(path, track_index, data, position)
            if position + length > len(data):
                raise MidiReadError(f"{path}: truncated: a system-exclusive event of track {track_index} runs "
                                    f"past its end")
            position += length
        elif status > 0xF0:
            raise MidiReadError(f"{path}: corrupt MIDI data: status byte 0x{status:02X} (a real-time message) is "
                                f"not allowed in a MIDI file (track {track_index})")
        else:
            running = status
            count = DATA_BYTES[status & 0xF0]
            values = data[position:position + count]
            if len(values) < count:
                raise MidiReadError(f"{path}: truncated: track {track_index} ends inside a message")
            if any(value & 0x80 for value in values):
                raise MidiReadError(f"{path}: corrupt MIDI data: a data byte >= 128 in track {track_index} at byte "
                                    f"{position}")
            position += count
            messages.append((tick, status & 0xF0, (status & 0x0F) + 1, *values))
    return messages


def _events_from_tracks(path: Path, tracks: list[list[tuple]], division: tuple[str, float],
                        max_quarters: float) -> tuple[list[NoteEvent], float, tuple[int, int]]:
    tempo_changes: list[tuple[int, float]] = []
    time_signatures: list[tuple[int, tuple[int, int]]] = []
    # (on_tick, off_tick, pitch, velocity, is_drum)
    notes: list[tuple[int, int, int, int, bool]] = []
    for messages in tracks:
        # A re-struck key before its note-off is common in drum files; first-in first-out pairing gives each
        # note-off to the oldest sounding note of that key, the convention of most sequencers.
        sounding: dict[tuple[int, int], deque] = defaultdict(deque)
        tick = 0
        for message in messages:
            tick, kind = message[0], message[1]
            if kind == "meta":
                _, _, meta_type, data = message
                if meta_type == SET_TEMPO:
                    tempo_changes.append((tick, _tempo_qpm(path, data)))
                elif meta_type == TIME_SIGNATURE and len(data) >= 2:
                    time_signatures.append((tick, _time_signature(path, data)))
                continue
            _, _, channel, pitch, *rest = message
            velocity = rest[0] if rest else 0
            if kind == NOTE_ON and velocity > 0:
                sounding[channel, pitch].append((tick, velocity))
            elif kind == NOTE_OFF or kind == NOTE_ON:  # note-on with velocity 0 is a note-off
                queue = sounding.get((channel, pitch))
                if queue:
                    on_tick, on_velocity = queue.popleft()
                    notes.append((on_tick, tick, pitch, on_velocity, channel == DRUM_CHANNEL))
        # Notes never switched off end with their track.
        for (channel, pitch), queue in sounding.items():
            for on_tick, on_velocity in queue:
                notes.append((on_tick, tick, pitch, on_velocity, channel == DRUM_CHANNEL))

    qpm = min(tempo_changes)[1] if tempo_changes else 120.0
    time_signature = min(time_signatures)[1] if time_signatures else (4, 4)
    unit, ticks = division
    # SMPTE time division counts ticks per second; tempo events do not apply, the first qpm converts.
    ticks_per_quarter = ticks * 60.0 / qpm if unit == "second" else ticks
    last_tick = max((off for _, off, *_ in notes), default=0)
    if last_tick / ticks_per_quarter > max_quarters:
        raise MidiReadError(f"{path}: the piece is {last_tick / ticks_per_quarter:.0f} quarter notes long, more than "
                            f"the limit of {max_quarters} (max_quarters)")
    events = [NoteEvent(on / ticks_per_quarter, (off - on) / ticks_per_quarter, pitch, velocity, is_drum)
              for on, off, pitch, velocity, is_drum in notes]
    events.sort(key=lambda event: (event.start, event.pitch))
    return events, qpm, time_signature


def _tempo_qpm(path: Path, data: bytes) -> float:
    microseconds_per_quarter = int.from_bytes(data[:3], "big") if len(data) >= 3 else 0
    if microseconds_per_quarter == 0:
        raise MidiReadError(f"{path}: invalid tempo event ({microseconds_per_quarter} microseconds per quarter note "
                            f"from {len(data)} bytes)")
    return 60_000_000 / microseconds_per_quarter


def _time_signature(path: Path, data: bytes) -> tuple[int, int]:
    numerator, denominator_power = data[0], data[1]
    # The standard's denominators are powers of two; past 2**6 (64th notes) no score goes.
    if numerator == 0 or denominator_power > 6:
        raise MidiReadError(f"{path}: invalid time signature {numerator}/2**{denominator_power}")
    return numerator, 2 ** denominator_power


def _read_score_file(path: Path, max_quarters: float) -> NoteSequence:
    """Non-MIDI scores (MusicXML, Humdrum, ...) through music21's converter: slow, but it knows every format."""
    try:
        events, qpm, time_signature = _score_events(path)
    except Exception as error:  # music21 raises many kinds of errors on a malformed score; one named error here
        raise MidiReadError(f"{path}: music21 cannot parse it ({type(error).__name__}: {error})") from error
    end = max((event.start + event.duration for event in events), default=0.0)
    if end > max_quarters:
        raise MidiReadError(f"{path}: the piece is {end:.0f} quarter notes long, more than the limit of "
                            f"{max_quarters} (max_quarters)")
    return NoteSequence(events, qpm, time_signature, path)


def _score_events(path: Path) -> tuple[list[NoteEvent], float, tuple[int, int]]:
    from music21 import chord, converter, meter, note, tempo

    score = converter.parse(str(path))
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
    return events, qpm, time_signature


def write_midi(events: Iterable[NoteEvent], path: str | Path, qpm: float = 120.0,
               time_signature: tuple[int, int] = (4, 4), ticks_per_quarter: int = 480) -> Path:
    """Write events as a General MIDI file that music21, mido and ordinary players read.

    Layout (format 1): track 0 holds the tempo and time signature; pitched notes go to channel 1 (program 0,
    piano, as in the tutorial), drum hits to channel 10 with their GM percussion keys. Velocities are kept
    (clamped to 1-127, since velocity 0 means note-off). `ticks_per_quarter=480` holds 16ths, triplets and 32nds
    exactly, so a quantized sequence reads back onto the same grid.
    """
    numerator, denominator = _check_time_signature(time_signature)
    check_number("qpm", qpm, minimum=MIN_QPM, maximum=MAX_QPM)
    check_number("ticks_per_quarter", ticks_per_quarter, integer=True, minimum=1, maximum=0x7FFF)
    events = list(events)
    _check_events_to_write(events)
    from music21 import midi

    midi_file = midi.MidiFile()
    midi_file.format = 1
    midi_file.ticksPerQuarterNote = ticks_per_quarter

    conductor = midi.MidiTrack(0)
    tempo_event = midi.MidiEvent(conductor, type=midi.MetaEvents.SET_TEMPO)
    tempo_event.data = min(round(60_000_000 / qpm), 0xFFFFFF).to_bytes(3, "big")
    signature_event = midi.MidiEvent(conductor, type=midi.MetaEvents.TIME_SIGNATURE)
    # The last two bytes are MIDI clocks per metronome click and 32nds per quarter, the usual 24 and 8.
    signature_event.data = bytes([numerator, int(math.log2(denominator)), 24, 8])
    _finish_track(conductor, [(0, 0, tempo_event), (0, 0, signature_event)])
    midi_file.tracks.append(conductor)

    for channel, is_drum in ((PITCHED_CHANNEL, False), (DRUM_CHANNEL, True)):
        part = [event for event in events if bool(event.is_drum) == is_drum]
        if part:
            midi_file.tracks.append(_note_track(len(midi_file.tracks), part, channel, ticks_per_quarter))

    path = Path(path)
    atomic_write_bytes(path, midi_file.writestr())
    return path


# A MIDI tempo is 1 to 0xFFFFFF microseconds per quarter note.
MIN_QPM, MAX_QPM = 60_000_000 / 0xFFFFFF, 60_000_000.0


def _check_time_signature(time_signature) -> tuple[int, int]:
    try:
        numerator, denominator = time_signature
    except (TypeError, ValueError):
        raise ValueError(f"time_signature must be a pair (numerator, denominator), got {time_signature!r}") from None
    check_number("time_signature numerator", numerator, integer=True, minimum=1, maximum=255)
    check_number("time_signature denominator", denominator, integer=True, minimum=1, maximum=64)
    if denominator & (denominator - 1):
        raise ValueError(f"time signature denominator must be a power of two, got {denominator}")
    return int(numerator), int(denominator)


def _check_events_to_write(events: list[NoteEvent]) -> None:
    """Every event must fit a MIDI file: finite times, a piece no longer than the reader accepts, pitch 0-127."""
    for index, event in enumerate(events):
        try:
            start, duration, pitch = float(event.start), float(event.duration), event.pitch
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"events[{index}] is not a NoteEvent: {event!r}") from None
        if not (math.isfinite(start) and math.isfinite(duration)) or start + duration > MAX_PIECE_QUARTERS:
            raise ValueError(f"events[{index}] has start {start!r} and duration {duration!r}; times must be finite "
                             f"and end within {MAX_PIECE_QUARTERS} quarter notes")
        if isinstance(pitch, bool) or not isinstance(pitch, numbers.Integral) or not 0 <= pitch <= 127:
            raise ValueError(f"events[{index}] has pitch {pitch!r}; a MIDI pitch is an integer 0-127")


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
