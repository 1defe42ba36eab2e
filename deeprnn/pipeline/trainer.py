"""``deeprnn train``: ``Sequential.fit`` over the recipe's training windows, with the library's callbacks.

    model.fit(TrainingWindows(windows, batch_size), epochs=config.epochs, verbose=0, callbacks=[
        ProgressBar(...),                     # a tqdm bar per epoch
        SwapEMAWeights(swap_on_epoch=True),   # --ema only: the averaged weights in the model from here on
        ValidationScore(...),                 # logs["val_loss"]: the recipe's validation score
        TimeBudget(config.time_budget),       # stop before an epoch that would overrun --time-budget
        ModelCheckpoint("best.npz", monitor=recipe.monitor, save_best_only=True),
        RunLog(...),                          # history.csv, loss.png, one line per epoch
        EarlyStopping(patience=...),          # --patience only: stop when the validation loss stops improving
        TrainedWeightsBack(),                 # --ema only: the trained weights back, the averages to the optimizer
        BackupAndRestore("last.npz", delete_checkpoint=False, state_of=[...]),   # what --resume continues
    ])

Files in ``--out``:

- ``last.npz``: ``BackupAndRestore``'s backup, written after every epoch: weights, optimizer state (m, v, with
  --ema the averages, iterations), the host RNG state (shuffles, dropout masks), the epoch, and the state of the callbacks that have
  one (best value, time spent, the history). ``--resume`` restores all of it and continues with the next epoch,
  so 1 epoch + resume 1 gives the very weights of 2 epochs in one go (same seed); Ctrl-C or a kill loses at most
  the epoch in progress (writes are atomic: the previous file survives a crash).
- ``best.npz``: the best epoch so far by the recipe's monitor (drums: validation loss; seed: training loss, as
  the tutorial's ``ModelCheckpoint(monitor='loss')``); what ``deeprnn generate`` uses.

With ``--ema`` (the optimizer's ``use_ema``) the validation score and ``best.npz`` are the averaged weights' (Keras's
``SwapEMAWeights(swap_on_epoch=True)`` placed before them), and ``last.npz`` holds the trained weights with the
averages in the optimizer's state, as any ``load_model`` reads a model file: ``--resume`` needs no record of a swap.
- ``history.csv`` and ``loss.png``: the loss curves, rewritten every epoch; ``config.json``: the run's settings.

No checkpoint ever holds a non-finite weight or monitored value: a run whose weights overflow stops with an error
and keeps the last good files. A folder that holds a run is never trained into afresh unless asked
(``overwrite=True``); ``resume=True`` continues it.
"""
import json
from dataclasses import dataclass
from pathlib import Path

from .. import backend
from ..callbacks import BackupAndRestore, Callback, EarlyStopping, ModelCheckpoint, SwapEMAWeights, TimeBudget
from ..errors import SettingError
from ..files import FolderLock, atomic_write_bytes, remove_stale_temporaries
from ..model import NonFiniteLossError
from .checkpoints import Checkpoint, CheckpointError, check_resume, checkpoint_metadata, load_checkpoint
from .datasets import open_data, resolve_source
from .features import fit_labels, label_ids
from .lr_schedule import learning_rate_schedule
from ..music.labels import parse_conditions
from .recipes import get_recipe
from .run_folder import BEST, CONFIG_JSON, HISTORY_CSV, LAST, LOSS_PNG, RUN_FILES
from .run_log import ProgressBar, RunLog, ValidationScore, minutes
from .windows import TrainingWindows


class RunExistsError(SettingError):
    """``train`` was pointed at a folder that holds a run, without resume or overwrite. ``resume`` and
    ``overwrite`` are how the message spells the two ways on (the command line's flags, or a make target's)."""

    def __init__(self, folder, existing, resume="--resume", overwrite="--overwrite"):
        self.folder, self.existing = folder, existing
        super().__init__(f"{folder} holds a training run ({', '.join(existing)}); continue it with {resume}, or "
                         f"start over with {overwrite}")


@dataclass
class TrainingResult:
    out_dir: Path
    history: list
    best: float | None
    best_epoch: int | None
    stopped: str  # "completed", "time budget", "early stopping" or "interrupted"
    monitor: str = "val_loss"

    @property
    def epochs_done(self):
        return self.history[-1]["epoch"] if self.history else 0


def check_out_dir(out_dir, resume, overwrite):
    """Refuse to start afresh over a run; with ``overwrite``, remove its files. Leftover temporaries go either way."""
    if resume and overwrite:
        raise SettingError("--resume continues the run in --out, --overwrite starts it over: give one of them")
    remove_stale_temporaries(out_dir)
    existing = [name for name in RUN_FILES if (out_dir / name).exists()]
    if resume or not existing:
        return
    if not overwrite:
        raise RunExistsError(out_dir, existing)
    for name in existing:
        (out_dir / name).unlink()


