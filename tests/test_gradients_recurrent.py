"""Backpropagation through time, checked: every recurrent layer's analytic gradients equal central differences.

Each test builds a small layer (B=3, T=4, D=3, H=4) in float64, gives it a random bias (so the bias gradient is
checked away from zero and Keras's forget-bias 1 does not hide a wrong gate), and checks the gradient of every
weight, of the input, and of the initial state when one is passed. Every case runs with
``implementation="reference"`` (the step functions docs/ derives) and, for a cell with a fused kernel, with
``implementation="fused"`` too; ``build`` asserts which code the layer runs.
"""
import numpy
import pytest

from deeprnn import backend, layers
from deeprnn.gradcheck import check_layer_gradients

TOLERANCE = 1e-6
B, T, D, H = 3, 4, 3, 4

CELLS = {
    "simple_rnn": lambda **kw: layers.SimpleRNN(H, **kw),
    "gru_reset_after": lambda **kw: layers.GRU(H, reset_after=True, **kw),
    "gru_reset_before": lambda **kw: layers.GRU(H, reset_after=False, **kw),
    "lstm": lambda **kw: layers.LSTM(H, **kw),
}
# "family:implementation": the reference for every cell, the fused path for every cell that has a kernel
CASES = [f"{name}:{implementation}" for name in sorted(CELLS) for implementation in ("reference", "fused")
         if implementation == "reference" or CELLS[name]().fused_kernels]
cells = pytest.mark.parametrize("cell", CASES)


def build(cell, seed=0, **kwargs):
    """A built layer of ``family:implementation`` with a random bias (any shape: GRU reset_after has (2, 3H))."""
    family, implementation = cell.split(":")
    layer = CELLS[family](implementation=implementation, **kwargs)
    layer.ensure_built((B, T, D))
    x = backend.to_device(sequence().astype(backend.floatx()))
    if implementation == "fused" and not any(k.unsupported(x, [v.value for v in layer.variables]) is None
                                             for k in layer.fused_kernels):
        pytest.skip(f"{family} has no fused kernel for {type(x).__module__} arrays")
    kernel = layer.select_kernel(x)
    assert (kernel is None) == (implementation == "reference"), f"{cell} runs {kernel}"
    kernel, recurrent_kernel, bias = layer.get_weights()
    rng = numpy.random.default_rng(seed + 100)
    layer.set_weights([kernel, recurrent_kernel, rng.normal(scale=0.5, size=bias.shape)])
    return layer


def sequence(seed=0, shape=(B, T, D)):
    return numpy.random.default_rng(seed).normal(size=shape)


def states_for(layer, seed=1):
    rng = numpy.random.default_rng(seed)
    return [rng.normal(scale=0.5, size=(B, H)) for _ in range(layer.state_size)]


def assert_gradients_match(errors, layer, extra=1):
    """W, U, b and ``extra`` more entries (the input; the initial states) were checked, all within 1e-6."""
    assert len(errors) == len(layer.trainable_variables) + extra, f"checked {sorted(errors)}"
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, f"{worst}: relative error {errors[worst]:.2e} > {TOLERANCE:g}; all {errors}"


@cells
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_recurrent_gradients_match_central_differences(device, float64, cell, return_sequences):
    layer = build(cell, return_sequences=return_sequences)
    assert_gradients_match(check_layer_gradients(layer, sequence()), layer)


@cells
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_recurrent_go_backwards_gradients_match_central_differences(device, float64, cell, return_sequences):
    """go_backwards reverses time on the way in; dx must come back in the caller's time order."""
    layer = build(cell, go_backwards=True, return_sequences=return_sequences)
    assert_gradients_match(check_layer_gradients(layer, sequence()), layer)


@cells
def test_recurrent_gradient_with_respect_to_the_initial_state_matches_central_differences(device, float64, cell):
    layer = build(cell, return_sequences=True)
    initial_state = states_for(layer)
    errors = check_layer_gradients(layer, sequence(), initial_state=initial_state)
    assert_gradients_match(errors, layer, extra=1 + layer.state_size)


@cells
@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_recurrent_return_state_takes_upstream_gradients_into_the_final_states(device, float64, cell,
                                                                               return_sequences):
    """With return_state the loss also depends on h_T (and c_T): those upstream gradients enter the last step."""
    layer = build(cell, return_state=True, return_sequences=return_sequences)
    errors = check_layer_gradients(layer, sequence(), initial_state=states_for(layer))
    assert_gradients_match(errors, layer, extra=1 + layer.state_size)


@cells
@pytest.mark.parametrize("dropout,recurrent_dropout", [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)],
                         ids=["input_dropout", "recurrent_dropout", "both"])
def test_recurrent_dropout_with_fixed_masks_gradients_match_central_differences(device, float64, cell, dropout,
                                                                                recurrent_dropout):
    """Keras's masks (one per call, shared over time; per gate with recurrent_dropout) held fixed by reseeding."""
    layer = build(cell, return_sequences=True, dropout=dropout, recurrent_dropout=recurrent_dropout)
    errors = check_layer_gradients(layer, sequence(), training=True, initial_state=states_for(layer))
    assert_gradients_match(errors, layer, extra=1 + layer.state_size)


@cells
def test_recurrent_dropout_changes_the_output_only_in_training(device, float64, cell):
    """Guards the test above: the masks it holds fixed are really applied (and only when training)."""
    layer = build(cell, return_sequences=True, dropout=0.3, recurrent_dropout=0.4)
    x = backend.to_device(sequence())
    plain = build(cell, return_sequences=True)
    plain.set_weights(layer.get_weights())
    backend.set_seed(0)
    assert numpy.allclose(backend.to_numpy(layer(x, training=False)), backend.to_numpy(plain(x)))
    assert not numpy.allclose(backend.to_numpy(layer(x, training=True)), backend.to_numpy(plain(x)))


@cells
def test_stateful_layer_carries_its_final_state_into_the_next_call(device, cell):
    stateful = build(cell, return_sequences=True, stateful=True)
    plain = build(cell, return_sequences=True, return_state=True)
    plain.set_weights(stateful.get_weights())
    first, second = backend.to_device(sequence(1)), backend.to_device(sequence(2))

    _, *final_states = plain(first)
    stateful(first)
    continued = stateful(second)
    expected = plain(second, initial_state=final_states)[0]
    numpy.testing.assert_allclose(backend.to_numpy(continued), backend.to_numpy(expected), rtol=1e-5, atol=1e-6)


@cells
def test_stateful_reset_state_returns_to_zero_states(device, cell):
    stateful = build(cell, return_sequences=True, stateful=True)
    first, second = backend.to_device(sequence(1)), backend.to_device(sequence(2))
    fresh = backend.to_numpy(stateful(second))
    stateful(first)
    assert not numpy.allclose(backend.to_numpy(stateful(second)), fresh), "the carried state must matter"
    stateful.reset_state()
    numpy.testing.assert_array_equal(backend.to_numpy(stateful(second)), fresh)


@cells
def test_stateful_second_call_gradients_match_central_differences(device, float64, cell):
    """After one call the layer starts from the carried state; the check's repeated forwards must not advance it."""
    layer = build(cell, return_sequences=True, stateful=True)
    layer(backend.to_device(sequence(1)))
    carried = [backend.to_numpy(s).copy() for s in layer.states]
    errors = check_layer_gradients(layer, sequence(2))
    assert_gradients_match(errors, layer)
    for before, after in zip(carried, layer.states):
        numpy.testing.assert_array_equal(backend.to_numpy(after), before)
