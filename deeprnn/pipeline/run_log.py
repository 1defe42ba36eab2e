"""The callbacks a training run adds to the library's: its validation score, its log files, its progress bar.

- ``ValidationScore``: puts the recipe's validation loss (drums: whole pieces with their full context; seed: one
  window in seq_len) into the epoch's logs as ``val_loss``, where ModelCheckpoint and EarlyStopping read it.
- ``RunLog``: ``history.csv`` and ``loss.png`` rewritten after every epoch, and one line per epoch on the console.
- ``ProgressBar``: a tqdm bar per epoch (batches, running loss, ETA) on stderr.
"""
import csv
import io
import math
import sys

from ..callbacks import Callback
from ..files import atomic_write_bytes
from ..model import NonFiniteLossError
from . import plotting


class ValidationScore(Callback):
    """logs["val_loss"] = the recipe's validation score of the model after each epoch.

    A non-finite score (finite weights whose outputs overflow) stops the run there, before any checkpoint of
    that epoch is written: a NonFiniteLossError.
    """

    def __init__(self, recipe, sequences, config, tokenizer, labels=None):
        self.recipe, self.sequences, self.config, self.tokenizer = recipe, sequences, config, tokenizer
        self.labels = labels  # a --condition run's label ids of each piece

    def on_epoch_end(self, epoch, logs=None):
        total, count = self.recipe.validation_score(self.model, self.sequences, self.config, self.tokenizer,
                                                    labels=self.labels)
        logs["val_loss"] = total / count
        if not math.isfinite(logs["val_loss"]):
            raise NonFiniteLossError(f"the validation loss is {logs['val_loss']} after epoch {epoch + 1} (the "
                                     "model's outputs overflowed); training stopped")


def minutes(seconds):
    """A duration as a log line gives it, never rounded to nothing: seconds under a minute (7.2 s), then minutes
    with two decimals under 10 (0.12 would be 7.2 s; 3.47 min), one above (14.6 min)."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.2f} min" if seconds < 600 else f"{seconds / 60:.1f} min"


class RunLog(Callback):
    """Rows of (epoch, loss, val_loss, seconds, elapsed), the best epoch by ``monitor``, written as files and lines."""

    def __init__(self, csv_path, png_path, monitor, validation_label, epochs, log=print):
        self.csv_path, self.png_path = csv_path, png_path
        self.monitor, self.validation_label, self.epochs, self.log = monitor, validation_label, epochs, log
        self.rows, self.best, self.best_epoch = [], None, None

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "loss": logs["loss"], "val_loss": logs["val_loss"], "seconds": logs["seconds"],
               "elapsed": logs["elapsed"]}
        self.rows.append(row)
        monitored = row[self.monitor]
        # strict improvement of a finite value, as ModelCheckpoint(save_best_only=True) decides to write best.npz
        improved = math.isfinite(monitored) and (self.best is None or monitored < self.best)
        if improved:
            self.best, self.best_epoch = monitored, epoch + 1
        self.write_history()
        self.log(f"epoch {epoch + 1:>3}/{self.epochs}  loss {row['loss']:.4f}  val_loss {row['val_loss']:.4f}  "
                 f"{row['seconds']:5.1f}s{'  * best ' + self.monitor if improved else ''}")

    def write_history(self):
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        writer.writerow(["epoch", "loss", "val_loss", "seconds", "elapsed_seconds", "best"])
        for row in self.rows:
            writer.writerow([row["epoch"], f"{row['loss']:.6f}", f"{row['val_loss']:.6f}", f"{row['seconds']:.2f}",
                             f"{row['elapsed']:.2f}", int(row["epoch"] == self.best_epoch)])
        atomic_write_bytes(self.csv_path, text.getvalue().encode("utf-8"))
        plotting.plot_loss_curve(self.rows, self.png_path, monitor=self.monitor, best_epoch=self.best_epoch,
                                 validation_label=self.validation_label)

    def get_state(self):
        return {"rows": self.rows, "best": self.best, "best_epoch": self.best_epoch}

    def set_state(self, state):
        self.rows, self.best, self.best_epoch = list(state["rows"]), state["best"], state["best_epoch"]


class ProgressBar(Callback):
    """A tqdm bar per epoch: batches done, the running loss, the time left."""

    def __init__(self, epochs, enabled=True):
        self.epochs, self.enabled, self.bar = epochs, enabled, None

    def on_train_begin(self, logs=None):
        self.steps = (logs or {}).get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=False,
                        disable=not self.enabled, file=sys.stderr, dynamic_ncols=True)

    def on_batch_end(self, batch, logs=None):
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.close()

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()
