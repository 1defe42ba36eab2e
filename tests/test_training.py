"""Training as Keras 3 does it: Adam's exact update, clipping, BatchNorm's moving statistics, fit's epoch loss,
evaluate/predict, and a NaN loss that stops fit with the weights from before the bad batch."""
import numpy
import pytest

import deeprnn as dr
from deeprnn import backend, layers, optimizers
from deeprnn.data import PyDataset
from deeprnn.layers import Variable


def keras_adam(weights, grads_per_step, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, clip=None,
               weight_decay=None, ema=None, averages=None):
    """Keras 3's Adam (keras/src/optimizers/adam.py) in float64 NumPy: epsilon outside the bias correction.

    ``clip``: None, ("clipnorm", c) (each gradient to norm c) or ("global_clipnorm", c) (all together).
    ``weight_decay``: w -= w * wd * lr before each step (base_optimizer.py ``_apply_weight_decay``). ``ema``:
    (momentum, overwrite_frequency or None); the averages are appended to ``averages`` (a list) when given.
    """
    weights = [w.astype("float64").copy() for w in weights]
    m = [numpy.zeros_like(w) for w in weights]
    v = [numpy.zeros_like(w) for w in weights]
    average = [numpy.zeros_like(w) for w in weights]
    for step, grads in enumerate(grads_per_step):
        grads = [g.astype("float64") for g in grads]
        if clip and clip[0] == "clipnorm":
            grads = [g * clip[1] / max(numpy.linalg.norm(g), clip[1]) for g in grads]
        if clip and clip[0] == "global_clipnorm":
            norm = numpy.sqrt(sum((g ** 2).sum() for g in grads))
            grads = [g * clip[1] / max(norm, clip[1]) for g in grads]
        if weight_decay:
            weights = [w - w * weight_decay * lr for w in weights]
        t = step + 1
        alpha = lr * numpy.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
        for k, g in enumerate(grads):
            m[k] += (1 - beta_1) * (g - m[k])
            v[k] += (1 - beta_2) * (g * g - v[k])
            weights[k] -= alpha * m[k] / (numpy.sqrt(v[k]) + epsilon)
        if ema:
            momentum = ema[0] if step > 0 else 0.0
            average = [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
            if ema[1] and (step + 1) % ema[1] == 0:
                weights = [a.copy() for a in average]
    if averages is not None:
        averages.extend(average)
    return weights


def random_gradients(shapes, steps, seed=0):
    rng = numpy.random.default_rng(seed)
    # scales from 1e-4 to 10 so epsilon, the bias correction and the clipping all matter somewhere
    return [[rng.normal(scale=10.0 ** rng.integers(-4, 2), size=s) for s in shapes] for _ in range(steps)]


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("clip", [None, ("clipnorm", 0.5), ("global_clipnorm", 0.5)],
                         ids=["no_clip", "clipnorm", "global_clipnorm"])
def test_adam_matches_a_numpy_transcription_of_keras_over_several_steps(device, precision, clip):
    dr.set_floatx(precision)
    shapes = [(3, 4), (4,)]
    rng = numpy.random.default_rng(1)
    start = [rng.normal(size=s).astype(precision) for s in shapes]
    grads = random_gradients(shapes, steps=6)
    kwargs = {clip[0]: clip[1]} if clip else {}
    adam = optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7, **kwargs)
    variables = [Variable(f"w{k}", backend.to_device(w.copy())) for k, w in enumerate(start)]
    for step in grads:
        adam.apply_gradients([backend.to_device(g.astype(precision)) for g in step], variables)
    expected = keras_adam(start, grads, lr=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-7, clip=clip)
    tolerance = dict(rtol=1e-5, atol=1e-6) if precision == "float32" else dict(rtol=1e-12, atol=1e-13)
    for variable, want in zip(variables, expected):
        numpy.testing.assert_allclose(backend.to_numpy(variable.value), want, **tolerance)
    assert adam.iterations == 6


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("overwrite", [None, 4])
def test_adamw_with_ema_matches_a_numpy_transcription_of_keras(device, precision, overwrite):
    """AdamW(weight_decay) with use_ema: the decay before each Adam step, the average after it (momentum 0 at the
    first update), the weights overwritten by the averages every ``overwrite`` updates; then finalize."""
    dr.set_floatx(precision)
    shapes = [(3, 4), (4,)]
    rng = numpy.random.default_rng(2)
    start = [rng.normal(size=s).astype(precision) for s in shapes]
    grads = random_gradients(shapes, steps=6)
    adamw = optimizers.AdamW(learning_rate=0.01, weight_decay=0.3, use_ema=True, ema_momentum=0.7,
                             ema_overwrite_frequency=overwrite, clipnorm=0.5)
    variables = [Variable(f"w{k}", backend.to_device(w.copy())) for k, w in enumerate(start)]
    for step in grads:
        adamw.apply_gradients([backend.to_device(g.astype(precision)) for g in step], variables)
    averages = []
    expected = keras_adam(start, grads, lr=0.01, clip=("clipnorm", 0.5), weight_decay=0.3, ema=(0.7, overwrite),
                          averages=averages)
    tolerance = dict(rtol=1e-5, atol=1e-6) if precision == "float32" else dict(rtol=1e-12, atol=1e-13)
    for variable, want in zip(variables, expected):
        numpy.testing.assert_allclose(backend.to_numpy(variable.value), want, **tolerance)
    assert len(adamw.variables) == 3 * len(variables)
    adamw.finalize_variable_values(variables)
    for variable, want in zip(variables, averages):
        numpy.testing.assert_allclose(backend.to_numpy(variable.value), want, **tolerance)


