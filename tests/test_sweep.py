"""deeprnn sweep on Optuna's embedded journal: the space file, the pruning callback, the storage's lock and
heartbeat, and whole sweeps of tiny trials with two worker processes (a pruned trial, seeds, a kill -9)."""
import importlib.util
import math
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import types
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the sweep extra is not installed (pip install -e '.[sweep]')")

from optuna.trial import TrialState  # noqa: E402

from deeprnn.cli import main  # noqa: E402
from deeprnn.errors import SettingError  # noqa: E402
from deeprnn.sweep.pruning import PruningCallback, make_pruner  # noqa: E402
from deeprnn.sweep.report import format_table, rows  # noqa: E402
from deeprnn.sweep.runner import SweepError, run_sweep  # noqa: E402
from deeprnn.sweep.space import parse_space, read_space  # noqa: E402
from deeprnn.sweep.storage import HEARTBEAT_ATTR, FlockLock, StorageSpec, fail_stale_trials  # noqa: E402
from deeprnn.pipeline import train  # noqa: E402
from deeprnn.sweep.study import INTERRUPTED, InterruptCheck, SweepPlan, load_studies, open_studies  # noqa: E402

# A trial of a few seconds: 2 files per split, 4 units, 16-token windows.
TINY = {"max_files": 2, "units": 4, "embedding_dim": 4, "seq_len": 16, "epochs": 2}


# --- the space -------------------------------------------------------------------------------------------------------
def test_space_file_gives_fixed_settings_and_optuna_distributions(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text('recipe = "drums"\nunits = 8\nlr = {float = [1e-4, 1e-2], log = true}\n'
                    'layers = {int = [1, 3]}\ncell = {choices = ["lstm", "gru"]}\n', encoding="utf-8")
    space = read_space(path)
    assert space.fixed == {"recipe": "drums", "units": 8}
    assert space.distributions == {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                                   "layers": optuna.distributions.IntDistribution(1, 3),
                                   "cell": optuna.distributions.CategoricalDistribution(["lstm", "gru"])}
    config = space.config({"lr": 1e-3, "layers": 2, "cell": "gru"}, seed=4, time_budget=1.5)
    assert (config.units, config.lr, config.layers, config.cell, config.seed, config.time_budget) == \
        (8, 1e-3, 2, "gru", 4, 1.5)


@pytest.mark.parametrize("text, message", [
    ("colour = {choices = [1, 2]}", "'colour' is not a train setting"),
    ("dropout = {float = [0.1, 1.0]}", "--dropout must be"),            # dropout < 1 is the setting's range
    ("units = {int = [0, 8]}", "--units must be"),
    ("lr = {float = [0.0, 0.1], log = true}", "a log scale needs low > 0"),
    ("lr = {float = [0.1, 0.01]}", "is empty"),
    ("cell = {choices = ['lstm', 'transformer']}", "--cell must be one of"),
    ("units = {int = [4.5, 8]}", "needs two int numbers"),
    ("time_budget = 3", "the sweep's --time-budget sets it"),
    ("seed = {int = [0, 9]}", "--seeds varies it"),
    ("recipe = 'drums'", "nothing to search"),
    ("recipe = 'seed'\nbar_position = true\nlr = {float = [1e-3, 1e-2]}", "--bar-position belongs to the drums"),
    ("recipe = {choices = ['drums', 'seed']}\nbar_position = true", "--bar-position belongs to the drums"),
])
def test_a_bad_space_is_one_line_naming_the_file_and_the_setting(text, message):
    with pytest.raises(SettingError, match=message) as raised:
        parse_space(tomllib.loads(text), "space.toml")
    assert str(raised.value).startswith("space.toml: ") and "\n" not in str(raised.value)


# --- pruning and storage ---------------------------------------------------------------------------------------------
def test_pruning_callback_reports_each_epoch_and_stops_training_when_the_pruner_says_so():
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=2.0))
    trial = study.ask()
    callback = PruningCallback(trial)
    callback.set_model(types.SimpleNamespace(stop_training=False))
    callback.on_epoch_end(0, {"val_loss": 1.5})
    assert not callback.model.stop_training and callback.pruned_epoch is None
    callback.on_epoch_end(1, {"val_loss": 2.5})
    assert callback.model.stop_training and callback.pruned_epoch == 2
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {0: 1.5, 1: 2.5}


