"""ConditionedEmbedding: a token embedding with a condition (style, tempo, ...) beside it at every step.

A conditional language model predicts p(x_t | x_<t, c): the condition c (a piece's style, its tempo bin, beat or
fill) is fed to the recurrent stack at every step, next to the token. Each label of the condition has its own
small table C^k, and its row is concatenated to the token's embedding (and, as in StepCounterEmbedding, to the
bar-position counters when the input carries grid steps). The label ids ride as extra integer columns of the input,
so the layer fits ``Sequential`` and the rest of the model is unchanged:

    x[b, t] = [token, (step,) l_1, ..., l_K]            (integers)
    y[b, t] = [ E[token] | c(step) | C_1[l_1] | ... | C_K[l_K] ]

Backward: each table is a scatter-add of its slice of dy, as Embedding's (docs/embedding.md):
    dC_k[j] = sum of dy[b, t, slice_k] over the positions where l_k[b, t] == j
A label held for a whole piece therefore collects the sum over the piece's steps of the gradient that reaches it.
Integer input gets no gradient.

Label dropout (``label_dropout`` = p, training only): each sample's label of each kind is replaced, for all the
steps of its window, by that kind's ``unknown`` id (the last row of its table, music/labels.py's convention) with
probability p, drawn from the library's mask RNG as Dropout's masks are:
    l_k[b, :] <- U_k - 1   if  u[b, k] < p,   u ~ Uniform[0, 1)   (U_k: the size of table k)
so the model cannot lean on the label alone, and the ``unknown`` row learns what a piece without flags sounds
like. The backward scatters into the rows the forward read (the ids in its cache). See docs/conditioning.md.
"""
from collections import namedtuple

from .. import arguments, backend
from .base import Backward, Layer

ConditionedCache = namedtuple("ConditionedCache", "tokens labels")


