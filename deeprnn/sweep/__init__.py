"""``deeprnn sweep``: searches over train settings on Optuna, one machine (a journal file) or many (PostgreSQL).

    from deeprnn.sweep import SweepPlan, StorageSpec, read_space, run_sweep
    plan = SweepPlan(out="sweeps/lr", space=read_space("space.toml"), trials=20, time_budget=15,
                     storage=StorageSpec(url=None, folder="sweeps/lr"), seeds=3)
    run_sweep(plan, workers=2)

Modules: ``space`` (the TOML space, checked against the train settings), ``storage`` (the journal with a flock and
a heartbeat, or a database URL), ``pruning`` (the Keras-shaped callback that reports each epoch, the pruners),
``study`` (the search and seeds studies, one trial = one ``deeprnn train`` run folder, the worker loop),
``runner`` (the command's process: workers, progress, the seeds phase), ``report`` (``sweep show``'s table and
pictures). Needs the ``sweep`` extra (``pip install -e '.[sweep]'``: optuna, and psycopg for PostgreSQL).
"""
from .pruning import PRUNERS, PruningCallback, make_pruner
from .report import format_table, progress_line, rows, write_pictures
from .runner import SweepError, WorkerFailed, run_sweep
from .space import SearchSpace, parse_space, read_space
from .storage import StorageSpec, check_storage_url
from .study import SweepPlan, load_studies, open_studies

__all__ = ["PRUNERS", "PruningCallback", "make_pruner", "format_table", "progress_line", "rows", "write_pictures",
           "SweepError", "WorkerFailed", "run_sweep", "SearchSpace", "parse_space", "read_space", "StorageSpec",
           "check_storage_url", "SweepPlan", "load_studies", "open_studies"]
