"""The LSTM's sequence loops fused for NumPy on the CPU: the math of layers/lstm.py, arranged for speed.

The equations are those of ``LSTM.step_forward``/``LSTM.step_backward`` and docs/lstm.md (the reference, which
``tests/test_fast_paths.py`` holds this kernel to, outputs and every gradient):

    z = x_t W + h_{t-1} U + b;  i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_c)
    c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)

What is arranged differently, and why (measured on the 2-core CI machine, B=32, H=256, float32):
- Gate-major layout. Every per-step array is (4, B, H): one contiguous (B, H) block per gate, so each element-wise
  call runs on contiguous memory (a strided (B, H) column block of a (B, 4H) array costs about twice as much) and one
  call covers several gates. Whole-sequence buffers are (4, T, B, H).
- Gate order [o | i | f | g] inside the kernel (Keras stores [i | f | c | o]): the three sigmoid gates are one
  block in the forward, and the three gates whose gradient is dc times something (i, f, g) are one block in the
  backward. W, U and b are permuted once per call and the gradients permuted back.
- sigmoid(z) = (1 + tanh(z / 2)) / 2. NumPy's tanh is SIMD-vectorized and about 10x faster here than
  ``scipy.special.expit``. The 1/2 is folded into the sigmoid gates' columns of W, U and b (exact in binary
  floating point), so one tanh call covers all four gates of a step.
- No allocation inside the loops: buffers for the whole sequence come from the layer's workspace (reused from call to
  call once nothing refers to them: fresh memory costs a page fault per 4 KB, see workspace.py) and every step
  writes into them with ``out=``. The input projection (forward) and the weight, bias and input gradients (backward) are
  products over all timesteps, outside the loops.
- The backward splits each step's gradient into factors that do not depend on the recurrence (the activations'
  derivatives times the other factor of each product, ``gate_factors``), computed for CHUNK steps per call, and the
  few operations that do (dh, dc): fewer, larger element-wise calls (the loop is ``bptt.backward_steps``, shared by
  every CPU kernel).
- Recurrent dropout keeps Keras's per-gate masks (the layer draws them, in the reference's order, so reseeding
  gives the same masks): the step's recurrent product is a batched (4, B, H) @ (4, H, H) product.
- At its boundary the kernel speaks Keras's layout: ``xw`` comes in as (T, B, 4H) [i | f | c | o] and is copied
  once into the gate-major buffer (halving the sigmoid gates on the way); the backward writes dz straight into
  Keras's (T, B, 4H) order, since [i | f | c] are the three gates whose gradient is dc times something.

A pure function of arrays (see deeprnn/kernels/__init__.py): the layer (``RNN.forward``) projects the inputs, draws
the masks, resolves the initial state and packages the outputs. It takes NumPy float32/float64 arrays of one dtype,
T >= 1; the LSTM decides whether its math is the one computed here (tanh and sigmoid, the reference step).
"""
import functools
from collections import namedtuple

import numpy

from .bptt import backward_steps, recurrent_kernel_gradient, unsupported  # noqa: F401  (unsupported: the claim)

NAME = "cpu_lstm"

# kernel gate k is Keras gate ORDER[k]; Keras's blocks are i=0, f=1, c=2, o=3
ORDER = [3, 0, 1, 2]
KERAS = [1, 2, 3, 0]       # Keras gate j is kernel gate KERAS[j]
GATE_O, GATE_I, GATE_F, GATE_G = 0, 1, 2, 3   # G, alone, is the number of gate blocks (4)
SIGMOID = slice(0, 3)      # o, i, f
DC_GATES = slice(1, 4)     # i, f, g: dz = dc * (...); Keras's blocks 0:3 in the same order
# sigmoid(z) = (1 + tanh(z/2)) / 2: the sigmoid gates' pre-activations are halved
HALF = numpy.array([0.5, 0.5, 0.5, 1.0]).reshape(4, 1, 1)
# rows of U copied per call by ``transposed`` (4, 8, 16, 32 measured: 8 fastest)
TRANSPOSE_ROWS = 8
# timesteps whose gradient factors the backward computes in one go (4 x CHUNK x B x H floats: ~1.3 MB at the
# tutorial's sizes, so a chunk stays in the 2 MB L2 cache)
CHUNK = 10

LSTMKernelCache = namedtuple("LSTMKernelCache", "gates hs cs tanh_cs h_ins recurrent_mask")


