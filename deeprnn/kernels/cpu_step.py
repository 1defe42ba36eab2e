"""One generated token through a whole served model, fused for NumPy on the CPU: every layer's step and the sampler.

The model is the drums and groove recipes' stack, with probabilities out (``pipeline/stepping.py``):

    x_t = [E[token] | c(step) | C_1[l_1] | ... | C_K[l_K]]  ->  [RNN -> Dropout] x N  ->  Dense  ->  softmax

Carrying the state, a token costs one step of every layer on a batch of one. The stateful twin (the reference,
``stepping.stateful_twin``) runs each layer's own forward on a (1, 1, ...) input: its checks, its input projection,
its kernel's bookkeeping, about 60 small NumPy calls per token, most of them costing more than their arithmetic.
This module computes the same step (the equations of ``LSTM.step_forward``, ``GRU.step_forward`` with
``reset_after=True``, ``SimpleRNN.step_forward``, Dense, softmax) in about 25 calls. What is arranged differently,
and why:

- The embedding and the first layer's input projection are one table. x_t W_1 + b_1 splits by the rows of W_1 into
  E[token] W_E + c(step) W_c + sum_k C_k[l_k] W_k + b_1; the labels are fixed for a generation, so
      T = E W_E + sum_k C_k[l_k] W_k + b_1   (V, G*H),      Q = c(s) W_c for the 2^bits steps of the counter's cycle
  and the first layer's input term is the row T[token] (+ Q[step mod 2^bits]): no product, no concatenation.
- Every h lives in one vector S = [h_1 | h_2 | ... | h_N | 1]. Layer l > 1 multiplies the slice [h_{l-1} | h_l]
  of S by [W_l; U_l], stacked once: one product for x_t W + h_{t-1} U. The last layer's slice reaches the 1, so its
  bias is the last row of [W_N; U_N; b_N]; the head's slice is [h_N | 1] and its bias the last row of [W_d; b_d].
  Each layer writes its new h_l in place, so layer l + 1 reads the new h_l beside its own previous h_{l+1}: which
  is what one step of the stack is.
- The LSTM's gates in the order [i | f | o | g] (Keras stores [i | f | c | o]) and the GRU's as
  [z | r | x_h | h_h] (its candidate needs x_h and r * h_h apart: reset_after), the sigmoid gates' columns halved:
  sigmoid(z) = (1 + tanh(z / 2)) / 2 (cpu_lstm.py's trick; exact scaling), so one tanh covers every gate.
- The sampler reads the logits (``draw``): an additive mask puts -inf on forbidden tokens, then 1/T, the top k,
  w = exp(l - max), proportional to the p^(1/T) that ``choose_token`` samples, and the token is the first whose
  cumulative weight exceeds u times the total, u the same one uniform draw. The distributions themselves are only
  wanted afterwards: the logits of every token are kept and the softmax is one call over all of them (``softmax``).
- Nothing is allocated per token: every buffer is made once and every call writes with ``out=``.

Pure functions of arrays and one class that holds them (``StackStep``): the pipeline (``stepping.fused_step``) reads
a model's layers, decides whether this step computes them, and hands over arrays in Keras's layouts.
"""
from collections import namedtuple

import numpy

NAME = "cpu_step"
CELLS = ("lstm", "gru", "simple_rnn")
# Keras's LSTM blocks are [i, f, c, o]; the step's are [i, f, o, g]: block k is Keras's block LSTM_ORDER[k]
LSTM_ORDER = [0, 1, 3, 2]
# the counter's cycle is a table of 2^bits rows: 256 rows of G*H floats at most (Magenta's drums use 6 bits)
MAX_COUNTER_BITS = 8

# one recurrent layer as Keras stores it: cell in CELLS, W (D, G*H), U (H, G*H), b_in and b_rec None or (G*H,)
# (b_rec is the GRU's recurrent bias of reset_after=True, else None)
KerasCell = namedtuple("KerasCell", "cell W U b_in b_rec")


# -- layouts ---------------------------------------------------------------------------------------------------------
def step_columns(layer):
    """A KerasCell's (W, U, b) in the step's column layout, sigmoid columns halved, float64.

    LSTM: [i | f | o | g], 4H columns. GRU (reset_after=True): [z | r | x_h | h_h], 4H columns:
    W -> [W_z | W_r | W_h | 0], U -> [U_z | U_r | 0 | U_h], b -> [b_z + b'_z | b_r + b'_r | b_h | b'_h] with b' the
    recurrent bias, so z and r see x W + h U + both biases and the candidate's two products stay apart. SimpleRNN:
    as stored, H columns.
    """
    cell, W, U = layer.cell, numpy.asarray(layer.W, numpy.float64), numpy.asarray(layer.U, numpy.float64)
    H = U.shape[0]
    G = U.shape[1] // H
    b_in = numpy.zeros(G * H) if layer.b_in is None else numpy.asarray(layer.b_in, numpy.float64)
    b_rec = numpy.zeros(G * H) if layer.b_rec is None else numpy.asarray(layer.b_rec, numpy.float64)
    if cell == "simple_rnn":
        return W, U, b_in
    if cell == "lstm":
        def arranged(M):
            return M.reshape(len(M), 4, H)[:, LSTM_ORDER].reshape(len(M), 4 * H)
        W, U, b = arranged(W), arranged(U), arranged(b_in[None])[0]
    else:  # gru
        zeros = numpy.zeros((len(W), H)), numpy.zeros((H, H))
        W = numpy.concatenate([W, zeros[0]], axis=1)
        U = numpy.concatenate([U[:, :2 * H], zeros[1], U[:, 2 * H:]], axis=1)
        b = numpy.concatenate([b_in[:2 * H] + b_rec[:2 * H], b_in[2 * H:], b_rec[2 * H:]])
    halves = numpy.ones(4 * H)
    halves[:3 * H if cell == "lstm" else 2 * H] = 0.5
    return W * halves, U * halves, b * halves


