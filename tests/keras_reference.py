"""Keras 3 as the gold reference: build the same model in both libraries and measure how far apart they are.

A model is described once, as a layer list both libraries understand, e.g.

    ModelSpec(input_shape=(T, D), layers=[("LSTM", {"units": 4}), ("Dense", {"units": V}),
                                          ("Activation", {"activation": "softmax"})])

``build_pair`` turns it into a Keras model and a deeprnn model and copies Keras's weights into deeprnn with
``set_weights(keras_model.get_weights())``; every comparison then measures ``relative_error`` array by array.
Keras runs on JAX (KERAS_BACKEND=jax, set before the first ``import keras``); its gradients come from ``jax.grad``
of ``stateless_call`` (shared/reference/keras-semantics.md, section 8).
"""
import os
from dataclasses import dataclass, field

os.environ["KERAS_BACKEND"] = "jax"  # the gradients below are JAX's; must be set before Keras is first imported

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402  (plain import: a missing Keras must fail the run, never skip it)
import numpy  # noqa: E402

import deeprnn as dr  # noqa: E402
from deeprnn import layers as dr_layers  # noqa: E402

assert keras.backend.backend() == "jax", f"Keras was imported with the {keras.backend.backend()!r} backend first"

# XLA's compile time, not the arithmetic, dominates these tests (each model, shape and Keras function compiles
# once). Fewer compiler optimisations roughly halve it and change Keras's float32 results only at rounding level.
jax.config.update("jax_disable_most_optimizations", True)

TOLERANCE = 1e-5
# The tutorial's architecture (BatchNorm right after an LSTM, Dense -> ReLU -> BatchNorm) is badly conditioned in
# float32: Keras disagrees with itself by as much as with deeprnn when only the order of the batch changes (or
# against a float64 evaluation). Why and how much: docs/keras-parity.md, "Tolerances".
TUTORIAL_GRADIENT_TOLERANCE = 1e-4
TUTORIAL_TRAINED_TOLERANCE = 2e-3
TINY = 1e-30