@pytest.mark.parametrize("make, message", [
    (lambda: optimizers.AdamW(weight_decay=None), "AdamW: weight_decay must be a float, got None"),
    (lambda: optimizers.Adam(weight_decay=-0.1), "Adam: weight_decay must be a finite number >= 0, got -0.1"),
    (lambda: optimizers.Adam(use_ema=True, ema_momentum=1.5), "Adam: ema_momentum must be a finite number >= 0"),
    (lambda: optimizers.AdamW(use_ema=True, ema_overwrite_frequency=0), "AdamW: ema_overwrite_frequency must be"),
    (lambda: optimizers.get("sgd"), "unknown optimizer 'sgd'")])
def test_optimizer_arguments_outside_keras_ranges_are_one_line_errors(make, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")) as error:
        make()
    assert "\n" not in str(error.value)


def test_optimizers_get_names_adam_and_adamw_and_round_trips_their_config():
    assert type(optimizers.get("adamw")) is optimizers.AdamW and optimizers.get("adamw").weight_decay == 0.004
    adamw = optimizers.AdamW(learning_rate=0.002, weight_decay=0.05, use_ema=True, ema_momentum=0.999)
    again = optimizers.get(adamw.get_config())
    assert type(again) is optimizers.AdamW and again.get_config() == adamw.get_config()


def test_swap_averages_exchanges_weights_and_averages_and_training_refuses_while_swapped():
    adam = optimizers.Adam(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    variables = [Variable("w", backend.to_device(numpy.ones(3, "float32")))]
    with pytest.raises(ValueError, match="no averaged weights"):
        adam.swap_averages(variables)
    for _ in range(3):
        adam.apply_gradients([backend.to_device(numpy.array([1.0, -1.0, 0.5], "float32"))], variables)
    weights, averages = backend.to_numpy(variables[0].value).copy(), backend.to_numpy(adam.averages[0]).copy()
    assert not numpy.array_equal(weights, averages)
    adam.swap_averages(variables)
    numpy.testing.assert_array_equal(backend.to_numpy(variables[0].value), averages)
    with pytest.raises(ValueError, match="swap them back before training"):
        adam.apply_gradients([backend.to_device(numpy.zeros(3, "float32"))], variables)
    adam.swap_averages(variables)
    numpy.testing.assert_array_equal(backend.to_numpy(variables[0].value), weights)


def test_clipnorm_is_per_variable_and_global_clipnorm_is_joint():
    """The same two gradients, norms 3 and 4 (joint 5): clipnorm=1 scales them by 1/3 and 1/4, global by 1/5."""
    g1, g2 = numpy.array([3.0, 0.0], "float32"), numpy.array([0.0, 4.0], "float32")
    per_variable = optimizers.Adam(clipnorm=1.0).clip([g1, g2])
    numpy.testing.assert_allclose(per_variable[0], g1 / 3, rtol=1e-6)
    numpy.testing.assert_allclose(per_variable[1], g2 / 4, rtol=1e-6)
    joint = optimizers.Adam(global_clipnorm=1.0).clip([g1, g2])
    numpy.testing.assert_allclose(joint[0], g1 / 5, rtol=1e-6)
    numpy.testing.assert_allclose(joint[1], g2 / 5, rtol=1e-6)
    small = optimizers.Adam(global_clipnorm=10.0).clip([g1, g2])
    numpy.testing.assert_array_equal(small[0], g1)  # below the threshold nothing changes


def small_model(seed=0, dropout=0.0, optimizer="adam"):
    dr.set_seed(seed)
    stack = [layers.Input((4, 2)), layers.LSTM(3), layers.BatchNormalization()]
    if dropout:
        stack.append(layers.Dropout(dropout))
    model = dr.Sequential(stack + [layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer)
    return model


def copy_of(model, dropout=0.0):
    twin = small_model(seed=99, dropout=dropout)
    twin.set_weights([w.copy() for w in model.get_weights()])
    return twin


def data(n=10, seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.normal(size=(n, 4, 2)).astype("float32"), rng.integers(0, 3, n)


def test_train_on_batch_applies_keras_adam_to_the_gradients_of_loss_and_gradients():
    """Model wiring: grads come back aligned with get_weights (None for moving stats) and Adam uses them."""
    model = small_model()
    x, y = data()
    trainable = [v.trainable for v in model.variables]
    weights = model.get_weights()
    grads_per_step = []
    for _ in range(3):
        loss, grads = model.loss_and_gradients(x, y)
        grads_per_step.append([g for g in grads if g is not None])
        assert model.train_on_batch(x, y) == pytest.approx(loss, rel=1e-6)  # the loss before the update
    # each step's gradients were recorded at the weights the model had then; replay Keras's Adam on them
    expected = keras_adam([w for w, t in zip(weights, trainable) if t], grads_per_step)
    got = [w for w, t in zip(model.get_weights(), trainable) if t]
    for g, e in zip(got, expected):
        numpy.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_batch_normalization_moving_statistics_follow_keras_after_train_on_batch():
    """momentum 0.99, the biased batch variance; loss_and_gradients, evaluate and predict leave them alone."""
    model = dr.Sequential([layers.Input((3,)), layers.BatchNormalization(), layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    rng = numpy.random.default_rng(0)
    x1, x2 = rng.normal(2, 3, size=(6, 3)).astype("float32"), rng.normal(-1, 0.5, size=(6, 3)).astype("float32")
    y = numpy.array([0, 1, 0, 1, 1, 0])
    bn = model.layers[0]

    model.loss_and_gradients(x1, y)
    model.evaluate(x1, y)
    model.predict(x1)
    _, _, moving_mean, moving_variance = bn.get_weights()
    numpy.testing.assert_array_equal(moving_mean, numpy.zeros(3))
    numpy.testing.assert_array_equal(moving_variance, numpy.ones(3))

    model.train_on_batch(x1, y)
    model.train_on_batch(x2, y)
    expected_mean = 0.99 * (0.01 * x1.mean(0)) + 0.01 * x2.mean(0)
    expected_var = 0.99 * (0.99 * 1 + 0.01 * x1.var(0)) + 0.01 * x2.var(0)  # numpy's var is the biased one
    _, _, moving_mean, moving_variance = bn.get_weights()
    numpy.testing.assert_allclose(moving_mean, expected_mean, rtol=1e-5)
    numpy.testing.assert_allclose(moving_variance, expected_var, rtol=1e-5)
    unbiased = 0.99 * (0.99 + 0.01 * x1.var(0, ddof=1)) + 0.01 * x2.var(0, ddof=1)
    assert not numpy.allclose(moving_variance, unbiased, rtol=1e-5)


def test_fit_epoch_loss_is_the_sample_weighted_mean_of_pre_update_batch_losses():
    """10 samples, batch 4: batches of 4, 4 and a partial 2, weighted 4:4:2 (Keras keeps the last partial batch).
    A manual train_on_batch loop on a copy, with the same seed for the dropout masks, reproduces fit exactly."""
    model = small_model(dropout=0.3)
    twin = copy_of(model, dropout=0.3)
    x, y = data(10)

    dr.set_seed(5)
    history = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)

    dr.set_seed(5)
    expected = []
    for _ in range(2):
        losses = [(twin.train_on_batch(x[s:s + 4], y[s:s + 4]), len(x[s:s + 4])) for s in range(0, 10, 4)]
        assert [n for _, n in losses] == [4, 4, 2]
        expected.append(sum(loss * n for loss, n in losses) / 10)

    assert history.history["loss"] == pytest.approx(expected, rel=1e-6)
    for got, want in zip(model.get_weights(), twin.get_weights()):
        numpy.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert history.history["loss"][-1] != pytest.approx(model.evaluate(x, y), rel=1e-3), \
        "the epoch loss is not a re-evaluation after training"


def test_fit_with_validation_data_records_val_loss_each_epoch():
    model = small_model()
    x, y = data(10)
    xv, yv = data(5, seed=1)
    history = model.fit(x, y, epochs=3, batch_size=4, validation_data=(xv, yv), verbose=0)
    assert len(history.history["loss"]) == len(history.history["val_loss"]) == 3
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(xv, yv), rel=1e-6)


def test_fit_prints_one_line_per_epoch_when_verbose(capsys):
    model = small_model()
    model.fit(*data(6), epochs=2, batch_size=4, verbose=1)
    lines = [l for l in capsys.readouterr().out.splitlines() if "loss:" in l]
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2")


def test_evaluate_and_predict_do_not_depend_on_the_batch_size():
    """Inference mode: BatchNorm uses its moving statistics and Dropout is off, so samples never interact."""
    model = small_model(dropout=0.5)
    x, y = data(10)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)  # non-trivial moving statistics
    whole, in_threes = model.predict(x, batch_size=32), model.predict(x, batch_size=3)
    assert isinstance(whole, numpy.ndarray) and whole.shape == (10, 3)
    numpy.testing.assert_allclose(in_threes, whole, rtol=1e-6, atol=1e-7)
    numpy.testing.assert_allclose(model.predict(x[7:8]), whole[7:8], rtol=1e-6, atol=1e-7)
    by_hand = -numpy.log(numpy.clip(whole[numpy.arange(10), y], 1e-7, 1 - 1e-7)).mean()
    for batch_size in (1, 3, 32):
        assert model.evaluate(x, y, batch_size=batch_size) == pytest.approx(by_hand, rel=1e-5)


class PoisonAfterBatch(dr.callbacks.Callback):
    """Sets the output Dense kernel to NaN after batch ``batch`` (0-based) of the first epoch."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_batch_end(self, batch, logs=None):
        if batch == self.batch and not getattr(self, "done", False):
            weights = self.model.get_weights()
            weights[-2][:] = numpy.nan
            self.model.set_weights(weights)
            self.done = True


def test_a_nan_loss_stops_fit_naming_epoch_and_batch_with_the_weights_from_before_that_batch():
    model = small_model()
    x, y = data(6)
    poison = PoisonAfterBatch(0)   # batch 2 of 3 (batch size 2, no shuffling) then computes a NaN loss
    with pytest.raises(dr.NonFiniteLossError, match=r"epoch 1, batch 2 of 3") as error:
        model.fit(x, y, epochs=2, batch_size=2, shuffle=False, verbose=0, callbacks=[poison])
    assert isinstance(error.value, FloatingPointError)
    weights = model.get_weights()
    assert numpy.isnan(weights[-2]).all()                                  # the poisoned kernel, as it was set
    assert all(numpy.isfinite(w).all() for k, w in enumerate(weights) if k != len(weights) - 2), \
        "no update was applied from the NaN batch"


@pytest.mark.parametrize("bad", [numpy.nan, numpy.inf, -numpy.inf, 1e39])   # 1e39 overflows float32
@pytest.mark.parametrize("where", ["x", "y"])
def test_non_finite_data_is_refused_before_any_work(bad, where):
    """fit/train_on_batch/predict refuse NaN or inf data (or float64 beyond float32) naming x or y, weights
    untouched: inf in x once trained silently to NaN weights while the loss still looked finite."""
    model = small_model()
    before = model.get_weights()
    x, y = data(6)
    if where == "y":   # one-hot float targets: integer labels cannot hold a NaN
        y = numpy.eye(3, dtype="float64")[y]
        model.compile(loss="categorical_crossentropy", optimizer="adam")
    (x if where == "x" else y)[3, ...] = bad
    with pytest.raises(ValueError, match=rf"^{where} contains \d+ NaN or infinite"):
        model.fit(x, y, epochs=1, batch_size=2, shuffle=False, verbose=0)
    with pytest.raises(ValueError, match=rf"^{where} contains"):
        model.train_on_batch(x, y)
    if where == "x":
        with pytest.raises(ValueError, match="^x contains"):
            model.predict(x)
    for got, want in zip(model.get_weights(), before):
        numpy.testing.assert_array_equal(got, want)


def test_a_nan_loss_in_a_later_epoch_names_that_epoch():
    class PoisonWeightsAfterFirstEpoch(dr.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights = self.model.get_weights()
            weights[-2][:] = numpy.nan  # the output Dense kernel
            self.model.set_weights(weights)

    model = small_model()
    x, y = data(4)
    with pytest.raises(dr.NonFiniteLossError, match=r"epoch 2, batch 1 of 1"):
        model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[PoisonWeightsAfterFirstEpoch()])


class Batches(PyDataset):
    """A data source shaped like Keras's PyDataset: a fixed split of (x, y) into batches, reversed every epoch."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.reversed = False
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        x, y = (self.x[::-1], self.y[::-1]) if self.reversed else (self.x, self.y)
        return x[rows], y[rows]

    def on_epoch_end(self):
        self.reversed = not self.reversed
        self.epochs_ended += 1


def test_fit_on_a_pydataset_equals_train_on_batch_over_its_batches_and_calls_on_epoch_end():
    """Keras's PyDataset: len() batches per epoch, source[i] -> (x, y), on_epoch_end after every epoch."""
    model = small_model()
    twin = copy_of(model)
    x, y = data(10)
    source = Batches(x, y, 4)
    history = model.fit(source, epochs=2, verbose=0)
    expected = []
    for epoch in range(2):
        xs, ys = (x, y) if epoch == 0 else (x[::-1], y[::-1])
        losses = [(twin.train_on_batch(xs[s:s + 4], ys[s:s + 4]), len(xs[s:s + 4])) for s in range(0, 10, 4)]
        expected.append(sum(loss * n for loss, n in losses) / 10)
    assert source.epochs_ended == 2
    assert history.history["loss"] == pytest.approx(expected, rel=1e-6)
    for got, want in zip(model.get_weights(), twin.get_weights()):
        numpy.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="do not pass y"):
        model.fit(source, y, verbose=0)


def test_backup_and_restore_resumes_to_the_weights_of_an_uninterrupted_fit(tmp_path):
    """Keras's BackupAndRestore: fit 2 epochs, or fit 1, then a new fit with the backup: the very same weights,
    optimizer state and best value (shuffles and dropout masks continue from the saved RNG state)."""
    x, y = data(10)
    xv, yv = data(5, seed=1)

    def run(epochs, model, folder):
        best = dr.callbacks.ModelCheckpoint(folder / "best.npz", monitor="val_loss", save_best_only=True)
        backup = dr.callbacks.BackupAndRestore(folder / "last.npz", delete_checkpoint=False, state_of=[best])
        history = model.fit(x, y, epochs=epochs, batch_size=4, validation_data=(xv, yv), verbose=0,
                            callbacks=[best, backup])
        return history, best, backup

    (tmp_path / "straight").mkdir()
    (tmp_path / "resumed").mkdir()
    straight = small_model(dropout=0.3)
    dr.set_seed(7)
    _, straight_best, _ = run(2, straight, tmp_path / "straight")

    first = small_model(dropout=0.3)
    dr.set_seed(7)
    run(1, first, tmp_path / "resumed")
    dr.set_seed(123)  # another process: whatever its RNG, the backup's state is what counts
    resumed = small_model(seed=42, dropout=0.3)
    history, resumed_best, backup = run(2, resumed, tmp_path / "resumed")
    assert backup.restored_epoch == 1 and history.epoch == [1]
    assert resumed_best.best == straight_best.best
    for got, want in zip(resumed.get_weights(), straight.get_weights()):
        numpy.testing.assert_array_equal(got, want)
    for got, want in zip(resumed.optimizer.get_state(), straight.optimizer.get_state()):
        numpy.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))


