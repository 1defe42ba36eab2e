"""The training loop of both recipes, with checkpoints that make an interrupted run resumable exactly.

Per epoch: a tqdm bar (batches, running loss, ETA), then validation, then one line with train and validation
loss. Files in ``--out``:

- ``last.npz``: written after every epoch: weights, optimizer state (Adam's m, v, iterations), the host RNG state
  (``backend.get_rng_state``: shuffles, dropout masks) and the epoch counter. ``--resume`` restores all of it and
  continues with the next epoch, so 1 epoch + resume 1 gives the very weights of 2 epochs in one go (same seed);
  Ctrl-C or a kill loses at most the epoch in progress (writes are atomic: the previous file survives a crash).
- ``best.npz``: the best epoch so far by the recipe's monitor (drums: validation loss; seed: training loss, as
  the tutorial's ``ModelCheckpoint(monitor='loss')``); what ``deeprnn generate`` uses.
- ``history.csv`` and ``loss.png``: the loss curves, rewritten every epoch; ``config.json``: the run's settings.
"""
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import backend
from ..model import NonFiniteLossError
from . import plotting
from .checkpoints import CheckpointError, check_resume, load_checkpoint, save_checkpoint
from .datasets import load_data, resolve_source, split_files
from .recipes import TrainConfig, get_recipe
from .windows import batches

LAST, BEST = "last.npz", "best.npz"
HISTORY_CSV, LOSS_PNG, CONFIG_JSON = "history.csv", "loss.png", "config.json"


@dataclass
class TrainingResult:
    out_dir: Path
    history: list
    best: float | None
    best_epoch: int | None
    stopped: str  # "completed", "time budget" or "interrupted"
    monitor: str = "val_loss"

    @property
    def epochs_done(self):
        return self.history[-1]["epoch"] if self.history else 0


@dataclass
class Run:
    """A training run, prepared: model, data and where the last one stopped (``training``, empty when fresh)."""

    config: TrainConfig
    source: str
    model: object
    tokenizer: object
    data: object
    training: dict = field(default_factory=dict)

    @property
    def recipe(self):
        return get_recipe(self.config.recipe)


