"""``deeprnn sweep``: the process that starts the workers, watches the study, and re-runs the best with more seeds.

    search phase   --workers processes run search trials until --trials are finished (or running elsewhere)
    settle         wait until no trial of the study runs: a dead one is failed by heartbeat, retried, run again
    seeds phase    (--seeds K > 1) the best --top configurations again with seeds 2..K, the same workers' way

Every process opens the same storage (``StorageSpec``) and asks it for work, so a second ``deeprnn sweep`` with
the same --out name and --storage, on this machine or another, joins the same study; one started again after a
kill continues it.
"""
import multiprocessing
import os
import signal
import time
from pathlib import Path

from optuna.trial import TrialState

from ..errors import DeeprnnError, SettingError
from .report import progress_line
from .study import (FINISHED, count, enqueue_seed_jobs, open_studies, quiet_experimental, search_work_left,
                    worker_process)
from .storage import fail_stale_trials

POLL_SECONDS = 2.0


class SweepError(SettingError):
    """Every trial of the sweep fails: a setting of the space that the recipe refuses, or one that diverges."""


class WorkerFailed(DeeprnnError):
    """A worker process ended on its own (killed for memory, or a bug, whose traceback the worker printed): the
    sweep stops in one line, the study keeps every finished trial, and the same command continues it."""


def run_sweep(plan, workers, log=print, poll=POLL_SECONDS):
    """Run the plan with ``workers`` local processes until the study is done; returns (search, seeds) studies."""
    quiet_experimental()
    if plan.storage.embedded:  # the journal lives in the folder; with a database, nothing is made before it opens
        Path(plan.out).mkdir(parents=True, exist_ok=True)
    storage = plan.storage.open()
    search, seeds = open_studies(plan, storage)
    log(f"sweep {plan.name}: {plan.storage.describe()}, {plan.trials} trials of "
        f"{', '.join(plan.space.distributions)}, {workers} workers, pruner {plan.pruner}, "
        f"{'no time budget' if plan.time_budget is None else f'{plan.time_budget:g} minutes a trial'}")
    RECEIVED.clear()
    previous = {signum: signal.signal(signum, raise_interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_phase(plan, search, seeds, workers, seeded=False, log=log, poll=poll)
        if plan.seeds > 1:
            added = enqueue_seed_jobs(plan, search, seeds)
            log(f"seeds: the best {plan.top} configurations with {plan.seeds} seeds each ({added} runs enqueued)")
            run_phase(plan, search, seeds, workers, seeded=True, log=log, poll=poll)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return search, seeds


def run_phase(plan, search, seeds, workers, seeded, log, poll):
    study = seeds if seeded else search
    shown = None
    while True:
        fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        waiting = count(trials, TrialState.WAITING)
        check_errors(plan, trials)
        if waiting if seeded else search_work_left(plan, search):
            # no more processes than trials to start: each costs an interpreter and the library's import
            started = count(trials, *FINISHED, TrialState.RUNNING)
            needed = waiting if seeded else waiting + max(0, plan.trials - started)
            shown = run_workers(plan, search, seeds, max(1, min(workers, needed)), seeded, log, poll, shown)
            continue
        if not count(trials, TrialState.RUNNING):
            show_progress(search, seeds, log, shown)  # the end, as the study has it (other machines' trials too)
            return
        # trials running elsewhere (another machine), or dead ones whose heartbeat has not yet gone stale
        shown = show_progress(search, seeds, log, shown)
        time.sleep(poll)


def check_errors(plan, trials):
    """Trials that failed with an error of their own (a setting the recipe refuses, weights that overflowed) are
    not retried; when --trials of them have failed, the space is at fault and the sweep stops."""
    errors = [trial for trial in trials if trial.state == TrialState.FAIL and "error" in trial.user_attrs]
    if len(errors) >= plan.trials:
        raise SweepError(f"{len(errors)} trials failed; the last: {errors[-1].user_attrs['error']}")


def run_workers(plan, search, seeds, number, seeded, log, poll, shown):
    """Start ``number`` worker processes and wait for them, printing the progress line when it changes."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: its own BLAS, no copied threads
    processes = [context.Process(target=worker_process, args=(plan, seeded, os.getpid()), daemon=False)
                 for _ in range(number)]
    for process in processes:
        process.start()
    try:
        while any(process.is_alive() for process in processes):
            raise_if_interrupted()  # an interrupt a finalizer swallowed (see study.INTERRUPTED)
            shown = show_progress(search, seeds, log, shown)
            for process in processes:
                process.join(timeout=poll / len(processes))
    except KeyboardInterrupt as interrupt:
        stop(processes, forward=isinstance(interrupt, Terminated))
        raise
    shown = show_progress(search, seeds, log, shown)
    failed = [process.exitcode for process in processes if process.exitcode not in (0, None)]
    if failed:
        raise WorkerFailed(f"{len(failed)} worker(s) ended with status {', '.join(map(str, failed))}; the study "
                           "keeps its finished trials: run the same command again to continue")
    return shown


def stop(processes, forward, grace=5, wait=30):
    """Ctrl-C or SIGTERM: each worker fails its trial (to be retried) and leaves; wait for them to have done so.

    Ctrl-C reaches the workers too (the terminal signals the whole process group): they get ``grace`` seconds to
    leave on their own, since a second signal in the middle of their retry would cut it short. A SIGTERM (or a
    SIGINT sent to the sweep process alone) reaches only the sweep: it passes it on, as SIGTERM, which a worker
    takes as Ctrl-C (``study.worker_process``).
    """
    started = time.time()
    if not forward:
        for process in processes:
            process.join(timeout=max(0.1, started + grace - time.time()))
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=max(0.1, started + wait - time.time()))
        if process.is_alive():
            process.kill()


def show_progress(search, seeds, log, shown):
    line = progress_line(search, seeds)
    if line != shown:
        log(line)
    return line


class Terminated(KeyboardInterrupt):
    """SIGTERM to the sweep process: handled as Ctrl-C, except that the workers have not had it."""


RECEIVED = []  # the signals the sweep process was stopped with, kept in case a finalizer swallowed the exception


def raise_interrupt(signum, frame):
    RECEIVED.append(signum)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def raise_if_interrupted():
    if RECEIVED:
        raise Terminated if RECEIVED[-1] == signal.SIGTERM else KeyboardInterrupt
