"""The learning rate over a run: constant (Keras's default), a cosine decay over the epochs the run will have, or a
cooldown (constant, then the cosine over the last part only).

Cosine decay (Loshchilov & Hutter's SGDR without restarts; Keras's ``CosineDecay``), per epoch ``e`` of ``E``:

    lr_e = lr_0 * (alpha + (1 - alpha) * (1 + cos(pi * p)) / 2),   p = e / E

Large steps while the loss falls fast, small ones at the end, where a constant rate keeps the weights hopping
around a minimum it could settle into. The cooldown (the "stable, then decay" schedule of budgeted training) holds
lr_0 until a fraction ``HOLD`` of the run and runs the same curve over the rest, p = (e / E - HOLD) / (1 - HOLD):
a model still far from converged when the budget ends (the drums recipe at 15 minutes) keeps its full rate for
most of the run and still settles at the end. ``E`` is ``--epochs``; with a ``--time-budget`` it is the number of epochs
the budget will hold: after every epoch, the epochs done plus those that still fit at the last epoch's pace (the
TimeBudget callback's own stopping rule), so the curve follows a machine that slows down or speeds up. A budgeted
plan is part of the run's state, so ``--resume`` continues it; without a budget the plan is the resumed run's
``--epochs``. Either way a resume that extends the run follows the new plan from where it is: the curve depends on
the run's length, so the epochs already done keep the rates they had.
"""
import math

from ..callbacks import LearningRateScheduler

SCHEDULES = ("constant", "cosine", "cooldown")
FLOOR = 0.02   # alpha: the last epochs still move a little
HOLD = 0.7     # the cooldown's constant part
# The plan follows every epoch's time, so it moves by an epoch or two as times jitter (32, 33, 32...); the log says
# it again only when it moved by more than this fraction since it last said it (the machine really sped up or
# slowed down).
CHANGE = 0.25


class CosineDecay(LearningRateScheduler):
    """lr_e as above, with E planned from ``epochs`` and, when given, ``budget_minutes`` and the epochs' times
    (``logs["seconds"]``, ``logs["elapsed"]``, set by the TimeBudget callback, which must come before this one)."""

    def __init__(self, initial_lr, epochs, budget_minutes=None, alpha=FLOOR, hold=0.0, log=print):
        super().__init__(self.rate)
        self.initial_lr, self.epochs, self.alpha, self.hold, self.log = initial_lr, epochs, alpha, hold, log
        self.budget = None if budget_minutes is None else 60.0 * budget_minutes
        self.planned = None if self.budget is not None else epochs
        self.announced = None  # the plan last logged

    def rate(self, epoch, lr):
        if self.planned is None:          # the first epoch of a budgeted run, before the plan exists
            return self.initial_lr
        progress = max(min(epoch, self.planned) / self.planned - self.hold, 0.0) / (1 - self.hold)
        return self.initial_lr * (self.alpha + (1 - self.alpha) * (1 + math.cos(math.pi * progress)) / 2)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.budget is not None:
            still = int(max(self.budget - logs["elapsed"], 0.0) // max(logs["seconds"], 1e-9))
            self.planned = max(1, min(self.epochs, epoch + 1 + still))
            if self.announced is None or abs(self.planned - self.announced) > CHANGE * self.announced:
                self.log(f"learning rate: {'cooldown' if self.hold else 'cosine decay'} over {self.planned} epochs "
                         "(those the time budget holds)")
                self.announced = self.planned

    def get_state(self):
        return {"planned": self.planned, "announced": self.announced}

    def set_state(self, state):
        if self.budget is not None:   # without a budget the plan is this run's --epochs, set in __init__
            self.planned = state["planned"]
            self.announced = state.get("announced", self.planned)


def learning_rate_schedule(config, log=print):
    """The callback that sets the learning rate of ``config``'s run, or None for a constant rate."""
    if config.lr_schedule == "cosine":
        return CosineDecay(config.lr, config.epochs, config.time_budget, log=log)
    if config.lr_schedule == "cooldown":
        return CosineDecay(config.lr, config.epochs, config.time_budget, hold=HOLD, log=log)
    return None
