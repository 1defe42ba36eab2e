"""Weight initializers with Keras's names and formulas.

Values are drawn with the host generator from ``backend.init_rng`` (the same seed gives the same weights on either
device) and cast to ``floatx``. They are not Keras's values: Keras's depend on its backend RNG, so parity tests
copy weights instead of re-deriving them.
"""
import numpy

from . import backend


class Initializer:
    name = None

    def __call__(self, shape, dtype=None):
        values = self.draw(tuple(shape), backend.init_rng())
        return numpy.ascontiguousarray(values, dtype=dtype or backend.floatx())

    def get_config(self):
        return {"class_name": type(self).__name__, "config": {}}


class Zeros(Initializer):
    def draw(self, shape, rng):
        return numpy.zeros(shape)


class Ones(Initializer):
    def draw(self, shape, rng):
        return numpy.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def draw(self, shape, rng):
        return numpy.full(shape, self.value)

    def get_config(self):
        return {"class_name": "Constant", "config": {"value": self.value}}


class GlorotUniform(Initializer):
    """U(-L, L) with L = sqrt(6 / (fan_in + fan_out)) over the whole matrix (for LSTM: fan_out = 4H)."""

    def draw(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        limit = numpy.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)


class Orthogonal(Initializer):
    """Keras's orthogonal: QR of a normal matrix, signs fixed by diag(R), on the whole (H, k*H) matrix."""

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def draw(self, shape, rng):
        rows = int(numpy.prod(shape[:-1]))
        cols = shape[-1]
        flat = rng.normal(size=(max(rows, cols), min(rows, cols)))
        q, r = numpy.linalg.qr(flat)
        q *= numpy.sign(numpy.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"class_name": "Orthogonal", "config": {"gain": self.gain}}


class RandomUniform(Initializer):
    """Keras's Embedding default: U(-0.05, 0.05)."""

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def draw(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"class_name": "RandomUniform", "config": {"minval": self.minval, "maxval": self.maxval}}


def _fans(shape):
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(numpy.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


NAMED = {
    "zeros": Zeros, "ones": Ones, "glorot_uniform": GlorotUniform, "orthogonal": Orthogonal,
    "uniform": RandomUniform, "random_uniform": RandomUniform,
}
CLASSES = {cls.__name__: cls for cls in (Zeros, Ones, Constant, GlorotUniform, Orthogonal, RandomUniform)}


def get(identifier):
    """An initializer from a name ('glorot_uniform', 'orthogonal', 'zeros', 'ones'), an instance, or a config."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        cls = CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"unknown initializer config {identifier!r}")
        return cls(**identifier.get("config", {}))
    if isinstance(identifier, str) and identifier in NAMED:
        return NAMED[identifier]()
    raise ValueError(f"unknown initializer {identifier!r}; expected one of {sorted(NAMED)} or an Initializer")


def serialize(initializer):
    return initializer.get_config()
