"""Saving and checkpoints: one pickle-free .npz that restores a model exactly (optimizer included), and a
ModelCheckpoint that writes atomically, only on strict improvement, and never writes NaN weights."""
import json
import os

import numpy
import pytest

import deeprnn as dr
from deeprnn import callbacks, layers


def tutorial_model(seed=0, T=5, V=4, optimizer=None):
    """The tutorial's architecture at toy size."""
    dr.set_seed(seed)
    model = dr.Sequential([layers.Input((T, 1)),
                           layers.LSTM(4, return_sequences=True, recurrent_dropout=0.3),
                           layers.LSTM(4, recurrent_dropout=0.3),
                           layers.BatchNormalization(),
                           layers.Dropout(0.3),
                           layers.Dense(3),
                           layers.Activation("relu"),
                           layers.BatchNormalization(),
                           layers.Dropout(0.3),
                           layers.Dense(V),
                           layers.Activation("softmax")])
    model.compile(loss="categorical_crossentropy",
                  optimizer=optimizer or dr.optimizers.Adam(learning_rate=0.01, clipnorm=1.0))
    return model


def data(n=8, T=5, V=4, seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.normal(size=(n, T, 1)).astype("float32"), numpy.eye(V, dtype="float32")[rng.integers(0, V, n)]


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for wa, wb in zip(a, b):
        numpy.testing.assert_array_equal(wa, wb)


def test_save_and_load_model_round_trip_restores_predictions_and_continued_training(tmp_path):
    model = tutorial_model()
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)

    loaded = dr.load_model(path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.get_config() == model.get_config()
    assert_same_weights(loaded.get_weights(), model.get_weights())  # BatchNorm's moving statistics included
    numpy.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    assert loaded.optimizer.get_config() == model.optimizer.get_config()

    # Adam's m and v came back too: the same next epochs give the same weights
    assert_trains_on_alike(model, loaded, x, y)


def assert_trains_on_alike(model, loaded, x, y):
    """Two more epochs of each, with the same seed for shuffles and masks, end at the same weights."""
    dr.set_seed(42)
    model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    dr.set_seed(42)
    loaded.fit(x, y, epochs=2, batch_size=3, verbose=0)
    assert_same_weights(loaded.get_weights(), model.get_weights())


def test_adamw_with_ema_round_trips_its_config_and_its_averages(tmp_path):
    """AdamW(use_ema=True): the file holds m, v and the averages (three slots a weight) and the config; a loaded
    model continues training exactly as the one that was saved."""
    def adamw():
        return dr.optimizers.AdamW(learning_rate=0.01, weight_decay=0.05, use_ema=True, ema_momentum=0.9,
                                   ema_overwrite_frequency=5)
    model = tutorial_model(optimizer=adamw())
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    model.save(tmp_path / "model.npz")
    loaded = dr.load_model(tmp_path / "model.npz")
    assert type(loaded.optimizer) is dr.optimizers.AdamW
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert len(loaded.optimizer.variables) == 3 * len(model.trainable_variables)
    assert_same_weights(loaded.optimizer.get_state(), model.optimizer.get_state())
    assert_trains_on_alike(model, loaded, x, y)


def test_an_optimizer_state_of_the_wrong_slot_count_is_one_line_naming_the_file(tmp_path):
    """A file saved by Adam (two slots a weight) loaded into a model compiled with use_ema (three)."""
    model = tutorial_model()
    model.fit(*data(), epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "adam.npz")
    other = tutorial_model(optimizer=dr.optimizers.Adam(use_ema=True))
    with pytest.raises(ValueError, match=r"adam\.npz: .*optimizer.* 3\b") as error:
        other.load_weights(tmp_path / "adam.npz")
    assert "\n" not in str(error.value)


def test_a_model_saved_without_its_optimizer_restarts_adam(tmp_path):
    model = tutorial_model()
    model.fit(*data(), epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "weights_only.npz", include_optimizer=False)
    loaded = dr.load_model(tmp_path / "weights_only.npz")
    assert loaded.optimizer.iterations == 0
    assert_same_weights(loaded.get_weights(), model.get_weights())


def test_embedding_and_every_recurrent_option_survive_the_round_trip(tmp_path):
    dr.set_seed(1)
    model = dr.Sequential([layers.Input((6,), dtype="int64"),
                           layers.Embedding(7, 3),
                           layers.GRU(4, reset_after=False, return_sequences=True, dropout=0.1),
                           layers.SimpleRNN(3, go_backwards=True, return_sequences=True),
                           layers.LSTM(2, unit_forget_bias=False, recurrent_dropout=0.2),
                           layers.Dense(7, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    tokens = numpy.random.default_rng(0).integers(0, 7, (3, 6))
    model.save(tmp_path / "tokens.npz")
    loaded = dr.load_model(tmp_path / "tokens.npz")
    assert loaded.get_config() == model.get_config()
    numpy.testing.assert_array_equal(loaded.predict(tokens), model.predict(tokens))


def test_the_file_is_one_npz_readable_without_pickle_holding_json_architecture(tmp_path):
    model = tutorial_model()
    model.save(tmp_path / "model.npz", metadata={"vocabulary": ["kick", "snare"], "sequence_length": 5})
    with numpy.load(tmp_path / "model.npz", allow_pickle=False) as archive:
        entries = {key: archive[key] for key in archive.files}
    config = json.loads(str(entries["architecture"]))
    assert config["class_name"] == "Sequential" and len(config["layers"]) == len(model.layers)
    assert len([k for k in entries if k.startswith("weight_")]) == len(model.get_weights())
    assert all(a.dtype != object for a in entries.values())
    assert dr.load_metadata(tmp_path / "model.npz") == {"vocabulary": ["kick", "snare"], "sequence_length": 5}


@pytest.mark.parametrize("content", [b"this is not a model", b"PK\x03\x04truncated zip"], ids=["garbage", "bad_zip"])
def test_loading_a_corrupt_file_is_a_clear_value_error(tmp_path, content):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"corrupt\.npz.*not a readable deeprnn model file"):
        dr.load_model(path)


def test_loading_a_truncated_checkpoint_is_a_clear_value_error(tmp_path):
    tutorial_model().save(tmp_path / "whole.npz")
    whole = (tmp_path / "whole.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match=r"truncated\.npz.*not a readable deeprnn model file"):
        dr.load_model(tmp_path / "truncated.npz")


def test_loading_an_npz_that_is_not_a_model_or_a_missing_file_says_so(tmp_path):
    numpy.savez(tmp_path / "plain.npz", a=numpy.zeros(3))
    with pytest.raises(ValueError, match="not a deeprnn model file"):
        dr.load_model(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        dr.load_model(tmp_path / "missing.npz")


# -- ModelCheckpoint ------------------------------------------------------------------------------------------------

def marked_epoch(path):
    """Which epoch wrote the file: the tests stamp the epoch number into the last Dense bias before each epoch end."""
    return int(round(float(dr.load_model(path).get_weights()[-1][0])))


def stamp(model, epoch):
    weights = model.get_weights()
    weights[-1][:] = epoch
    model.set_weights(weights)


@pytest.mark.parametrize("monitor", ["loss", "val_loss"])
def test_model_checkpoint_save_best_only_writes_only_on_strict_improvement(tmp_path, monitor):
    model = tutorial_model()
    path = tmp_path / "best.npz"
    checkpoint = callbacks.ModelCheckpoint(path, monitor=monitor, save_best_only=True)
    checkpoint.set_model(model)
    written_by = []
    for epoch, value in enumerate([1.0, 0.8, 0.8, 0.9, 0.5, 0.5000001], start=1):
        stamp(model, epoch)
        before = os.stat(path).st_mtime_ns if path.exists() else None
        checkpoint.on_epoch_end(epoch - 1, {monitor: value, "other": 123.0})
        written_by.append(marked_epoch(path))
        if written_by[-1] != epoch:
            assert os.stat(path).st_mtime_ns == before, "a checkpoint that did not improve must not touch the file"
    # epochs 1, 2 and 5 improve strictly; a tie (epoch 3) or worse (4, 6) keeps the best file
    assert written_by == [1, 2, 2, 2, 5, 5]
    assert checkpoint.best == 0.5


def test_model_checkpoint_without_save_best_only_writes_every_epoch_with_placeholders(tmp_path):
    model = tutorial_model()
    x, y = data()
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "epoch{epoch:02d}-{loss:.3f}.npz"), monitor="loss")
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[checkpoint])
    names = sorted(os.listdir(tmp_path))
    assert names == [f"epoch{e + 1:02d}-{history.history['loss'][e]:.3f}.npz" for e in range(2)]


def test_model_checkpoint_on_val_loss_during_fit_keeps_the_best_epoch(tmp_path):
    model = tutorial_model()
    x, y = data()
    xv, yv = data(4, seed=1)
    checkpoint = callbacks.ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    history = model.fit(x, y, epochs=4, batch_size=4, validation_data=(xv, yv), verbose=0, callbacks=[checkpoint])
    assert checkpoint.best == min(history.history["val_loss"])
    best = dr.load_model(tmp_path / "best.npz")
    assert best.evaluate(xv, yv) == pytest.approx(checkpoint.best, rel=1e-5)


def test_model_checkpoint_writes_atomically_so_a_failed_save_leaves_the_previous_file(tmp_path, monkeypatch):
    model = tutorial_model()
    path = tmp_path / "best.npz"
    checkpoint = callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True)
    checkpoint.set_model(model)
    stamp(model, 1)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    previous = path.read_bytes()

    def savez_that_dies_halfway(stream, **arrays):
        stream.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(numpy, "savez", savez_that_dies_halfway)
    stamp(model, 2)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    monkeypatch.undo()

    assert path.read_bytes() == previous
    assert marked_epoch(path) == 1
    assert os.listdir(tmp_path) == ["best.npz"], "no temporary file may be left behind"


def test_model_checkpoint_never_writes_nan_weights(tmp_path):
    model = tutorial_model()
    path = tmp_path / "best.npz"
    checkpoint = callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True)
    checkpoint.set_model(model)
    stamp(model, 1)
    checkpoint.on_epoch_end(0, {"loss": 1.0})

    weights = model.get_weights()
    weights[0][0, 0] = numpy.nan
    model.set_weights(weights)
    with pytest.warns(UserWarning, match="NaN"):
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    assert marked_epoch(path) == 1
    every_epoch = callbacks.ModelCheckpoint(tmp_path / "every.npz", monitor="loss")
    every_epoch.set_model(model)
    with pytest.warns(UserWarning, match="NaN"):
        every_epoch.on_epoch_end(1, {"loss": 0.5})
    assert not (tmp_path / "every.npz").exists()


