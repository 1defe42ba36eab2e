"""deeprnn train as Sequential.fit with callbacks: settings checked before any work, a run never overwritten
unless asked, leftovers of an interrupted save cleaned, and a run that goes non-finite stops without saving it."""
import math
import re

import numpy
import pytest

from deeprnn import NonFiniteLossError
from deeprnn.pipeline import RunExistsError, TrainConfig, train
from deeprnn.pipeline.run_log import minutes



def tiny(groove, **changes):
    settings = dict(data=groove, max_files=3, units=6, layers=1, embedding_dim=4, seq_len=16, batch_size=8,
                    epochs=1)
    return TrainConfig(**{**settings, **changes})


@pytest.mark.parametrize("settings, message", [
    (dict(clipnorm=-1.0), "--clipnorm must be a finite number >= 0, got -1.0"),
    (dict(lr=math.nan), "--lr must be a finite number > 0, got nan"),
    (dict(lr=0.0), "--lr must be a finite number > 0, got 0.0"),
    (dict(lr="fast"), "--lr must be a finite number > 0, got 'fast'"),
    (dict(units=2.7), "--units must be an integer >= 1 and <= 4096, got 2.7"),
    (dict(layers=True), "--layers must be an integer >= 1 and <= 64, got True"),
    (dict(seq_len=0), "--seq-len must be an integer >= 1 and <= 16384, got 0"),
    (dict(dropout=1.0), "--dropout must be a finite number >= 0 and < 1, got 1.0"),
    (dict(time_budget=math.inf), "--time-budget must be a finite number > 0 and <= 525600, got inf"),
    (dict(seed=-1), "--seed must be an integer >= 0 and <= 4294967295, got -1"),
    (dict(cell="transformer"), "--cell must be one of"),
    (dict(optimizer="sgd"), "--optimizer must be one of adam, adamw, got 'sgd'"),
    (dict(weight_decay=-0.1), "--weight-decay must be a finite number >= 0, got -0.1"),
    (dict(ema=1.0), "--ema must be a finite number >= 0 and < 1, got 1.0"),
])
def test_every_setting_is_checked_when_the_config_is_made(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**settings)


def test_a_folder_that_holds_a_run_is_refused_unless_resumed_or_overwritten(groove, tmp_path):
    out = tmp_path / "run"
    train(tiny(groove), out, progress=False, log=lambda line: None)
    first = (out / "last.npz").read_bytes()
    with pytest.raises(RunExistsError, match=r"holds a training run \(last.npz, best.npz.*--resume.*--overwrite"):
        train(tiny(groove), out, progress=False, log=lambda line: None)
    assert (out / "last.npz").read_bytes() == first, "a refused run must not touch the files"
    with pytest.raises(ValueError, match="give one of them"):
        train(tiny(groove), out, resume=True, overwrite=True, progress=False, log=lambda line: None)

    # an interrupted save left its temporary file; the next start removes it
    (out / ".tmp-abc123.part").write_bytes(b"half a checkpoint")
    result = train(tiny(groove, seed=3), out, overwrite=True, progress=False, log=lambda line: None)
    assert not (out / ".tmp-abc123.part").exists()
    assert result.epochs_done == 1 and (out / "last.npz").read_bytes() != first
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 2, "the old run's history is gone"


def test_a_run_whose_outputs_overflow_stops_with_a_clear_error_and_writes_no_checkpoint(groove, tmp_path):
    """One batch per epoch and a learning rate that blows the first update up."""
    out = tmp_path / "run"
    lines = []
    with pytest.raises(NonFiniteLossError, match=r"after epoch 1.*no checkpoint was written; lower --lr"):
        train(tiny(groove, lr=1e38, clipnorm=0.0, batch_size=4096, epochs=3), out, progress=False,
              log=lines.append)
    assert not (out / "last.npz").exists() and not (out / "best.npz").exists()


def test_the_history_of_a_resumed_run_continues_and_best_is_the_minimum(groove, tmp_path):
    out = tmp_path / "run"
    train(tiny(groove, epochs=1), out, progress=False, log=lambda line: None)
    result = train(tiny(groove, epochs=3), out, resume=True, progress=False, log=lambda line: None)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    losses = [row["val_loss"] for row in result.history]
    assert result.best == min(losses) and result.best_epoch == 1 + int(numpy.argmin(losses))
    assert result.history[-1]["elapsed"] == pytest.approx(sum(row["seconds"] for row in result.history))


def test_the_budget_line_follows_the_last_epochs_line_and_is_not_rounded_to_nothing(groove, tmp_path):
    lines = []
    result = train(tiny(groove, epochs=5, time_budget=1e-4), tmp_path / "run", progress=False, log=lines.append)
    assert result.stopped == "time budget" and result.epochs_done == 1
    epoch_line = next(index for index, line in enumerate(lines) if line.startswith("epoch   1/5"))
    budget_line = next(index for index, line in enumerate(lines) if line.startswith("time budget"))
    assert epoch_line < budget_line, lines
    assert re.match(r"time budget of 0\.0001 min reached after \d+\.\d s \(another epoch would take ~\d+ s\); "
                    r"a larger --time-budget with --resume continues$", lines[budget_line]), lines[budget_line]


def test_a_resumed_run_whose_budget_is_spent_trains_no_further_epoch(groove, tmp_path):
    """The budget counts the time already trained (kept in last.npz): the same budget again trains nothing, each
    further resume too; a larger one continues."""
    out = tmp_path / "run"
    train(tiny(groove, epochs=5, time_budget=1e-4), out, progress=False, log=lambda line: None)
    last = (out / "last.npz").read_bytes()
    for _ in range(2):
        lines = []
        result = train(tiny(groove, epochs=5, time_budget=1e-4), out, resume=True, progress=False,
                       log=lines.append)
        assert result.stopped == "time budget" and result.epochs_done == 1
        assert (out / "last.npz").read_bytes() == last
        assert re.match(r"the time budget of 0\.0001 min is spent \(\d+\.\d s over 1 epochs, another would "
                        r"take ~\d+ s\): nothing to train; a larger --time-budget with --resume continues$",
                        lines[-1]), lines
    result = train(tiny(groove, epochs=2, time_budget=60.0), out, resume=True, progress=False,
                   log=lambda line: None)
    assert result.stopped == "completed" and result.epochs_done == 2


def test_durations_in_the_log_are_never_rounded_to_nothing():
    assert [minutes(seconds) for seconds in (0.04, 7.2, 60.0, 208.2, 876.0)] == \
        ["0.0 s", "7.2 s", "1.00 min", "3.47 min", "14.6 min"]


def test_patience_stops_a_run_whose_validation_loss_stops_improving_and_says_so(groove, tmp_path):
    lines = []
    # a learning rate far too large, and no moving average to smooth it: the validation loss stops improving
    # within a few epochs
    result = train(tiny(groove, epochs=12, lr=0.5, ema=0.0, patience=1), tmp_path / "run", progress=False,
                   log=lines.append)
    losses = [row["val_loss"] for row in result.history]
    assert result.stopped == "early stopping" and len(losses) < 12, losses
    # Keras's rule with patience 1: the last epoch did not improve on the best before it, and training went no further
    assert losses[-1] >= min(losses[:-1]) and result.best_epoch == 1 + int(numpy.argmin(losses))
    assert lines[-1] == (f"early stopping: val_loss has not improved for 1 epoch (best {result.best:.4f} at epoch "
                         f"{result.best_epoch})"), lines[-1]
