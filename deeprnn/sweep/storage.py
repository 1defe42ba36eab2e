"""Where a sweep's study lives: a journal file in the sweep folder (one machine), or a database URL (many).

The embedded default is Optuna's ``JournalStorage`` over a ``JournalFileBackend`` (``sweeps/NAME/journal.log``):
an append-only log of operations that every process replays. SQLite is the other server-less choice, and the
worse one for several worker processes: its writers take a lock on the whole database file and a busy one makes
the others fail with "database is locked" once SQLite's timeout passes (Optuna's own documentation advises
against SQLite for parallel optimization), and an RDB trial update is a read-modify-write of several tables. A
journal append is one ``write`` of whole lines under a file lock, so a reader never sees half an operation.

The lock here is ``fcntl.flock`` (``FlockLock``) rather than Optuna's ``JournalFileOpenLock``, which creates a
lock file: a process killed with SIGKILL while holding that file leaves it behind, and the others wait out a grace
period and then break the lock, which is only safe if the holder is really dead. A ``flock`` belongs to the open
file, and the kernel releases it when the process dies, however it dies.

A trial whose process died is found by heartbeat: Optuna's ``RDBStorage`` has one (``heartbeat_interval``,
``grace_period``); its ``JournalStorage`` does not, so ``HeartbeatJournalStorage`` adds the same contract
(``BaseHeartbeat``): the running trial's worker records a time every interval, and a RUNNING trial whose time is
older than the grace period is failed by the next process that asks for a trial and retried
(``RetryHeartbeatStaleTrialCallback``: a WAITING copy with the same parameters).
"""
import fcntl
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
# BaseHeartbeat is the interface optuna.storages.fail_stale_trials checks for (it is not re-exported publicly)
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from ..errors import SettingError

JOURNAL = "journal.log"
HEARTBEAT_ATTR = "deeprnn_heartbeat"
# A dead trial is failed after GRACE_FACTOR heartbeats without a beat: long enough for a slow disk or a busy CPU.
GRACE_FACTOR = 3
DEFAULT_HEARTBEAT = 10  # seconds
SQL_SCHEMES = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql", "mysql+pymysql", "sqlite")


class FlockLock:
    """A journal lock held with ``fcntl.flock`` on ``path``; the kernel releases it when its process dies.

    Optuna's ``JournalFileBackend`` calls ``acquire()`` and ``release()`` (``BaseJournalFileLock``'s interface).
    Each acquire opens the file anew, so two threads of one process exclude each other too (a flock belongs to
    the open file description).
    """

    def __init__(self, path):
        self.path = str(path)
        self.descriptor = None

    def acquire(self):
        descriptor = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        self.descriptor = descriptor
        return True

    def release(self):
        descriptor, self.descriptor = self.descriptor, None
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """``JournalStorage`` with ``RDBStorage``'s heartbeat: a trial's beat is a system attribute (seconds since the
    epoch, one clock: the processes of one machine share the journal)."""

    def __init__(self, backend, heartbeat_interval, grace_period, stale_trial_callback):
        super().__init__(backend)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id):
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id):
        now = time.time()
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [trial._trial_id for trial in running if now - last_sign_of_life(trial) > self.grace_period]

    def get_heartbeat_interval(self):
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self.stale_trial_callback


def last_sign_of_life(trial):
    """The trial's last heartbeat, or its start for a process that died before its first beat (``RDBStorage``
    never fails such a trial; on one machine's journal, a trial asked for and never beaten is as dead)."""
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    return beat if beat is not None else trial.datetime_start.timestamp()


@dataclass
class StorageSpec:
    """How to open the study's storage in any process: a URL, or None for the journal in ``folder``."""

    url: str | None
    folder: str
    heartbeat: int = DEFAULT_HEARTBEAT

    @property
    def embedded(self):
        return self.url is None

    def describe(self):
        return f"journal {Path(self.folder) / JOURNAL}" if self.embedded else f"database {redacted(self.url)}"

    def open(self):
        """The storage, heartbeat on, stale trials retried with their reports kept (a resumed run reports on)."""
        with warnings.catch_warnings():  # "experimental since 2.8": noise
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)
        grace = GRACE_FACTOR * self.heartbeat
        if self.embedded:
            path = Path(self.folder) / JOURNAL
            backend = JournalFileBackend(str(path), lock_obj=FlockLock(f"{path}.lock"))
            return HeartbeatJournalStorage(backend, self.heartbeat, grace, retry)
        return open_database(self.url, heartbeat_interval=self.heartbeat, grace_period=grace,
                             heartbeat_stale_trial_callback=retry)


def open_database(url, attempts=5, **options):
    """``RDBStorage(url)``. On an empty database the first open creates Optuna's tables; two machines starting at
    once both try, and the second's CREATE fails on what the first made: opened again, the tables are there."""
    for attempt in range(attempts):
        try:
            return RDBStorage(url, **options)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
        except sqlalchemy.exc.OperationalError as error:  # no server there, a wrong password, no such database
            reason = str(error.orig or error).strip().splitlines()[-1]
            raise SettingError(f"--storage {redacted(url)}: cannot open the database: {reason}") from None


def check_storage_url(url):
    """A database URL SQLAlchemy can open (``postgresql+psycopg://user@127.0.0.1:5432/db``), or a SettingError."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SQL_SCHEMES:
        raise SettingError(f"--storage {redacted(url)}: expected a database URL such as "
                           "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE")
    return url


def redacted(url):
    """A URL without its password, for messages and logs."""
    head, separator, tail = url.partition("://")
    if "@" not in tail or ":" not in tail.split("@", 1)[0]:
        return url
    credentials, host = tail.split("@", 1)
    return f"{head}{separator}{credentials.split(':', 1)[0]}:***@{host}"


def fail_stale_trials(study):
    """Fail (and so retry) the study's trials whose process stopped beating; quiet about Optuna's experimental tag."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