class ConditionedEmbedding(Layer):
    """x: (B, T, 1 + S + K) int [token, step if counter_bits is not None, K label ids] -> y: (B, T, D + bits + sum D_k).

    ``conditions``: one ``(name, input_dim, output_dim)`` per label column, in the input's order: the label's
    vocabulary size and the width of its embedding; its last id is its ``unknown`` label. Weights: embeddings
    (V, D), then ``<name>_embeddings`` (input_dim_k, output_dim_k) per condition. ``label_dropout``: in training,
    the probability that a sample's label of each kind reads as ``unknown`` for the whole window.
    """

    def __init__(self, input_dim, output_dim, conditions, counter_bits=None, embeddings_initializer="uniform",
                 label_dropout=0.0, name=None):
        super().__init__(name)
        self.input_dim = arguments.integer("ConditionedEmbedding: input_dim", input_dim, minimum=1)
        self.output_dim = arguments.integer("ConditionedEmbedding: output_dim", output_dim, minimum=1)
        if counter_bits is not None:
            counter_bits = arguments.integer("ConditionedEmbedding: counter_bits", counter_bits, minimum=0,
                                             maximum=62)
        self.counter_bits = counter_bits
        self.conditions = [checked_condition(entry) for entry in conditions]
        if not self.conditions:
            raise ValueError("ConditionedEmbedding: conditions must name at least one label (name, input_dim, "
                             "output_dim); without one, use Embedding or StepCounterEmbedding")
        self.embeddings_initializer = embeddings_initializer
        self.label_dropout = float(arguments.real("ConditionedEmbedding: label_dropout", label_dropout, minimum=0,
                                                  below=1))  # 1 would never tell the model a label

    @property
    def label_column(self):
        """The first label column of x: after the token, and the step when the counters are on."""
        return 1 if self.counter_bits is None else 2

    def build(self, input_shape):
        self.E = self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer)
        self.C = [self.add_weight(f"{name}_embeddings", (size, dim), self.embeddings_initializer)
                  for name, size, dim in self.conditions]
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        width = self.output_dim + (self.counter_bits or 0) + sum(dim for _, _, dim in self.conditions)
        return tuple(input_shape[:-1]) + (width,)

    def forward(self, x, training=False):
        xp = backend.array_module(x)
        columns = self.label_column + len(self.conditions)
        if x.ndim != 3 or x.shape[-1] != columns or x.dtype.kind not in "iu":
            names = ["token"] + (["step"] if self.counter_bits is not None else []) + [n for n, _, _ in self.conditions]
            raise ValueError(f"layer {self.name!r} (ConditionedEmbedding): expected integer input of shape "
                             f"(batch, T, {columns}) = [{', '.join(names)}], received {tuple(x.shape)} {x.dtype}")
        tokens, labels = x[..., 0], x[..., self.label_column:]
        self.check_ids("token", tokens, self.input_dim)
        for k, (name, size, _) in enumerate(self.conditions):
            self.check_ids(name, labels[..., k], size)
        if training and self.label_dropout > 0:
            labels = self.dropped_labels(labels)
        parts = [self.E.value[tokens]]
        if self.counter_bits is not None:
            # StepCounterEmbedding's counters: mod 2^bits first, so START's step -1 reads as the last step of a cycle
            cycle = x[..., 1] % (1 << self.counter_bits)
            bits = (cycle[..., None] >> xp.arange(self.counter_bits)) & 1
            parts.append((2 * bits - 1).astype(self.E.value.dtype))
        parts += [C.value[labels[..., k]] for k, C in enumerate(self.C)]
        return xp.concatenate(parts, axis=-1), ConditionedCache(tokens, labels)

    def backward(self, dy, cache):
        xp = backend.array_module(dy)
        dE = xp.zeros_like(self.E.value)
        backend.scatter_add(dE, cache.tokens.reshape(-1), dy[..., :self.output_dim].reshape(-1, self.output_dim))
        grads = [dE]
        offset = self.output_dim + (self.counter_bits or 0)  # the counters have no weights
        for k, (_, _, dim) in enumerate(self.conditions):
            # a label held over a piece sums the gradients of all its steps: dC_k[j] = sum_{l_k[b,t] = j} dy[b, t, k]
            dC = xp.zeros_like(self.C[k].value)
            backend.scatter_add(dC, cache.labels[..., k].reshape(-1), dy[..., offset:offset + dim].reshape(-1, dim))
            grads.append(dC)
            offset += dim
        return Backward(None, grads)

    def dropped_labels(self, labels):
        """labels (B, T, K) with each sample's label k set to unknown (the last id) with probability label_dropout,
        one draw per sample and kind: a window is told its label at every step or at none."""
        xp = backend.array_module(labels)
        unknown = xp.asarray([size - 1 for _, size, _ in self.conditions], dtype=labels.dtype)
        dropped = backend.mask_rng().random(labels.shape[:1] + labels.shape[2:]) < self.label_dropout  # (B, K)
        return xp.where(dropped[:, None, :], unknown, labels)

    def check_ids(self, what, ids, size):
        if ids.size:
            low, high = backend.value_range(ids)   # one host read of both bounds (a sync on the GPU)
            if low < 0 or high >= size:
                raise ValueError(f"layer {self.name!r} (ConditionedEmbedding): {what} ids must be in [0, {size}), "
                                 f"received min {low}, max {high}")

    def get_config(self):
        return {"name": self.name, "input_dim": self.input_dim, "output_dim": self.output_dim,
                "conditions": [list(entry) for entry in self.conditions], "counter_bits": self.counter_bits,
                "label_dropout": self.label_dropout}


def checked_condition(entry):
    """(name, input_dim, output_dim) of one label, each checked; ValueError naming the label."""
    if not isinstance(entry, (list, tuple)) or len(entry) != 3 or not isinstance(entry[0], str) or not entry[0]:
        raise ValueError(f"ConditionedEmbedding: each condition is (name, input_dim, output_dim), got {entry!r}")
    name, size, dim = entry
    return (name, arguments.integer(f"ConditionedEmbedding: {name} input_dim", size, minimum=1),
            arguments.integer(f"ConditionedEmbedding: {name} output_dim", dim, minimum=1))