def counters(bits):
    """c(s) for s = 0 .. 2^bits - 1: (2^bits, bits), c_k(s) = +1 if bit k of s is set, else -1
    (``StepCounterEmbedding``'s features)."""
    cycle = numpy.arange(1 << bits)
    return 2.0 * ((cycle[:, None] >> numpy.arange(bits)) & 1) - 1.0


# -- one step of each cell, in place ---------------------------------------------------------------------------------
def lstm_step(z, c, h, half):
    """z: (4H,) = x_t W + h_{t-1} U + b in [i | f | o | g], sigmoid columns halved; c: (H,) c_{t-1}, becomes c_t;
    h: (H,) receives h_t. z is overwritten."""
    H = c.shape[0]
    numpy.tanh(z, out=z)
    sig = z[:3 * H]                                  # i, f, o = (1 + tanh(z / 2)) / 2
    numpy.multiply(sig, half, out=sig)
    numpy.add(sig, half, out=sig)
    i, f, o, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
    numpy.multiply(f, c, out=c)                      # c = f * c_prev + i * g
    numpy.multiply(i, g, out=g)
    numpy.add(c, g, out=c)
    numpy.tanh(c, out=g)                             # h = o * tanh(c)
    numpy.multiply(o, g, out=h)


def gru_step(z, h, half):
    """z: (4H,) in [z | r | x_h | h_h] (see ``step_columns``), z and r halved; h: (H,) h_{t-1}, becomes h_t."""
    H = h.shape[0]
    gates = z[:2 * H]
    numpy.tanh(gates, out=gates)                     # z, r = sigmoid(x_z + h_z), sigmoid(x_r + h_r)
    numpy.multiply(gates, half, out=gates)
    numpy.add(gates, half, out=gates)
    update, reset, x_h, h_h = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
    numpy.multiply(reset, h_h, out=h_h)              # n = tanh(x_h + r * h_h)
    numpy.add(x_h, h_h, out=x_h)
    n = numpy.tanh(x_h, out=x_h)
    numpy.subtract(h, n, out=h_h)                    # h = z * h_prev + (1 - z) * n = n + z * (h_prev - n)
    numpy.multiply(update, h_h, out=h_h)
    numpy.add(n, h_h, out=h)


def simple_rnn_step(z, h):
    """z: (H,) = x_t W + h_{t-1} U + b; h receives tanh(z)."""
    numpy.tanh(z, out=h)


# -- the sampler -----------------------------------------------------------------------------------------------------
def forbidding_mask(forbidden, V):
    """(V,) float64: -inf at the ``forbidden`` token ids, 0 elsewhere; added to the logits, a token never drawn."""
    mask = numpy.zeros(V)
    mask[list(forbidden)] = -numpy.inf
    return mask


def draw(logits, mask, u, inverse_temperature=1.0, top_k=None, work=None):
    """The token ``choose_token`` takes from softmax(logits) with the tokens of ``mask`` forbidden.

    logits: (V,); mask: (V,) from ``forbidding_mask``; u: the uniform draw in [0, 1), or None for greedy (argmax);
    work: None or two (V,) float64 buffers. p^(1/T) is proportional to exp((l - max) / T): the same weights, the
    same rule (the first token whose cumulative weight exceeds u times the total).
    """
    w, cumulative = (numpy.empty(len(logits)), numpy.empty(len(logits))) if work is None else work
    numpy.add(logits, mask, out=w)
    if u is None:
        return int(w.argmax())
    if inverse_temperature != 1:
        numpy.multiply(w, inverse_temperature, out=w)
    if top_k is not None and top_k < len(w):
        cutoff = numpy.partition(w, -top_k)[-top_k]
        numpy.putmask(w, w < cutoff, -numpy.inf)
    numpy.subtract(w, w.max(), out=w)
    numpy.exp(w, out=w)
    numpy.add.accumulate(w, out=cumulative)
    return int(cumulative.searchsorted(u * cumulative[-1], side="right"))


def softmax(logits):
    """(N, V) logits -> (N, V) probabilities, one pass over all the generated tokens."""
    e = numpy.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- the stack -------------------------------------------------------------------------------------------------------
