"""The sweep's two studies and what one trial is: an ordinary ``deeprnn train`` run in its own folder.

- The search study (named after the sweep folder, ``NAME``) samples the space's distributions; its trial number
  ``n`` trains into ``trials/NNNN`` (``trials/0007``) with the space's first seed.
- The seeds study (``NAME.seeds``) re-runs the best configurations of the search with more seeds: its trials are
  enqueued with the search trial they repeat and the seed, and train into ``trials/0007-seed1``, ``-seed2``...;
  they are not pruned (a pruned seed would bias the configuration's mean).

No trial is run twice: a trial's folder comes from its number, and a retried trial (a stale one, failed by heartbeat,
comes back as a WAITING copy whose ``failed_trial`` names the original) takes its original's folder and *resumes*
it from ``last.npz`` (the epochs done are kept; ``train --resume`` continues with the very weights an
uninterrupted run would have); a folder with no ``last.npz`` yet is started over. A worker holds a ``flock`` on the
folder while it trains there, so a retry never trains beside a still-living original on the same machine.
"""
import fcntl
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from ..callbacks import Callback
from ..errors import SettingError
from ..model import NonFiniteLossError
from ..pipeline.trainer import LAST, train
from .pruning import DEFAULT_STARTUP, DEFAULT_WARMUP, PruningCallback, make_pruner
from .space import SearchSpace
from .storage import StorageSpec, fail_stale_trials

TRIALS = "trials"
SEEDS_SUFFIX = ".seeds"
SPACE_ATTR = "space"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DEFAULT_TOP = 3  # configurations re-run with --seeds


@dataclass
class SweepPlan:
    """Everything a process of the sweep needs (picklable: workers are started with it)."""

    out: str
    space: SearchSpace
    trials: int
    storage: StorageSpec
    time_budget: float | None = None
    seeds: int = 1
    top: int = DEFAULT_TOP
    pruner: str = "median"
    pruner_warmup: int = DEFAULT_WARMUP
    pruner_startup: int = DEFAULT_STARTUP

    @property
    def name(self):
        return Path(self.out).resolve().name

    @property
    def seeds_name(self):
        return self.name + SEEDS_SUFFIX


def quiet_experimental():
    """Heartbeat, the retry callback and the journal are Optuna's "experimental" features: a warning each is
    noise in every worker's output."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the sweep asks and tells itself and runs the heartbeat thread itself (study.Heartbeat), which Optuna's
    # warning about using a heartbeat outside Study.optimize does not know
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_studies(plan, storage=None):
    """(search, seeds) studies of the plan, created or joined (``load_if_exists``); a different space is refused."""
    storage = storage or plan.storage.open()
    search = optuna.create_study(storage=storage, study_name=plan.name, direction="minimize", load_if_exists=True,
                                 pruner=make_pruner(plan.pruner, plan.pruner_warmup, plan.pruner_startup))
    # what every trial of the study must share: the space (but where the data is, which differs per machine) and
    # the time budget
    text = json.dumps({"space": json.loads(plan.space.to_json(without=("data",))), "time_budget": plan.time_budget},
                      sort_keys=True)
    known = search.user_attrs.get(SPACE_ATTR)
    if known is None:
        search.set_user_attr(SPACE_ATTR, text)
    elif known != text:
        raise SettingError(f"--space {plan.space.source}: the study {plan.name!r} in {plan.storage.describe()} was "
                           "started with another space or --time-budget; use the same, or another --out")
    seeds = optuna.create_study(storage=storage, study_name=plan.seeds_name, direction="minimize",
                                load_if_exists=True, pruner=optuna.pruners.NopPruner())
    return search, seeds


def load_studies(storage, name):
    """The (search, seeds) studies of an existing sweep, for ``sweep show``; seeds is None before any seeds."""
    search = optuna.load_study(study_name=name, storage=storage)
    names = {summary.study_name for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    seeds = optuna.load_study(study_name=name + SEEDS_SUFFIX, storage=storage) if name + SEEDS_SUFFIX in names \
        else None
    return search, seeds


# --- what is left to do -------------------------------------------------------------------------------------------
def count(trials, *states):
    return sum(trial.state in states for trial in trials)


def search_work_left(plan, search):
    """A retry is waiting, or fewer than --trials trials are finished or running."""
    trials = search.get_trials(deepcopy=False)
    errors = sum(trial.state == TrialState.FAIL and "error" in trial.user_attrs for trial in trials)
    if errors >= plan.trials:  # the space is at fault: the sweep stops with the last error (runner.check_errors)
        return False
    return count(trials, TrialState.WAITING) > 0 or count(trials, *FINISHED, TrialState.RUNNING) < plan.trials


def seed_jobs(plan, search):
    """(search trial number, seed) of every seeded re-run: the ``top`` best completed search trials, seeds 2..K."""
    if plan.seeds <= 1:
        return []
    done = sorted(search.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda trial: trial.value)
    first = plan.space.first_seed
    return [(folder_number(trial), first + offset) for trial in done[:plan.top] for offset in range(1, plan.seeds)]


def enqueue_seed_jobs(plan, search, seeds):
    """Enqueue the seed runs not yet in the seeds study (a second machine finding them there adds none)."""
    present = {(trial.user_attrs.get("config_trial"), trial.user_attrs.get("seed"))
               for trial in seeds.get_trials(deepcopy=False)}
    added = 0
    for number, seed in seed_jobs(plan, search):
        if (number, seed) not in present:
            seeds.enqueue_trial({}, user_attrs={"config_trial": number, "seed": seed})
            added += 1
    return added


# --- one trial ------------------------------------------------------------------------------------------------------
def folder_number(trial):
    """The search trial number whose folder a trial trains in: its own, or the original's for a retry."""
    return trial.system_attrs.get("failed_trial", trial.number)


