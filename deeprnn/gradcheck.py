"""Numerical gradient checking: central differences in float64 against the analytic backward passes.

    numeric_k = (f(w + h e_k) - f(w - h e_k)) / (2 h)

compared with ``relative_error = ||analytic - numeric|| / max(||analytic|| + ||numeric||, tiny)``. A norm-wise error
is used because an element-wise one is dominated by round-off where both gradients are ~0. With float64 and
h = 1e-6 a correct backward gives ~1e-9; a wrong one gives ~1e-1. Dropout masks are held fixed by reseeding
before every evaluation. See docs/gradient-checking.md.
"""
import numpy

from . import backend


def relative_error(analytic, numeric):
    # host copies first: NumPy refuses to convert a CuPy array implicitly
    analytic = numpy.asarray(backend.to_numpy(analytic), dtype="float64")
    numeric = numpy.asarray(backend.to_numpy(numeric), dtype="float64")
    scale = numpy.linalg.norm(analytic) + numpy.linalg.norm(numeric)
    return float(numpy.linalg.norm(analytic - numeric) / max(scale, 1e-12))


def numerical_gradient(f, array, h=1e-6, indices=None):
    """Central differences of the scalar ``f()`` with respect to ``array``, perturbed in place.

    ``indices``: flat positions to check (all by default); the others are returned as NaN.
    """
    grad = numpy.full(array.size, numpy.nan)
    for k in (range(array.size) if indices is None else indices):
        position = numpy.unravel_index(int(k), array.shape)  # index the array itself: a reshape may be a copy
        original = array[position].item()
        array[position] = original + h
        plus = f()
        array[position] = original - h
        minus = f()
        array[position] = original
        grad[k] = (plus - minus) / (2 * h)
    return grad.reshape(array.shape)


def _sampled_indices(size, max_checks, rng):
    if max_checks is None or size <= max_checks:
        return None
    return rng.choice(size, max_checks, replace=False)


def _held_states(layers):
    """The carried states of stateful recurrent layers, to put back before every evaluation.

    A stateful layer's forward advances its state; without this each central difference would start from the
    state the previous evaluation left behind.
    """
    held = [(layer, layer.states) for layer in layers if getattr(layer, "stateful", False)]

    def restore():
        for layer, states in held:
            layer.states = states
    return restore


def _compare(analytic, numeric, indices):
    analytic = numpy.asarray(backend.to_numpy(analytic), dtype="float64")
    if indices is None:
        return relative_error(analytic, numeric)
    return relative_error(analytic.reshape(-1)[indices], numeric.reshape(-1)[indices])


def check_model_gradients(model, x, y, seed=0, h=1e-6, training=True, max_checks_per_weight=None):
    """Relative error of every trainable weight's gradient (and the input's, for float input) of a compiled model.

    Returns ``{weight name or 'input': error}``. Use float64 (``set_floatx('float64')``).
    """
    x = model.prepare_input(x)
    y = model.as_array(y, "y")
    picker = numpy.random.default_rng(seed)
    restore_states = _held_states(model.layers)

    def loss():
        restore_states()
        backend.set_seed(seed)
        y_pred, _ = model.forward(x, training=training)
        value, _ = model.loss.forward(y, y_pred)
        return float(value)

    restore_states()
    backend.set_seed(seed)
    _, grads, dx = model.loss_and_gradients(x, y, training=training, return_input_gradient=True)
    errors = {}
    for variable, grad in zip(model.variables, grads):
        if grad is None:
            continue
        indices = _sampled_indices(variable.value.size, max_checks_per_weight, picker)
        errors[variable.name] = _compare(grad, numerical_gradient(loss, variable.value, h, indices), indices)
    if x.dtype.kind == "f":
        indices = _sampled_indices(x.size, max_checks_per_weight, picker)
        errors["input"] = _compare(dx, numerical_gradient(loss, x, h, indices), indices)
    restore_states()
    return errors


def check_layer_gradients(layer, x, seed=0, h=1e-6, training=True, initial_state=None, **forward_kwargs):
    """Relative errors of one layer's backward under the loss L = sum(y * R) with a fixed random R per output.

    Checks every trainable weight, the input (float input), and the initial states when given.
    """
    x = backend.to_device(x)
    layer.ensure_built(x.shape)
    xp = backend.array_module(x)
    if initial_state is not None:
        initial_state = [backend.to_device(s) for s in initial_state]
        forward_kwargs["initial_state"] = initial_state
    restore_states = _held_states([layer])

    def run():
        restore_states()
        backend.set_seed(seed)
        return layer.forward(x, training=training, **forward_kwargs)

    outputs, cache = run()
    output_list = outputs if isinstance(outputs, list) else [outputs]
    weights_rng = numpy.random.default_rng(seed + 7)
    projections = [xp.asarray(weights_rng.normal(size=o.shape), dtype=o.dtype) for o in output_list]

    def loss():
        outs, _ = run()
        outs = outs if isinstance(outs, list) else [outs]
        return float(sum((o * r).sum() for o, r in zip(outs, projections)))

    upstream = projections if isinstance(outputs, list) else projections[0]
    result = layer.backward(upstream, cache)
    dx, grads = result.dx, result.grads
    errors = {}
    for variable, grad in zip(layer.trainable_variables, grads):
        errors[variable.name] = _compare(grad, numerical_gradient(loss, variable.value, h), None)
    if x.dtype.kind == "f":
        errors["input"] = _compare(dx, numerical_gradient(loss, x, h), None)
    if initial_state is not None:
        for k, (state, d_state) in enumerate(zip(initial_state, result.d_initial_state)):
            errors[f"initial_state[{k}]"] = _compare(d_state, numerical_gradient(loss, state, h), None)
    restore_states()
    return errors