def prepare(requested, out_dir, resume=False):
    """(checkpoint, data) of the run ``requested`` asks for (a TrainConfig, None for flags not given): a fresh
    model (a Checkpoint not yet written, its ``training`` empty), or the one resumed from out_dir/last.npz.

    A resumed run takes every setting from the checkpoint; giving a different one (other than --epochs or
    --time-budget) is a CheckpointError.
    """
    out_dir = Path(out_dir)
    if resume:
        checkpoint = load_checkpoint_for_resume(out_dir / LAST)
        if requested.data is not None:
            requested.data = resolve_source(requested.data)
        if requested.recipe not in (None, checkpoint.config.recipe):
            raise CheckpointError(f"{out_dir / LAST} was trained with --recipe {checkpoint.config.recipe}, this run "
                                  f"asks for --recipe {requested.recipe}")
        check_resume(requested, checkpoint.config, out_dir / LAST)
        config = checkpoint.config
        for key in ("epochs", "time_budget"):
            if getattr(requested, key) is not None:
                setattr(config, key, getattr(requested, key))
        return checkpoint, open_data(checkpoint.tokenizer, checkpoint.source, config)

    config = requested.resolved()
    recipe = get_recipe(config.recipe)
    backend.set_seed(config.seed)
    config.data = resolve_source(config.data)
    tokenizer = recipe.make_tokenizer()
    data = open_data(tokenizer, config.data, config)
    train_split = data.split("train")  # fits the vocabulary (seed) before the model is sized by it
    conditions = parse_conditions(config.condition)
    # --condition: the label vocabularies come from the training files, as the tokens' vocabulary does
    labels = fit_labels(conditions, train_split.paths, config.data) if conditions else None
    model = recipe.build_model(config, tokenizer.vocab_size, labels)
    return Checkpoint(str(out_dir / LAST), model, tokenizer, config, config.data, labels=labels), data


def load_checkpoint_for_resume(path):
    if not path.exists():
        raise CheckpointError(f"nothing to resume: {path} does not exist (train without --resume first)")
    checkpoint = load_checkpoint(path)
    if "rng_state" not in checkpoint.training:
        raise CheckpointError(f"{path} holds no training state to resume from")
    return checkpoint


def train(requested, out_dir, resume=False, progress=True, log=print, overwrite=False, extra_callbacks=()):
    """Prepare and run a training job; returns a TrainingResult.

    ``out_dir`` must not hold a run unless ``resume`` (continue it) or ``overwrite`` (start over) is given.
    ``extra_callbacks`` run after the run's own, so they see each epoch's logs once its files are written (the
    sweep's pruning callback: ``deeprnn.sweep.pruning``). The folder is taken first (``FolderLock``): a second
    run started into it fails, naming this one's process.
    """
    out_dir = Path(out_dir)
    with FolderLock(out_dir):
        check_out_dir(out_dir, resume, overwrite)
        run, data = prepare(requested, out_dir, resume)
        return fit_run(run, data, out_dir, progress=progress, log=log, extra_callbacks=extra_callbacks)


