"""The fast paths compute what the readable reference computes.

- ``implementation="fused"`` (``deeprnn/kernels/cpu_lstm.py``, the fused NumPy LSTM) against
  ``implementation="reference"`` (``LSTM.step_forward/step_backward`` and the BPTT loops of ``layers/recurrent.py``):
  outputs, final states and every gradient (weights, input, initial state), on random inputs over each option, with
  the same dropout masks (the generator is reseeded before each path); and on its own, against central differences
  in float64. Every comparison asserts which code ran (``SequenceCache.implementation`` and ``.kernel``).
- The same for the GRU (``cpu_gru``, both ``reset_after`` variants) and SimpleRNN (``cpu_simple_rnn``), over
  sequences longer than the kernels' backward chunks, with random biases (b_rec of reset_after included).
- The in-place Adam update against the plain formula of the docstring; ``activations.sigmoid`` (SciPy's expit on
  NumPy arrays) against the stable formula it replaced.
"""
import functools
import os
import subprocess
import sys

import numpy
import pytest

import deeprnn as dr
from deeprnn import backend, layers, optimizers
from deeprnn.gradcheck import check_layer_gradients, check_model_gradients, relative_error
from deeprnn.kernels import cpu_gru, cpu_lstm, cpu_simple_rnn
from deeprnn.layers.recurrent import FusedUnavailable
from lstm_cases import (CELLS, OPTIONS, TOLERANCE, drums_model, random_layer_and_inputs, set_implementation, tutorial_batch,
                        tutorial_model)



def lstm_both_ways(options, dtype, B=3, T=6, D=5, H=7, initial_state=False, training=True, seed=0, cell="lstm",
                   random_bias=False):
    """Forward and backward of one recurrent layer (an LSTM unless ``cell`` says otherwise) through its kernel and
    through the reference, with the same masks; ``random_bias`` replaces the zero/one initial bias.

    Returns {'fast': (outputs, dx, grads, d_initial), 'reference': (...)} as lists of NumPy arrays.
    """
    make, kernel = CELLS[cell]
    layer, x, state = random_layer_and_inputs(make, options, dtype, B, T, D, H, seed, random_bias, initial_state)
    results = {}
    for path, implementation in (("fast", "fused"), ("reference", "reference")):
        layer.implementation = implementation
        backend.set_seed(seed + 2)   # the same dropout masks on both paths
        outputs, cache = layer.forward(x, training=training, initial_state=state)
        assert cache.implementation == implementation
        assert cache.kernel is (kernel if path == "fast" else None)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        upstream_rng = numpy.random.default_rng(seed + 3)
        upstream = [upstream_rng.normal(size=o.shape).astype(dtype) for o in outputs]
        result = layer.backward(upstream if layer.return_state else upstream[0], cache)
        results[path] = (outputs, result.dx, result.grads, result.d_initial_state)
    return results


