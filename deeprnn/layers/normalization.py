"""BatchNormalization over the last axis, with Keras's defaults and moving-statistics update.

Training:   mu = mean_n x,  var = mean_n (x - mu)^2 (biased),  x_hat = (x - mu) / sqrt(var + eps),
            y = gamma * x_hat + beta;  afterwards  m_mu <- momentum m_mu + (1 - momentum) mu  (same for var).
Backward:   dx = (1 / (N sigma)) (N dx_hat - sum_n dx_hat - x_hat sum_n dx_hat x_hat),  dx_hat = dy * gamma
Inference:  y = gamma * (x - m_mu) / sqrt(m_var + eps) + beta
See docs/batch-normalization.md.
"""
from collections import namedtuple

from .. import arguments
from .base import Backward, Layer

BatchNormCache = namedtuple("BatchNormCache", "x_hat inv_std count mean var training")


class BatchNormalization(Layer):
    """x: (..., F) -> y: same shape. Weights, in Keras's order: gamma, beta, moving_mean, moving_variance (F,)."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, name=None):
        super().__init__(name)
        if axis not in (-1,):
            raise ValueError("BatchNormalization: only axis=-1 (the feature axis) is supported")
        self.axis = axis
        self.momentum = float(arguments.real("BatchNormalization: momentum", momentum, minimum=0, maximum=1))
        self.epsilon = float(arguments.real("BatchNormalization: epsilon", epsilon, above=0))
        self.center, self.scale = center, scale

    def build(self, input_shape):
        features = input_shape[-1]
        self.gamma = self.add_weight("gamma", (features,), "ones") if self.scale else None
        self.beta = self.add_weight("beta", (features,), "zeros") if self.center else None
        self.moving_mean = self.add_weight("moving_mean", (features,), "zeros", trainable=False)
        self.moving_variance = self.add_weight("moving_variance", (features,), "ones", trainable=False)
        super().build(input_shape)

    def forward(self, x, training=False):
        features = self.moving_mean.shape[0]
        if x.ndim < 2 or x.shape[-1] != features:
            self.check_input_shape(x.shape, max(x.ndim, 2), features)
        axes = tuple(range(x.ndim - 1))
        count = x.size // features
        if training:
            mean = x.mean(axis=axes)
            centered = x - mean
            var = (centered * centered).mean(axis=axes)
        else:
            mean, var = self.moving_mean.value, self.moving_variance.value
            centered = x - mean
        inv_std = 1 / (var + x.dtype.type(self.epsilon)) ** 0.5
        x_hat = centered * inv_std
        y = x_hat
        if self.scale:
            y = y * self.gamma.value
        if self.center:
            y = y + self.beta.value
        return y, BatchNormCache(x_hat, inv_std, count, mean, var, training)

    def backward(self, dy, cache):
        axes = tuple(range(dy.ndim - 1))
        grads = []
        dx_hat = dy
        if self.scale:
            grads.append((dy * cache.x_hat).sum(axis=axes))
            dx_hat = dy * self.gamma.value
        if self.center:
            grads.append(dy.sum(axis=axes))
        if cache.training:
            n = cache.count
            dx = (cache.inv_std / n) * (n * dx_hat - dx_hat.sum(axis=axes)
                                        - cache.x_hat * (dx_hat * cache.x_hat).sum(axis=axes))
        else:
            dx = dx_hat * cache.inv_std
        return Backward(dx, grads)

    def update_state(self, cache):
        if not cache.training:
            return
        m = self.momentum
        self.moving_mean.value = self.moving_mean.value * m + cache.mean * (1 - m)
        self.moving_variance.value = self.moving_variance.value * m + cache.var * (1 - m)

    def get_config(self):
        return {"name": self.name, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}
