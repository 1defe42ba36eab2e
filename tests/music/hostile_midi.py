"""Standard MIDI Files built byte by byte, so a test can say exactly what is wrong with one.

mido refuses to write most of these (a division of 0, a tempo of 0, an oversized delta), which is the point: they
come from buggy writers and hostile users, not from a well-behaved library.
"""

from __future__ import annotations


def variable_length(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits a byte, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def chunk(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "big") + body


def header(midi_format: int = 1, tracks: int = 1, division: int = 480) -> bytes:
    return chunk(b"MThd", midi_format.to_bytes(2, "big") + tracks.to_bytes(2, "big") + division.to_bytes(2, "big"))


def note(delta: int, pitch: int = 36, velocity: int = 100, length: int = 60, channel: int = 10) -> bytes:
    """A note-on after `delta` ticks and its note-off `length` ticks later (channel counted from 1)."""
    status = channel - 1
    return (variable_length(delta) + bytes([0x90 | status, pitch, velocity])
            + variable_length(length) + bytes([0x80 | status, pitch, 0]))


def meta(delta: int, meta_type: int, data: bytes) -> bytes:
    return variable_length(delta) + bytes([0xFF, meta_type]) + variable_length(len(data)) + data


END_OF_TRACK = meta(0, 0x2F, b"")


def midi_file(*track_bodies: bytes, midi_format: int = 1, division: int = 480) -> bytes:
    return header(midi_format, len(track_bodies), division) + b"".join(chunk(b"MTrk", body) for body in track_bodies)
