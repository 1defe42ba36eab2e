"""Dense, Activation (softmax included) and Input: the feed-forward pieces of the tutorial's head.

Dense:      z = x W + b,  y = act(z)
backward:   dz = dy * act'(z),  dW = x^T dz,  db = sum_n dz,  dx = dz W^T
Softmax:    y = exp(z - max z) / sum exp(z - max z)  over the last axis
backward:   dz = y * (dy - sum_k dy_k y_k)     (the Jacobian-vector product, never the Jacobian)
See docs/dense-and-activations.md and docs/softmax-cross-entropy.md.
"""
from collections import namedtuple

from .. import activations, arguments
from ..backend import array_module
from ..kernels.sharded import rows_product, summed_product
from .base import Backward, Layer

DenseCache = namedtuple("DenseCache", "x z y")
ActivationCache = namedtuple("ActivationCache", "z y")

ACTIVATION_NAMES = ("relu", "softmax", "tanh", "sigmoid", "linear")


def softmax(z):
    xp = array_module(z)
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dy, y):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def check_activation_name(name):
    if name is not None and name not in ACTIVATION_NAMES:
        raise ValueError(f"unknown activation {name!r}; expected one of {list(ACTIVATION_NAMES)}")
    return name


def activation_forward(name, z):
    if name == "softmax":
        return softmax(z)
    return activations.get(name)(z)


def activation_backward(name, dy, z, y):
    if name == "softmax":
        return softmax_backward(dy, y)
    if name in (None, "linear"):
        return dy
    return dy * activations.get(name).derivative(z, y)


class Dense(Layer):
    """Fully connected layer on the last axis. x: (..., D) -> y: (..., units); W: (D, units), b: (units,)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", name=None):
        super().__init__(name)
        self.units = arguments.integer("Dense: units", units, minimum=1)
        self.activation = check_activation_name(activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"layer {self.name!r} (Dense): expected input of rank >= 2, received {tuple(input_shape)}")
        self.W = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        self.b = self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=False):
        if x.ndim < 2 or x.shape[-1] != self.W.shape[0]:
            self.check_input_shape(x.shape, max(x.ndim, 2), self.W.shape[0])
        # x W as one product over all leading axes (B*T rows for a sequence), by rows in the batch shards under
        # dr.set_num_threads(n) (kernels/sharded.py)
        z = rows_product(x.reshape(-1, x.shape[-1]), self.W.value).reshape(x.shape[:-1] + (self.units,))
        if self.use_bias:
            z = z + self.b.value
        y = activation_forward(self.activation, z)
        return y, DenseCache(x, z, y)

    def backward(self, dy, cache):
        dz = activation_backward(self.activation, dy, cache.z, cache.y)
        x2 = cache.x.reshape(-1, cache.x.shape[-1])
        dz2 = dz.reshape(-1, self.units)
        dW = summed_product(x2, dz2)          # x2.T @ dz2
        # one product over all B*T rows: dz @ W.T on a 3-D dz runs one product per sample (the drums head's dx,
        # (32, 64, 515) @ (515, 256): 7.6 ms against 5.6 ms as one (2048, 515) @ (515, 256) product, one thread)
        dx = rows_product(dz2, self.W.value.T).reshape(dz.shape[:-1] + (self.W.shape[0],))   # dz2 @ W.T
        grads = [dW, dz2.sum(axis=0)] if self.use_bias else [dW]
        return Backward(dx, grads)

    def get_config(self):
        return {"name": self.name, "units": self.units, "activation": self.activation, "use_bias": self.use_bias}


class Activation(Layer):
    """An activation as its own layer: relu, softmax (last axis), tanh, sigmoid, linear."""

    def __init__(self, activation, name=None):
        super().__init__(name)
        self.activation = check_activation_name(activation)

    def forward(self, x, training=False):
        y = activation_forward(self.activation, x)
        return y, ActivationCache(x, y)

    def backward(self, dy, cache):
        return Backward(activation_backward(self.activation, dy, cache.z, cache.y), [])

    def get_config(self):
        return {"name": self.name, "activation": self.activation}


class Input:
    """Declares the per-sample input shape of a Sequential model (``batch_shape`` for stateful RNNs).

    Not a layer with weights: ``Sequential`` reads its shape to build every layer before the first batch.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
            shape = batch_shape[1:]
            batch_size = batch_shape[0]
        if shape is None:
            raise ValueError("Input: give shape=(...) (per sample) or batch_shape=(batch, ...)")
        self.shape = tuple(shape)
        self.batch_size = batch_size
        self.dtype = dtype
        self.name = name or "input"

    @property
    def batch_shape(self):
        return (self.batch_size,) + self.shape

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(batch_shape=config["batch_shape"], dtype=config.get("dtype"), name=config.get("name"))
