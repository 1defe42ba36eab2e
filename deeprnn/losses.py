"""Cross-entropy losses on probabilities, with Keras's clipping, as forward/backward pairs.

A row is one distribution over the V classes: predictions (B, V) have N = B rows, sequence predictions (B, T, V)
have N = B*T (``count`` in the code), and the loss is the mean over all N rows (Keras's "sum_over_batch_size" on
(B, T, V) outputs).

categorical:  q = p / sum_k p_k,   l_n = -sum_k t_k log(clip(q_k, eps, 1 - eps)),   L = mean_n l_n
backward:     g_k = -t_k / q_k where q_k is inside the clip (0 where clipped),
              dL/dp_k = (g_k - sum_j g_j q_j) / (S N)          (S = sum_k p_k: the renormalisation's Jacobian)
Through a softmax this collapses to (p - t) / N; we keep the general form so the gradient is exact even where
Keras's clip is active. Sparse: t is the one-hot of an integer label. See docs/softmax-cross-entropy.md.

With ``from_logits=True`` (Keras's spelling) the loss takes the logits z of a model without its final softmax and
computes softmax and cross-entropy as one, the way Keras's ``log_softmax`` does (no clipping):
              lse = max z + log sum_k exp(z_k - max z),   l_n = sum_k t_k (lse - z_k)
backward:     dL/dz_k = (p_k sum_j t_j - t_k) / N,   p = exp(z - lse)
one pass over the (N, V) logits each way, and no softmax backward: the head of a sequence model (B*T rows of a
large vocabulary) costs a fraction of the probability form. The sparse loss never builds the one-hot.
"""
from collections import namedtuple

from .backend import array_module, value_range

EPSILON = 1e-7  # keras.config.epsilon()

LossCache = namedtuple("LossCache", "targets q total inside")
LogitsCache = namedtuple("LogitsCache", "targets z lse")


def one_hot(labels, classes, dtype):
    xp = array_module(labels)
    return (labels.astype("int64")[..., None] == xp.arange(classes)).astype(dtype)


class CategoricalCrossentropy:
    name = "categorical_crossentropy"

    def __init__(self, from_logits=False):
        if not isinstance(from_logits, bool):
            raise ValueError(f"{self.name}: from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}

    def targets(self, y_true, y_pred):
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ValueError(f"categorical_crossentropy: targets of shape {tuple(y_true.shape)} do not match "
                             f"predictions of shape {tuple(y_pred.shape)} (one-hot targets expected; use "
                             "sparse_categorical_crossentropy for integer labels)")
        return y_true.astype(y_pred.dtype, copy=False)

    def forward(self, y_true, y_pred):
        """y_true, y_pred: (B, V) (or (B, T, V)). Returns (the mean loss over the N rows, cache)."""
        if self.from_logits:
            return self.logits_forward(self.targets(y_true, y_pred), y_pred)
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
        if self.from_logits:
            return self.logits_backward(cache)
        xp = array_module(cache.q)
        count = cache.q.size // cache.q.shape[-1]
        g = xp.where(cache.inside, -cache.targets / xp.where(cache.inside, cache.q, 1), 0)
        return (g - (g * cache.q).sum(axis=-1, keepdims=True)) / (cache.total * count)


    # -- from logits: softmax and cross-entropy as one --------------------------------------------------------------
    @staticmethod
    def log_sum_exp(z):
        """lse (..., 1) = max z + log sum_k exp(z_k - max z): exp never overflows."""
        xp = array_module(z)
        m = z.max(axis=-1, keepdims=True)
        e = xp.subtract(z, m)
        xp.exp(e, out=e)
        return m + xp.log(e.sum(axis=-1, keepdims=True))

    def logits_forward(self, t, z):
        lse = self.log_sum_exp(z)
        per_sample = lse[..., 0] * t.sum(axis=-1) - (t * z).sum(axis=-1)
        return per_sample.mean(), LogitsCache(t, z, lse)

    def logits_backward(self, cache):
        xp = array_module(cache.z)
        count = cache.z.size // cache.z.shape[-1]
        p = xp.subtract(cache.z, cache.lse)
        xp.exp(p, out=p)
        p *= cache.targets.sum(axis=-1, keepdims=True)
        p -= cache.targets
        p /= count
        return p


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    name = "sparse_categorical_crossentropy"

    def logits_forward(self, labels, z):
        """labels: integer (...,), z: (..., V) logits; no one-hot is built."""
        xp = array_module(z)
        lse = self.log_sum_exp(z)
        picked = xp.take_along_axis(z, labels[..., None], axis=-1)
        return (lse - picked).mean(), LogitsCache(labels, z, lse)

    def logits_backward(self, cache):
        """(p - onehot) / N, the one-hot subtracted in place at each row's label."""
        xp = array_module(cache.z)
        V = cache.z.shape[-1]
        count = cache.z.size // V
        p = xp.subtract(cache.z, cache.lse)
        xp.exp(p, out=p)
        rows = p.reshape(-1, V)
        rows[xp.arange(rows.shape[0]), cache.targets.reshape(-1)] -= 1
        p /= count
        return p

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
        if self.from_logits:
            return labels.astype("int64", copy=False)
        return one_hot(labels, V, y_pred.dtype)


LOSSES = {"categorical_crossentropy": CategoricalCrossentropy,
          "sparse_categorical_crossentropy": SparseCategoricalCrossentropy}


def get(identifier):
    """A loss from an instance, a name, or a saved config ``{"name": ..., "from_logits": ...}``."""
    if isinstance(identifier, CategoricalCrossentropy):
        return identifier
    config = dict(identifier) if isinstance(identifier, dict) else {"name": identifier}
    name = config.pop("name", None)
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name](**config)
