"""Parity with Keras 3.15.1 (JAX backend, CPU, float32): the same model gives the same numbers.

For every case and three seeds (each seed draws its own shapes), the model is built in both libraries, Keras's
weights are randomized and copied into deeprnn, and then, array by array, relative error
max|deeprnn - keras| / max|keras| <= 1e-5 (the tutorial's architecture: see TUTORIAL_* tolerances) for
- inference outputs (``predict``);
- the training-mode loss and its gradients w.r.t. every trainable weight and w.r.t. the input;
- every weight (BatchNorm's moving statistics included) after 5 ``train_on_batch`` steps with Adam (and with
  AdamW's decoupled weight decay and the optimizers' moving average of the weights, ``use_ema``);
- ``history['loss']`` per epoch and the final weights after ``fit(shuffle=False, batch_size=32, epochs=2)`` on
  about 100 samples (the last batch is partial).
Layer-level features (return_state, initial_state, stateful) compare the layer calls directly. Every case with a
recurrent layer is compared once per implementation (``lstm_cases.implementations``): ``"reference"`` (the step
functions) and, where a kernel exists, ``"fused"``; each sets the layers' ``implementation`` explicitly, so the
code that ran is the one named (``"fused"`` raises rather than fall back).
See docs/keras-parity.md for the tolerances and where Keras's own backends disagree.
"""
import os

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402  (plain import: CI must fail, not skip, when Keras is missing)
import numpy  # noqa: E402
import pytest  # noqa: E402

import deeprnn as dr  # noqa: E402
from deeprnn import layers as dr_layers  # noqa: E402
from deeprnn import losses as dr_losses  # noqa: E402

from keras_reference import (KERAS_LOSSES, TOLERANCE, TUTORIAL_GRADIENT_TOLERANCE,  # noqa: E402
                             TUTORIAL_TRAINED_TOLERANCE, ModelSpec, assert_all_close, assert_close, build_deeprnn,
                             build_pair, deeprnn_optimizer, keras_layer_gradients, keras_loss_and_gradients,
                             make_batch, weight_names)
from lstm_cases import implementations, set_implementation  # noqa: E402

# Keras 3.15.1 with NumPy 2 warns on every variable read ("__array__ ... copy keyword"): noise, not a finding
pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

SEEDS = [0, 1, 2]
TRAIN_STEPS = 5


def sizes(seed, salt):
    """Small random sizes for one (case, seed): B, T, D, H, V."""
    rng = numpy.random.default_rng([seed, salt])
    return (int(rng.integers(3, 9)), int(rng.integers(2, 7)), int(rng.integers(1, 5)), int(rng.integers(2, 9)),
            int(rng.integers(2, 7)))


# -- the cases: each returns a ModelSpec for a seed --------------------------------------------------------------------
def simple_rnn(seed):
    # return_sequences with integer labels per timestep: Dense and sparse cross-entropy act on (B, T, V)
    B, T, D, H, V = sizes(seed, 1)
    return ModelSpec((T, D), [("SimpleRNN", {"units": H, "return_sequences": True}),
                              ("Dense", {"units": V, "activation": "softmax"})],
                     loss="sparse_categorical_crossentropy")


def gru_reset_after(seed):
    B, T, D, H, V = sizes(seed, 2)
    return ModelSpec((T, D), [("GRU", {"units": H, "reset_after": True}), ("Dense", {"units": V}),
                              ("Activation", {"activation": "softmax"})])


def gru_reset_before(seed):
    # return_sequences with one-hot targets per timestep: categorical cross-entropy on (B, T, V)
    B, T, D, H, V = sizes(seed, 3)
    return ModelSpec((T, D), [("GRU", {"units": H, "reset_after": False, "return_sequences": True}),
                              ("Dense", {"units": V, "activation": "softmax"})])


