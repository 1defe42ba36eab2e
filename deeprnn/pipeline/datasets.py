"""The one way a command opens its data: ``open_data(tokenizer, data, config)``, one call into ``music.load_splits``
with the run's settings (``--data``, ``--max-files``, ``--seed``). Where the files come from, how they are split and
tokenized is ``deeprnn/music/splits.py``.
"""
from ..music import load_splits, resolve_source

__all__ = ["open_data", "resolve_source"]


def open_data(tokenizer, data, config):
    """The splits of ``--data`` (None: the default Groove copy) as a run with ``config`` sees them:
    ``open_data(...).split("validation")``."""
    return load_splits(data, tokenizer, config.max_files, config.seed)
