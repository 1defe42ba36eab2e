"""Pruning: each epoch's validation loss goes to the trial, and Optuna's pruner may stop a hopeless trial.

``PruningCallback`` is shaped like ``optuna_integration.KerasPruningCallback``: ``on_epoch_end(epoch, logs)``
reports ``logs["val_loss"]`` at step ``epoch`` and asks ``trial.should_prune()``. Where Keras's raises
``TrialPruned`` from inside ``fit``, this one sets ``model.stop_training`` (as ``EarlyStopping`` does), so the
epoch's checkpoints and history are written by the callbacks after it and the run folder stays a normal, resumable
run; the objective raises ``TrialPruned`` once ``train`` has returned.
"""
import optuna

from ..callbacks import Callback

PRUNERS = ("median", "hyperband", "none")
DEFAULT_WARMUP = 2  # epochs reported before the median pruner may stop a trial
DEFAULT_STARTUP = 5  # finished trials before the median pruner compares with them


class PruningCallback(Callback):
    """Report ``logs[monitor]`` after each epoch; stop training when the trial's pruner says so."""

    def __init__(self, trial, monitor="val_loss"):
        super().__init__()
        self.trial, self.monitor = trial, monitor
        self.pruned_epoch = None  # the epoch (1-based) after which the pruner stopped the trial

    def on_epoch_end(self, epoch, logs=None):
        self.trial.report(float(logs[self.monitor]), step=epoch)
        if self.trial.should_prune():
            self.pruned_epoch = epoch + 1
            self.model.stop_training = True


def make_pruner(name, warmup=DEFAULT_WARMUP, startup=DEFAULT_STARTUP):
    """``median`` (Optuna's MedianPruner: stop a trial whose best value so far is worse than the median of the
    finished trials at the same epoch), ``hyperband`` (successive halving over brackets, resources = epochs) or
    ``none``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"--pruner must be one of {', '.join(PRUNERS)}, got {name!r}")