def lstm_unit_forget_bias(seed):
    B, T, D, H, V = sizes(seed, 4)
    return ModelSpec((T, D), [("LSTM", {"units": H, "unit_forget_bias": True}), ("Dense", {"units": V}),
                              ("Activation", {"activation": "softmax"})])


def go_backwards(seed):
    B, T, D, H, V = sizes(seed, 5)
    return ModelSpec((T, D), [("SimpleRNN", {"units": H, "go_backwards": True, "return_sequences": True}),
                              ("GRU", {"units": H, "go_backwards": True, "return_sequences": True}),
                              ("LSTM", {"units": H, "go_backwards": True}),
                              ("Dense", {"units": V, "activation": "softmax"})])


def three_deep_stack(seed):
    B, T, D, H, V = sizes(seed, 6)
    return ModelSpec((T, D), [("LSTM", {"units": H, "return_sequences": True}),
                              ("GRU", {"units": H + 1, "return_sequences": True}),
                              ("LSTM", {"units": H}),
                              ("Dense", {"units": V, "activation": "softmax"})])


def dense_and_activation(seed):
    B, T, D, H, V = sizes(seed, 7)
    return ModelSpec((D,), [("Dense", {"units": H, "activation": "relu"}),
                            ("Dense", {"units": H, "activation": "tanh"}),
                            ("Dense", {"units": H}), ("Activation", {"activation": "sigmoid"}),
                            ("Dense", {"units": H, "activation": "linear"}), ("Activation", {"activation": "relu"}),
                            ("Dense", {"units": V}), ("Activation", {"activation": "softmax"})])


def batch_normalization(seed):
    B, T, D, H, V = sizes(seed, 8)
    # no bias right before BatchNorm: its gradient is exactly zero in exact arithmetic, so both libraries would
    # only be comparing float32 noise (Keras users drop that bias for the same reason)
    return ModelSpec((D,), [("Dense", {"units": H, "use_bias": False}), ("BatchNormalization", {}),
                            ("Activation", {"activation": "relu"}),
                            ("Dense", {"units": H, "activation": "tanh"}),
                            ("BatchNormalization", {"momentum": 0.9, "epsilon": 1e-2}),
                            ("Dense", {"units": V, "activation": "softmax"})])


def embedding(seed):
    B, T, D, H, V = sizes(seed, 9)
    return ModelSpec((T,), [("Embedding", {"input_dim": V + 3, "output_dim": D + 1}), ("LSTM", {"units": H}),
                            ("Dense", {"units": V, "activation": "softmax"})],
                     loss="sparse_categorical_crossentropy", input_dtype="int32")


def tutorial_layers(units, head_units, classes, dropout):
    """The tutorial's model: 2 stacked LSTMs, BatchNorm, Dropout, a ReLU Dense head and a softmax output."""
    return [("LSTM", {"units": units, "return_sequences": True, "recurrent_dropout": dropout}),
            ("LSTM", {"units": units, "recurrent_dropout": dropout}),
            ("BatchNormalization", {}), ("Dropout", {"rate": dropout}),
            ("Dense", {"units": head_units}), ("Activation", {"activation": "relu"}),
            ("BatchNormalization", {}), ("Dropout", {"rate": dropout}),
            ("Dense", {"units": classes}), ("Activation", {"activation": "softmax"})]


def tutorial_spec(input_shape, layers, batch_size=0):
    return ModelSpec(input_shape, layers, gradient_tolerance=TUTORIAL_GRADIENT_TOLERANCE,
                     trained_tolerance=TUTORIAL_TRAINED_TOLERANCE, batch_size=batch_size)


def tutorial_small(seed):
    B, T, D, H, V = sizes(seed, 11)
    return tutorial_spec((T, 1), tutorial_layers(H, H + 2, V, dropout=0.0))