def fit_run(run, data, out_dir, progress=True, log=print, extra_callbacks=()):
    """``run.model.fit`` over the training windows of ``data`` with the run's callbacks (see the module docstring).

    run: the Checkpoint ``prepare`` gives, fresh or resumed.
    """
    config, recipe, tokenizer, model = run.config, run.recipe, run.tokenizer, run.model
    train_split, validation_split = data.split("train"), data.split("validation")
    train_labels, validation_labels = (None, None) if run.labels is None else (
        label_ids(run.labels, train_split.paths, run.source), label_ids(run.labels, validation_split.paths, run.source))
    source = TrainingWindows(recipe.windows(train_split.sequences, config, tokenizer, train_labels),
                             config.batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_config(run, out_dir / CONFIG_JSON)
    describe(run, data, source, train_split, validation_split, log)

    def metadata(epoch, logs):
        training = {"epoch": epoch + 1, "monitor": recipe.monitor, recipe.monitor: logs[recipe.monitor]}
        return checkpoint_metadata(tokenizer, config, run.source, training, run.labels)

    best = ModelCheckpoint(out_dir / BEST, monitor=recipe.monitor, save_best_only=True, save_weights_only=True,
                           metadata=metadata)
    # the budget's verdict is logged after the epoch's own line, once fit is done
    budget = TimeBudget(config.time_budget, log=lambda line: None)
    schedule = learning_rate_schedule(config, log=log)
    scheduled = [] if schedule is None else [schedule]
    run_log = RunLog(out_dir / HISTORY_CSV, out_dir / LOSS_PNG, recipe.monitor, recipe.validation_label,
                     config.epochs, log=log)
    # --patience: after the log, so an epoch's files are written before the run stops
    stopper = [] if config.patience is None else [EarlyStopping(monitor=recipe.monitor, patience=config.patience)]
    state_of = [best, budget, run_log] + scheduled + stopper
    backup = BackupAndRestore(out_dir / LAST, delete_checkpoint=False, metadata=metadata, state_of=state_of)
    if run.training:
        # what fit's BackupAndRestore restores, read now: a spent budget is known before the first resumed epoch
        for callback, state in zip(state_of, run.training.get("callbacks", [])):
            callback.set_state(state)
        spent = budget_spent(budget, run_log)
        if spent:
            log(f"{spent}: nothing to train; a larger --time-budget with --resume continues")
            return TrainingResult(out_dir, run_log.rows, run_log.best, run_log.best_epoch, "time budget",
                                  recipe.monitor)
    bar = ProgressBar(config.epochs, enabled=progress)
    # --ema: the averages are validated and saved as best.npz, the trained weights as last.npz
    averaged, trained = ([SwapEMAWeights(swap_on_epoch=True)], [TrainedWeightsBack()]) if config.ema else ([], [])
    # the schedule after the budget (it plans from the first epoch's time) and before the logs (learning_rate)
    callbacks = [bar, *averaged, ValidationScore(recipe, validation_split.sequences, config, tokenizer,
                                                 validation_labels),
                 budget, *scheduled, best, run_log, *stopper, *trained, backup, *extra_callbacks]
    stopped = "completed"
    try:
        model.fit(source, epochs=config.epochs, verbose=0, callbacks=callbacks)
    except KeyboardInterrupt:
        bar.on_train_end()
        log(f"\ninterrupted: {out_dir / LAST} holds epoch {backup.saved_epoch or 0} (continue with --resume)")
        stopped = "interrupted"
    except NonFiniteLossError as error:
        bar.on_train_end()
        kept = (f"{out_dir / LAST} keeps epoch {backup.saved_epoch}, the last finite one"
                if backup.saved_epoch else "no checkpoint was written")
        raise NonFiniteLossError(f"{error}; {kept}; lower --lr or set --clipnorm") from None
    if budget.stopped_epoch is not None:
        stopped = "time budget"
        log(f"time budget of {config.time_budget:g} min reached after {minutes(budget.elapsed)} (another epoch "
            f"would take ~{run_log.rows[-1]['seconds']:.0f} s); a larger --time-budget with --resume continues")
    if stopper and stopper[0].stopped_epoch is not None:
        stopped = "early stopping"
        epochs = "1 epoch" if config.patience == 1 else f"{config.patience} epochs"
        log(f"early stopping: {recipe.monitor} has not improved for {epochs} (best "
            f"{run_log.best:.4f} at epoch {run_log.best_epoch})")
    return TrainingResult(out_dir, run_log.rows, run_log.best, run_log.best_epoch, stopped, recipe.monitor)


class TrainedWeightsBack(Callback):
    """After ``SwapEMAWeights(swap_on_epoch=True)`` put the averaged weights in the model for validation and
    best.npz: the trained weights back in the model and the averages back in the optimizer's slot, so the backup
    after this (last.npz) is an ordinary model file whose weights are the ones training continues from."""

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if optimizer.averages_swapped:
            optimizer.swap_averages(self.model.trainable_variables)


def budget_spent(budget, run_log):
    """A sentence saying the time budget is spent, else None: TimeBudget's rule (the time trained so far plus one
    more epoch like the last would pass it), on the state a resumed run restored."""
    if budget.budget is None or not run_log.rows:
        return None
    last = run_log.rows[-1]
    if budget.elapsed + last["seconds"] <= budget.budget:
        return None
    return (f"the time budget of {budget.budget / 60:g} min is spent ({minutes(budget.elapsed)} over "
            f"{last['epoch']} epochs, another would take ~{last['seconds']:.0f} s)")


def describe(run, data, source, train_split, validation_split, log):
    config = run.config
    log(f"recipe {config.recipe}: {config.layers} x {config.cell.upper()}({config.units}), "
        f"vocabulary {run.tokenizer.vocab_size}, {run.model.count_params():,} parameters, device {backend.device()}")
    log(f"data {run.source}{' (official split)' if data.files.official else ''}: "
        f"train {len(train_split.sequences)} files / {train_split.num_tokens:,} tokens, "
        f"validation {len(validation_split.sequences)} files / {validation_split.num_tokens:,} tokens; "
        f"{source.windows.per_epoch:,} windows of {config.seq_len} per epoch, batch {config.batch_size}")
    if run.labels is not None:
        log("conditioned on " + "; ".join(f"{name} ({', '.join(labels)})"
                                          for name, labels in run.labels.vocabularies.items()))
    if run.training:
        log(f"resuming after epoch {run.training.get('epoch', 0)} of {config.epochs}")


def write_config(run, path):
    document = {"config": run.config.to_dict(), "source": run.source, "tokenizer": json.loads(run.tokenizer.to_json())}
    atomic_write_bytes(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
