"""Each feed-forward layer alone: analytic backward equals central differences to 1e-6 in float64.

``check_layer_gradients`` drives a layer with the scalar loss L = sum(y * R) (R a fixed random array), so the
upstream gradient is R and every weight, the input and (for recurrent layers) the initial state are checked.
"""
import numpy
import pytest

from deeprnn import backend, layers
from deeprnn.gradcheck import check_layer_gradients

TOLERANCE = 1e-6


def assert_gradients_match(errors, expected_count):
    """Every checked gradient (weights, input) agrees; ``expected_count`` guards against checking nothing."""
    assert len(errors) == expected_count, f"checked {sorted(errors)}"
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, f"{worst}: relative error {errors[worst]:.2e} > {TOLERANCE:g}; all {errors}"


def random_input(shape, seed=0):
    return numpy.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("activation", [None, "linear", "relu", "tanh", "sigmoid", "softmax"])
def test_dense_gradients_match_central_differences_for_each_activation(device, float64, activation):
    dense = layers.Dense(4, activation=activation)
    x = random_input((3, 5))
    dense.ensure_built(x.shape)
    # a random bias: the gradient check then also covers db away from the all-zero starting point
    dense.set_weights([dense.get_weights()[0], random_input((4,), seed=1)])
    assert_gradients_match(check_layer_gradients(dense, x), expected_count=3)


def test_dense_on_a_sequence_gradients_match_central_differences(device, float64):
    """Dense applies to the last axis of (B, T, D): dW sums over batch and time."""
    dense = layers.Dense(3, activation="tanh")
    assert_gradients_match(check_layer_gradients(dense, random_input((2, 4, 5))), expected_count=3)


@pytest.mark.parametrize("activation", ["relu", "softmax", "tanh", "sigmoid", "linear"])
def test_activation_layer_input_gradient_matches_central_differences(device, float64, activation):
    errors = check_layer_gradients(layers.Activation(activation), random_input((3, 6)))
    assert_gradients_match(errors, expected_count=1)


def test_dropout_with_a_fixed_mask_gradient_matches_central_differences(device, float64):
    """The checker reseeds before every forward, so every evaluation draws the same mask."""
    dropout = layers.Dropout(0.5)
    x = random_input((4, 6))
    backend.set_seed(0)
    y, mask = dropout.forward(backend.to_device(x), training=True)
    mask = backend.to_numpy(mask)
    assert (mask == 0).any() and (mask == 2).any(), "the mask must drop some units and scale the rest by 1/(1-rate)"
    assert_gradients_match(check_layer_gradients(dropout, x, training=True), expected_count=1)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_batch_normalization_gradients_match_central_differences(device, float64, training):
    """Training: the gradient flows through the batch mean and variance. Inference: through the moving stats only."""
    bn = layers.BatchNormalization()
    x = random_input((5, 4)) * 3 + 1
    bn.ensure_built(x.shape)
    rng = numpy.random.default_rng(2)
    bn.set_weights([rng.normal(size=4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, size=4)])
    errors = check_layer_gradients(bn, x, training=training)
    assert_gradients_match(errors, expected_count=3)  # gamma, beta, input; the moving stats are not trainable


def test_batch_normalization_on_a_sequence_gradients_match_central_differences(device, float64):
    """On (B, T, F) the statistics are over batch and time (every axis but the last)."""
    bn = layers.BatchNormalization()
    x = random_input((3, 4, 2))
    bn.ensure_built(x.shape)
    bn.set_weights([random_input((2,), 1), random_input((2,), 2), numpy.zeros(2), numpy.ones(2)])
    assert_gradients_match(check_layer_gradients(bn, x, training=True), expected_count=3)


def test_embedding_gradient_accumulates_repeated_tokens_and_matches_central_differences(device, float64):
    embedding = layers.Embedding(input_dim=5, output_dim=3)
    tokens = numpy.array([[0, 1, 1, 4], [4, 4, 2, 0]])  # token 4 three times: the scatter-add must sum them
    errors = check_layer_gradients(embedding, tokens)
    assert_gradients_match(errors, expected_count=1)  # integer input has no gradient; only the table is checked