KERAS_LOSSES = {"categorical_crossentropy": keras.losses.CategoricalCrossentropy,
                "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy}


def relative_error(actual, expected):
    """max|a - b| / max(max|b|, tiny) over one array, in float64: 0 means identical, 1e-7 is float32 rounding."""
    a = numpy.asarray(actual, dtype=numpy.float64)
    b = numpy.asarray(expected, dtype=numpy.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: {a.shape} vs Keras {b.shape}")
    if b.size == 0:
        return 0.0
    return float(numpy.abs(a - b).max() / max(float(numpy.abs(b).max()), TINY))


def assert_close(actual, expected, what, tolerance=TOLERANCE):
    """Fail with the measured error when one array (or scalar) is further than ``tolerance`` from Keras's.

    With DEEPRNN_PARITY_LOG=path every measured error is appended to that file (how docs/keras-parity.md's
    table of margins was made).
    """
    error = relative_error(actual, expected)
    if os.environ.get("DEEPRNN_PARITY_LOG"):
        with open(os.environ["DEEPRNN_PARITY_LOG"], "a") as log:
            log.write(f"{os.environ.get('PYTEST_CURRENT_TEST', '?').split(' ')[0]}\t{what}\t{error:.3e}\n")
    assert error <= tolerance, f"{what}: relative error {error:.2e} > {tolerance:.0e} (deeprnn vs Keras)"
    return error


def assert_all_close(actuals, expecteds, names, what, tolerance=TOLERANCE):
    """``assert_close`` for aligned lists (weights, gradients); returns the largest error."""
    actuals, expecteds = list(actuals), list(expecteds)
    assert len(actuals) == len(expecteds), f"{what}: deeprnn has {len(actuals)} arrays, Keras {len(expecteds)}"
    return max([assert_close(a, b, f"{what} {name}", tolerance) for a, b, name in zip(actuals, expecteds, names)],
               default=0.0)


# -- one model, described once, built twice ----------------------------------------------------------------------------
@dataclass
class ModelSpec:
    """A Sequential model both libraries can build: layer class names and keyword arguments they share."""
    input_shape: tuple
    layers: list
    loss: str = "categorical_crossentropy"
    input_dtype: str = "float32"
    optimizer: dict = field(default_factory=dict)  # the optimizer's keyword arguments (clipnorm, learning_rate, ...)
    optimizer_class: str = "Adam"  # the same name in keras.optimizers and deeprnn.optimizers (Adam, AdamW)
    gradient_tolerance: float = TOLERANCE
    trained_tolerance: float = TOLERANCE  # weights, and losses, once Adam has taken a step
    batch_size: int = 0  # for predict, gradients and train_on_batch; 0: a small size drawn per seed


def build_keras(spec):
    inputs = keras.Input(spec.input_shape, dtype=spec.input_dtype)
    return keras.Sequential([inputs] + [getattr(keras.layers, name)(**kwargs) for name, kwargs in spec.layers])


# deeprnn's weights are overwritten with Keras's, so its own initializers only cost time (an orthogonal QR each)
SKIP_INITIALIZERS = {"LSTM": ("kernel", "recurrent", "bias"), "GRU": ("kernel", "recurrent", "bias"),
                     "SimpleRNN": ("kernel", "recurrent", "bias"), "Dense": ("kernel", "bias"),
                     "Embedding": ("embeddings",)}


def build_deeprnn(spec):
    inputs = dr_layers.Input(spec.input_shape, dtype=spec.input_dtype)
    layers = []
    for name, kwargs in spec.layers:
        zeros = {f"{weight}_initializer": "zeros" for weight in SKIP_INITIALIZERS.get(name, ())}
        layers.append(getattr(dr_layers, name)(**kwargs, **zeros))
    return dr.Sequential([inputs] + layers)


def randomize_keras_weights(model, rng):
    """Move every weight off its initial value so zero biases and unit BatchNorm statistics get exercised too.

    The noise is 10% of each kernel's own spread (0.1 for constant arrays), so a 256-unit recurrent kernel stays
    close to orthogonal: much more and 100 timesteps of recurrence turn float32 rounding into chaos.
    BatchNorm's moving variance stays positive.
    """
    weights = []
    for variable, value in zip(model.weights, model.get_weights()):
        if variable.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, value.shape)
        elif variable.path.endswith("moving_mean"):
            value = rng.normal(0.0, 0.3, value.shape)
        else:
            spread = float(value.std()) or 1.0
            value = value + rng.normal(0.0, 0.1 * spread, value.shape)
        weights.append(value.astype(numpy.float32))
    model.set_weights(weights)


def build_pair(spec, seed, compile_models=False):
    """Keras model (seeded init, then randomized) and a deeprnn model holding a copy of its weights."""
    keras.utils.set_random_seed(seed)
    keras_model = build_keras(spec)
    randomize_keras_weights(keras_model, numpy.random.default_rng(seed + 1000))
    model = build_deeprnn(spec)
    model.set_weights(keras_model.get_weights())
    if compile_models:
        keras_model.compile(optimizer=keras_optimizer(spec), loss=spec.loss)
        model.compile(optimizer=deeprnn_optimizer(spec), loss=spec.loss)
    return keras_model, model


def keras_optimizer(spec):
    return getattr(keras.optimizers, spec.optimizer_class)(**spec.optimizer)


def deeprnn_optimizer(spec):
    return getattr(dr.optimizers, spec.optimizer_class)(**spec.optimizer)


def weight_names(keras_model):
    return [variable.path for variable in keras_model.weights]


# -- Keras's numbers ---------------------------------------------------------------------------------------------------
def keras_loss_and_gradients(keras_model, loss, x, y, with_input_gradient=True):
    """Loss of one batch in training mode and its JAX gradients w.r.t. ``trainable_variables`` (and x).

    ``stateless_call(..., training=True)`` is exactly the forward ``fit`` runs (BatchNorm on batch statistics),
    without touching the model's variables.
    """
    loss_fn = KERAS_LOSSES[loss]()
    trainable = [v.value for v in keras_model.trainable_variables]
    non_trainable = [v.value for v in keras_model.non_trainable_variables]
    y = jnp.asarray(y)

    def batch_loss(trainable, x):
        y_pred, _ = keras_model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_fn(y, y_pred)

    argnums = (0, 1) if with_input_gradient else 0
    value, grads = jax.jit(jax.value_and_grad(batch_loss, argnums=argnums))(trainable, jnp.asarray(x))
    weight_grads, input_grad = grads if with_input_gradient else (grads, None)
    to_numpy = keras.ops.convert_to_numpy
    return (float(value), [to_numpy(g) for g in weight_grads],
            None if input_grad is None else to_numpy(input_grad))


def keras_layer_gradients(layer, x, initial_state, projections):
    """Gradients of  sum_k <outputs_k, projections_k>  w.r.t. the layer's weights, x and the initial state.

    A random linear functional of every output (sequence, h_T, c_T) checks each output's backward path at once.
    """
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def functional(trainable, x, initial_state):
        outputs, _ = layer.stateless_call(trainable, non_trainable, x, initial_state=initial_state, training=True)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return sum(jnp.sum(out * p) for out, p in zip(outputs, projections))

    grads = jax.jit(jax.grad(functional, argnums=(0, 1, 2)))(trainable, jnp.asarray(x),
                                                            [jnp.asarray(s) for s in initial_state])
    to_numpy = keras.ops.convert_to_numpy
    return [to_numpy(g) for g in grads[0]], to_numpy(grads[1]), [to_numpy(g) for g in grads[2]]


# -- data --------------------------------------------------------------------------------------------------------------
def make_batch(spec, rng, batch_size, output_shape):
    """Random inputs for ``spec`` and targets matching the model's output shape (one-hot or integer labels)."""
    if spec.input_dtype.startswith("int"):
        vocabulary = dict(spec.layers)["Embedding"]["input_dim"]
        x = rng.integers(0, vocabulary, (batch_size,) + tuple(spec.input_shape)).astype(spec.input_dtype)
    else:
        x = rng.normal(size=(batch_size,) + tuple(spec.input_shape)).astype(numpy.float32)
    classes = output_shape[-1]
    labels = rng.integers(0, classes, (batch_size,) + tuple(output_shape[1:-1]))
    if spec.loss == "sparse_categorical_crossentropy":
        return x, labels.astype(numpy.int32)
    return x, numpy.eye(classes, dtype=numpy.float32)[labels]
