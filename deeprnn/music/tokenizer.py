"""What every tokenizer shares: file encoding, a JSON form, and a config that names it for caches.

A tokenizer maps the note events of one piece to a 1-D integer array (`encode`) and back (`decode`). Its whole
state is a small JSON document, `{"type": ..., **config}`, so it is saved next to a model without pickle and a
token cache can be keyed by it: two tokenizers with equal configs produce equal tokens.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deeprnn.errors import DataError
from deeprnn.files import atomic_write_bytes, read_regular_file
from deeprnn.music.limits import MAX_TOKENIZER_BYTES
from deeprnn.music.midi_io import NoteEvent, read_events

# type name in the JSON -> class; filled by Tokenizer.__init_subclass__ so `from_json` finds every tokenizer.
_TOKENIZER_TYPES: dict[str, type["Tokenizer"]] = {}


class Tokenizer:
    """Base class. Subclasses set `type_name` and implement `config`, `_from_config`, `encode`, `decode`,
    `vocab_size`."""

    type_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.type_name:
            _TOKENIZER_TYPES[cls.type_name] = cls

    # --- the interface -------------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """Everything that decides the tokens, as plain JSON values."""
        raise NotImplementedError

    @classmethod
    def _from_config(cls, config: dict[str, Any]) -> "Tokenizer":
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, events: list[NoteEvent]) -> np.ndarray:
        """events -> tokens: (T,) int32."""
        raise NotImplementedError

    def decode(self, tokens) -> list[NoteEvent]:
        """tokens (T,) -> events sorted by start."""
        raise NotImplementedError

    def encodes_nothing(self, tokens) -> bool:
        """True when `tokens` (what `encode` returned) hold no note: the piece is nothing this tokenizer models.

        The corpus loaders skip such files; a subclass whose encoding has framing tokens (START/END) overrides it.
        """
        return len(tokens) == 0

    @property
    def content_description(self) -> str:
        """What a file must hold for this tokenizer to encode anything, for the message of a skipped file."""
        return "it needs at least one note"

    # --- shared behaviour ----------------------------------------------------------------------------------
    def encode_file(self, path: str | Path) -> np.ndarray:
        """Read a MIDI (or score) file and encode its events; errors name the file (see `read_events`)."""
        return self.encode(read_events(path).events)

    def to_json(self) -> str:
        return json.dumps({"type": self.type_name, **self.config}, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "Tokenizer":
        """Rebuild whichever tokenizer `to_json` wrote (the "type" field picks the class).

        Raises ValueError for anything that is not such a document (malformed JSON, unknown type, bad config).
        """
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ValueError(f"tokenizer JSON is malformed ({error})") from None
        if not isinstance(document, dict):
            raise ValueError(f"tokenizer JSON must be an object, got {type(document).__name__}")
        type_name = document.pop("type", None)
        if type_name not in _TOKENIZER_TYPES:
            raise ValueError(f"unknown tokenizer type {type_name!r}; known: {sorted(_TOKENIZER_TYPES)}")
        try:
            return _TOKENIZER_TYPES[type_name]._from_config(document)
        except (TypeError, KeyError) as error:
            raise ValueError(f"{type_name} tokenizer config is invalid ({type(error).__name__}: {error})") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_bytes(path, (self.to_json() + "\n").encode("utf-8"))
        return path

    @staticmethod
    def load(path: str | Path) -> "Tokenizer":
        """The tokenizer saved at `path`; DataError naming the file if it is not one (a pipe, a device or a file
        over `MAX_TOKENIZER_BYTES` is refused before it is read)."""
        data = read_regular_file(path, MAX_TOKENIZER_BYTES, "tokenizer file", DataError)
        try:
            return Tokenizer.from_json(data.decode("utf-8"))
        except ValueError as error:  # includes UnicodeDecodeError
            raise DataError(f"{path}: {error}") from None

    def cache_key(self) -> str:
        """A short digest of the JSON form: the token cache keeps one folder per key."""
        return f"{self.type_name}-{hashlib.sha256(self.to_json().encode()).hexdigest()[:16]}"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.config == other.config

    def __repr__(self) -> str:
        shown = {key: value for key, value in self.config.items() if not isinstance(value, list)}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer saved with `save`, whatever its type."""
    return Tokenizer.load(path)