def test_model_checkpoint_an_epoch_skipped_for_nan_weights_does_not_raise_the_bar(tmp_path):
    """The best value is the one in the file: after a skipped 0.5, a finite 0.7 still beats the saved 1.0."""
    model = tutorial_model()
    path = tmp_path / "best.npz"
    checkpoint = callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True)
    checkpoint.set_model(model)
    stamp(model, 1)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    good = model.get_weights()
    poisoned = [w.copy() for w in good]
    poisoned[0][0, 0] = numpy.nan
    model.set_weights(poisoned)
    with pytest.warns(UserWarning, match="NaN"):
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    model.set_weights(good)
    stamp(model, 3)
    checkpoint.on_epoch_end(2, {"loss": 0.7})
    assert marked_epoch(path) == 3


def test_a_nan_loss_during_fit_writes_no_checkpoint(tmp_path):
    class PoisonAfterFirstBatch(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 0:
                weights = self.model.get_weights()
                weights[-2][:] = numpy.nan   # the output Dense kernel: batch 2's loss is NaN
                self.model.set_weights(weights)

    model = tutorial_model()
    x, y = data()
    checkpoint = callbacks.ModelCheckpoint(tmp_path / "best.npz", monitor="loss", save_best_only=True)
    with pytest.raises(dr.NonFiniteLossError, match="epoch 1, batch 2"):
        model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[PoisonAfterFirstBatch(), checkpoint])
    assert os.listdir(tmp_path) == []


def test_a_from_logits_loss_survives_save_and_load(tmp_path):
    model = dr.Sequential([layers.Input((3,), dtype="int64"), layers.Embedding(5, 2), layers.Dense(5)])
    model.compile(loss=dr.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="adam")
    model.save(tmp_path / "logits.npz")
    loaded = dr.load_model(tmp_path / "logits.npz")
    assert loaded.loss.from_logits and loaded.loss.name == "sparse_categorical_crossentropy"
