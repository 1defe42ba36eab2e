"""A run folder (``deeprnn train --out``): the names of its files and what each holds, in words.

    runs/drums/best.npz     the best epoch by the recipe's monitor (what generate and evaluate use)
    runs/drums/last.npz     the latest epoch with the optimizer's and callbacks' state (what --resume continues)
    runs/drums/history.csv  one row per epoch; loss.png its curves; config.json the run's settings
    runs/drums/*.mid        generated music, with its .png grid and .wav audio; *.json evaluation reports

The trainer writes these names; ``deeprnn show`` and the closing lines of ``train``, ``generate`` and ``evaluate``
describe them from the files themselves (a checkpoint's metadata), not from what a process believes.
"""
import json
import zipfile
from pathlib import Path

from ..errors import DataError, ModelFileError
from ..saving import load_metadata

LAST, BEST = "last.npz", "best.npz"
HISTORY_CSV, LOSS_PNG, CONFIG_JSON = "history.csv", "loss.png", "config.json"
RUN_FILES = (LAST, BEST, HISTORY_CSV, LOSS_PNG, CONFIG_JSON)
# A history row is under 200 bytes: 64 MiB would be 300000 epochs, more than --epochs allows. A larger file is
# not a run's history, and is not read.
MAX_HISTORY_BYTES = 64 * 2**20


def check_input_file(flag, path, what="file"):
    """A path the user gave to read: it must exist and be a regular file (not a folder, a FIFO or a device)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{flag} {path}: {what} not found")
    if path.is_dir():
        raise DataError(f"{flag} {path}: is a folder, not a {what}")
    if not path.is_file():
        raise DataError(f"{flag} {path}: is not a regular file (a pipe or a device?), not a {what}")


def checkpoint_metadata(path, flag="--checkpoint"):
    """A checkpoint's own record (recipe, config, training state), read from the file; a ModelFileError naming it
    when it is not one."""
    check_input_file(flag, path, "checkpoint")
    if not zipfile.is_zipfile(path):  # a model file is an .npz, a zip archive
        raise ModelFileError(f"{flag} {path}: not a model file (a checkpoint is the best.npz or last.npz that "
                             "`deeprnn train` writes)")
    try:
        metadata = load_metadata(path)
    except ValueError as error:  # a ModelFileError's line starts with the path already
        raise ModelFileError(f"{flag} {error}" if isinstance(error, ModelFileError) else f"{flag} {path}: {error}") \
            from None
    if not isinstance(metadata.get("training"), dict) or not isinstance(metadata.get("config"), dict):
        raise ModelFileError(f"{flag} {path}: not a music checkpoint written by `deeprnn train` "
                             "(best.npz or last.npz)")
    return metadata


def describe_checkpoint(metadata):
    """What a checkpoint holds, in words, from its metadata: 'drums recipe, 2xLSTM(256), epoch 22, val_loss 1.3571'."""
    config, training = metadata.get("config", {}), metadata.get("training", {})
    text = (f"{config.get('recipe')} recipe, {config.get('layers')}x{str(config.get('cell')).upper()}"
            f"({config.get('units')})")
    epoch = training.get("epoch")
    if epoch is None:
        return text + ", untrained"
    text += f", epoch {epoch}"
    monitor = training.get("monitor")
    if isinstance(training.get(monitor), (int, float)):
        text += f", {monitor} {training[monitor]:.3f}"
    return text + describe_labels(metadata.get("labels"))


def describe_labels(labels):
    """A --condition checkpoint's labels, from its metadata: '; styles: funk, jazz, ...; tempo: <80, ...'."""
    if not isinstance(labels, dict):
        return ""
    return "".join(f"; {'styles' if name == 'style' else name}: {', '.join(map(str, known))}"
                   for name, known in labels.items() if isinstance(known, list))


def describe_run(folder):
    """One line per file of a run folder: where it is and what it holds (checkpoints read from their metadata)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (give the --out folder of `deeprnn train`)")
    rows = []
    for name, role, averaged in (
            (BEST, "the best epoch (what generate and evaluate use)", "the averaged weights"),
            (LAST, "the latest epoch, with optimizer state (train --resume continues it)",
             "the trained weights, the averages in the optimizer state")):
        if (folder / name).is_file():
            metadata = checkpoint_metadata(folder / name)
            ema = metadata.get("config", {}).get("ema")
            if isinstance(ema, (int, float)) and ema > 0:  # --ema: the two files hold different weights
                role += f"; {averaged} (--ema {ema:g})"
            rows.append((folder / name, f"{describe_checkpoint(metadata)}: {role}"))
    if (folder / HISTORY_CSV).is_file():
        rows.append((folder / HISTORY_CSV, describe_history(folder / HISTORY_CSV)))
    for name, what in ((LOSS_PNG, "the loss curves"), (CONFIG_JSON, "the run's settings and tokenizer")):
        if (folder / name).is_file():
            rows.append((folder / name, what))
    for midi in sorted(folder.glob("*.mid")):
        rows.append((midi, "generated MIDI (drums on channel 10)"))
        for suffix, what in ((".png", "its drum grid"), (".wav", "its audio")):
            if midi.with_suffix(suffix).is_file():
                rows.append((midi.with_suffix(suffix), what))
    for report in sorted(folder.glob("*.json")):
        if report.name != CONFIG_JSON:
            rows.append((report, describe_evaluation(report)))
    if not rows:
        raise DataError(f"{folder}: holds no run (no checkpoints, history or generated files)")
    width = max(len(shown(path)) for path, _ in rows)
    return [f"{shown(path):<{width}}  {what}" for path, what in rows]


def shown(path):
    """A path as one printable line: a byte that is not UTF-8 (a surrogate escape) or a newline in a file name is
    printed escaped (\\udcff, \\n), as ``ascii()`` writes it, rather than breaking the line or the output's codec."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in str(path))


def describe_history(path):
    """'loss per epoch (N epochs)', counting rows a chunk at a time; a file too large to be a history is not read."""
    size = path.stat().st_size
    if size > MAX_HISTORY_BYTES:
        return f"{size / 2**30:.1f} GB: too large to be a run's loss history, not read"
    lines, last = 0, b"\n"
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            lines, last = lines + chunk.count(b"\n"), chunk[-1:]
    lines += last != b"\n"  # a last row without its line end
    return f"loss per epoch ({max(0, lines - 1)} epochs)"


def describe_evaluation(path):
    if path.stat().st_size > MAX_HISTORY_BYTES:
        return "a JSON file (not an evaluation report)"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        scores = {name: value["nll"] for name, value in report.items() if isinstance(value, dict) and "nll" in value}
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return "a JSON file (not an evaluation report)"
    if not scores or not all(isinstance(nll, (int, float)) for nll in scores.values()):
        return "a JSON file (not an evaluation report)"
    numbers = ", ".join(f"{name} {nll:.3f}" for name, nll in scores.items())
    return f"{report.get('split', '?')} split, NLL in nats per token: {numbers}"
