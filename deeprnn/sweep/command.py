"""What ``deeprnn sweep`` and ``deeprnn sweep show`` do with their (checked) flags; the command line only parses."""
from pathlib import Path

from ..errors import SettingError
from ..files import atomic_write_bytes
from .report import format_table, progress_line, rows, write_pictures
from .runner import run_sweep
from .space import read_space
from .storage import JOURNAL, StorageSpec, check_storage_url
from .study import SweepPlan, load_studies, quiet_experimental

TABLE = "table.md"


def plan_from_flags(values):
    """The SweepPlan of the flags (a dict of setting name -> value); a SettingError for a missing one or a bad space
    or storage URL, before any work."""
    for name in ("out", "space", "trials"):
        if values.get(name) is None:
            raise SettingError(f"--{name} is required (deeprnn sweep --out sweeps/NAME --space SPACE.toml "
                               "--trials N; or deeprnn sweep show sweeps/NAME)")
    storage = values.get("storage")
    space = read_space(values["space"])
    return SweepPlan(out=str(values["out"]), space=space, trials=values["trials"],
                     storage=StorageSpec(check_storage_url(storage) if storage else None, str(values["out"]),
                                         values["heartbeat"]),
                     time_budget=values.get("time_budget"), seeds=values["seeds"], top=values["top"],
                     pruner=values["pruner"], pruner_warmup=values["pruner_warmup"],
                     pruner_startup=values["pruner_startup"])


def sweep(values, log=print):
    """Run (or continue, or join) the sweep the flags describe; then its table."""
    plan = plan_from_flags(values)
    search, seeds = run_sweep(plan, values["workers"], log=log)
    for line in format_table(rows(search, seeds)):
        log(line)
    log(f"pictures: deeprnn sweep show {plan.out}")
    return 0


def show(folder, storage_url=None, log=print):
    """``sweep show``: the table sorted by mean validation loss (also written as table.md, for a results page),
    and the pictures written into the folder."""
    quiet_experimental()
    folder = Path(folder)
    if storage_url is None and not (folder / JOURNAL).is_file():
        raise SettingError(f"{folder}: no sweep here (no {JOURNAL}); a sweep on a database needs its --storage URL")
    spec = StorageSpec(check_storage_url(storage_url) if storage_url else None, str(folder))
    storage = spec.open()
    try:
        search, seeds = load_studies(storage, folder.resolve().name)
    except KeyError:
        raise SettingError(f"{folder}: {spec.describe()} holds no study named {folder.resolve().name!r}") from None
    log(progress_line(search, seeds))
    table = format_table(rows(search, seeds))
    for line in table:
        log(line)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / TABLE, ("\n".join(table) + "\n").encode("utf-8"))
    log(f"{folder / TABLE}  the table above, in Markdown")
    for path, what in write_pictures(search, folder).items():
        log(f"{path}  {what}")
    return 0
