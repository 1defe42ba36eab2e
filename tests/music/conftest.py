"""Fixtures for the music tests: tiny MIDI files written in code and a sandboxed cache (the real Groove dataset,
`groove_root`, is tests/conftest.py's)."""

from __future__ import annotations

import pytest

from midi_builders import CLOSED_HAT, KICK, SNARE, TICKS_PER_QUARTER, build_midi


@pytest.fixture
def make_midi(tmp_path):
    """make_midi("name.mid", notes, qpm=..., time_signature=...) -> path of a tiny file under tmp_path."""
    def make(name, notes, **kwargs):
        return build_midi(tmp_path / name, notes, **kwargs)
    return make


@pytest.fixture
def rock_beat(make_midi):
    """One bar of a rock beat at 100 qpm: kick on 1 and 3, snare on 2 and 4, closed hat on every 8th."""
    q = TICKS_PER_QUARTER
    notes = [(beat * q, 60, KICK, 110, 10) for beat in (0, 2)]
    notes += [(beat * q, 60, SNARE, 100, 10) for beat in (1, 3)]
    notes += [(eighth * q // 2, 60, CLOSED_HAT, 70, 10) for eighth in range(8)]
    return make_midi("rock_beat.mid", notes, qpm=100)


@pytest.fixture(autouse=True)
def sandboxed_data_cache(tmp_path, monkeypatch):
    """Every test gets its own $DEEPRNN_DATA, so nothing is written to ~/.cache or shared between tests."""
    monkeypatch.setenv("DEEPRNN_DATA", str(tmp_path / "deeprnn-data"))