class StackStep:
    """The served model's step for one token, state carried: ``step(token, step) -> logits``.

    embeddings: E (V, D_E); counter_bits: None or the bar-position counter's bits (<= MAX_COUNTER_BITS); labels:
    None or the fixed label embeddings sum concatenated, [C_1[l_1] | ... | C_K[l_K]] (D_L,); layers: KerasCells, the
    first taking x_t = [E[token] | c(step) | labels] (its W has D_E + bits + D_L rows); head: W_d (H_N, V) and b_d
    (V,) or None, the logits (the softmax is the sampler's and ``softmax``'s). dtype: the buffers' (the model's).
    """

    def __init__(self, embeddings, counter_bits, labels, layers, head, dtype=numpy.float32):
        head_W, head_b = head
        self.dtype = numpy.dtype(dtype)
        self.cells = [layer.cell for layer in layers]
        self.units = [layer.U.shape[0] for layer in layers]
        self.bits = counter_bits
        self.half = numpy.array(0.5, self.dtype)
        columns = [step_columns(layer) for layer in layers]

        # T = E W_E + labels W_L + b_1 and Q = c(s) W_c: the first layer's input term as rows (float64, then cast)
        W1, _, b1 = columns[0]
        D_E, bits = embeddings.shape[1], counter_bits or 0
        table = numpy.asarray(embeddings, numpy.float64) @ W1[:D_E] + b1
        if labels is not None:
            table += numpy.asarray(labels, numpy.float64) @ W1[D_E + bits:]
        self.table = table.astype(self.dtype)
        self.counter_table = None if not bits else (counters(bits) @ W1[D_E:D_E + bits]).astype(self.dtype)

        # S = [h_1 | ... | h_N | 1]; layer l > 1 reads S[start_{l-1} : end_l] (the last one through the 1)
        ends = numpy.cumsum(self.units).tolist()
        starts = [0] + ends[:-1]
        self.S = numpy.zeros(ends[-1] + 1, self.dtype)
        self.S[-1] = 1.0
        self.h = [self.S[start:end] for start, end in zip(starts, ends)]
        self.inputs, self.products = [self.h[0]], [columns[0][1]]
        for l in range(1, len(layers)):
            W, U, b = columns[l]
            last = l == len(layers) - 1
            self.inputs.append(self.S[starts[l - 1]:ends[l] + int(last)])
            self.products.append(numpy.concatenate([W, U] + ([b[None]] if last else [])))
        self.products = [numpy.ascontiguousarray(M, self.dtype) for M in self.products]
        # the bias of a middle layer (neither the first, in the table, nor the last, in its product)
        self.biases = [None] + [columns[l][2].astype(self.dtype) for l in range(1, len(layers) - 1)] + [None]
        self.biases = self.biases[:len(layers)]
        self.z = [numpy.empty(M.shape[1], self.dtype) for M in self.products]
        self.c = [numpy.zeros(H, self.dtype) if cell == "lstm" else None for cell, H in zip(self.cells, self.units)]
        V = head_W.shape[1]
        head_b = numpy.zeros(V) if head_b is None else head_b
        self.head_input = self.S[starts[-1]:]
        self.head = numpy.ascontiguousarray(numpy.concatenate([head_W, numpy.asarray(head_b)[None]]), self.dtype)
        self.vocab_size = V

    def set_state(self, states):
        """states: per layer, (h,) or (h, c) of a batch of one, e.g. a stateful twin's after the primer."""
        for l, state in enumerate(states):
            self.h[l][:] = numpy.asarray(state[0]).reshape(-1)
            if self.c[l] is not None:
                self.c[l][:] = numpy.asarray(state[1]).reshape(-1)

    def logits(self, out):
        """The head on the current h_N: out (V,) = [h_N | 1] [W_d; b_d]."""
        return numpy.matmul(self.head_input, self.head, out=out)

    def step(self, token, step, out):
        """Feed ``token`` (at grid ``step``, read when the model has counters): every layer's state advances one
        step and out (V,) receives the logits of the next token."""
        z = self.z[0]
        numpy.matmul(self.h[0], self.products[0], out=z)          # h_{t-1} U_1
        numpy.add(z, self.table[token], out=z)                      # + x_t W_1 + b_1, a row
        if self.counter_table is not None:
            numpy.add(z, self.counter_table[step % (1 << self.bits)], out=z)
        for l, cell in enumerate(self.cells):
            if l:
                z = self.z[l]
                numpy.matmul(self.inputs[l], self.products[l], out=z)   # [h_{l-1} | h_l (| 1)] [W; U (; b)]
                if self.biases[l] is not None:
                    numpy.add(z, self.biases[l], out=z)
            if cell == "lstm":
                lstm_step(z, self.c[l], self.h[l], self.half)
            elif cell == "gru":
                gru_step(z, self.h[l], self.half)
            else:
                simple_rnn_step(z, self.h[l])
        return self.logits(out)
