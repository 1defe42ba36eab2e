"""The regularizers of issue 19 as train settings: --optimizer adamw and --weight-decay (Keras's decoupled weight
decay), --ema (Keras's use_ema: the averaged weights validated and saved as best.npz, the trained ones in
last.npz so --resume continues exactly), and --recurrent-dropout in the drums and groove recipes (Keras's masks,
the fused kernel held to the reference). Tiny models on three Groove files per split, one or two epochs."""
import re
import tomllib
from pathlib import Path

import numpy
import pytest

from deeprnn import optimizers
from deeprnn.errors import SettingError
from deeprnn.layers import RNN
from deeprnn.pipeline import TrainConfig, train
from deeprnn.pipeline.checkpoints import load_checkpoint
from deeprnn.pipeline.datasets import open_data
from deeprnn.pipeline.recipes import make_optimizer
from deeprnn.pipeline.run_folder import describe_run
from deeprnn.pipeline.settings import OPTIMIZER_NAMES
from deeprnn.sweep.command import plan_from_flags
from deeprnn.sweep.settings import SWEEP_SETTINGS
from deeprnn.sweep.space import ends, parse_space

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def tiny(groove, **changes):
    """Three files per split: 64 training tokens with seed 5, so 8-token windows in batches of 2 are 4 updates an
    epoch (the averages differ from the weights after the second)."""
    settings = dict(data=groove, max_files=3, units=6, layers=2, embedding_dim=4, seq_len=8, batch_size=2,
                    epochs=1, dropout=0.2, seed=5)
    return TrainConfig(**{**settings, **changes})


def quiet(config, out, **options):
    return train(config, out, progress=False, log=lambda line: None, **options)


def arrays(path):
    with numpy.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files if key.startswith(("weight_", "optimizer_"))}


def trainable(path):
    return [numpy.array(variable.value) for variable in load_checkpoint(path).model.trainable_variables]


def test_the_optimizer_names_are_the_library_optimizers():
    assert OPTIMIZER_NAMES == tuple(optimizers.OPTIMIZERS)


@pytest.mark.parametrize("settings, expected", [
    (dict(), (optimizers.AdamW, 0.051, True)),                               # the drums defaults (the sweep's)
    (dict(optimizer="adam"), (optimizers.Adam, 0.051, True)),                # Keras 3's Adam(weight_decay=...)
    (dict(optimizer="adamw", weight_decay=0.05, ema=0.0), (optimizers.AdamW, 0.05, False)),
    (dict(recipe="seed"), (optimizers.Adam, None, False)),                   # the tutorial's Adam
    (dict(recipe="seed", optimizer="adamw"), (optimizers.AdamW, 0.004, False)),  # Keras's AdamW default
    (dict(recipe="seed", optimizer="adamw", ema=0.999), (optimizers.AdamW, 0.004, True)),
])
def test_the_settings_build_keras_optimizers(settings, expected):
    config = TrainConfig(**{"recipe": "drums", **settings}).resolved()
    optimizer = make_optimizer(config)
    assert (type(optimizer), optimizer.weight_decay, optimizer.use_ema) == expected
    assert optimizer.learning_rate == config.lr == (1e-3 if config.recipe == "seed" else 5.6e-3)
    assert optimizer.clipnorm == (None if config.recipe == "seed" else 1.0)
    if config.ema:
        assert optimizer.ema_momentum == config.ema


def test_adam_with_weight_decay_is_adamw_with_it():
    """Keras 3 decays every optimizer's weights the decoupled way, so the two names give one update."""
    adam, adamw = (make_optimizer(TrainConfig(optimizer=name, weight_decay=0.1).resolved()) for name in OPTIMIZER_NAMES)
    assert {**adam.get_config(), "class_name": None} == {**adamw.get_config(), "class_name": None}


@pytest.mark.parametrize("settings", [dict(ema=0.99), dict(optimizer="adamw", weight_decay=0.05),
                                      dict(optimizer="adamw", ema=0.9, recurrent_dropout=0.25)])
def test_resume_reaches_the_weights_of_an_uninterrupted_run(groove, tmp_path, settings):
    """1 epoch, then --resume to 2, equals 2 epochs in one go: last.npz (weights, m, v, the averages) and best.npz."""
    quiet(tiny(groove, epochs=2, **settings), tmp_path / "straight")
    quiet(tiny(groove, epochs=1, **settings), tmp_path / "resumed")
    quiet(tiny(groove, epochs=2), tmp_path / "resumed", resume=True)
    for name in ("last.npz", "best.npz"):
        straight, resumed = arrays(tmp_path / "straight" / name), arrays(tmp_path / "resumed" / name)
        assert straight.keys() == resumed.keys() and len(straight) >= 9  # 2 LSTMs, embedding, head
        for key in straight:
            assert numpy.array_equal(straight[key], resumed[key]), (name, key)