def ema_optimizer():
    return optimizers.AdamW(learning_rate=0.01, weight_decay=0.01, use_ema=True, ema_momentum=0.9)


def test_backup_and_restore_resumes_an_ema_run_whose_backup_holds_the_swapped_averages(tmp_path):
    """SwapEMAWeights(swap_on_epoch=True) before the checkpoints: best.npz and last.npz hold the averaged weights
    (the trained ones in the averages' slot). A fit resumed from last.npz, with the swap callback in state_of, swaps
    back before training and ends where an uninterrupted fit ends: weights, optimizer state, best value."""
    x, y = data(10)
    xv, yv = data(5, seed=1)

    def run(epochs, model, folder):
        swap = dr.callbacks.SwapEMAWeights(swap_on_epoch=True)
        best = dr.callbacks.ModelCheckpoint(folder / "best.npz", monitor="val_loss", save_best_only=True)
        backup = dr.callbacks.BackupAndRestore(folder / "last.npz", delete_checkpoint=False, state_of=[best, swap])
        model.fit(x, y, epochs=epochs, batch_size=4, validation_data=(xv, yv), verbose=0,
                  callbacks=[swap, best, backup])
        return best

    for folder in ("straight", "resumed"):
        (tmp_path / folder).mkdir()
    straight = small_model(dropout=0.3, optimizer=ema_optimizer())
    dr.set_seed(7)
    straight_best = run(3, straight, tmp_path / "straight")

    first = small_model(dropout=0.3, optimizer=ema_optimizer())
    dr.set_seed(7)
    run(1, first, tmp_path / "resumed")
    # what the backup holds after epoch 1: the averages as the weights
    backup_model = small_model(seed=5, optimizer=ema_optimizer())
    backup_model.load_weights(tmp_path / "resumed" / "last.npz")
    trainable = [i for i, v in enumerate(first.variables) if v.trainable]
    averages = backup_model.optimizer.averages   # the trained weights, swapped out
    assert not all(numpy.array_equal(backup_model.get_weights()[i], backend.to_numpy(a))
                   for i, a in zip(trainable, averages))
    resumed = small_model(seed=42, dropout=0.3, optimizer=ema_optimizer())
    resumed_best = run(3, resumed, tmp_path / "resumed")
    assert resumed_best.best == straight_best.best
    for got, want in zip(resumed.get_weights(), straight.get_weights()):
        numpy.testing.assert_array_equal(got, want)
    for got, want in zip(resumed.optimizer.get_state(), straight.optimizer.get_state()):
        numpy.testing.assert_array_equal(got, want)