def trial_folder(plan, trial, seeded):
    """The run folder of a trial (a FrozenTrial: a live Trial does not show its system attributes)."""
    if seeded:
        return Path(plan.out) / TRIALS / f"{trial.user_attrs['config_trial']:04d}-seed{trial.user_attrs['seed']}"
    return Path(plan.out) / TRIALS / f"{folder_number(trial):04d}"


class Surplus(Exception):
    """A seeds-study trial asked for when another process had taken the last waiting one."""


def run_trial(plan, search, study, trial, seeded):
    """Train one trial in its folder; returns (state, value). Records epochs, minutes and the folder on the trial."""
    frozen = study.trials[trial.number]
    if seeded:
        if "config_trial" not in trial.user_attrs:
            raise Surplus()
        config_trial = search.trials[trial.user_attrs["config_trial"]]
        params, seed = config_trial.params, trial.user_attrs["seed"]
    else:
        params, seed = trial.params, None
    config = plan.space.config(params, seed=seed, time_budget=plan.time_budget)
    folder = trial_folder(plan, frozen, seeded)
    folder.mkdir(parents=True, exist_ok=True)
    trial.set_user_attr("folder", str(folder))
    trial.set_user_attr("host", socket.gethostname())
    pruning = None if seeded else PruningCallback(trial)
    with folder_lock(folder), open(folder / "train.log", "a", encoding="utf-8") as log_file:
        def log(*parts):
            print(*parts, file=log_file, flush=True)

        resume = (folder / LAST).exists()
        started = time.time()
        result = train(config, folder, resume=resume, overwrite=not resume, progress=False, log=log,
                       extra_callbacks=(InterruptCheck(),) + (() if pruning is None else (pruning,)))
    if result.stopped == "interrupted":
        raise KeyboardInterrupt
    losses = [row["val_loss"] for row in result.history]
    trial.set_user_attr("epochs", result.epochs_done)
    trial.set_user_attr("minutes", (result.history[-1]["elapsed"] if result.history else
                                    time.time() - started) / 60)
    trial.set_user_attr("stopped", "pruned" if pruning and pruning.pruned_epoch else result.stopped)
    value = min(losses) if losses else math.nan
    if pruning is not None and pruning.pruned_epoch is not None:
        return TrialState.PRUNED, value
    return TrialState.COMPLETE, value


