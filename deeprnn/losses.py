"""Cross-entropy losses on probabilities, with Keras's clipping, as forward/backward pairs.

categorical:  q = p / sum_k p_k,   l_b = -sum_k t_k log(clip(q_k, eps, 1 - eps)),   L = mean_b l_b
backward:     g_k = -t_k / q_k where q_k is inside the clip (0 where clipped),
              dL/dp_k = (g_k - sum_j g_j q_j) / (S B)          (S = sum_k p_k: the renormalisation's Jacobian)
Through a softmax this collapses to (p - t) / B; we keep the general form so the gradient is exact even where
Keras's clip is active. Sparse: t is the one-hot of an integer label. See docs/softmax-cross-entropy.md.
"""
from collections import namedtuple

from .backend import array_module, value_range

EPSILON = 1e-7  # keras.config.epsilon()

LossCache = namedtuple("LossCache", "targets q total inside")


def one_hot(labels, classes, dtype):
    xp = array_module(labels)
    return (labels.astype("int64")[..., None] == xp.arange(classes)).astype(dtype)


class CategoricalCrossentropy:
    name = "categorical_crossentropy"

    def targets(self, y_true, y_pred):
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ValueError(f"categorical_crossentropy: targets of shape {tuple(y_true.shape)} do not match "
                             f"predictions of shape {tuple(y_pred.shape)} (one-hot targets expected; use "
                             "sparse_categorical_crossentropy for integer labels)")
        return y_true.astype(y_pred.dtype, copy=False)

    def forward(self, y_true, y_pred):
        """y_true, y_pred: (B, V) (or (B, T, V)). Returns (mean loss, cache)."""
        xp = array_module(y_pred)
        t = self.targets(y_true, y_pred)
        total = y_pred.sum(axis=-1, keepdims=True)
        q = y_pred / total
        eps = y_pred.dtype.type(EPSILON)
        clipped = xp.clip(q, eps, 1 - eps)
        per_sample = -(t * xp.log(clipped)).sum(axis=-1)
        inside = (q > eps) & (q < 1 - eps)
        return per_sample.mean(), LossCache(t, q, total, inside)

    def backward(self, cache):
        """dL/dy_pred, same shape as y_pred."""
        xp = array_module(cache.q)
        count = cache.q.size // cache.q.shape[-1]
        g = xp.where(cache.inside, -cache.targets / xp.where(cache.inside, cache.q, 1), 0)
        return (g - (g * cache.q).sum(axis=-1, keepdims=True)) / (cache.total * count)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    name = "sparse_categorical_crossentropy"

    def targets(self, y_true, y_pred):
        xp = array_module(y_pred)
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        if tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
            raise ValueError(f"sparse_categorical_crossentropy: labels of shape {tuple(y_true.shape)} do not match "
                             f"predictions of shape {tuple(y_pred.shape)} (expected {tuple(y_pred.shape[:-1])})")
        labels = xp.asarray(y_true)
        V = y_pred.shape[-1]
        if labels.size:
            low, high = (int(v) for v in value_range(labels))   # one host read of both bounds (a sync on the GPU)
            if low < 0 or high >= V:
                raise ValueError(f"sparse_categorical_crossentropy: labels must be in [0, {V}), "
                                 f"received min {low}, max {high}")
        return one_hot(labels, V, y_pred.dtype)


LOSSES = {"categorical_crossentropy": CategoricalCrossentropy,
          "sparse_categorical_crossentropy": SparseCategoricalCrossentropy}


def get(identifier):
    if isinstance(identifier, CategoricalCrossentropy):
        return identifier
    if identifier not in LOSSES:
        raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[identifier]()
