"""The learning rate over a run: Keras's LearningRateScheduler semantics, and the cosine decay the pipeline plans
from --epochs or from the time budget."""
import math

import numpy
import pytest

import deeprnn as dr
from deeprnn import callbacks, layers
from deeprnn.pipeline.lr_schedule import FLOOR, HOLD, CosineDecay


def small_model():
    dr.set_seed(0)
    model = dr.Sequential([layers.Input((3, 2)), layers.LSTM(4), layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=dr.optimizers.Adam(learning_rate=0.01))
    return model


def data():
    rng = numpy.random.default_rng(0)
    return rng.normal(size=(8, 3, 2)).astype("float32"), rng.integers(0, 3, 8)


def test_learning_rate_scheduler_sets_the_rate_each_epoch_and_logs_it():
    """Keras: schedule(epoch, lr) at each epoch's start; history['learning_rate'] records it."""
    model = small_model()
    seen = []

    def halve(epoch, lr):
        seen.append((epoch, lr))
        return lr / 2 if epoch else lr

    history = model.fit(*data(), epochs=3, batch_size=4, verbose=0,
                        callbacks=[callbacks.LearningRateScheduler(halve)])
    assert seen == [(0, 0.01), (1, 0.01), (2, 0.005)]
    assert history.history["learning_rate"] == [0.01, 0.005, 0.0025]
    assert model.optimizer.learning_rate == 0.0025


@pytest.mark.parametrize("bad", [0.0, -1e-3, math.nan])
def test_a_schedule_that_gives_no_usable_rate_is_an_error(bad):
    model = small_model()
    with pytest.raises(ValueError, match="learning rate"):
        model.fit(*data(), epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: bad)])


def test_cosine_decay_over_the_epochs_follows_the_formula():
    schedule = CosineDecay(2e-3, epochs=10, log=lambda *a: None)
    rates = [schedule.rate(e, None) for e in range(10)]
    assert rates[0] == pytest.approx(2e-3)
    assert rates[5] == pytest.approx(2e-3 * (FLOOR + (1 - FLOOR) / 2))
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert schedule.rate(12, None) == pytest.approx(2e-3 * FLOOR)   # past the plan: the floor


def test_cosine_decay_plans_the_epochs_the_budget_holds_and_keeps_the_plan_for_resume():
    schedule = CosineDecay(1e-3, epochs=100, budget_minutes=10, log=lambda *a: None)
    assert schedule.rate(0, None) == 1e-3                 # no plan yet: the first epoch runs at lr_0
    schedule.set_model(small_model())
    schedule.on_epoch_end(0, {"seconds": 70.0, "elapsed": 70.0})     # 530 s left at 70 s an epoch: 7 more
    assert schedule.planned == 8
    schedule.on_epoch_end(1, {"seconds": 130.0, "elapsed": 200.0})   # the machine slowed: 400 s hold 3 more
    assert schedule.planned == 5
    resumed = CosineDecay(1e-3, epochs=100, budget_minutes=10, log=lambda *a: None)
    resumed.set_state(schedule.get_state())
    assert [resumed.rate(e, None) for e in range(5)] == [schedule.rate(e, None) for e in range(5)]
    short = CosineDecay(1e-3, epochs=3, budget_minutes=10, log=lambda *a: None)
    short.set_model(small_model())
    short.on_epoch_end(0, {"seconds": 1.0, "elapsed": 1.0})
    assert short.planned == 3                             # --epochs caps the plan


def test_cooldown_holds_the_rate_then_decays_over_the_last_part():
    schedule = CosineDecay(2e-3, epochs=10, hold=HOLD, log=lambda *a: None)
    rates = [schedule.rate(e, None) for e in range(10)]
    assert rates[:8] == [2e-3] * 8                       # e / E <= 0.7: held
    assert rates[8] == pytest.approx(2e-3 * (FLOOR + (1 - FLOOR) * (1 + math.cos(math.pi / 3)) / 2))
    assert rates[9] < rates[8]


def test_without_a_budget_a_resumed_plan_is_the_new_epochs():
    first = CosineDecay(1e-3, epochs=1, hold=HOLD, log=lambda *a: None)
    resumed = CosineDecay(1e-3, epochs=2, hold=HOLD, log=lambda *a: None)
    resumed.set_state(first.get_state())
    assert resumed.planned == 2 and resumed.rate(1, None) == 1e-3   # as an uninterrupted 2-epoch run


def test_train_config_names_an_unknown_schedule():
    from deeprnn.pipeline import TrainConfig
    with pytest.raises(ValueError, match="--lr-schedule must be one of constant, cosine, cooldown, got 'linear'"):
        TrainConfig(lr_schedule="linear")
    assert TrainConfig().resolved().lr_schedule == "cooldown"               # the drums recipe's default
    assert TrainConfig(recipe="seed").resolved().lr_schedule == "constant"  # the tutorial as written


def test_the_budgeted_plan_is_announced_once_and_again_only_when_it_really_moves():
    """Epoch times jitter, so the plan moves by one epoch back and forth (32, 33, 32...): said once, not each time."""
    lines = []
    schedule = CosineDecay(1e-3, epochs=100, budget_minutes=1, hold=HOLD, log=lines.append)
    schedule.set_model(small_model())
    elapsed = 0.0
    for epoch, seconds in enumerate([1.8, 1.85, 1.8, 1.85, 1.8]):
        elapsed += seconds
        schedule.on_epoch_end(epoch, {"seconds": seconds, "elapsed": elapsed})
    assert lines == ["learning rate: cooldown over 33 epochs (those the time budget holds)"]
    elapsed += 6.0
    schedule.on_epoch_end(5, {"seconds": 6.0, "elapsed": elapsed})   # the machine got three times slower
    assert len(lines) == 2 and "over 13 epochs" in lines[1]
