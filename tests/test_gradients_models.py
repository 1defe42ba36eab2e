"""Whole models, checked end to end: loss -> softmax -> Dense -> ... -> recurrent stack -> input.

``check_model_gradients`` differentiates the compiled loss itself, so these tests also hold the loss's backward
(Keras's clipped cross-entropy) and the chaining in ``Sequential.backward`` to central differences. Every model
with a recurrent layer is checked with ``implementation="reference"`` and ``"fused"`` (the LSTMs on their kernel;
a cell without one stays on the reference), and the test asserts which code each layer ran.
"""
import math

import numpy
import pytest

import deeprnn as dr
from deeprnn import layers
from deeprnn.gradcheck import check_model_gradients
from deeprnn.layers.core import Dense
from lstm_cases import set_implementation

TOLERANCE = 1e-6
KERAS_EPSILON = 1e-7


def assert_gradients_match(errors, model, with_input=True):
    """Every trainable weight (and the float input) was checked and agrees to 1e-6."""
    expected = {v.name for v in model.trainable_variables} | ({"input"} if with_input else set())
    assert set(errors) == expected
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, f"{worst}: relative error {errors[worst]:.2e} > {TOLERANCE:g}; all {errors}"


@pytest.fixture(params=["reference", "fused"])
def implementation(request):
    return request.param


def runs(model, implementation):
    """``model`` with its recurrent layers on ``implementation``, after asserting every LSTM really takes it."""
    set_implementation(model, implementation)
    lstms = [layer for layer in model.layers if isinstance(layer, layers.LSTM)]
    assert lstms and all(layer.implementation == implementation for layer in lstms)
    return model


def randomize_biases(model, seed=0):
    """Random biases (and BatchNorm gamma/beta): no gradient is checked only at Keras's zero/one starting values."""
    rng = numpy.random.default_rng(seed)
    weights = [rng.normal(scale=0.5, size=w.shape) if v.name.endswith(("/bias", "/beta"))
               else rng.uniform(0.5, 1.5, size=w.shape) if v.name.endswith("/gamma") else w
               for v, w in zip(model.variables, model.get_weights())]
    model.set_weights(weights)


def one_hot(labels, classes):
    return numpy.eye(classes)[labels]


def cross_entropy_by_hand(probabilities, targets):
    """Keras 3's categorical_crossentropy on probabilities: renormalise, clip to [eps, 1 - eps], batch mean."""
    q = probabilities / probabilities.sum(axis=-1, keepdims=True)
    return float((-(targets * numpy.log(numpy.clip(q, KERAS_EPSILON, 1 - KERAS_EPSILON))).sum(axis=-1)).mean())


def test_three_deep_stack_mixing_cells_gradients_match_central_differences(device, float64, implementation):
    """GRU -> LSTM -> SimpleRNN -> Dense softmax: BPTT through three recurrent layers, one backward each."""
    B, T, D, V = 3, 5, 2, 4
    model = dr.Sequential([layers.Input((T, D)),
                           layers.GRU(3, return_sequences=True),
                           layers.LSTM(4, return_sequences=True),
                           layers.SimpleRNN(3),
                           layers.Dense(V, activation="softmax")])
    runs(model, implementation)
    model.compile(loss="categorical_crossentropy")
    randomize_biases(model)
    rng = numpy.random.default_rng(1)
    x, y = rng.normal(size=(B, T, D)), one_hot(rng.integers(0, V, B), V)
    assert_gradients_match(check_model_gradients(model, x, y), model)


@pytest.mark.parametrize("softmax_as", ["dense_activation", "activation_layer"])
@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_dense_softmax_cross_entropy_gradients_match_central_differences(device, float64, loss, softmax_as):
    B, D, V = 4, 5, 3
    head = [layers.Dense(V, activation="softmax")] if softmax_as == "dense_activation" else \
        [layers.Dense(V), layers.Activation("softmax")]
    model = dr.Sequential([layers.Input((D,)), *head])
    model.compile(loss=loss)
    randomize_biases(model)
    rng = numpy.random.default_rng(2)
    x, labels = rng.normal(size=(B, D)), rng.integers(0, V, B)
    y = labels if loss.startswith("sparse") else one_hot(labels, V)
    assert_gradients_match(check_model_gradients(model, x, y), model)

    value, _ = model.loss_and_gradients(x, y, training=False)
    assert value == pytest.approx(cross_entropy_by_hand(model.predict(x), one_hot(labels, V)), rel=1e-12)


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_saturated_softmax_hits_keras_clip_and_gradients_still_match(device, float64, loss):
    """Keras clips probabilities to [1e-7, 1 - 1e-7]: a sample whose target probability is ~1e-13 costs exactly
    -log(1e-7) and passes no gradient; the unclipped samples still do, and both agree with central differences."""
    B, D, V = 4, 3, 3
    model = dr.Sequential([layers.Input((D,)), layers.Dense(V), layers.Activation("softmax")])
    model.compile(loss=loss)
    rng = numpy.random.default_rng(3)
    x = rng.normal(size=(B, D))
    x[:2] *= 80.0 / numpy.abs(x[:2] @ model.get_weights()[0]).max(axis=1, keepdims=True)  # logits spread ~ 80
    probabilities = model.predict(x)
    # sample 0 aims at its least likely class (low clip), sample 1 at its most likely (high clip)
    labels = numpy.array([probabilities[0].argmin(), probabilities[1].argmax(), 0, 2])
    targets = one_hot(labels, V)
    assert probabilities[0, labels[0]] < KERAS_EPSILON and probabilities[1, labels[1]] > 1 - KERAS_EPSILON

    y = labels if loss.startswith("sparse") else targets
    value, grads = model.loss_and_gradients(x, y, training=False)
    assert value == pytest.approx(cross_entropy_by_hand(probabilities, targets), rel=1e-12)
    assert value > -math.log(KERAS_EPSILON) / B, "the low-clipped sample alone contributes -log(1e-7) / B"
    assert_gradients_match(check_model_gradients(model, x, y, training=False), model)


