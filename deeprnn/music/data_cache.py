"""Where deeprnn keeps downloaded data and derived caches.

One folder for everything the music pipeline writes on its own: the Groove zip and its extraction, and the token
cache of `tokenize_corpus`. `$DEEPRNN_DATA` moves it (CI and tests point it at a temporary folder so nothing is
written into a home directory).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "DEEPRNN_DATA"


def data_cache_dir() -> Path:
    """The data cache: `$DEEPRNN_DATA` if set, else `~/.cache/deeprnn`. Not created here."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "deeprnn"
