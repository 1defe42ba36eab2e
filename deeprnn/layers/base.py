"""The layer contract every layer follows.

A layer is a pair of functions, as in CS231n's ``rnn_layers.py``:

    y, cache = layer.forward(x, training)      # cache: exactly what backward needs
    dx, grads, d_initial_state = layer.backward(dy, cache)      # a ``Backward``

``Backward.grads`` is aligned with ``layer.trainable_variables``; ``d_initial_state`` is the gradient of a recurrent
layer's initial state (a tuple like the state) and None for every other layer.

``forward`` never mutates the layer; state changes that training makes (BatchNormalization's moving statistics)
are returned in the cache and applied by ``layer.update_state(cache)`` after the optimizer step, so a gradient
check can call forward as often as it likes.
"""
from collections import namedtuple

from .. import backend
from .. import initializers as initializers_module

Backward = namedtuple("Backward", "dx grads d_initial_state", defaults=(None,))
Backward.__doc__ = """What every layer's ``backward`` returns: the input gradient, the weight gradients (aligned with
``trainable_variables``) and, for a recurrent layer, the initial state's gradient (None elsewhere)."""


class Variable:
    """A named weight. ``value`` is an array of the current device; the optimizer updates it in place."""

    def __init__(self, name, value, trainable=True):
        self.name, self.value, self.trainable = name, value, trainable

    @property
    def shape(self):
        return tuple(self.value.shape)

    def __repr__(self):
        return f"Variable({self.name!r}, shape={self.shape}, trainable={self.trainable})"


class Layer:
    _counts = {}

    def __init__(self, name=None):
        if name is None:
            base = _snake_case(type(self).__name__)
            count = Layer._counts.get(base, 0)
            Layer._counts[base] = count + 1
            name = base if count == 0 else f"{base}_{count}"
        self.name = name
        self.variables = []
        self.built = False
        self.input_shape = None

    # -- weights ---------------------------------------------------------------------------------------------------
    def add_weight(self, name, shape, initializer, trainable=True):
        values = initializers_module.get(initializer)(shape)
        variable = Variable(f"{self.name}/{name}", backend.to_device(values), trainable)
        self.variables.append(variable)
        return variable

    @property
    def trainable_variables(self):
        return [v for v in self.variables if v.trainable]

    def get_weights(self):
        return [backend.to_numpy(v.value).copy() for v in self.variables]

    def set_weights(self, weights):
        if len(weights) != len(self.variables):
            raise ValueError(f"layer {self.name!r} has {len(self.variables)} weights, received {len(weights)}")
        for variable, value in zip(self.variables, weights):
            value = backend.to_numpy(value)
            if tuple(value.shape) != variable.shape:
                raise ValueError(f"layer {self.name!r}: weight {variable.name!r} expects shape {variable.shape}, "
                                 f"received {tuple(value.shape)}")
            # a copy: the optimizer updates variables in place and must never write into the caller's arrays
            variable.value = backend.xp().array(value, dtype=backend.floatx())

    def to_device(self):
        """Move this layer's weights to the current backend device."""
        for variable in self.variables:
            variable.value = backend.to_device(backend.to_numpy(variable.value))

    # -- building --------------------------------------------------------------------------------------------------
    def build(self, input_shape):
        """Create the weights for an input of ``input_shape`` (batch dimension included, may be None)."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def ensure_built(self, input_shape):
        if not self.built:
            self.build(tuple(input_shape))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def check_input_shape(self, shape, rank, feature_size=None, what="input"):
        """Raise a ValueError naming this layer, the expected and the received shape."""
        shape = tuple(shape)
        expected = ("batch",) + ("?",) * (rank - 2) + ((feature_size,) if feature_size is not None else ("?",))
        if rank == 1:
            expected = ("batch",)
        if len(shape) != rank or (feature_size is not None and shape[-1] != feature_size):
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected {what} of shape "
                             f"{_fmt(expected)}, received {_fmt(shape)}")

    # -- the forward/backward pair -----------------------------------------------------------------------------------
    def forward(self, x, training=False):
        """Return ``(y, cache)``."""
        raise NotImplementedError

    def backward(self, dy, cache):
        """Return a ``Backward(dx, grads)``, ``grads`` aligned with ``trainable_variables``."""
        raise NotImplementedError

    def update_state(self, cache):
        """Apply the non-gradient state change a training forward computed (default: none)."""

    def __call__(self, x, training=False):
        x = as_floatx(backend.to_device(x))
        self.ensure_built(x.shape)
        y, cache = self.forward(x, training=training)
        if training:
            self.update_state(cache)
        return y

    # -- serialization ---------------------------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def count_params(self):
        total = 0
        for v in self.variables:
            n = 1
            for s in v.shape:
                n *= s
            total += n
        return total


def clear_session():
    """Forget the automatic layer names given so far (Keras's ``clear_session``): the next ``LSTM()`` is ``lstm``
    again, as in a fresh Python process."""
    Layer._counts.clear()


def as_floatx(x):
    """Float input in the working precision (Keras casts a layer's float input to its dtype); ints stay ints."""
    if x.dtype.kind == "f" and x.dtype != backend.floatx():
        return x.astype(backend.floatx())
    return x


def _snake_case(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _fmt(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"