def tutorial_full_size(seed, dropout=0.3):
    """The exact model: Input((100, 1)) -> LSTM(256, return_sequences=True, recurrent_dropout=0.3)
    -> LSTM(256, recurrent_dropout=0.3) -> BatchNormalization -> Dropout(0.3) -> Dense(128) -> Activation('relu')
    -> BatchNormalization -> Dropout(0.3) -> Dense(V) -> Activation('softmax'). Few samples keep it quick."""
    classes = int(numpy.random.default_rng([seed, 12]).integers(20, 60))
    return tutorial_spec((100, 1), tutorial_layers(256, 128, classes, dropout), batch_size=8)


def tutorial_full_size_without_dropout(seed):
    return tutorial_full_size(seed, dropout=0.0)


def adam_clipnorm(seed):
    # Adam is nearly blind to a gradient's scale, so clipping only shows when the clipped gradients are as small
    # as its epsilon (1e-7): then the step depends on the clipped values (without clipping: errors ~1e-1)
    spec = lstm_unit_forget_bias(seed)
    spec.optimizer = {"learning_rate": 0.01, "clipnorm": 1e-5}
    return spec


def adam_global_clipnorm(seed):
    spec = three_deep_stack(seed)
    spec.optimizer = {"learning_rate": 0.01, "global_clipnorm": 1e-5}
    return spec


def adamw(seed):
    # a decay large enough to move the weights beyond the tolerance in 5 steps (w shrinks by lr * wd = 1e-3 a step)
    spec = gru_reset_after(seed)
    spec.optimizer_class = "AdamW"
    spec.optimizer = {"learning_rate": 0.01, "weight_decay": 0.1}
    return spec


def adam_ema(seed):
    # the average starts at the weights (momentum 0 at the first update); every 3rd update overwrites the weights
    spec = lstm_unit_forget_bias(seed)
    spec.optimizer = {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 3}
    return spec


def adamw_ema(seed):
    # Keras's default learning rate: at 0.01 this 3-deep stack drifts from Keras by 1e-5 in float32 with plain Adam
    # already; a decay of 0.5 still shrinks each weight by 5e-4 a step
    spec = three_deep_stack(seed)
    spec.optimizer_class = "AdamW"
    spec.optimizer = {"weight_decay": 0.5, "use_ema": True, "ema_momentum": 0.8}
    return spec


MODEL_CASES = [pytest.param(simple_rnn, id="SimpleRNN"),
               pytest.param(gru_reset_after, id="GRU(reset_after=True)"),
               pytest.param(gru_reset_before, id="GRU(reset_after=False)"),
               pytest.param(lstm_unit_forget_bias, id="LSTM(unit_forget_bias=True)"),
               pytest.param(go_backwards, id="go_backwards"),
               pytest.param(three_deep_stack, id="3-deep-stack"),
               pytest.param(dense_and_activation, id="Dense+Activation"),
               pytest.param(batch_normalization, id="BatchNormalization"),
               pytest.param(embedding, id="Embedding"),
               pytest.param(tutorial_small, id="tutorial-model-small")]
TRAINING_CASES = MODEL_CASES + [pytest.param(adam_clipnorm, id="Adam(clipnorm)")]
ADAM_CASES = [pytest.param(adam_global_clipnorm, id="Adam(global_clipnorm)"),  # train_on_batch only
              pytest.param(adamw, id="AdamW(weight_decay)"),
              pytest.param(adam_ema, id="Adam(use_ema, ema_overwrite_frequency)"),
              pytest.param(adamw_ema, id="AdamW(use_ema)")]
FULL_SIZE_INFERENCE = [pytest.param(tutorial_full_size, id="tutorial-model-full-size")]
FULL_SIZE_TRAINING = [pytest.param(tutorial_full_size_without_dropout, id="tutorial-model-full-size(dropout=0)")]


def batch_for(spec, keras_model, seed, batch_size=None):
    batch_size = batch_size or spec.batch_size or sizes(seed, 0)[0] + 2
    return make_batch(spec, numpy.random.default_rng([seed, 99]), batch_size, keras_model.output_shape)