def prepare(requested, out_dir, resume=False):
    """The Run for ``requested`` (a TrainConfig, None for flags not given): fresh, or resumed from out_dir/last.npz.

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
        source = checkpoint.source
        files = split_files(source, config.max_files, config.seed)
        data = load_data(checkpoint.tokenizer, files)
        return Run(config, source, checkpoint.model, checkpoint.tokenizer, data, checkpoint.training)

    config = requested.resolved()
    recipe = get_recipe(config.recipe)
    backend.set_seed(config.seed)
    source = resolve_source(config.data)
    config.data = source
    files = split_files(source, config.max_files, config.seed)
    tokenizer = recipe.make_tokenizer()
    data = load_data(tokenizer, files)
    data.split("train")  # fits the vocabulary (seed) before the model is sized by it
    model = recipe.build_model(config, tokenizer.vocab_size)
    return Run(config, source, model, tokenizer, data)


def load_checkpoint_for_resume(path):
    if not path.exists():
        raise CheckpointError(f"nothing to resume: {path} does not exist (train without --resume first)")
    checkpoint = load_checkpoint(path)
    if "rng_state" not in checkpoint.training:
        raise CheckpointError(f"{path} holds no training state to resume from")
    return checkpoint


def train(requested, out_dir, resume=False, progress=True, log=print):
    """Prepare and run a training job; returns a TrainingResult."""
    run = prepare(requested, out_dir, resume)
    return Trainer(run, out_dir, progress=progress, log=log).fit()


class Trainer:
    def __init__(self, run, out_dir, progress=True, log=print):
        self.run, self.out_dir = run, Path(out_dir)
        self.progress, self.log = progress, log
        config, recipe, tokenizer = run.config, run.recipe, run.tokenizer
        self.train_split = run.data.split("train")
        self.validation_split = run.data.split("validation")
        self.windows = recipe.windows(self.train_split.sequences, config, tokenizer)

    # -- one epoch -----------------------------------------------------------------------------------------------------
    def train_epoch(self, epoch):
        """One pass over the epoch's windows; returns the window-weighted mean of the batch losses (Keras's)."""
        from tqdm import tqdm

        model, config = self.run.model, self.run.config
        starts = self.windows.epoch_starts(backend.shuffle_rng())
        steps = math.ceil(len(starts) / config.batch_size)
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=not self.progress, file=sys.stderr, dynamic_ncols=True)
        total, count = 0.0, 0
        try:
            for step, batch_starts in enumerate(batches(starts, config.batch_size)):
                x, y = self.windows.batch(batch_starts)
                try:
                    loss = model.train_step(model.prepare_input(x), model.as_array(y, "y"))
                except NonFiniteLossError as error:
                    raise NonFiniteLossError(f"{error} at epoch {epoch + 1}, batch {step + 1} of {steps}; lower --lr "
                                             "or set --clipnorm") from None
                total += loss * len(batch_starts)
                count += len(batch_starts)
                bar.update(1)
                bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
        finally:
            bar.close()
        return total / count

    def validation_loss(self):
        run = self.run
        total, count = run.recipe.validation_score(run.model, self.validation_split.sequences, run.config,
                                                   run.tokenizer)
        return total / count

    # -- the loop ------------------------------------------------------------------------------------------------------
    def fit(self):
        run, config = self.run, self.run.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        training = run.training
        history = list(training.get("history", []))
        best, best_epoch = training.get("best"), training.get("best_epoch")
        elapsed = float(training.get("elapsed", 0.0))
        first_epoch = int(training.get("epoch", 0))
        if training:
            backend.set_rng_state(training["rng_state"])
        self.write_config()
        self.describe(first_epoch)
        budget = None if config.time_budget is None else 60.0 * config.time_budget
        stopped = "completed"
        for epoch in range(first_epoch, config.epochs):
            if budget is not None and history and elapsed + history[-1]["seconds"] > budget:
                self.log(f"time budget of {config.time_budget:g} min reached after {elapsed / 60:.1f} min "
                         f"(another epoch would take ~{history[-1]['seconds']:.0f} s; a larger --time-budget with "
                         "--resume continues)")
                stopped = "time budget"
                break
            began = time.perf_counter()
            try:
                loss = self.train_epoch(epoch)
                val_loss = self.validation_loss()
            except KeyboardInterrupt:
                self.log(f"\ninterrupted during epoch {epoch + 1}: {self.out_dir / LAST} holds epoch {epoch} "
                         f"(continue with --resume)")
                stopped = "interrupted"
                break
            seconds = time.perf_counter() - began
            elapsed += seconds
            row = {"epoch": epoch + 1, "loss": loss, "val_loss": val_loss, "seconds": seconds, "elapsed": elapsed}
            history.append(row)
            monitored = row[run.recipe.monitor]
            improved = best is None or monitored < best
            if improved:
                best, best_epoch = monitored, epoch + 1
            training = {"epoch": epoch + 1, "history": history, "best": best, "best_epoch": best_epoch,
                        "elapsed": elapsed, "monitor": run.recipe.monitor, "rng_state": backend.get_rng_state()}
            if improved:
                save_checkpoint(self.out_dir / BEST, run.model, run.tokenizer, config, run.source, training,
                                include_optimizer=False)
            save_checkpoint(self.out_dir / LAST, run.model, run.tokenizer, config, run.source, training)
            self.write_history(history, best_epoch)
            self.log(f"epoch {epoch + 1:>3}/{config.epochs}  loss {loss:.4f}  val_loss {val_loss:.4f}  "
                     f"{seconds:5.1f}s{'  * best ' + run.recipe.monitor if improved else ''}")
        return TrainingResult(self.out_dir, history, best, best_epoch, stopped, run.recipe.monitor)

    # -- reporting -----------------------------------------------------------------------------------------------------
    def describe(self, first_epoch):
        run, config = self.run, self.run.config
        files = run.data.files
        self.log(f"recipe {config.recipe}: {config.layers} x {config.cell.upper()}({config.units}), "
                 f"vocabulary {run.tokenizer.vocab_size}, {run.model.count_params():,} parameters, "
                 f"device {backend.device()}")
        self.log(f"data {run.source}{' (official split)' if files.official else ''}: "
                 f"train {len(self.train_split.sequences)} files / {self.train_split.num_tokens:,} tokens, "
                 f"validation {len(self.validation_split.sequences)} files / "
                 f"{self.validation_split.num_tokens:,} tokens; "
                 f"{self.windows.per_epoch:,} windows of {config.seq_len} per epoch, "
                 f"batch {config.batch_size}")
        if first_epoch:
            self.log(f"resuming after epoch {first_epoch} of {config.epochs}")

    def write_config(self):
        document = {"config": self.run.config.to_dict(), "source": self.run.source,
                    "tokenizer": json.loads(self.run.tokenizer.to_json())}
        (self.out_dir / CONFIG_JSON).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    def write_history(self, history, best_epoch):
        with open(self.out_dir / HISTORY_CSV, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", "loss", "val_loss", "seconds", "elapsed_seconds", "best"])
            for row in history:
                writer.writerow([row["epoch"], f"{row['loss']:.6f}", f"{row['val_loss']:.6f}",
                                 f"{row['seconds']:.2f}", f"{row['elapsed']:.2f}", int(row["epoch"] == best_epoch)])
        plotting.plot_loss_curve(history, self.out_dir / LOSS_PNG, monitor=self.run.recipe.monitor,
                                 best_epoch=best_epoch, validation_label=self.run.recipe.validation_label)

