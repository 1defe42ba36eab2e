"""Callbacks with Keras's hooks: History, ModelCheckpoint (atomic, never writes NaN weights), EarlyStopping,
BackupAndRestore (resume an interrupted fit exactly), SwapEMAWeights (validate and save with the optimizer's averaged
weights), TimeBudget (stop before a time limit), ProgressLogger.

A callback whose state must survive an interruption (a best value, the time spent) has ``get_state()`` and
``set_state(state)`` (JSON-able); ``BackupAndRestore(..., state_of=[...])`` keeps it with the backup.
"""
import math
import os
import sys
import time
import warnings

import numpy

from . import backend
from .serialization import check_resume_state, json_entry, read_archive, restore_field


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

    def on_test_begin(self, logs=None):
        """Before fit's validation pass (Keras calls it at the start of ``evaluate``)."""

    def on_test_end(self, logs=None):
        """After fit's validation pass."""

    def on_train_end(self, logs=None):
        pass

    def get_state(self):
        """What this callback must remember across an interruption (JSON-able; None: nothing)."""
        return None

    def set_state(self, state):
        pass


def all_finite(model, logs, keys):
    """True when every weight of ``model`` and every value of ``logs`` named in ``keys`` is finite."""
    values = [(logs or {}).get(key) for key in keys]
    if any(value is not None and not math.isfinite(value) for value in values):
        return False
    return all(numpy.isfinite(w).all() for w in model.get_weights())


def metadata_for(metadata, epoch, logs):
    """``metadata`` as given (a dict or None), or called as ``metadata(epoch, logs)`` when it is a function."""
    return dict(metadata(epoch, logs)) if callable(metadata) else (dict(metadata) if metadata else None)


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
    never leaves a truncated checkpoint; a model with NaN or infinite weights, or a non-finite ``monitor``, is
    never written. ``filepath`` may hold ``{epoch:02d}``-style placeholders filled from the epoch (1-based) and
    the logs. ``metadata``: a dict saved with the model, or a function ``metadata(epoch, logs) -> dict``.
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
        if not all_finite(self.model, logs, [self.monitor]):
            warnings.warn(f"ModelCheckpoint: the model has NaN or infinite weights or {self.monitor}; "
                          f"not writing {path}")
            return
        if current is not None and self.verbose:
            print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best} to {current:.5f}, "
                  f"saving model to {path}")
        self.model.save(path, include_optimizer=not self.save_weights_only,
                        metadata=metadata_for(self.metadata, epoch, logs))
        if current is not None:
            # only a value that is in the file raises the bar: a skipped (NaN-weight) epoch must not
            self.best = current

    state_fields = {"best": (float, None)}  # what get_state gives, checked by BackupAndRestore before set_state

    def get_state(self):
        return {"best": self.best}

    def set_state(self, state):
        self.best = state["best"]


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (optionally restoring the best weights)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", restore_best_weights=False):
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.mode = _resolve_mode(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self.best, self.wait, self.best_weights = None, 0, None
        self.stopped_epoch = None  # the 0-based epoch after which training stopped, as Keras records it

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            return
        if _improved(self.mode, current, self.best, self.min_delta):
            self.best, self.wait = current, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        # Keras's rule: patience=2 stops after the second epoch in a row without improvement
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    state_fields = {"best": (float, None), "wait": int}

    def get_state(self):
        # the best weights themselves are not kept: a resumed run restores the best from its own epochs
        return {"best": self.best, "wait": self.wait}

    def set_state(self, state):
        self.best, self.wait = state["best"], state["wait"]


class BackupAndRestore(Callback):
    """Keras's BackupAndRestore: a fit that was interrupted continues from its last finished epoch, exactly.

    At the end of every epoch the model (weights and optimizer state) is saved to ``filepath`` with, in its
    metadata under ``"training"``: the epoch, the host RNG state (shuffles, dropout masks) and the state of each
    callback in ``state_of`` (``get_state``). A later ``fit`` given this callback finds the file in
    ``on_train_begin``, restores all of it and continues with the next epoch, so 1 epoch, then a resumed fit to
    2, gives the very weights of 2 epochs in one go. An epoch with non-finite weights or logs is never backed up.
    ``delete_checkpoint`` removes the backup when fit ends normally (Keras's default); keep it to be able to
    train on later. ``metadata``: more to save with it, a dict or ``metadata(epoch, logs) -> dict``.
    """

    def __init__(self, filepath, delete_checkpoint=True, metadata=None, state_of=()):
        self.filepath = os.fspath(filepath)
        self.delete_checkpoint, self.metadata = delete_checkpoint, metadata
        self.state_of = list(state_of)
        self.restored_epoch = None  # the epoch the backup held when fit began (None: started afresh)
        self.saved_epoch = None  # the last epoch written to the file by this fit

    def on_train_begin(self, logs=None):
        if not os.path.exists(self.filepath):
            return
        arrays = read_archive(self.filepath, self.model)
        metadata = json_entry(arrays, "metadata", self.filepath) if "metadata" in arrays else {}
        training = metadata.get("training") or {}
        if not isinstance(training, dict) or "epoch" not in training or "rng_state" not in training:
            raise ValueError(f"{self.filepath} holds no training state to resume from")
        check_resume_state(training, self.state_of, self.filepath)  # a file edited by hand: one line naming the field
        self.model.restore_arrays(arrays, self.filepath)
        restore_field(self.filepath, "metadata.training.rng_state", backend.set_rng_state, training["rng_state"])
        for index, (callback, state) in enumerate(zip(self.state_of, training.get("callbacks", []))):
            restore_field(self.filepath, f"metadata.training.callbacks[{index}] ({type(callback).__name__})",
                          callback.set_state, state)
        self.restored_epoch = self.saved_epoch = int(training["epoch"])
        self.model._initial_epoch = self.restored_epoch  # Keras's hook: fit continues with the next epoch

    def on_epoch_end(self, epoch, logs=None):
        if not all_finite(self.model, logs, list(logs or {})):
            kept = f"{self.filepath} keeps epoch {self.saved_epoch}" if self.saved_epoch else "nothing written"
            warnings.warn(f"BackupAndRestore: epoch {epoch + 1} has NaN or infinite weights or logs; {kept}")
            return
        metadata = metadata_for(self.metadata, epoch, logs) or {}
        metadata["training"] = {**metadata.get("training", {}), "epoch": epoch + 1,
                                "rng_state": backend.get_rng_state(),
                                "callbacks": [callback.get_state() for callback in self.state_of]}
        self.model.save(self.filepath, include_optimizer=True, metadata=metadata)
        self.saved_epoch = epoch + 1

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.filepath):
            os.remove(self.filepath)