# -- model-level parity ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", MODEL_CASES + FULL_SIZE_INFERENCE)
def test_predict_matches_keras(case, seed):
    spec = case(seed)
    keras_model, model = build_pair(spec, seed)
    x, _ = batch_for(spec, keras_model, seed)
    expected = keras_model.predict(x, verbose=0)
    for implementation in implementations(model):
        assert_close(set_implementation(model, implementation).predict(x), expected, f"predict ({implementation})")


def deeprnn_twins(spec, keras_model):
    """One compiled deeprnn model per implementation, each holding a copy of the Keras model's current weights."""
    twins = {}
    for implementation in implementations(build_deeprnn(spec)):
        model = set_implementation(build_deeprnn(spec), implementation)
        model.set_weights(keras_model.get_weights())
        model.compile(optimizer=deeprnn_optimizer(spec), loss=spec.loss)
        twins[implementation] = model
    return twins


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", MODEL_CASES + FULL_SIZE_TRAINING)
def test_training_loss_and_gradients_match_keras(case, seed):
    spec = case(seed)
    keras_model, model = build_pair(spec, seed, compile_models=True)
    x, y = batch_for(spec, keras_model, seed)
    with_input = spec.input_dtype == "float32"
    keras_loss, keras_grads, keras_dx = keras_loss_and_gradients(keras_model, spec.loss, x, y, with_input)
    trainable = [v.path for v in keras_model.trainable_variables]
    for implementation in implementations(model):
        set_implementation(model, implementation)
        loss, grads, dx = model.loss_and_gradients(x, y, training=True, return_input_gradient=True)
        assert_close(loss, keras_loss, f"loss ({implementation})")
        assert_all_close([g for g in grads if g is not None], keras_grads, trainable,
                         f"({implementation}) gradient of", spec.gradient_tolerance)
        if with_input:
            assert_close(dx, keras_dx, f"gradient of the input ({implementation})", spec.gradient_tolerance)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", TRAINING_CASES + ADAM_CASES + FULL_SIZE_TRAINING)
def test_train_on_batch_with_adam_matches_keras(case, seed):
    spec = case(seed)
    keras_model, _ = build_pair(spec, seed, compile_models=True)
    twins = deeprnn_twins(spec, keras_model)
    x, y = batch_for(spec, keras_model, seed)
    for step in range(TRAIN_STEPS):
        keras_loss = keras_model.train_on_batch(x, y)
        for implementation, model in twins.items():
            # the loss train_on_batch returns is computed before its update, so from step 2 on it sees trained
            # weights
            assert_close(model.train_on_batch(x, y), keras_loss, f"train_on_batch loss, step {step + 1} "
                         f"({implementation})", TOLERANCE if step == 0 else spec.trained_tolerance)
    for implementation, model in twins.items():
        assert_all_close(model.get_weights(), keras_model.get_weights(), weight_names(keras_model),
                         f"after {TRAIN_STEPS} Adam steps ({implementation}):", spec.trained_tolerance)
    if spec.optimizer.get("use_ema"):
        # the averages themselves: Keras's finalize_variable_values writes them into the model, as ours does
        keras_model.optimizer.finalize_variable_values(keras_model.trainable_variables)
        for implementation, model in twins.items():
            model.optimizer.finalize_variable_values(model.trainable_variables)
            assert_all_close(model.get_weights(), keras_model.get_weights(), weight_names(keras_model),
                             f"averaged weights after {TRAIN_STEPS} steps ({implementation}):",
                             spec.trained_tolerance)