def assert_same(fast, reference, dtype):
    names = ["outputs", "dx", "grads", "d_initial_state"]
    for name, a, b in zip(names, fast, reference):
        a, b = (a, b) if isinstance(a, (list, tuple)) else ([a], [b])
        assert len(a) == len(b), name
        for k, (u, v) in enumerate(zip(a, b)):
            assert u.shape == v.shape, (name, k, u.shape, v.shape)
            assert u.dtype == numpy.dtype(dtype), (name, k, u.dtype)
            error = relative_error(u, v)
            assert error < TOLERANCE[dtype], f"{name}[{k}]: relative error {error:.2e}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_fused_lstm_equals_reference_loops(option, dtype):
    """Fused NumPy LSTM == step_forward/step_backward loops: outputs, states, dx, dW, dU, db, to 1e-6 (float32)."""
    results = lstm_both_ways(OPTIONS[option], dtype)
    assert_same(results["fast"], results["reference"], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_lstm_initial_state_gradient_equals_reference(dtype):
    """With an initial_state (and recurrent dropout), d(h_0, c_0) equal the reference's."""
    results = lstm_both_ways({"recurrent_dropout": 0.3, "return_sequences": True, "return_state": True}, dtype,
                             initial_state=True)
    assert_same(results["fast"], results["reference"], dtype)


def test_fused_lstm_inference_ignores_dropout_like_reference():
    """training=False: no masks applied on either path, same outputs."""
    results = lstm_both_ways({"dropout": 0.5, "recurrent_dropout": 0.5}, "float64", training=False)
    assert_same(results["fast"], results["reference"], "float64")


def test_fused_lstm_tutorial_sizes_float32():
    """At the tutorial's widths (H=256, recurrent dropout 0.3) float32 round-off stays at 1e-6."""
    results = lstm_both_ways({"recurrent_dropout": 0.3, "return_sequences": True}, "float32",
                             B=4, T=12, D=256, H=256)
    assert_same(results["fast"], results["reference"], "float32")


def test_fused_lstm_stateful_carries_the_same_states():
    """stateful=True: after two calls the carried (h, c) equal the reference's."""
    dr.set_seed(0)
    x = numpy.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    states = {}
    for implementation in ("fused", "reference"):
        dr.set_seed(0)
        layer = layers.LSTM(5, stateful=True, implementation=implementation)
        layer(x)
        layer(x)
        states[implementation] = [numpy.array(s) for s in layer.states]
    for a, b in zip(states["fused"], states["reference"]):
        assert relative_error(a, b) < 1e-6


def test_backward_leaves_the_cache_reusable():
    """The kernel's backward writes only fresh buffers: a second backward on the same cache gives the same grads."""
    dr.set_seed(0)
    layer = layers.LSTM(4, recurrent_dropout=0.2, return_sequences=True, implementation="fused")
    x = numpy.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    layer.ensure_built(x.shape)
    y, cache = layer.forward(x, training=True)
    dy = numpy.ones_like(y)
    first = layer.backward(dy, cache)
    second = layer.backward(dy, cache)
    for a, b in zip([first.dx, *first.grads, *first.d_initial_state],
                    [second.dx, *second.grads, *second.d_initial_state]):
        numpy.testing.assert_array_equal(a, b)


def test_reused_buffers_never_overwrite_a_live_cache_or_output():
    """Workspace buffers are reused only when free: outputs and a cache kept across later calls stay intact."""
    dr.set_seed(0)
    layer = layers.LSTM(4, recurrent_dropout=0.2, dropout=0.1, return_sequences=True, implementation="fused")
    rng = numpy.random.default_rng(0)
    x1, x2 = (rng.normal(size=(2, 5, 3)).astype("float32") for _ in range(2))
    layer.ensure_built(x1.shape)
    dy = rng.normal(size=(2, 5, 4)).astype("float32")
    backend.set_seed(1)
    y1, cache1 = layer.forward(x1, training=True)
    y1_copy = y1.copy()
    first = layer.backward(dy, cache1)
    expected = [a.copy() for a in (first.dx, *first.grads)]
    for _ in range(3):   # later calls while y1 and cache1 are alive, as a gradient check makes them
        y2, cache2 = layer.forward(x2, training=True)
        layer.backward(dy, cache2)
    numpy.testing.assert_array_equal(y1, y1_copy)
    again = layer.backward(dy, cache1)
    for a, b in zip(expected, (again.dx, *again.grads)):
        numpy.testing.assert_array_equal(a, b)


def test_workspace_reuses_a_free_buffer():
    """Once nothing refers to a buffer, the next request of that shape gets the same memory back."""
    from deeprnn.kernels.workspace import Workspace
    ws = Workspace()
    a = ws.empty((3, 4), "float32")
    address = a.__array_interface__["data"][0]
    b = ws.empty((3, 4), "float32")
    assert b.__array_interface__["data"][0] != address   # a is still referenced
    view = a[1:]
    del a
    c = ws.empty((3, 4), "float32")
    assert c.__array_interface__["data"][0] != address   # a view keeps the buffer busy
    del view, c
    assert ws.empty((3, 4), "float32").__array_interface__["data"][0] == address


# -- the fast path on its own, against central differences ----------------------------------------------------------
@pytest.mark.parametrize("option", ["return_sequences", "go_backwards", "both dropouts", "no bias"])
def test_fused_lstm_gradients_equal_central_differences_float64(float64, option):
    """Fused LSTM: analytic gradients (W, U, b, x, h_0, c_0) equal central differences to 1e-6 in float64."""
    dr.set_seed(3)
    layer = layers.LSTM(4, implementation="fused", **OPTIONS[option])
    rng = numpy.random.default_rng(4)
    x = rng.normal(size=(2, 5, 3))
    initial = [rng.normal(size=(2, 4)) for _ in range(2)]
    layer.ensure_built(x.shape)
    assert layer.select_kernel(x) is cpu_lstm
    errors = check_layer_gradients(layer, x, seed=5, initial_state=initial)
    assert set(errors) >= {"input", "initial_state[0]", "initial_state[1]"}
    assert max(errors.values()) < 1e-6, errors


# -- selection -------------------------------------------------------------------------------------------------------
def test_auto_takes_the_kernel_only_where_it_computes_the_same_thing():
    """'auto' runs the kernel for a tanh/sigmoid LSTM on NumPy input of the weights' dtype, the reference otherwise."""
    x = numpy.zeros((2, 3, 4), "float32")
    relu_lstm = layers.LSTM(3, activation="relu")
    relu_lstm.ensure_built(x.shape)
    assert relu_lstm.select_kernel(x) is None
    _, cache = relu_lstm.forward(x, training=True)
    assert cache.implementation == "reference"
    gru = layers.GRU(3, recurrent_activation="tanh")
    gru.ensure_built(x.shape)
    assert gru.select_kernel(x) is None
    lstm = layers.LSTM(3)
    lstm.ensure_built(x.shape)
    assert lstm.implementation == "auto"
    assert lstm.select_kernel(x) is cpu_lstm
    assert lstm.select_kernel(x.astype("float64")) is None   # weights are float32
    assert lstm.forward(x)[1].kernel is cpu_lstm


def test_reference_always_runs_the_step_functions():
    """implementation='reference' runs LSTM.step_forward even where a kernel could take the call."""
    layer = layers.LSTM(3, implementation="reference")
    x = numpy.zeros((2, 3, 4), "float32")
    layer.ensure_built(x.shape)
    assert layer.select_kernel(x) is None
    _, cache = layer.forward(x, training=True)
    assert cache.implementation == "reference" and type(cache.loop[0]).__name__ == "LSTMStep"


@pytest.mark.parametrize("make, x, reason", [
    (lambda: layers.LSTM(3, activation="relu", implementation="fused"), numpy.zeros((2, 3, 4), "float32"),
     "activation='tanh'"),
    (lambda: layers.GRU(3, recurrent_activation="relu", implementation="fused"), numpy.zeros((2, 3, 4), "float32"),
     "recurrent_activation='sigmoid'"),
    (lambda: layers.SimpleRNN(3, activation="relu", implementation="fused"), numpy.zeros((2, 3, 4), "float32"),
     "activation='tanh'"),
    (lambda: layers.GRU(3, implementation="fused"), numpy.zeros((2, 3, 4), "float64"), "one dtype"),
    (lambda: layers.LSTM(3, implementation="fused"), numpy.zeros((2, 3, 4), "float64"), "one dtype"),
])
def test_fused_raises_a_clear_error_when_not_eligible(make, x, reason):
    """implementation='fused' never falls back silently: it names the layer and why the call is not eligible."""
    layer = make()
    layer.ensure_built(x.shape)
    with pytest.raises(FusedUnavailable, match=reason):
        layer.forward(x)


def test_implementation_is_validated_and_saved_in_the_config():
    with pytest.raises(ValueError, match="implementation must be one of"):
        layers.LSTM(3, implementation="fast")
    config = layers.LSTM(3, implementation="reference").get_config()
    assert config["implementation"] == "reference"
    assert layers.LSTM.from_config(config).implementation == "reference"


def test_summary_shows_what_each_recurrent_layer_runs():
    model = dr.Sequential([layers.Input((5, 2)), layers.LSTM(3, return_sequences=True),
                           layers.LSTM(3, implementation="reference"), layers.Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Runs" in text
    assert [line.split()[-1] for line in lines if line.startswith("lstm")] == ["(cpu_lstm)", "reference"]


@pytest.mark.parametrize("value, expected", [("1", "reference"), ("", "auto")])
def test_environment_variable_makes_reference_the_default(value, expected):
    """DEEPRNN_REFERENCE=1 makes 'reference' the default implementation of the layers made while it is set (an
    explicit one still wins); it is read when a layer is made, not at import: a process that imported deeprnn with
    the opposite value and then sets it sees the new one."""
    code = ("import os, deeprnn as dr; before = dr.layers.LSTM(2).implementation; "
            f"os.environ['DEEPRNN_REFERENCE'] = {value!r}; "
            "print(before, dr.layers.LSTM(2).implementation, dr.layers.GRU(2).implementation, "
            "dr.layers.LSTM(2, implementation='fused').implementation)")
    imported_with = "" if value == "1" else "1"
    env = dict(os.environ, DEEPRNN_REFERENCE=imported_with)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    other = "auto" if expected == "reference" else "reference"
    assert out.stdout.split() == [other, expected, expected, "fused"]


# -- whole models ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("build", [tutorial_model, functools.partial(drums_model, input_dropout=0.1)],
                         ids=["tutorial", "drums"])
def test_whole_model_loss_and_gradients_fast_equal_reference(build, dtype):
    """loss_and_gradients of a whole model: the fused LSTMs give the reference's loss and every gradient."""
    dr.set_floatx(dtype)
    dr.set_seed(0)
    model = build()
    if build is tutorial_model:
        x, y = tutorial_batch()
    else:
        tokens = numpy.random.default_rng(1).integers(0, 9, size=(4, 7))
        x, y = tokens[:, :6], tokens[:, 1:]
    results = {}
    for path, implementation in (("fast", "fused"), ("reference", "reference")):
        set_implementation(model, implementation)
        backend.set_seed(11)
        results[path] = model.loss_and_gradients(x, y, training=True)
    (loss_fast, grads_fast), (loss_ref, grads_ref) = results["fast"], results["reference"]
    assert abs(loss_fast - loss_ref) <= 10 * TOLERANCE[dtype] * abs(loss_ref)
    for variable, a, b in zip(model.variables, grads_fast, grads_ref):
        assert (a is None) == (b is None), variable.name
        if a is not None:
            assert relative_error(a, b) < 10 * TOLERANCE[dtype], variable.name


def test_whole_tutorial_model_gradients_on_fast_path_float64(float64):
    """The narrow tutorial model on the fast path: every weight's gradient equals central differences."""
    dr.set_seed(0)
    model = set_implementation(tutorial_model(units=4, vocab=5), "fused")
    x, y = tutorial_batch(B=3, T=7, vocab=5)
    errors = check_model_gradients(model, x, y, seed=2, max_checks_per_weight=12)
    assert max(errors.values()) < 1e-6, errors


def test_training_steps_fast_equal_reference():
    """Three train_on_batch steps (Adam in place) land on the reference path's weights to float32 round-off."""
    x, y = tutorial_batch()
    weights = {}
    for implementation in ("fused", "reference"):
        dr.set_seed(0)
        model = set_implementation(tutorial_model(), implementation)
        for _ in range(3):
            model.train_on_batch(x, y)
        weights[implementation] = model.get_weights()
    for a, b in zip(weights["fused"], weights["reference"]):
        assert relative_error(a, b) < 1e-5


# -- GRU and SimpleRNN kernels ---------------------------------------------------------------------------------------
# longer than both kernels' backward chunks (cpu_gru.CHUNK, cpu_simple_rnn.CHUNK), so a chunk boundary is crossed
LONG_T = max(cpu_gru.CHUNK, cpu_simple_rnn.CHUNK) + 3
OTHER_CELLS = ["gru", "gru_reset_before", "simple_rnn"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("cell", OTHER_CELLS)
def test_fused_gru_and_simple_rnn_equal_reference_loops(cell, option, dtype):
    """cpu_gru (both variants) and cpu_simple_rnn == their step functions' loops: outputs, states, dx, dW, dU, db
    (b_rec's row included), to 1e-6 in float32 and 1e-13 in float64."""
    results = lstm_both_ways(OPTIONS[option], dtype, T=LONG_T, cell=cell, random_bias=True)
    assert_same(results["fast"], results["reference"], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", OTHER_CELLS)
def test_fused_gru_and_simple_rnn_initial_state_gradient_equals_reference(cell, dtype):
    """With an initial_state (and both dropouts, going backwards), dh_0 equals the reference's."""
    options = {"dropout": 0.2, "recurrent_dropout": 0.3, "go_backwards": True, "return_sequences": True,
               "return_state": True}
    results = lstm_both_ways(options, dtype, T=LONG_T, cell=cell, initial_state=True, random_bias=True)
    assert_same(results["fast"], results["reference"], dtype)


@pytest.mark.parametrize("cell", OTHER_CELLS)
def test_fused_gru_and_simple_rnn_single_step_and_inference(cell):
    """T = 1, and training=False (dropout ignored on both paths): the same outputs and gradients."""
    for T, training in ((1, True), (5, False)):
        results = lstm_both_ways({"dropout": 0.5, "recurrent_dropout": 0.5, "return_state": True}, "float64", T=T,
                                 cell=cell, training=training, random_bias=True)
        assert_same(results["fast"], results["reference"], "float64")


@pytest.mark.parametrize("cell", ["gru", "gru_reset_before"])
def test_fused_gru_at_drums_widths_float32(cell):
    """At the drums model's width (H=256, recurrent dropout 0.3) float32 round-off stays at 1e-6."""
    results = lstm_both_ways({"recurrent_dropout": 0.3, "return_sequences": True}, "float32", B=4, T=LONG_T, D=64,
                             H=256, cell=cell, random_bias=True)
    assert_same(results["fast"], results["reference"], "float32")


@pytest.mark.parametrize("cell", OTHER_CELLS)
def test_fused_gru_and_simple_rnn_stateful_carry_the_same_state(cell):
    """stateful=True: after two calls the carried h equals the reference's."""
    make, kernel = CELLS[cell]
    x = numpy.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    states = {}
    for implementation in ("fused", "reference"):
        dr.set_seed(0)
        layer = make(5, stateful=True, implementation=implementation)
        layer.ensure_built(x.shape)
        assert layer.select_kernel(x) is (kernel if implementation == "fused" else None)
        weights = layer.get_weights()
        layer.set_weights(weights[:2] + [numpy.full(weights[2].shape, 0.3, "float32")])
        layer(x)
        layer(x)
        states[implementation] = numpy.array(layer.states[0])
    assert relative_error(states["fused"], states["reference"]) < 1e-6


@pytest.mark.parametrize("option", ["return_sequences", "go_backwards", "both dropouts", "no bias"])
@pytest.mark.parametrize("cell", OTHER_CELLS)
def test_fused_gru_and_simple_rnn_gradients_equal_central_differences_float64(float64, cell, option):
    """Fused GRU / SimpleRNN: analytic gradients (W, U, b, x, h_0) equal central differences to 1e-6 in float64."""
    make, kernel = CELLS[cell]
    dr.set_seed(3)
    layer = make(4, implementation="fused", **OPTIONS[option])
    rng = numpy.random.default_rng(4)
    x = rng.normal(size=(2, 5, 3))
    layer.ensure_built(x.shape)
    if layer.use_bias:
        weights = layer.get_weights()
        layer.set_weights(weights[:2] + [rng.normal(scale=0.5, size=weights[2].shape)])
    assert layer.select_kernel(x) is kernel
    errors = check_layer_gradients(layer, x, seed=5, initial_state=[rng.normal(size=(2, 4))])
    assert set(errors) >= {"input", "initial_state[0]"}
    assert len(errors) == len(layer.trainable_variables) + 2
    assert max(errors.values()) < 1e-6, errors


def test_gru_and_simple_rnn_auto_take_their_kernels_only_for_their_math():
    """'auto' runs cpu_gru / cpu_simple_rnn for the reference's activations and step functions, else the reference."""
    x = numpy.zeros((2, 3, 4), "float32")

    class PeepholeGRU(layers.GRU):   # a subclass with its own step: the kernel does not compute it
        def step_forward(self, xw_t, state, recurrent_mask):
            return super().step_forward(xw_t, state, recurrent_mask)

    expected = [(layers.GRU(3), cpu_gru), (layers.GRU(3, reset_after=False), cpu_gru),
                (layers.SimpleRNN(3), cpu_simple_rnn), (layers.SimpleRNN(3, activation="relu"), None),
                (layers.GRU(3, activation="relu"), None), (PeepholeGRU(3), None)]
    for layer, kernel in expected:
        layer.ensure_built(x.shape)
        assert layer.select_kernel(x) is kernel, layer
        assert layer.forward(x)[1].kernel is kernel
    assert "changes the GRU's step functions" in PeepholeGRU(3).fused_ineligibility()


def test_gru_kernel_options_carry_the_variant_and_the_recurrent_bias():
    """reset_after=True passes b_rec (row 1 of the (2, 3H) bias); reset_after=False and no bias pass none."""
    gru = layers.GRU(3)
    gru.ensure_built((2, 3, 4))
    gru.set_weights(gru.get_weights()[:2] + [numpy.arange(18, dtype="float32").reshape(2, 9)])
    options = gru.kernel_options()
    assert options["reset_after"] is True
    numpy.testing.assert_array_equal(options["recurrent_bias"], numpy.arange(9, 18))
    for layer in (layers.GRU(3, reset_after=False), layers.GRU(3, use_bias=False)):
        layer.ensure_built((2, 3, 4))
        assert layer.kernel_options() == {"reset_after": layer.reset_after, "recurrent_bias": None}


def drums_model_with(cell, vocab=9, input_dropout=0.1):
    """lstm_cases.drums_model with another cell: Embedding -> 2 x cell (every step) -> softmax."""
    make, _ = CELLS[cell]
    model = dr.Sequential([
        layers.Input((6,)), layers.Embedding(vocab, 4),
        make(8, return_sequences=True, dropout=input_dropout, recurrent_dropout=0.2),
        make(8, return_sequences=True),
        layers.Dense(vocab), layers.Activation("softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell", OTHER_CELLS)
def test_whole_drums_model_with_gru_or_simple_rnn_fast_equals_reference(cell, dtype):
    """loss_and_gradients of the drums-shaped model with GRUs (SimpleRNNs): fused == reference, every gradient."""
    dr.set_floatx(dtype)
    dr.set_seed(0)
    model = drums_model_with(cell)
    tokens = numpy.random.default_rng(1).integers(0, 9, size=(4, 7))
    x, y = tokens[:, :6], tokens[:, 1:]
    results = {}
    for implementation in ("fused", "reference"):
        set_implementation(model, implementation)
        assert all(layer.implementation == implementation for layer in model.layers if isinstance(layer, layers.RNN))
        backend.set_seed(11)
        results[implementation] = model.loss_and_gradients(x, y, training=True)
    (loss_fast, grads_fast), (loss_ref, grads_ref) = results["fused"], results["reference"]
    assert abs(loss_fast - loss_ref) <= 10 * TOLERANCE[dtype] * abs(loss_ref)
    for variable, a, b in zip(model.variables, grads_fast, grads_ref):
        assert (a is None) == (b is None), variable.name
        if a is not None:
            assert relative_error(a, b) < 10 * TOLERANCE[dtype], variable.name


# -- Adam and sigmoid ------------------------------------------------------------------------------------------------
def plain_adam(weights, grads_per_step, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
    """The docstring's formula, one temporary per operation (the readable reference of the in-place update)."""
    dtype = weights[0].dtype.type
    m = [numpy.zeros_like(w) for w in weights]
    v = [numpy.zeros_like(w) for w in weights]
    weights = [w.copy() for w in weights]
    b1, b2, eps = dtype(b1), dtype(b2), dtype(eps)
    for step, grads in enumerate(grads_per_step):
        t = dtype(step + 1)
        alpha = dtype(lr) * (1 - b2 ** t) ** dtype(0.5) / (1 - b1 ** t)
        for k, g in enumerate(grads):
            m[k] = m[k] + (g - m[k]) * (1 - b1)
            v[k] = v[k] + (g * g - v[k]) * (1 - b2)
            weights[k] = weights[k] - alpha * m[k] / (numpy.sqrt(v[k]) + eps)
    return weights


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_in_place_adam_is_bit_identical_to_the_plain_formula(dtype):
    """Adam's in-place update (scratch buffers) gives exactly the plain formula's weights, also after set_state."""
    rng = numpy.random.default_rng(0)
    initial = [rng.normal(size=s).astype(dtype) for s in [(6, 8), (8,), (30, 4)]]
    grads_per_step = [[rng.normal(size=w.shape).astype(dtype) for w in initial] for _ in range(6)]
    variables = [layers.Variable(str(k), w.copy()) for k, w in enumerate(initial)]
    adam = optimizers.Adam()
    for grads in grads_per_step[:3]:
        adam.apply_gradients(grads, variables)
    resumed = optimizers.Adam()   # a resumed optimizer rebuilds its scratch buffers
    resumed.set_state(adam.iterations, adam.get_state(), variables)
    for grads in grads_per_step[3:]:
        resumed.apply_gradients(grads, variables)
    for variable, expected in zip(variables, plain_adam(initial, grads_per_step)):
        assert variable.value.dtype == numpy.dtype(dtype)
        numpy.testing.assert_array_equal(variable.value, expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_matches_the_stable_formula(dtype):
    """activations.sigmoid (expit on NumPy) == exp(-|z|) form, keeps the dtype, no overflow at +-1000."""
    from deeprnn import activations
    z = numpy.concatenate([numpy.linspace(-30, 30, 1001), [-1000.0, 1000.0]]).astype(dtype)
    e = numpy.exp(-numpy.abs(z))
    expected = numpy.where(z >= 0, 1 / (1 + e), e / (1 + e))
    with numpy.errstate(all="raise"):
        y = activations.sigmoid(z)
    assert y.dtype == numpy.dtype(dtype)
    numpy.testing.assert_allclose(y, expected, rtol=4 * numpy.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("training, options", [(False, {}), (True, {"dropout": 0.3, "return_state": True}),
                                               (True, {"recurrent_dropout": 0.3})])
def test_fused_lstm_single_step_equals_reference(training, options):
    """T = 1 (a token per call in generation) takes the kernel's one-step path without recurrent masks; outputs
    and every gradient still equal the reference's."""
    results = lstm_both_ways(dict(options, return_sequences=True), "float64", T=1, initial_state=True,
                             training=training)
    assert_same(results["fast"], results["reference"], "float64")


def test_token_by_token_stateful_generation_equals_one_call_over_the_sequence():
    """A stateful LSTM fed one step per call (the fused one-step path) ends where one call over all steps ends."""
    rng = numpy.random.default_rng(0)
    x = rng.normal(size=(1, 9, 3)).astype("float32")
    dr.set_seed(0)
    whole = layers.LSTM(5, return_sequences=True, return_state=True)
    y, h, c = whole(x)
    stepped = layers.LSTM(5, return_sequences=True, stateful=True)
    stepped.ensure_built(x.shape)
    stepped.set_weights(whole.get_weights())
    steps = [stepped(x[:, t:t + 1]) for t in range(9)]
    numpy.testing.assert_allclose(numpy.concatenate(steps, axis=1), y, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(stepped.states[0], h, rtol=1e-5, atol=1e-6)