def test_with_ema_best_holds_the_averages_and_last_the_trained_weights(groove, tmp_path):
    out = tmp_path / "run"
    result = quiet(tiny(groove, ema=0.9), out)
    last = load_checkpoint(out / "last.npz")
    optimizer = last.model.optimizer
    assert optimizer.use_ema and optimizer.ema_momentum == 0.9 and not optimizer.averages_swapped
    averages = [numpy.array(average) for average in optimizer.averages]
    weights = [numpy.array(variable.value) for variable in last.model.trainable_variables]
    best = trainable(out / "best.npz")
    assert all(numpy.array_equal(b, a) for b, a in zip(best, averages, strict=True))
    assert not all(numpy.array_equal(w, a) for w, a in zip(weights, averages)), "the averages lag the weights"
    # the epoch's val_loss is the averaged weights' score: best.npz scored again gives it
    assert result.best_epoch == 1 and last.training["val_loss"] == result.best
    scored = last.recipe.validation_score(load_checkpoint(out / "best.npz").model, *validation(last))
    assert scored[0] / scored[1] == pytest.approx(result.best, rel=1e-6)
    shown = {name: next(line for line in describe_run(out) if name in line) for name in ("best.npz", "last.npz")}
    assert shown["best.npz"].endswith("the averaged weights (--ema 0.9)")
    assert shown["last.npz"].endswith("the trained weights, the averages in the optimizer state (--ema 0.9)")


def validation(checkpoint):
    data = open_data(checkpoint.tokenizer, checkpoint.source, checkpoint.config)
    return data.split("validation").sequences, checkpoint.config, checkpoint.tokenizer


@pytest.mark.parametrize("recipe", ["drums", "groove"])
def test_recurrent_dropout_masks_apply_and_the_fused_kernel_equals_the_reference(recipe, groove, tmp_path,
                                                                                  monkeypatch):
    """One tiny epoch with Keras's recurrent_dropout: every recurrent layer has it, the fused CPU kernel runs it
    and ends at the reference loops' weights, and the masks change the run (rate 0 ends elsewhere)."""
    seq_len = 8 if recipe == "drums" else 16  # the groove recipe's windows hold about as many steps in twice the tokens
    quiet(tiny(groove, recipe=recipe, seq_len=seq_len, recurrent_dropout=0.3), tmp_path / "fused")
    model = load_checkpoint(tmp_path / "fused" / "last.npz").model
    recurrent = [layer for layer in model.layers if isinstance(layer, RNN)]
    assert len(recurrent) == 2 and all(layer.recurrent_dropout == 0.3 for layer in recurrent)
    assert all(layer.describe_implementation().startswith("fused") for layer in recurrent)
    quiet(tiny(groove, recipe=recipe, seq_len=seq_len, recurrent_dropout=0.0), tmp_path / "none")
    monkeypatch.setenv("DEEPRNN_REFERENCE", "1")  # layers made from now on run the reference loops
    quiet(tiny(groove, recipe=recipe, seq_len=seq_len, recurrent_dropout=0.3), tmp_path / "reference")
    assert load_checkpoint(tmp_path / "reference" / "last.npz").model.layers[1].implementation == "reference"
    fused, reference, none = (trainable(tmp_path / name / "last.npz") for name in ("fused", "reference", "none"))
    for f, r in zip(fused, reference, strict=True):
        numpy.testing.assert_allclose(f, r, rtol=1e-4, atol=1e-6)
    assert not all(numpy.allclose(f, n, rtol=1e-4, atol=1e-6) for f, n in zip(fused, none))


def test_the_drums_sweep_space_passes_the_sweeps_check_and_its_trials_build_their_optimizers(tmp_path):
    """examples/sweep_drums.toml, the space the lead runs, through the sweep command's own check (no trial runs);
    each end of every range gives a config that resolves and an optimizer that is what it names."""
    plan = plan_from_flags({**{setting.name: setting.default for setting in SWEEP_SETTINGS},
                            "out": tmp_path / "sweep", "space": EXAMPLES / "sweep_drums.toml", "trials": 40,
                            "time_budget": 15.0})
    space = plan.space
    assert space.fixed == {"recipe": "drums", "optimizer": "adamw"}
    assert sorted(space.distributions) == ["dropout", "ema", "embedding_dim", "layers", "lr", "recurrent_dropout",
                                           "units", "weight_decay"]
    assert space.distributions["ema"].choices == (0.0, 0.99, 0.999)
    lowest = {name: ends(distribution)[0] for name, distribution in space.distributions.items()}
    highest = {name: ends(distribution)[-1] for name, distribution in space.distributions.items()}
    for params, use_ema in ((lowest, False), (highest, True)):
        optimizer = make_optimizer(space.config(params, seed=0, time_budget=15.0).resolved())
        assert type(optimizer) is optimizers.AdamW and optimizer.weight_decay == params["weight_decay"]
        assert optimizer.use_ema is use_ema and optimizer.learning_rate == params["lr"]
    assert not (tmp_path / "sweep").exists(), "the check made nothing"


@pytest.mark.parametrize("text, message", [
    ('ema = {float = [0.9, 1.0]}', "--ema must be a finite number >= 0 and < 1, got 1.0"),
    ('optimizer = {choices = ["adam", "sgd"]}', "--optimizer must be one of adam, adamw, got 'sgd'"),
    ('weight_decay = {float = [-0.1, 0.1]}', "--weight-decay must be a finite number >= 0, got -0.1"),
])
def test_a_space_with_a_bad_regularizer_range_is_one_line_naming_it(text, message):
    with pytest.raises(SettingError, match=re.escape(f"the space: {message}")):
        parse_space({"recipe": "drums", **tomllib.loads(text)})