@pytest.mark.parametrize("swap_on_epoch", [False, True], ids=["swap for validation", "swap_on_epoch"])
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_fit_with_ema_validates_on_the_averages_and_ends_with_them_like_keras(seed, swap_on_epoch):
    """AdamW(use_ema) with SwapEMAWeights: history's loss and val_loss (computed with the averaged weights) per
    epoch, and the weights after fit (Keras's finalize_variable_values: the averages), as keras.callbacks does."""
    spec = adamw_ema(seed)
    keras_model, model = build_pair(spec, seed, compile_models=True)
    x, y = batch_for(spec, keras_model, seed, 70)
    validation = (x[:20], y[:20])
    keras_history = keras_model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
                                    validation_data=validation,
                                    callbacks=[keras.callbacks.SwapEMAWeights(swap_on_epoch=swap_on_epoch)])
    history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, validation_data=validation,
                        callbacks=[dr.callbacks.SwapEMAWeights(swap_on_epoch=swap_on_epoch)])
    for key in ("loss", "val_loss"):
        assert_all_close(history.history[key], keras_history.history[key], ["epoch 1", "epoch 2", "epoch 3"],
                         f"history[{key!r}]", spec.trained_tolerance)
    assert_all_close(model.get_weights(), keras_model.get_weights(), weight_names(keras_model),
                     "after fit (the averaged weights):", spec.trained_tolerance)


class StopFlag:
    """What an EarlyStopping callback touches of its model: ``stop_training``."""

    stop_training = False


def epoch_that_stops(callback, losses):
    """Feed ``losses`` to ``callback`` one epoch at a time; the 0-based epoch after which it stops training."""
    callback.set_model(StopFlag())
    for epoch, loss in enumerate(losses):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        if callback.model.stop_training:
            return epoch
    return None


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
@pytest.mark.parametrize("losses", [[1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.85, 0.9, 0.91, 0.92],
                                    [1.0, 1.0, 1.0, 1.0, 1.0], [3.0, 2.0, 1.0, 0.5, 0.25],
                                    [1.0, 1.1, 0.9, 1.0, 0.89, 1.2, 1.3, 1.4]], ids=["dip", "flat", "falling", "noisy"])
def test_early_stopping_stops_after_the_epoch_keras_does(losses, patience):
    """--patience is Keras's EarlyStopping: the same epoch for every patience, ties counting as no improvement."""
    expected = epoch_that_stops(keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience), losses)
    assert epoch_that_stops(dr.callbacks.EarlyStopping(monitor="val_loss", patience=patience), losses) == expected


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", TRAINING_CASES + FULL_SIZE_TRAINING)
def test_fit_history_and_weights_match_keras(case, seed):
    spec = case(seed)
    keras_model, _ = build_pair(spec, seed, compile_models=True)
    twins = deeprnn_twins(spec, keras_model)
    # never a multiple of 32, so the last batch is partial (the full-size model: one batch of 32, one of 8)
    samples = 40 if spec.batch_size else 100 + 3 * seed
    x, y = batch_for(spec, keras_model, seed, samples)
    keras_history = keras_model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    for implementation, model in twins.items():
        history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        assert len(history.history["loss"]) == 2
        assert_all_close(history.history["loss"], keras_history.history["loss"], ["epoch 1", "epoch 2"],
                         f"history['loss'] ({implementation})", spec.trained_tolerance)
        assert_all_close(model.get_weights(), keras_model.get_weights(), weight_names(keras_model),
                         f"after fit ({implementation}):", spec.trained_tolerance)


# -- Dropout at inference ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_is_identity_at_inference_like_keras(seed):
    """Dropout layers and the recurrent layers' dropout/recurrent_dropout do nothing in predict."""
    B, T, D, H, V = sizes(seed, 13)
    spec = ModelSpec((T, D), [("Dropout", {"rate": 0.5}),
                              ("LSTM", {"units": H, "return_sequences": True, "dropout": 0.3,
                                        "recurrent_dropout": 0.3}),
                              ("GRU", {"units": H, "return_sequences": True, "dropout": 0.2, "recurrent_dropout": 0.4}),
                              ("SimpleRNN", {"units": H, "dropout": 0.5, "recurrent_dropout": 0.5}),
                              ("Dropout", {"rate": 0.3}), ("Dense", {"units": V, "activation": "softmax"})])
    keras_model, model = build_pair(spec, seed)
    x, _ = batch_for(spec, keras_model, seed, B)
    expected = keras_model.predict(x, verbose=0)
    for implementation in implementations(model):
        assert_close(set_implementation(model, implementation).predict(x), expected, f"predict ({implementation})")


