"""Callbacks with Keras's hooks: History, ModelCheckpoint (atomic, never writes NaN weights), EarlyStopping."""
import math
import os
import sys
import time
import warnings

import numpy


class Callback:
    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class CallbackList:
    def __init__(self, callbacks, model):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)
        self.model = model

    def append(self, callback):
        callback.set_model(self.model)
        self.callbacks.append(callback)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call_all(*args, **kwargs):
            for callback in self.callbacks:
                getattr(callback, hook)(*args, **kwargs)
        return call_all


class History(Callback):
    """``history.history['loss']`` etc., one entry per epoch, as in Keras."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class ProgressLogger(Callback):
    """One line per epoch with its losses and time (verbose=1 also shows the running batch loss)."""

    def __init__(self, verbose=1, stream=None):
        self.verbose = verbose
        self.stream = stream or sys.stdout

    def on_train_begin(self, logs=None):
        self.epochs, self.steps = (logs or {}).get("epochs"), (logs or {}).get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        if self.verbose == 1 and self.stream.isatty():
            self.stream.write(f"\rEpoch {self.epoch + 1}/{self.epochs} {batch + 1}/{self.steps} "
                              f"loss: {logs['loss']:.4f}")
            self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        values = " - ".join(f"{key}: {value:.4f}" for key, value in (logs or {}).items())
        prefix = "\r" if self.verbose == 1 and self.stream.isatty() else ""
        self.stream.write(f"{prefix}Epoch {epoch + 1}/{self.epochs} - {seconds:.1f}s - {values}\n")
        self.stream.flush()


def _improved(mode, current, best, min_delta=0.0):
    if best is None:
        return True
    return current < best - min_delta if mode == "min" else current > best + min_delta


def _resolve_mode(mode, monitor):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class ModelCheckpoint(Callback):
    """Keras's ModelCheckpoint: save at each epoch end, or only when ``monitor`` improves (strictly).

    The file is written to a temporary name beside the target and renamed over it, so an interrupted save
    never leaves a truncated checkpoint; a model with NaN or infinite weights is never written.
    ``filepath`` may hold ``{epoch:02d}``-style placeholders filled from the epoch (1-based) and the logs.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto",
                 save_weights_only=False, metadata=None):
        self.filepath = os.fspath(filepath)
        self.monitor, self.verbose, self.save_best_only = monitor, verbose, save_best_only
        self.mode = _resolve_mode(mode, monitor)
        self.save_weights_only = save_weights_only
        self.metadata = metadata
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        current = logs.get(self.monitor) if self.save_best_only else None
        if self.save_best_only:
            if current is None:
                warnings.warn(f"ModelCheckpoint: {self.monitor!r} is not in the logs ({sorted(logs)}); saving anyway")
            elif not math.isfinite(current):
                warnings.warn(f"ModelCheckpoint: {self.monitor} is {current}; not saving")
                return
            elif not _improved(self.mode, current, self.best):
                return
        if not all(numpy.isfinite(w).all() for w in self.model.get_weights()):
            warnings.warn(f"ModelCheckpoint: the model has NaN or infinite weights; not writing {path}")
            return
        if current is not None and self.verbose:
            print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to {current:.5f}, "
                  f"saving model to {path}")
        self.model.save(path, include_optimizer=not self.save_weights_only, metadata=self.metadata)
        if current is not None:
            # only a value that is in the file raises the bar: a skipped (NaN-weight) epoch must not
            self.best = current


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (optionally restoring the best weights)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", restore_best_weights=False):
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.mode = _resolve_mode(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self.best, self.wait, self.best_weights = None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            return
        if _improved(self.mode, current, self.best, self.min_delta):
            self.best, self.wait = current, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