class StopAfterFirstEpoch(dr.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def test_a_fit_cut_short_ends_with_the_averages_whether_or_not_they_were_swapped_in():
    """Keras's fit ends with finalize_variable_values: the averaged weights. A fit stopped early after
    SwapEMAWeights(swap_on_epoch=True) swapped them in keeps them (they are not swapped back out)."""
    x, y = data(12)
    results = []
    for callbacks in ([], [dr.callbacks.SwapEMAWeights(swap_on_epoch=True)]):
        model = small_model(optimizer=ema_optimizer())
        dr.set_seed(3)
        model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=callbacks + [StopAfterFirstEpoch()])
        assert model.optimizer.averages_swapped is False
        results.append(model.get_weights())
        trainable = [v for v in model.variables if v.trainable]
        for variable, average in zip(trainable, model.optimizer.averages):
            numpy.testing.assert_array_equal(variable.value, average)
    for plain, swapped in zip(*results):
        numpy.testing.assert_array_equal(plain, swapped)


# -- the library API at its edges (issue 22) ---------------------------------------------------------------------------
def test_a_model_without_layers_is_one_clear_error_in_fit_and_predict_as_in_keras():
    """Keras: "Sequential model ... cannot be built because it has no layers" (a ValueError)."""
    model = dr.Sequential()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    x, y = data(4)
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.predict(x), lambda: model.evaluate(x, y),
                 lambda: model.train_on_batch(x, y)):
        with pytest.raises(dr.errors.SettingError, match="^Sequential model 'sequential' has no layers; call "
                                                         r"model.add\(layer\) first$"):
            call()