# -- layouts ---------------------------------------------------------------------------------------------------------
def gate_major(M):
    """(R, 4H) with Keras's gate blocks -> (4, R, H) in the kernel's gate order, contiguous."""
    R, H = M.shape[0], M.shape[1] // 4
    return numpy.ascontiguousarray(M.reshape(R, 4, H).transpose(1, 0, 2)[ORDER])


def transposed(M):
    """M.T as a contiguous array, copied TRANSPOSE_ROWS rows of M at a time.

    (H, 4H) -> (4H, H): rows k*H .. (k+1)*H are U_k^T, so ``transposed(U).reshape(4, H, H)`` is the per-gate blocks
    in Keras's order. Measured (256, 1024) float32, one thread: 0.20 ms, against 0.77 ms for
    ``numpy.ascontiguousarray(M.T)``, whose copy walks M's columns across the whole array.
    """
    MT = numpy.empty(M.shape[::-1], dtype=M.dtype)
    for j in range(0, M.shape[0], TRANSPOSE_ROWS):
        numpy.copyto(MT[:, j:j + TRANSPOSE_ROWS], M[j:j + TRANSPOSE_ROWS].T)
    return MT


# -- forward ---------------------------------------------------------------------------------------------------------
def forward(xw, U, initial_state, recurrent_mask, ws):
    """The LSTM's forward loop. xw: (T, B, 4H) = x_t W + b, Keras's order; U: (H, 4H); initial_state (h_0, c_0);
    recurrent_mask: None or (4, B, H) per gate, Keras's order; ws: a Workspace.

    Returns (hs (T, B, H), (h_T, c_T), cache).
    """
    T, B, H4 = xw.shape
    H, dtype = H4 // 4, xw.dtype
    h0, c0 = initial_state
    half = HALF.astype(dtype)
    mask_k = None if recurrent_mask is None else recurrent_mask[ORDER]   # the kernel's gate order
    # one step without masks (generation, a token per call): z = x W + b + h_0 U with U as stored, since laying U
    # out gate-major (two passes over H x 4H) would cost more than the step itself
    single_step = T == 1 and mask_k is None
    if single_step:
        xw = (xw[0] + h0 @ U)[None]

    # gates (4, T, B, H), kernel order, sigmoid gates halved: holds x_t W + b, becomes the activated gates
    gates = ws.empty((4, T, B, H), dtype)
    xw_blocks = xw.reshape(T, B, 4, H)
    for k, j in enumerate(ORDER):
        numpy.multiply(xw_blocks[:, :, j], half[k], out=gates[k])
    U_k = None if single_step else gate_major(U) * half

    hs = ws.empty((T + 1, B, H), dtype)                # hs[t] = h_{t-1}: hs[0] is the initial state
    cs = ws.empty((T + 1, B, H), dtype)
    hs[0], cs[0] = h0, c0
    tanh_cs = ws.empty((T, B, H), dtype)
    h_ins = None if mask_k is None else ws.empty((4, T, B, H), dtype)
    zh = numpy.empty((4, B, H), dtype=dtype)
    ig = numpy.empty((B, H), dtype=dtype)
    for t in range(T):
        a = gates[:, t]
        if single_step:
            pass                                          # h_0 U is in a already
        elif h_ins is None:
            numpy.matmul(hs[t], U_k, out=zh)              # (B, H) @ (4, H, H)
            numpy.add(a, zh, out=a)
        else:
            h_in = h_ins[:, t]
            numpy.multiply(hs[t], mask_k, out=h_in)
            numpy.matmul(h_in, U_k, out=zh)               # (4, B, H) @ (4, H, H)
            numpy.add(a, zh, out=a)
        numpy.tanh(a, out=a)
        sig = a[SIGMOID]                                  # o, i, f = (1 + tanh(z / 2)) / 2
        numpy.multiply(sig, 0.5, out=sig)
        numpy.add(sig, 0.5, out=sig)
        o, i, f, g = a
        c = cs[t + 1]
        numpy.multiply(f, cs[t], out=c)
        numpy.multiply(i, g, out=ig)
        numpy.add(c, ig, out=c)
        numpy.tanh(c, out=tanh_cs[t])
        numpy.multiply(o, tanh_cs[t], out=hs[t + 1])

    final = (hs[T].copy(), cs[T].copy())
    return hs[1:], final, LSTMKernelCache(gates, hs, cs, tanh_cs, h_ins, recurrent_mask)