# -- layer-level features: return_state, initial_state, stateful -------------------------------------------------------
# each recurrent layer with each implementation it has: the reference everywhere, the fused kernel for the LSTM
RECURRENT_LAYERS = [pytest.param(("SimpleRNN", {"implementation": "reference"}), id="SimpleRNN"),
                    pytest.param(("GRU", {"implementation": "reference"}), id="GRU"),
                    pytest.param(("GRU", {"reset_after": False, "implementation": "reference"}),
                                 id="GRU(reset_after=False)"),
                    pytest.param(("LSTM", {"implementation": "reference"}), id="LSTM(reference)"),
                    pytest.param(("LSTM", {"implementation": "fused"}), id="LSTM(fused)")]


def build_layer_pair(layer, units, input_shape, seed, **kwargs):
    """A Keras recurrent layer with randomized weights and a deeprnn layer holding a copy of them."""
    name, layer_kwargs = layer
    keras.utils.set_random_seed(seed)
    keras_kwargs = {k: v for k, v in layer_kwargs.items() if k != "implementation"}
    keras_layer = getattr(keras.layers, name)(units, **keras_kwargs, **kwargs)
    keras_layer.build(input_shape)
    rng = numpy.random.default_rng(seed + 1000)
    keras_layer.set_weights([w + rng.normal(0, 0.1, w.shape).astype(numpy.float32)
                             for w in keras_layer.get_weights()])
    deeprnn_layer = getattr(dr_layers, name)(units, **layer_kwargs, **kwargs)
    deeprnn_layer.ensure_built(input_shape)
    deeprnn_layer.set_weights(keras_layer.get_weights())
    return keras_layer, deeprnn_layer


def random_sequences(seed, count=1):
    B, T, D, H, _ = sizes(seed, 14)
    rng = numpy.random.default_rng([seed, 15])
    xs = [rng.normal(size=(B, T, D)).astype(numpy.float32) for _ in range(count)]
    return xs, H, rng


def assert_layer_gradients_match_keras(keras_layer, deeprnn_layer, x, initial_state):
    """Gradients of a random projection of every output: weights, input and initial state."""
    outputs, cache = deeprnn_layer.forward(x, training=True, initial_state=initial_state)
    assert cache.implementation == deeprnn_layer.implementation
    outputs = outputs if isinstance(outputs, list) else [outputs]
    rng = numpy.random.default_rng(7)
    projections = [rng.normal(size=out.shape).astype(numpy.float32) for out in outputs]
    dout = projections if deeprnn_layer.return_state else projections[0]
    dx, grads, d_initial = deeprnn_layer.backward(dout, cache)   # a Backward
    zero_state = [numpy.zeros((x.shape[0], deeprnn_layer.units), numpy.float32)] * deeprnn_layer.state_size
    keras_grads, keras_dx, keras_d_initial = keras_layer_gradients(
        keras_layer, x, zero_state if initial_state is None else initial_state, projections)
    names = [v.path for v in keras_layer.trainable_variables]
    assert_all_close(grads, keras_grads, names, "gradient of")
    assert_close(dx, keras_dx, "gradient of the input")
    assert_all_close(d_initial, keras_d_initial, ["h0", "c0"][:len(d_initial)], "gradient of initial state")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "go_backwards"])
