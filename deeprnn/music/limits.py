"""How much the music package agrees to read, and the check every numeric argument of it goes through.

A corpus is built from files nobody vetted, so every size is bounded before anything is allocated for it. The
defaults are generous for real music and documented in docs/music-data.md ("Limits"); each is an argument where it
applies, so a user with a genuinely larger file can raise it.
"""

from __future__ import annotations

import math
import numbers

# The largest Groove file is 152 KiB and a large orchestral MIDI file a few hundred KiB; 4 MiB of MIDI is at most
# ~1.4 million messages, which the reader turns into well under a GiB of Python objects.
MAX_MIDI_BYTES = 4 << 20
# Piece length (the end of its last note) in quarter notes: 8192 quarters is 68 minutes at 120 qpm, 32768 steps of
# the drum grid. The longest Groove performance is 2556 quarters. One maximal MIDI delta time at 480 ticks per
# quarter is 559,240 quarters: such a file is refused rather than turned into millions of silent tokens.
MAX_PIECE_QUARTERS = 8192
# The Groove info.csv is 200 KiB for 1,150 rows; 64 MiB holds half a million rows.
MAX_INFO_CSV_BYTES = 64 << 20
# A saved tokenizer is JSON of its config: the seed tokenizer's vocabulary of a few thousand events is ~100 KiB.
MAX_TOKENIZER_BYTES = 16 << 20
# What an archive may unpack to. The Groove MIDI zip holds 1,150 files and 11 MiB; a zip bomb holds far more.
MAX_ARCHIVE_MEMBERS = 20_000
MAX_ARCHIVE_BYTES = 512 << 20


def check_number(name: str, value, *, integer: bool = False, minimum=None, maximum=None,
                 exclusive_minimum: bool = False):
    """Return ``value`` if it is a finite real number (an ``int`` when ``integer``) in [minimum, maximum].

    Raises ValueError naming the argument and the value otherwise; booleans are never numbers here (``True`` as a
    tempo is a bug, not 1 qpm). ``exclusive_minimum`` makes the lower bound strict (a tempo must be > 0).
    """
    wanted = "an integer" if integer else "a number"
    kinds = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        relation = ">" if exclusive_minimum else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}")
    return value
