"""Element-wise activations, each with the derivative its backward pass needs.

``derivative(z, y)`` gets both the input ``z`` and the output ``y = f(z)`` because the cheap form differs:
tanh' = 1 - y^2 and sigmoid' = y (1 - y) reuse the output, relu' needs the input's sign.
Softmax is not element-wise; it lives in ``layers.core.Activation``.
"""
import numpy
from scipy.special import expit

from .backend import array_module


def sigmoid(z):
    xp = array_module(z)
    if xp is numpy:
        # SciPy's logistic ufunc: stable for any z (as the form below), one pass, no temporaries, float32 kept
        return expit(z)
    # exp of a negative magnitude only, so neither branch overflows in float32
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def tanh(z):
    return array_module(z).tanh(z)


def relu(z):
    return array_module(z).maximum(z, 0)


def linear(z):
    return z


def d_sigmoid(z, y):
    return y * (1 - y)


def d_tanh(z, y):
    return 1 - y * y


def d_relu(z, y):
    # Keras: the gradient of relu at exactly 0 is 0
    return (z > 0).astype(z.dtype)


def d_linear(z, y):
    return array_module(z).ones_like(z)


class Activation:
    """A named element-wise function and its derivative."""

    def __init__(self, name, forward, derivative):
        self.name, self.forward, self.derivative = name, forward, derivative

    def __call__(self, z):
        return self.forward(z)


ELEMENTWISE = {
    "sigmoid": Activation("sigmoid", sigmoid, d_sigmoid),
    "tanh": Activation("tanh", tanh, d_tanh),
    "relu": Activation("relu", relu, d_relu),
    "linear": Activation("linear", linear, d_linear),
}


def get(name):
    """Look up an element-wise activation by name (None means linear, as in Keras)."""
    if name is None:
        name = "linear"
    if isinstance(name, Activation):
        return name
    if name not in ELEMENTWISE:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ELEMENTWISE)}")
    return ELEMENTWISE[name]
