"""``deeprnn sweep show``: the configurations sorted by mean validation loss, and Optuna's pictures of the search.

A configuration is a finished search trial (``trials/NNNN``) with its seeded re-runs (``trials/NNNN-seedK``): its
row gives the mean and the standard deviation (sample, n - 1) of their best validation losses, the number of
seeds, the epochs and minutes of each run (mean), and whether the pruner stopped the search trial.
"""
import statistics
import warnings
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from ..pipeline import plotting

PICTURES = {"history.png": "the best validation loss over the trials (optimization history)",
            "importance.png": "how much each setting decided the loss (PED-ANOVA importances)",
            "parallel.png": "every trial's settings and loss (parallel coordinates)"}


@dataclass
class Row:
    trial: int
    params: dict
    values: list
    epochs: float
    minutes: float
    pruned: bool
    folder: str

    @property
    def mean(self):
        return statistics.fmean(self.values)

    @property
    def sd(self):
        return statistics.stdev(self.values) if len(self.values) > 1 else None


def rows(search, seeds):
    """One Row per finished search trial (complete or pruned) with its seeds, sorted by mean validation loss."""
    repeats = {}
    for trial in (seeds.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if seeds else []):
        key = trial.user_attrs["config_trial"]
        repeats.setdefault(key, {}).setdefault(trial.user_attrs["seed"], trial)  # one run per seed
    table = []
    for trial in search.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        number = trial.system_attrs.get("failed_trial", trial.number)
        if trial.value is not None:
            value = trial.value
        elif trial.intermediate_values:
            value = min(trial.intermediate_values.values())
        else:
            continue
        runs = [trial] + list(repeats.get(number, {}).values())
        values = [value] + [run.value for run in runs[1:]]
        table.append(Row(number, dict(trial.params), values,
                         statistics.fmean(run.user_attrs.get("epochs", 0) for run in runs),
                         statistics.fmean(run.user_attrs.get("minutes", 0.0) for run in runs),
                         trial.state == TrialState.PRUNED, trial.user_attrs.get("folder", "")))
    return sorted(table, key=lambda row: (row.pruned, row.mean))


def format_table(table):
    """The rows as a Markdown table (what docs/results.md quotes)."""
    names = sorted({name for row in table for name in row.params})
    header = ["trial", *names, "mean val_loss", "sd", "seeds", "epochs", "minutes", "pruned"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        cells = [f"{row.trial}", *(format_value(row.params.get(name)) for name in names), f"{row.mean:.4f}",
                 "-" if row.sd is None else f"{row.sd:.4f}", f"{len(row.values)}", f"{row.epochs:.1f}",
                 f"{row.minutes:.2f}", "yes" if row.pruned else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def format_value(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def progress_line(search, seeds):
    """``search 7/20: 5 complete, 2 pruned, 2 running, 0 failed; best 1.3412 (trial 3) | seeds 0/6``."""
    trials = search.get_trials(deepcopy=False)
    states = {state: sum(trial.state == state for trial in trials) for state in TrialState}
    done = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
    line = (f"search {done} done: {states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} pruned, "
            f"{states[TrialState.RUNNING]} running, {states[TrialState.WAITING]} waiting, "
            f"{states[TrialState.FAIL]} failed")
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE and trial.value is not None]
    if complete:
        best = min(complete, key=lambda trial: trial.value)
        line += f"; best {best.value:.4f} (trial {best.system_attrs.get('failed_trial', best.number)})"
    if seeds is not None:
        seeded = seeds.get_trials(deepcopy=False)
        finished = sum(trial.state == TrialState.COMPLETE for trial in seeded)
        running = sum(trial.state == TrialState.RUNNING for trial in seeded)
        if seeded:
            line += f" | seeds {finished} done, {running} running"
    return line


def write_pictures(search, folder):
    """Optuna's matplotlib pictures of the search study as PNG files in ``folder``; returns {path: what}."""
    # matplotlib and Optuna's plots of it are imported here, as in pipeline/plotting.py: the table needs neither
    import matplotlib

    matplotlib.use("Agg")  # files only, whatever display the shell has
    from matplotlib import pyplot
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as optuna_plots

    complete = search.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    drawn = {}
    makers = {"history.png": lambda: optuna_plots.plot_optimization_history(search, target_name="val_loss"),
              "parallel.png": lambda: optuna_plots.plot_parallel_coordinate(search, target_name="val_loss")}
    if len(complete) >= 2:
        makers["importance.png"] = lambda: optuna_plots.plot_param_importances(
            search, evaluator=PedAnovaImportanceEvaluator(), target_name="val_loss")
    for name, make in makers.items():
        with warnings.catch_warnings():
            # Optuna's "experimental" tag on PED-ANOVA, and matplotlib widening an axis whose values are all equal
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            axes = make()
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(9, 5)
        plotting.save(figure, folder / name)
        pyplot.close(figure)
        drawn[folder / name] = PICTURES[name]
    return drawn
