"""SimpleRNN's sequence loops fused for NumPy on the CPU: the math of layers/simple_rnn.py, arranged for speed.

The equations are those of ``SimpleRNN.step_forward``/``SimpleRNN.step_backward`` and docs/rnn.md (the reference,
which ``tests/test_fast_paths.py`` holds this kernel to, outputs and every gradient):

    h_t = tanh(x_t W + b + h_{t-1} U)                      forward
    da_t = dh_t (1 - h_t^2);  dh_{t-1} = da_t U^T           backward

What is arranged differently, and why (the ideas of cpu_lstm.py, which has the measurements):
- One gate, so the (B, H) arrays are contiguous as they are: each step is a product written straight into h_t's
  slot of the sequence buffer, then two in-place calls (+ xw_t, tanh).
- No allocation inside the loops: whole-sequence buffers come from the layer's workspace and every step writes into
  them with ``out=``. The input projection (forward) and the weight, bias and input gradients (backward) are
  products over all timesteps, outside the loops.
- The backward's only recurrence-independent factor, tanh' = 1 - h^2 from the outputs, is computed for CHUNK steps
  per call (in ``bptt.backward_steps``, the chunked loop every CPU kernel shares); a step is then dh += dh_out,
  da = dh * factor, dh = da U^T (* mask).
- Recurrent dropout keeps Keras's mask (the layer draws it: (1, B, H), the G = 1 case of the per-gate masks).

A pure function of arrays (see deeprnn/kernels/__init__.py): the layer (``RNN.forward``) projects the inputs, draws
the masks, resolves the initial state and packages the outputs. It takes NumPy float32/float64 arrays of one dtype,
T >= 1; the SimpleRNN decides whether its math is the one computed here (tanh, the reference step).
"""
import functools
from collections import namedtuple

import numpy

from .bptt import backward_steps, recurrent_kernel_gradient, unsupported  # noqa: F401  (unsupported: the claim)

NAME = "cpu_simple_rnn"

# timesteps whose tanh' the backward computes in one go (CHUNK x B x H floats)
CHUNK = 16

SimpleRNNKernelCache = namedtuple("SimpleRNNKernelCache", "hs h_ins recurrent_mask")


def forward(xw, U, initial_state, recurrent_mask, ws):
    """The SimpleRNN's forward loop. xw: (T, B, H) = x_t W + b; U: (H, H); initial_state (h_0,); recurrent_mask:
    None or (1, B, H); ws: a Workspace.

    Returns (hs (T, B, H), (h_T,), cache).
    """
    T, B, H = xw.shape
    dtype = xw.dtype
    (h0,) = initial_state
    mask = None if recurrent_mask is None else recurrent_mask[0]
    hs = ws.empty((T + 1, B, H), dtype)                # hs[t] = h_{t-1}: hs[0] is the initial state
    hs[0] = h0
    h_ins = None if mask is None else ws.empty((T, B, H), dtype)
    for t in range(T):
        if h_ins is None:
            h_in = hs[t]
        else:
            h_in = h_ins[t]
            numpy.multiply(hs[t], mask, out=h_in)
        h = hs[t + 1]
        numpy.matmul(h_in, U, out=h)
        numpy.add(h, xw[t], out=h)
        numpy.tanh(h, out=h)
    return hs[1:], (hs[T].copy(),), SimpleRNNKernelCache(hs, h_ins, recurrent_mask)


def backward(dhs, d_final, cache, U, ws):
    """The SimpleRNN's backward loop. dhs: None or (T, B, H), the gradient entering each h_t from the outputs;
    d_final: (dh_T,). Returns (da, da, dU, (dh_0,)) with da (T, B, H): the pre-activation's gradient is both the
    input projection's and the recurrent product's. The cache is only read.
    """
    hs = cache.hs
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dtype = hs.dtype
    dh = numpy.array(d_final[0], dtype=dtype)          # a copy: the loop updates it in place
    mask = None if cache.recurrent_mask is None else cache.recurrent_mask[0]
    UT = numpy.ascontiguousarray(U.T)
    da = ws.empty((T, B, H), dtype)
    factors = ws.empty((CHUNK, B, H), dtype)
    chunk_factors = functools.partial(tanh_derivatives, cache, P=factors)
    for t, k, tanh_derivative in backward_steps(T, CHUNK, chunk_factors, dh, dhs):
        numpy.multiply(dh, tanh_derivative[k], out=da[t])   # da = dh (1 - h^2)
        numpy.matmul(da[t], UT, out=dh)                       # dh_{t-1} = da U^T (* mask)
        if mask is not None:
            numpy.multiply(dh, mask, out=dh)
    h_in = hs[:-1] if cache.h_ins is None else cache.h_ins
    return da, da, recurrent_kernel_gradient(h_in, da), (dh,)


def tanh_derivatives(cache, start, end, P):
    """tanh'(a_t) = 1 - h_t^2 from the outputs, for start <= t < end: P (K, B, H)."""
    h = cache.hs[start + 1:end + 1]
    P = P[:end - start]
    numpy.multiply(h, h, out=P)
    numpy.subtract(1, P, out=P)
    return P