def test_predict_on_zero_samples_is_an_empty_array_of_the_output_shape():
    """Keras 3.15 fails here (an UnboundLocalError); an empty batch's predictions are an empty array."""
    model = small_model()
    out = model.predict(numpy.zeros((0, 4, 2), "float32"))
    assert out.shape == (0, 3) and out.dtype == numpy.float32
    sequences = dr.Sequential([layers.Input((4, 2)), layers.GRU(5, return_sequences=True)])
    assert sequences.predict(numpy.zeros((0, 4, 2), "float32")).shape == (0, 4, 5)


def test_fit_and_evaluate_on_zero_samples_are_one_line_errors():
    model = small_model()
    x, y = numpy.zeros((0, 4, 2), "float32"), numpy.zeros((0,), "int64")
    with pytest.raises(ValueError, match="^fit: x is empty$"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="^evaluate: x holds no samples$"):
        model.evaluate(x, y)


def test_a_run_that_blows_up_stops_with_a_clear_error_and_keeps_the_last_finite_backup(tmp_path):
    """One batch per epoch; after a good epoch the learning rate is raised until the weights overflow: fit stops
    naming the epoch before any callback sees them, and both files keep the last finite epoch."""
    model = small_model()
    x, y = data(4)
    best = dr.callbacks.ModelCheckpoint(tmp_path / "best.npz", monitor="loss", save_best_only=True)
    backup = dr.callbacks.BackupAndRestore(tmp_path / "last.npz", delete_checkpoint=False, state_of=[best])
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[best, backup])
    good = model.get_weights()
    model.optimizer.learning_rate = float("inf")  # the next update sends the weights to +-inf
    with pytest.raises(dr.NonFiniteLossError, match=r"after epoch 2, weight .* is no longer finite"):
        model.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[best, backup])
    assert backup.saved_epoch == 1
    for name in ("best.npz", "last.npz"):
        saved = dr.load_model(tmp_path / name).get_weights()
        assert all(numpy.isfinite(w).all() for w in saved)
        for got, want in zip(saved, good):
            numpy.testing.assert_array_equal(got, want)