# -- backward --------------------------------------------------------------------------------------------------------
def backward(dhs, d_final, cache, U, ws):
    """The LSTM's backward loop. dhs: None or (T, B, H), the gradient entering each h_t from the outputs;
    d_final: (dh_T, dc_T). Returns (dz, dz, dU, (dh_0, dc_0)) with dz (T, B, 4H) in Keras's order: the gate
    gradient is both the input projection's and the recurrent product's. The cache is only read.
    """
    gates = cache.gates
    _, T, B, H = gates.shape
    dtype = gates.dtype
    dh = numpy.array(d_final[0], dtype=dtype)          # copies: the loop updates both in place
    dc = numpy.array(d_final[1], dtype=dtype)
    recurrent_mask = cache.recurrent_mask
    # dh_{t-1} = dz U^T, one product with U^T (4H, H); with masks sum_k (dz_k U_k^T) * mask_k, a batched
    # (4, B, H) @ (4, H, H) product with U^T's row blocks
    UT = transposed(U) if recurrent_mask is None else transposed(U).reshape(4, H, H)

    # dz[t] (B, 4, H), Keras's order: dz.reshape(T * B, 4H) feeds dW, dU and dx as single products; inside the
    # loop, dz[t] seen gate-major (4, B, H) is written block by block
    dz = ws.empty((T, B, 4, H), dtype)
    factors = ws.empty((4, CHUNK, B, H), dtype)
    dc_factors = ws.empty((CHUNK, B, H), dtype)
    dh_gates = None if recurrent_mask is None else numpy.empty((4, B, H), dtype=dtype)
    tmp = numpy.empty((B, H), dtype=dtype)
    chunk_factors = functools.partial(gate_factors, cache, P=factors, Pc=dc_factors)
    for t, k, (P, Pc) in backward_steps(T, CHUNK, chunk_factors, dh, dhs):
        # dc = dc_next + dh * o * (1 - tanh(c)^2)
        numpy.multiply(dh, Pc[k], out=tmp)
        numpy.add(dc, tmp, out=dc)
        # dz_o = dh * [tanh(c) o (1 - o)];  dz_i, dz_f, dz_c = dc * [g i (1 - i), c_prev f (1 - f), i (1 - g^2)]
        dz_t = dz[t].transpose(1, 0, 2)
        numpy.multiply(dh, P[GATE_O, k], out=dz_t[3])
        numpy.multiply(dc, P[DC_GATES, k], out=dz_t[0:3])
        numpy.multiply(dc, gates[GATE_F, t], out=dc)      # dc_{t-1} = dc f
        if recurrent_mask is None:
            numpy.matmul(dz[t].reshape(B, 4 * H), UT, out=dh)
        else:
            numpy.matmul(dz_t, UT, out=dh_gates)
            numpy.multiply(dh_gates, recurrent_mask, out=dh_gates)
            numpy.sum(dh_gates, axis=0, out=dh)

    dz = dz.reshape(T, B, 4 * H)
    # each gate multiplied its own masked h: h_ins is in the kernel's order, gate j of Keras's is KERAS[j]
    h_in = cache.hs[:-1] if cache.h_ins is None else [cache.h_ins[KERAS[j]] for j in range(4)]
    return dz, dz, recurrent_kernel_gradient(h_in, dz), (dh, dc)


def gate_factors(cache, start, end, P, Pc):
    """The factors of the step gradients that do not depend on the backward recurrence, for start <= t < end.

    Computed for CHUNK timesteps per call (fewer, larger element-wise calls than step by step):
        P (4, K, B, H) = [tanh(c) o (1 - o),  g i (1 - i),  c_prev f (1 - f),  i (1 - g^2)]   (kernel gate order)
        Pc (K, B, H)  = o (1 - tanh(c)^2)
    where s (1 - s) and 1 - g^2 are the activations' derivatives, taken from their outputs.
    """
    K = end - start
    a, tanh_c, c_prev = cache.gates[:, start:end], cache.tanh_cs[start:end], cache.cs[start:end]
    P, Pc = P[:, :K], Pc[:K]
    o, i, f, g = a
    numpy.multiply(a, a, out=P)
    numpy.subtract(a[SIGMOID], P[SIGMOID], out=P[SIGMOID])
    numpy.subtract(1, P[GATE_G], out=P[GATE_G])
    numpy.multiply(P[GATE_O], tanh_c, out=P[GATE_O])
    numpy.multiply(P[GATE_I], g, out=P[GATE_I])
    numpy.multiply(P[GATE_F], c_prev, out=P[GATE_F])
    numpy.multiply(P[GATE_G], i, out=P[GATE_G])
    numpy.multiply(tanh_c, tanh_c, out=Pc)
    numpy.subtract(1, Pc, out=Pc)
    numpy.multiply(Pc, o, out=Pc)
    return P, Pc

