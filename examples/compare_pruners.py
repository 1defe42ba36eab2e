"""Which pruner decides better at equal time: the best validation loss each sweep had found after the same minutes of
training (issue 19; the sweeps of examples/sweep_pruners.toml, one per pruner).

    python examples/compare_pruners.py sweeps/pruner-median sweeps/pruner-hyperband

Each sweep's trials are taken in the order they finished; a trial's minutes are its training time (the pruned ones
stop early, which is the time a pruner saves). A pruned trial counts with the best validation loss it reached: its
best.npz holds it. The comparison is made at the minutes of the sweep that trained least, so both had the same time.
"""
import argparse
from pathlib import Path

from optuna.trial import TrialState

from deeprnn.sweep.storage import StorageSpec
from deeprnn.sweep.study import load_studies, quiet_experimental


def finished_trials(folder):
    """(minutes, best validation loss of the trial, pruned) for each finished search trial, in finishing order."""
    search, _ = load_studies(StorageSpec(None, str(folder)).open(), Path(folder).resolve().name)
    trials = search.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    trials = [trial for trial in trials if trial.intermediate_values]
    trials.sort(key=lambda trial: trial.datetime_complete)
    return [(trial.user_attrs.get("minutes", 0.0), min(trial.intermediate_values.values()),
             trial.state == TrialState.PRUNED) for trial in trials]


def best_within(trials, minutes):
    """The best loss among the trials that finished within ``minutes`` of cumulative training, and how many did."""
    spent, best, count = 0.0, float("inf"), 0
    for trial_minutes, loss, _ in trials:
        if spent + trial_minutes > minutes + 1e-9:
            break
        spent, best, count = spent + trial_minutes, min(best, loss), count + 1
    return best, count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (each holds its journal.log)")
    args = parser.parse_args(argv)
    quiet_experimental()
    studies = {folder: finished_trials(folder) for folder in args.sweeps}
    equal = min(sum(minutes for minutes, _, _ in trials) for trials in studies.values())
    print(f"| sweep | trials | pruned | training minutes | best val_loss | best within {equal:.1f} minutes (trials) |")
    print("|---|---|---|---|---|---|")
    for folder, trials in studies.items():
        best, count = best_within(trials, equal)
        print(f"| {folder.name} | {len(trials)} | {sum(pruned for _, _, pruned in trials)} | "
              f"{sum(minutes for minutes, _, _ in trials):.1f} | {min(loss for _, loss, _ in trials):.4f} | "
              f"{best:.4f} ({count}) |")


if __name__ == "__main__":
    main()