def test_tutorials_deep_lstm_model_gradients_match_central_differences(device, float64, implementation):
    """The tutorial's model at small size, in training mode: recurrent dropout, BatchNorm on batch statistics,
    Dropout, ReLU, softmax and categorical cross-entropy, all masks held fixed by the checker's reseeding."""
    B, T, H, V = 4, 5, 4, 5
    model = dr.Sequential([layers.Input((T, 1)),
                           layers.LSTM(H, return_sequences=True, recurrent_dropout=0.3),
                           layers.LSTM(H, recurrent_dropout=0.3),
                           layers.BatchNormalization(),
                           layers.Dropout(0.3),
                           layers.Dense(H),
                           layers.Activation("relu"),
                           layers.BatchNormalization(),
                           layers.Dropout(0.3),
                           layers.Dense(V),
                           layers.Activation("softmax")])
    runs(model, implementation)
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    randomize_biases(model)  # a random Dense bias also keeps ReLU away from its kink when dropout zeroes a row
    rng = numpy.random.default_rng(4)
    x, y = rng.normal(size=(B, T, 1)), one_hot(rng.integers(0, V, B), V)
    assert_gradients_match(check_model_gradients(model, x, y, training=True), model)


@pytest.mark.parametrize("return_sequences", [False, True], ids=["one_label_per_sequence", "label_per_step"])
def test_embedding_lstm_dense_softmax_sparse_loss_gradients_match_central_differences(device, float64,
                                                                                      implementation,
                                                                                      return_sequences):
    """Token ids in, sparse labels out; with return_sequences the Dense and the loss act on every timestep."""
    B, T, V = 3, 4, 6
    model = dr.Sequential([layers.Input((T,), dtype="int64"),
                           layers.Embedding(V, 3),
                           layers.LSTM(4, return_sequences=return_sequences),
                           layers.Dense(V, activation="softmax")])
    runs(model, implementation)
    model.compile(loss="sparse_categorical_crossentropy")
    randomize_biases(model)
    rng = numpy.random.default_rng(5)
    tokens = rng.integers(0, V, (B, T))
    labels = rng.integers(0, V, (B, T) if return_sequences else (B,))
    assert_gradients_match(check_model_gradients(model, tokens, labels), model, with_input=False)


def test_gradient_checker_fails_on_a_backward_that_is_wrong_by_one_percent(device, float64, implementation,
                                                                           monkeypatch):
    """The checker itself can fail: scale Dense's weight gradient by 1.01 and the error jumps far above 1e-6."""
    model = dr.Sequential([layers.Input((3, 2)), layers.LSTM(3), layers.Dense(3, activation="softmax")])
    runs(model, implementation)
    model.compile(loss="categorical_crossentropy")
    rng = numpy.random.default_rng(6)
    x, y = rng.normal(size=(2, 3, 2)), one_hot(rng.integers(0, 3, 2), 3)
    correct = check_model_gradients(model, x, y)
    assert max(correct.values()) <= TOLERANCE

    right_backward = Dense.backward

    def backward_off_by_one_percent(self, dy, cache):
        result = right_backward(self, dy, cache)
        return result._replace(grads=[result.grads[0] * 1.01] + result.grads[1:])

    monkeypatch.setattr(Dense, "backward", backward_off_by_one_percent)
    broken = check_model_gradients(model, x, y)
    dense_kernel = model.layers[-1].W.name
    assert broken[dense_kernel] > 1e-3
    # everything upstream of the broken gradient is still right: the checker points at the culprit
    assert broken[model.layers[0].W.name] <= TOLERANCE


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_logits_head_with_from_logits_loss_gradients_match_central_differences(device, float64, implementation,
                                                                               loss):
    """Embedding -> LSTM (every step) -> Dense logits, with the loss's from_logits=True: softmax and cross-entropy
    fused into one backward, p - onehot, checked against central differences through the whole model."""
    B, T, V = 3, 4, 6
    model = dr.Sequential([layers.Input((T,), dtype="int64"), layers.Embedding(V, 3),
                           layers.LSTM(4, return_sequences=True), layers.Dense(V)])
    runs(model, implementation)
    model.compile(loss=dr.losses.get({"name": loss, "from_logits": True}))
    randomize_biases(model)
    rng = numpy.random.default_rng(7)
    tokens = rng.integers(0, V, (B, T))
    labels = rng.integers(0, V, (B, T))
    targets = labels if loss.startswith("sparse") else one_hot(labels, V)
    assert_gradients_match(check_model_gradients(model, tokens, targets), model, with_input=False)