class folder_lock:
    """An exclusive ``flock`` on ``folder/.trial.lock`` while a trial trains there (released if the process dies)."""

    def __init__(self, folder):
        self.path = Path(folder) / ".trial.lock"

    def __enter__(self):
        self.descriptor = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.descriptor, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.descriptor, fcntl.LOCK_UN)
        os.close(self.descriptor)


# --- a worker -------------------------------------------------------------------------------------------------------
def run_worker(plan, seeded=False):
    """Run trials until none is left (search: --trials reached and no retry waiting; seeds: no job waiting)."""
    quiet_experimental()
    storage = plan.storage.open()
    search, seeds = open_studies(plan, storage)
    study = seeds if seeded else search
    while True:
        fail_stale_trials(study)
        if seeded:
            if not count(study.get_trials(deepcopy=False), TrialState.WAITING):
                return
        elif not search_work_left(plan, search):
            return
        one_trial(plan, search, study, storage, seeded)


def one_trial(plan, search, study, storage, seeded):
    """Ask, train with a heartbeat, tell. Interrupted (Ctrl-C, SIGTERM): failed now and retried at once."""
    # the search samples every distribution as it asks (a retry gets its original's values back)
    trial = study.ask() if seeded else study.ask(fixed_distributions=plan.space.distributions)
    beat = Heartbeat(storage, trial._trial_id)
    try:
        with beat:
            state, value = run_trial(plan, search, study, trial, seeded)
    except Surplus:
        study.tell(trial, state=TrialState.FAIL)
        return
    except KeyboardInterrupt:
        # Ctrl-C reaches the workers and the sweep process together, and the sweep then sends SIGTERM: a second
        # interrupt must not cut the retry short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fail_and_retry(study, storage, trial)
        raise
    except (SettingError, NonFiniteLossError, ValueError) as error:
        trial.set_user_attr("error", " ".join(str(error).split()))
        study.tell(trial, state=TrialState.FAIL)
        return
    if state == TrialState.PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, value)


def fail_and_retry(study, storage, trial):
    """What the heartbeat would do after its grace period, done now: the trial fails and comes back WAITING."""
    storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        callback(study, storage.get_trial(trial._trial_id))


class Heartbeat:
    """A thread that records the trial's heartbeat every interval while it trains (Optuna's HeartbeatThread does
    this inside ``study.optimize``; the sweep asks and tells itself, so that an interrupted trial is retried)."""

    def __init__(self, storage, trial_id):
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)

    def beat(self):
        interval = self.storage.get_heartbeat_interval()
        while True:
            self.storage.record_heartbeat(self.trial_id)
            if self.stop.wait(interval):
                return

    def __enter__(self):
        self.thread.start()

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def worker_process(plan, seeded, parent):
    """A worker's process: one BLAS thread, SIGTERM as Ctrl-C, and gone when its parent is (even after kill -9)."""
    threadpool_limits(limits=1, user_api="blas")
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, raise_keyboard_interrupt)
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()
    try:
        run_worker(plan, seeded)
    except KeyboardInterrupt:
        sys.exit(130)


# Set by the worker's SIGINT/SIGTERM handler. An exception raised by a signal handler lands wherever the main thread
# is, and when that is a finalizer (a weakref callback, a __del__) Python prints "Exception ignored" and goes on:
# the interrupt would be lost and the trial trained on. InterruptCheck raises it again at the next batch.
INTERRUPTED = threading.Event()


def raise_keyboard_interrupt(signum, frame):
    INTERRUPTED.set()
    raise KeyboardInterrupt


class InterruptCheck(Callback):
    """Raise KeyboardInterrupt after any batch once the worker has been told to stop (see INTERRUPTED)."""

    def on_batch_end(self, batch, logs=None):
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt


def exit_with_parent(parent, every=1.0):
    """Leave when the sweep process is gone: an orphan would train on, unseen, beside a restarted sweep."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(137)