def test_journal_lock_is_released_when_its_holder_is_killed(tmp_path):
    """flock, not a lock file: a holder killed with SIGKILL leaves nothing that blocks the next process."""
    path = tmp_path / "journal.log.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"from deeprnn.sweep.storage import FlockLock; "
                               f"FlockLock({str(path)!r}).acquire(); print('held', flush=True); "
                               "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    lock = FlockLock(path)
    started = time.monotonic()
    assert lock.acquire() and time.monotonic() - started < 1
    lock.release()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_whose_heartbeat_stopped_is_failed_and_retried_with_its_reports(tmp_path):
    storage = StorageSpec(url=None, folder=str(tmp_path), heartbeat=1).open()
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)})
    trial.report(3.0, step=0)
    storage.record_heartbeat(trial._trial_id)
    fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING  # beating: left alone
    storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time() - 10)  # 10 s without a beat
    fail_stale_trials(study)
    failed, retry = study.trials
    assert failed.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == failed.params
    assert retry.intermediate_values == {0: 3.0}


# --- whole sweeps ----------------------------------------------------------------------------------------------------
def tiny_space(groove, **extra):
    return parse_space({"data": groove, **TINY, **extra, "lr": {"float": [1e-5, 0.3], "log": True}}, "space.toml")


def test_sweep_with_two_workers_prunes_the_hopeless_trial_and_reruns_the_best_with_seeds(groove, tmp_path, capsys):
    out = tmp_path / "sweeps" / "tiny"
    plan = SweepPlan(out=str(out), space=tiny_space(groove), trials=4, storage=StorageSpec(None, str(out)),
                     seeds=2, top=1, pruner="median", pruner_warmup=0, pruner_startup=1)
    out.mkdir(parents=True)
    # the trials as a user might enqueue them: a learning rate that learns three times (the same seed: the same
    # losses, never worse than their median) and, third, one that cannot learn in an epoch (lr 1e-5)
    search, _ = open_studies(plan)
    for lr in (0.3, 0.3, 1e-5, 0.3):
        search.enqueue_trial({"lr": lr})
    lines = []
    search, seeds = run_sweep(plan, workers=2, log=lines.append, poll=0.5)

    states = [(trial.params["lr"], trial.state) for trial in search.trials]
    assert states == [(0.3, TrialState.COMPLETE), (0.3, TrialState.COMPLETE), (1e-5, TrialState.PRUNED),
                      (0.3, TrialState.COMPLETE)]
    pruned = next(trial for trial in search.trials if trial.state == TrialState.PRUNED)
    assert pruned.user_attrs["epochs"] == 1 and set(pruned.intermediate_values) == {0}
    for trial in search.trials:  # every trial a normal run folder, the pruned one too
        folder = out / "trials" / f"{trial.number:04d}"
        assert trial.user_attrs["folder"] == str(folder)
        assert {"best.npz", "last.npz", "history.csv", "config.json"} <= {path.name for path in folder.iterdir()}
    best = min((trial for trial in search.trials if trial.state == TrialState.COMPLETE), key=lambda t: t.value)
    [seeded] = seeds.trials
    assert seeded.state == TrialState.COMPLETE and seeded.user_attrs == {**seeded.user_attrs, "config_trial":
                                                                         best.number, "seed": 1}
    assert (out / "trials" / f"{best.number:04d}-seed1" / "best.npz").is_file()

    table = rows(*load_studies(StorageSpec(None, str(out)).open(), "tiny"))
    assert [row.trial for row in table][-1] == pruned.number and table[-1].pruned
    [seeded_row] = [row for row in table if len(row.values) == 2]
    assert seeded_row.trial == best.number and seeded_row.sd is not None
    assert [row.mean for row in table[:3]] == sorted(row.mean for row in table[:3])  # by mean over the seeds
    text = format_table(table)
    assert text[0].startswith("| trial | lr | mean val_loss | sd | seeds |") and "| yes |" in text[-1]
    assert any("search 4 done: 3 complete, 1 pruned" in line for line in lines)

    capsys.readouterr()
    assert main(["sweep", "show", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith("search 4 done: 3 complete, 1 pruned") and shown[1:1 + len(text)] == text
    assert (out / "table.md").read_text().splitlines() == text
    assert {path.name for path in out.glob("*.png")} == {"history.png", "importance.png", "parallel.png"}

    # examples/compare_pruners.py reads the same study: trials in finishing order, the pruned one with its best loss
    compare = load_example("compare_pruners")
    finished = compare.finished_trials(out)
    assert len(finished) == 4 and sum(pruned for _, _, pruned in finished) == 1
    total = sum(minutes for minutes, _, _ in finished)
    assert compare.best_within(finished, total) == (min(loss for _, loss, _ in finished), 4)
    assert compare.best_within(finished, 0.0) == (math.inf, 0)


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep_command(out, space, trials, *extra):
    return [sys.executable, "-m", "deeprnn", "sweep", "--out", str(out), "--space", str(space), "--trials",
            str(trials), "--workers", "2", "--heartbeat", "1", *extra]


def test_a_sweep_killed_with_sigkill_mid_trial_continues_when_started_again(groove, tmp_path):
    """kill -9 of the sweep: its workers leave too, the trial they ran is failed by heartbeat and retried in its
    own folder (resumed from last.npz), the finished ones are kept, and no trial runs twice."""
    out, space = tmp_path / "sweeps" / "killed", tmp_path / "space.toml"
    space.write_text(f'data = "{groove}"\nmax_files = 3\nunits = 8\nembedding_dim = 4\nseq_len = 16\n'
                     'epochs = 20\nlr = {float = [1e-3, 1e-2], log = true}\n', encoding="utf-8")
    command = sweep_command(out, space, 3, "--pruner", "none")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not list(out.glob("trials/*/last.npz")) and time.time() < deadline:
        time.sleep(0.2)
    assert list(out.glob("trials/*/last.npz")), "no trial wrote an epoch within a minute"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(2)  # its workers notice within a second that their parent is gone, and leave
    storage = StorageSpec(None, str(out)).open()
    search, _ = load_studies(storage, "killed")
    interrupted = {trial.number for trial in search.trials if trial.state == TrialState.RUNNING}
    assert interrupted, "the kill came mid-trial"

    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    search, _ = load_studies(storage, "killed")
    finished = [trial for trial in search.trials if trial.state == TrialState.COMPLETE]
    folders = [trial.user_attrs["folder"] for trial in finished]
    assert len(finished) == 3 and len(set(folders)) == 3  # no trial ran twice
    assert {trial.number for trial in search.trials if trial.state == TrialState.FAIL} == interrupted
    retried = [trial for trial in finished if "failed_trial" in trial.system_attrs]
    assert {trial.system_attrs["failed_trial"] for trial in retried} == interrupted
    for trial in retried:  # resumed from last.npz, not started over: one history, every epoch once
        folder = out / "trials" / f"{trial.system_attrs['failed_trial']:04d}"
        epochs = [int(line.split(",")[0]) for line in (folder / "history.csv").read_text().splitlines()[1:]]
        assert epochs == list(range(1, 21))
        assert "resuming after epoch" in (folder / "train.log").read_text()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_sweep_fails_its_running_trials_at_once_and_queues_them_again(groove, tmp_path, how):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or SIGTERM to the sweep alone: exit
    status 130, and each running trial is failed and back as a WAITING retry at once, not a heartbeat later."""
    out, space = tmp_path / "sweeps" / "stopped", tmp_path / "space.toml"
    space.write_text(f'data = "{groove}"\nmax_files = 3\nunits = 8\nembedding_dim = 4\nseq_len = 16\n'
                     'epochs = 1000\nlr = {float = [1e-3, 1e-2], log = true}\n', encoding="utf-8")
    sweep = subprocess.Popen(sweep_command(out, space, 3, "--pruner", "none"), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len(list(out.glob("trials/*/last.npz"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    if how == "ctrl-c":
        os.killpg(sweep.pid, signal.SIGINT)
    else:
        sweep.terminate()
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130 and "deeprnn sweep: interrupted" in stderr, stderr
    search, _ = load_studies(StorageSpec(None, str(out)).open(), "stopped")
    states = sorted((trial.state, trial.system_attrs.get("failed_trial", -1)) for trial in search.trials)
    assert states == [(TrialState.FAIL, -1), (TrialState.FAIL, -1), (TrialState.WAITING, 0), (TrialState.WAITING, 1)]


def test_a_sweep_whose_every_trial_fails_stops_with_the_trials_error(tmp_path):
    """An error of the trial's own (here: a data folder without MIDI files) fails the trial without a retry; when
    --trials of them have failed the sweep stops, in one line with the last error, instead of trying forever."""
    empty, out = tmp_path / "no-midi", tmp_path / "sweeps" / "broken"
    empty.mkdir()
    plan = SweepPlan(out=str(out), space=parse_space({"data": str(empty), **TINY, "lr": {"float": [1e-3, 1e-2]}}),
                     trials=2, storage=StorageSpec(None, str(out)))
    with pytest.raises(SweepError, match=r"^2 trials failed; the last: --data .*no-midi: 0 MIDI file"):
        run_sweep(plan, workers=1, log=lambda line: None, poll=0.2)
    search, _ = load_studies(StorageSpec(None, str(out)).open(), "broken")
    assert [trial.state for trial in search.trials] == [TrialState.FAIL, TrialState.FAIL]


@pytest.mark.parametrize("name, kind", [("median", optuna.pruners.MedianPruner),
                                        ("hyperband", optuna.pruners.HyperbandPruner),
                                        ("none", optuna.pruners.NopPruner)])
def test_pruner_names(name, kind):
    assert type(make_pruner(name)) is kind


def test_joining_a_study_with_another_space_or_budget_is_refused_but_another_data_folder_is_not(tmp_path):
    out = tmp_path / "sweeps" / "joined"
    out.mkdir(parents=True)

    def plan(space, budget=1.0):
        return SweepPlan(out=str(out), space=parse_space(space), trials=2, storage=StorageSpec(None, str(out)),
                         time_budget=budget)

    open_studies(plan({"data": "/machine-a/groove", "lr": {"float": [1e-3, 1e-2]}}))
    open_studies(plan({"data": "/machine-b/groove", "lr": {"float": [1e-3, 1e-2]}}))  # the same study
    with pytest.raises(SettingError, match="started with another space or --time-budget"):
        open_studies(plan({"lr": {"float": [1e-3, 1e-1]}}))
    with pytest.raises(SettingError, match="started with another space or --time-budget"):
        open_studies(plan({"lr": {"float": [1e-3, 1e-2]}}, budget=2.0))


@pytest.mark.parametrize("flags, message", [
    (["--space", "{space}", "--trials", "2"], "--out is required"),
    (["--out", "{out}", "--space", "{out}/missing.toml", "--trials", "2"], "--space .*missing.toml: No such file"),
    (["--out", "{out}", "--space", "{space}", "--trials", "2", "--storage", "mongodb://host/db"],
     "--storage mongodb://host/db: expected a database URL"),
    (["--out", "{out}", "--space", "{space}", "--trials", "2", "--storage",
      "postgresql+psycopg://me:secret@127.0.0.1:1/sweeps"],
     r"--storage postgresql\+psycopg://me:\*\*\*@127.0.0.1:1/sweeps: cannot open the database"),
    (["show", "{out}"], "no sweep here"),
])
def test_sweep_command_mistakes_are_one_line_before_any_work(tmp_path, capsys, flags, message):
    space = tmp_path / "space.toml"
    space.write_text('lr = {float = [1e-3, 1e-2]}\n', encoding="utf-8")
    out = tmp_path / "sweeps" / "x"
    assert main(["sweep", *(flag.format(space=space, out=out) for flag in flags)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("deeprnn sweep: error: ")
    assert re.search(message, error), error
    assert "secret" not in error and not out.exists()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_that_died_before_its_first_heartbeat_is_failed_too(tmp_path):
    storage = StorageSpec(url=None, folder=str(tmp_path), heartbeat=1).open()
    study = optuna.create_study(storage=storage, study_name="s")
    study.ask()  # asked, then the process died: no beat ever recorded
    fail_stale_trials(study)
    assert [trial.state for trial in study.trials] == [TrialState.RUNNING]  # within the grace period: alive
    time.sleep(3.5)
    fail_stale_trials(study)
    assert [trial.state for trial in study.trials] == [TrialState.FAIL, TrialState.WAITING]


def test_an_interrupt_a_finalizer_swallowed_still_stops_training_at_the_next_batch(groove, tmp_path):
    """The worker's signal handler sets INTERRUPTED before it raises; if the raise is lost (it landed in a weakref
    callback), InterruptCheck raises again after the next batch and train stops as on Ctrl-C."""
    config = tiny_space(groove).config({"lr": 1e-2})
    INTERRUPTED.set()
    try:
        result = train(config, tmp_path / "run", progress=False, log=lambda *parts: None,
                       extra_callbacks=(InterruptCheck(),))
    finally:
        INTERRUPTED.clear()
    assert result.stopped == "interrupted" and result.history == []