def test_time_budget_stops_before_an_epoch_that_would_overrun_it():
    model = small_model()
    budget = dr.callbacks.TimeBudget(minutes=1e-9, log=lambda line: None)
    history = model.fit(*data(6), epochs=5, batch_size=4, verbose=0, callbacks=[budget])
    assert history.epoch == [0] and budget.stopped_epoch == 1
    assert history.history["elapsed"][0] == pytest.approx(history.history["seconds"][0])


def test_backup_and_restore_never_writes_non_finite_weights_or_logs(tmp_path):
    model = small_model()
    backup = dr.callbacks.BackupAndRestore(tmp_path / "last.npz", delete_checkpoint=False)
    backup.set_model(model)
    backup.on_epoch_end(0, {"loss": 1.0})
    written = (tmp_path / "last.npz").read_bytes()
    with pytest.warns(UserWarning, match="keeps epoch 1"):
        backup.on_epoch_end(1, {"loss": float("nan")})
    weights = model.get_weights()
    weights[0][0, 0] = numpy.inf
    model.set_weights(weights)
    with pytest.warns(UserWarning, match="keeps epoch 1"):
        backup.on_epoch_end(2, {"loss": 0.5})
    assert (tmp_path / "last.npz").read_bytes() == written and backup.saved_epoch == 1