class SwapEMAWeights(Callback):
    """Keras's ``SwapEMAWeights``: the validation inside ``fit`` runs with the optimizer's averaged weights
    (``use_ema=True``), and with ``swap_on_epoch=True`` every ``on_epoch_end`` hook after this one (ModelCheckpoint,
    BackupAndRestore) sees them too; the trained weights come back at the next epoch's start.

    The exchange is ``optimizer.swap_averages`` (no copies), and the optimizer knows which weights the model holds
    (``averages_swapped``), so the end of fit (``finalize_variable_values``) leaves the averages in the model
    whether the last epoch was planned or cut short. A backup written while swapped holds the averages as the
    weights and the trained weights as the averages: give this callback to ``BackupAndRestore(state_of=[...])``
    and a resumed fit swaps them back before training.
    """

    def __init__(self, swap_on_epoch=False):
        self.swap_on_epoch = swap_on_epoch

    def swap(self, averages_in_model):
        optimizer = self.model.optimizer
        if not getattr(optimizer, "use_ema", False):
            raise ValueError("SwapEMAWeights needs an optimizer with use_ema=True")
        if optimizer.averages is not None and optimizer.averages_swapped != averages_in_model:
            optimizer.swap_averages(self.model.trainable_variables)

    def on_epoch_begin(self, epoch, logs=None):
        self.swap(False)

    def on_test_begin(self, logs=None):
        self.swap(True)

    def on_test_end(self, logs=None):
        if not self.swap_on_epoch:
            self.swap(False)

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch:
            self.swap(True)

    def get_state(self):
        return {"averages_swapped": bool(self.model.optimizer.averages_swapped)}

    def set_state(self, state):
        self.model.optimizer.averages_swapped = bool(state["averages_swapped"])


class LearningRateScheduler(Callback):
    """Keras's ``LearningRateScheduler``: at the start of every epoch, ``lr = schedule(epoch, lr)`` becomes the
    optimizer's learning rate; the epoch's logs get ``learning_rate``."""

    def __init__(self, schedule, verbose=0):
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, float(self.model.optimizer.learning_rate)))
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"LearningRateScheduler: the schedule gave learning rate {lr} for epoch {epoch + 1}")
        self.model.optimizer.learning_rate = lr
        if self.verbose:
            print(f"epoch {epoch + 1}: learning rate {lr:.3g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TimeBudget(Callback):
    """Stop training before an epoch that would end past ``minutes`` of training in all (resumed runs included).

    After each epoch: if the time spent so far plus one more epoch like this one exceeds the budget, fit stops
    (``model.stop_training``) and ``stopped_epoch`` says after which. Adds ``seconds`` (this epoch) and
    ``elapsed`` (all epochs so far) to the logs.
    """

    def __init__(self, minutes=None, log=print):
        self.budget = None if minutes is None else 60.0 * minutes
        self.log = log
        self.elapsed, self.stopped_epoch = 0.0, None

    def on_train_begin(self, logs=None):
        self.epochs = (logs or {}).get("epochs")

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.began
        self.elapsed += seconds
        if logs is not None:
            logs["seconds"], logs["elapsed"] = seconds, self.elapsed
        last = self.epochs is not None and epoch + 1 >= self.epochs
        if self.budget is not None and not last and self.elapsed + seconds > self.budget:
            self.model.stop_training = True
            self.stopped_epoch = epoch + 1
            self.log(f"time budget of {self.budget / 60:g} min reached after {self.elapsed / 60:.1f} min (another "
                     f"epoch would take ~{seconds:.0f} s)")

    state_fields = {"elapsed": float}

    def get_state(self):
        return {"elapsed": self.elapsed}

    def set_state(self, state):
        self.elapsed = float(state["elapsed"])
