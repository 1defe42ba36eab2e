"""Numbers that come from a user, checked before any work: type, finiteness, sign and range.

Each check returns the value or raises a one-line ``SettingError`` (a ValueError) naming the argument (a keyword of
the library, or a command-line flag in the pipeline) and the value it got: ``LSTM: units must be an integer >= 1,
got 2.7``. A bool is never a number here (``True`` is not 1 unit).
"""
import math
import numbers

from .errors import SettingError


def integer(name, value, minimum=None, maximum=None):
    """``value`` if it is an integer (not a float that happens to be whole) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingError(f"{name} must be an integer{bounds(minimum, maximum)}, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise SettingError(f"{name} must be an integer{bounds(minimum, maximum)}, got {value}")
    return int(value)


def real(name, value, minimum=None, maximum=None, above=None, below=None, allowed=()):
    """``value`` if it is a finite real number with minimum <= value <= maximum and above < value < below, or one
    of ``allowed`` (a value with a meaning of its own outside the range: a temperature of 0 is greedy)."""
    wanted = f"a finite number{bounds(minimum, maximum, above, below)}"
    if allowed:
        wanted = " or ".join(shown(value) for value in allowed) + " or " + wanted
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingError(f"{name} must be {wanted}, got {value!r}")
    if value in allowed:
        return value
    if not math.isfinite(value) or (minimum is not None and value < minimum) or \
            (maximum is not None and value > maximum) or (above is not None and value <= above) or \
            (below is not None and value >= below):
        raise SettingError(f"{name} must be {wanted}, got {value!r}")
    return value


def bounds(minimum=None, maximum=None, above=None, below=None):
    parts = [f">= {shown(minimum)}" if minimum is not None else None, f"> {shown(above)}" if above is not None else None,
             f"<= {shown(maximum)}" if maximum is not None else None, f"< {shown(below)}" if below is not None else None]
    parts = [part for part in parts if part]
    return (" " + " and ".join(parts)) if parts else ""


def shown(bound):
    """An integer bound in full (4294967295, not 4.29497e+09), a real one short (0.001)."""
    return str(bound) if isinstance(bound, numbers.Integral) else f"{bound:g}"