@pytest.mark.parametrize("layer", RECURRENT_LAYERS)
def test_return_state_matches_keras(layer, go_backwards, seed):
    """return_state=True returns [output, h_T] (LSTM: [output, h_T, c_T]), with and without return_sequences."""
    (x,), units, _ = random_sequences(seed)
    return_sequences = seed % 2 == 0
    keras_layer, deeprnn_layer = build_layer_pair(layer, units, x.shape, seed, return_state=True,
                                                  go_backwards=go_backwards, return_sequences=return_sequences)
    outputs, keras_outputs = deeprnn_layer(x), keras_layer(x)
    names = ["output", "h_T", "c_T"][:len(keras_outputs)]
    assert_all_close(outputs, keras_outputs, names, "return_state")
    assert_layer_gradients_match_keras(keras_layer, deeprnn_layer, x, None)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("layer", RECURRENT_LAYERS)
def test_initial_state_matches_keras(layer, seed):
    """layer(x, initial_state=[h0] or [h0, c0]) starts the recurrence there; gradients reach the initial state."""
    (x,), units, rng = random_sequences(seed)
    keras_layer, deeprnn_layer = build_layer_pair(layer, units, x.shape, seed, return_sequences=True)
    initial_state = [rng.normal(size=(x.shape[0], units)).astype(numpy.float32)
                     for _ in range(deeprnn_layer.state_size)]
    assert_close(deeprnn_layer(x, initial_state=initial_state), keras_layer(x, initial_state=initial_state),
                 "output from initial_state")
    assert_layer_gradients_match_keras(keras_layer, deeprnn_layer, x, initial_state)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("layer", RECURRENT_LAYERS)
def test_stateful_carries_state_across_calls_until_reset_state_like_keras(layer, seed):
    """stateful=True: each call starts from the previous call's final state; reset_state() goes back to zeros."""
    (x1, x2), units, _ = random_sequences(seed, count=2)
    keras_layer, deeprnn_layer = build_layer_pair(layer, units, x1.shape, seed, stateful=True,
                                                  return_sequences=True)
    assert_close(deeprnn_layer(x1), keras_layer(x1), "first call")
    assert_close(deeprnn_layer(x2), keras_layer(x2), "second call (carried state)")
    assert_all_close(deeprnn_layer.states, [s.numpy() for s in keras_layer.states], ["h", "c"], "carried state")
    deeprnn_layer.reset_state()
    keras_layer.reset_state()
    after_reset = deeprnn_layer(x2)
    assert_close(after_reset, keras_layer(x2), "call after reset_state")
    fresh = getattr(dr_layers, layer[0])(units, **layer[1], return_sequences=True)
    fresh.ensure_built(x2.shape)
    fresh.set_weights(deeprnn_layer.get_weights())
    assert_close(after_reset, fresh(x2), "after reset_state vs a fresh layer", tolerance=0.0)


@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_lstm_unit_forget_bias_initial_bias_matches_keras(unit_forget_bias):
    """Not copied but built: the forget block of the bias starts at 1 ([0, 1, 0, 0] blocks), else all zeros."""
    keras_layer = keras.layers.LSTM(5, unit_forget_bias=unit_forget_bias)
    keras_layer.build((None, 3, 2))
    deeprnn_layer = dr_layers.LSTM(5, unit_forget_bias=unit_forget_bias)
    deeprnn_layer.ensure_built((None, 3, 2))
    assert_close(deeprnn_layer.get_weights()[2], keras_layer.get_weights()[2], "initial bias", tolerance=0.0)


# -- the losses on their own: Keras's clipping and renormalisation -----------------------------------------------------
def awkward_probabilities(rng, shape):
    """Softmax rows, some saturated (an entry rounds to 1, others to 0), some exact zeros, some not summing to 1."""
    logits = rng.normal(size=shape) * rng.choice([1.0, 40.0], size=shape[:-1] + (1,))
    p = numpy.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    p *= rng.choice([1.0, 0.5, 2.5], size=shape[:-1] + (1,))  # Keras renormalises by sum_k p_k
    p[(rng.random(shape) < 0.15) & (p < p.max(axis=-1, keepdims=True))] = 0.0  # never a row of zeros
    return p.astype(numpy.float32)


def keras_loss_value_and_gradient(loss_name, targets, probabilities):
    loss = KERAS_LOSSES[loss_name]()
    value, grad = jax.value_and_grad(lambda p: loss(targets, p))(probabilities)
    return float(value), keras.ops.convert_to_numpy(grad)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 6)], ids=["(B,V)", "(B,T,V)"])
def test_categorical_crossentropy_matches_keras(shape, seed):
    """Mean over the batch (and time) of -sum t log(clip(p / sum p, 1e-7, 1 - 1e-7)), and its gradient."""
    rng = numpy.random.default_rng([seed, 16])
    p = awkward_probabilities(rng, shape)
    t = numpy.eye(shape[-1], dtype=numpy.float32)[rng.integers(0, shape[-1], shape[:-1])]
    t[..., :1] = t[..., :1] * 0.5 + 0.25  # a few soft targets too
    loss = dr_losses.CategoricalCrossentropy()
    value, cache = loss.forward(t, p)
    keras_value, keras_grad = keras_loss_value_and_gradient("categorical_crossentropy", t, p)
    assert_close(value, keras_value, "loss")
    assert_close(loss.backward(cache), keras_grad, "gradient w.r.t. the probabilities")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label_shape", ["(B,)", "(B,1)", "(B,T)"])
def test_sparse_categorical_crossentropy_matches_keras(label_shape, seed):
    """Integer labels: the same clipped loss as the one-hot categorical one, labels (B,), (B, 1) or (B, T)."""
    rng = numpy.random.default_rng([seed, 17])
    shape = (4, 3, 5) if label_shape == "(B,T)" else (6, 5)
    p = awkward_probabilities(rng, shape)
    labels = rng.integers(0, shape[-1], shape[:-1]).astype(numpy.int32)
    if label_shape == "(B,1)":
        labels = labels[:, None]
    loss = dr_losses.SparseCategoricalCrossentropy()
    value, cache = loss.forward(labels, p)
    keras_value, keras_grad = keras_loss_value_and_gradient("sparse_categorical_crossentropy", labels, p)
    assert_close(value, keras_value, "loss")
    assert_close(loss.backward(cache), keras_grad, "gradient w.r.t. the probabilities")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("loss_name, label_shape", [("categorical_crossentropy", "(B,T,V)"),
                                                    ("sparse_categorical_crossentropy", "(B,)"),
                                                    ("sparse_categorical_crossentropy", "(B,T)")])
def test_losses_from_logits_match_keras(loss_name, label_shape, seed):
    """from_logits=True: log-softmax and cross-entropy as one (no clipping), value and gradient w.r.t. the logits,
    with logits large enough to saturate a softmax."""
    rng = numpy.random.default_rng([seed, 18])
    shape = (5, 4, 7) if label_shape == "(B,T,V)" or label_shape == "(B,T)" else (6, 7)
    z = (rng.normal(size=shape) * rng.choice([1.0, 30.0], size=shape[:-1] + (1,))).astype(numpy.float32)
    labels = rng.integers(0, shape[-1], shape[:-1]).astype(numpy.int32)
    targets = labels if loss_name.startswith("sparse") else numpy.eye(shape[-1], dtype=numpy.float32)[labels]
    loss = dr_losses.get({"name": loss_name, "from_logits": True})
    value, cache = loss.forward(targets, z)
    keras_loss = KERAS_LOSSES[loss_name](from_logits=True)
    keras_value, keras_grad = jax.value_and_grad(lambda logits: keras_loss(targets, logits))(z)
    assert_close(value, float(keras_value), "loss from logits")
    assert_close(loss.backward(cache), keras.ops.convert_to_numpy(keras_grad), "gradient w.r.t. the logits")
