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
  few operations that do (dh, dc): fewer, larger element-wise calls.
- Recurrent dropout keeps Keras's per-gate masks (``RNN.draw_masks``, drawn in the same order as the reference, so
  reseeding gives the same masks): the step's recurrent product is a batched (4, B, H) @ (4, H, H) product.

Supported: ``LSTM`` with activation tanh and recurrent_activation sigmoid, NumPy float32/float64 input of the
weights' dtype, T >= 1, any dropout/recurrent_dropout, use_bias, go_backwards, return_sequences, return_state,
stateful, initial_state. Anything else runs the reference loops (see ``supports``).
"""
from collections import namedtuple

import numpy

from .eligibility import is_reference_lstm_call, layer_weights
from .workspace import workspace

# kernel gate k is Keras gate ORDER[k]; Keras's blocks are i=0, f=1, c=2, o=3
ORDER = [3, 0, 1, 2]
KERAS = [1, 2, 3, 0]       # Keras gate j is kernel gate KERAS[j]
O, I, F, G = 0, 1, 2, 3
SIGMOID = slice(0, 3)      # o, i, f
DC_GATES = slice(1, 4)     # i, f, g: dz = dc * (...)
# sigmoid(z) = (1 + tanh(z/2)) / 2: the sigmoid gates' pre-activations are halved
HALF = numpy.array([0.5, 0.5, 0.5, 1.0]).reshape(4, 1, 1)
# timesteps whose gradient factors the backward computes in one go (4 x CHUNK x B x H floats: ~1.3 MB at the
# tutorial's sizes, so a chunk stays in the 2 MB L2 cache)
CHUNK = 10

LSTMKernelCache = namedtuple("LSTMKernelCache",
                             "x_in input_masks recurrent_masks gates hs cs tanh_cs h_ins")
CACHE_TYPES = (LSTMKernelCache,)


def supports(layer, x, training):
    """True exactly for the cases this kernel computes like the reference; anything else falls back."""
    if type(x) is not numpy.ndarray or not is_reference_lstm_call(layer, x):
        return False
    return all(type(w) is numpy.ndarray and w.dtype == x.dtype for w in layer_weights(layer))


# -- layouts ---------------------------------------------------------------------------------------------------------
def kernel_columns(M):
    """(R, 4H) with Keras's gate blocks -> the same in the kernel's gate order (a copy)."""
    R, H = M.shape[0], M.shape[1] // 4
    return M.reshape(R, 4, H)[:, ORDER].reshape(R, 4 * H)


def keras_columns(M):
    """(R, 4H) in the kernel's gate order -> Keras's (the inverse of ``kernel_columns``)."""
    R, H = M.shape[0], M.shape[1] // 4
    return M.reshape(R, 4, H)[:, KERAS].reshape(R, 4 * H)


def gate_major(M):
    """(R, 4H) with Keras's gate blocks -> (4, R, H) in the kernel's gate order, contiguous."""
    R, H = M.shape[0], M.shape[1] // 4
    return numpy.ascontiguousarray(M.reshape(R, 4, H).transpose(1, 0, 2)[ORDER])


def keras_layout(Mg):
    """(4, R, H) in the kernel's gate order -> (R, 4H) in Keras's (the inverse of ``gate_major``)."""
    _, R, H = Mg.shape
    return Mg[KERAS].transpose(1, 0, 2).reshape(R, 4 * H)


def copy_to(out, a):
    """``out[...] = a``, returning ``out``."""
    numpy.copyto(out, a)
    return out


def kernel_order(masks):
    """Per-gate dropout masks (4, B, n) into the kernel's gate order; a shared (1, B, n) mask or None as is."""
    if masks is None or masks.shape[0] == 1:
        return masks
    return masks[ORDER]


# -- forward ---------------------------------------------------------------------------------------------------------
def forward(layer, x, training=False, initial_state=None):
    """``RNN.forward`` for an LSTM: x (B, T, D) -> outputs as the reference returns them, and this kernel's cache."""
    layer.check_input_shape(x.shape, 3, layer.W.shape[0])
    B, T, D = x.shape
    H, dtype = layer.units, x.dtype
    ws = workspace(layer)
    x_tm = x.transpose(1, 0, 2)
    if layer.go_backwards:
        x_tm = x_tm[::-1]
    if not x_tm.flags.c_contiguous:   # a stacked LSTM's output is time-major already: no copy
        x_tm = copy_to(ws.empty((T, B, D), dtype), x_tm)
    masks = layer.draw_masks(B, D, dtype, training)  # the reference's draws, in its order
    input_masks, recurrent_masks = kernel_order(masks.input), kernel_order(masks.recurrent)
    h0, c0 = layer.resolve_initial_state(initial_state, numpy, B, dtype)
    half = HALF.astype(dtype)

    # the input projection of every timestep at once, sigmoid gates halved: (4, T, B, H)
    if input_masks is None:
        x_in = x_tm.reshape(T * B, D)
    elif input_masks.shape[0] == 1:
        x_in = numpy.multiply(x_tm, input_masks[0], out=ws.empty((T, B, D), dtype)).reshape(T * B, D)
    else:
        x_in = numpy.multiply(x_tm[None], input_masks[:, None], out=ws.empty((4, T, B, D), dtype))
        x_in = x_in.reshape(4, T * B, D)
    gates = ws.empty((4, T, B, H), dtype)
    numpy.matmul(x_in, gate_major(layer.W.value) * half, out=gates.reshape(4, T * B, H))
    if layer.use_bias:
        gates += (gate_major(layer.b.value[None]) * half)[:, None]
    U = gate_major(layer.U.value) * half

    hs = ws.empty((T + 1, B, H), dtype)                # hs[t] = h_{t-1}: hs[0] is the initial state
    cs = ws.empty((T + 1, B, H), dtype)
    hs[0], cs[0] = h0, c0
    tanh_cs = ws.empty((T, B, H), dtype)
    h_ins = None if recurrent_masks is None else ws.empty((4, T, B, H), dtype)
    zh = numpy.empty((4, B, H), dtype=dtype)
    ig = numpy.empty((B, H), dtype=dtype)
    for t in range(T):
        a = gates[:, t]                                   # holds x_t W + b; becomes the activated gates
        if h_ins is None:
            h_in = hs[t]
        else:
            h_in = h_ins[:, t]
            numpy.multiply(hs[t], recurrent_masks, out=h_in)
        numpy.matmul(h_in, U, out=zh)                     # (B, H) or (4, B, H) @ (4, H, H)
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

    h_T, c_T = hs[T].copy(), cs[T].copy()
    if layer.stateful:
        layer.states = (h_T, c_T)
    # the sequence stays time-major underneath: the next LSTM's x.transpose(1, 0, 2) is then contiguous again
    y = hs[1:].transpose(1, 0, 2) if layer.return_sequences else h_T
    outputs = [y, h_T, c_T] if layer.return_state else y
    return outputs, LSTMKernelCache(x_in, input_masks, recurrent_masks, gates, hs, cs, tanh_cs, h_ins)


# -- backward --------------------------------------------------------------------------------------------------------
def backward(layer, dout, cache):
    """``RNN.backward`` for a cache of this kernel: returns ``(dx, [dW, dU, (db)], (dh_0, dc_0))``."""
    gates = cache.gates
    _, T, B, H = gates.shape
    dtype = gates.dtype
    dy, d_final = (dout[0], dout[1:]) if layer.return_state else (dout, (None, None))
    dh = numpy.zeros((B, H), dtype) if d_final[0] is None else numpy.array(d_final[0], dtype=dtype)
    dc = numpy.zeros((B, H), dtype) if d_final[1] is None else numpy.array(d_final[1], dtype=dtype)
    sequence_dy = None
    if dy is not None:
        if layer.return_sequences:
            sequence_dy = dy.transpose(1, 0, 2)          # (T, B, H), a view
        else:
            dh += dy
    masks = cache.recurrent_masks
    if masks is None:   # dh_{t-1} = dz U^T, one product: U^T with its rows in the kernel's gate order, (4H, H)
        UT = numpy.ascontiguousarray(kernel_columns(layer.U.value).T)
    else:               # dh_{t-1} = sum_k (dz_k U_k^T) * mask_k: U_k^T, (4, H, H)
        UT = numpy.ascontiguousarray(gate_major(layer.U.value).transpose(0, 2, 1))

    # dz[t] (B, 4, H) in the kernel's gate order: after the loop, dz.reshape(T * B, 4H) feeds dW, dU and dx as
    # single products; inside the loop, dz[t] seen gate-major (4, B, H) is written block by block.
    ws = workspace(layer)
    dz = ws.empty((T, B, 4, H), dtype)
    factors = ws.empty((4, CHUNK, B, H), dtype)
    dc_factors = ws.empty((CHUNK, B, H), dtype)
    dh_gates = None if masks is None else numpy.empty((4, B, H), dtype=dtype)
    tmp = numpy.empty((B, H), dtype=dtype)
    for end in range(T, 0, -CHUNK):
        start = max(0, end - CHUNK)
        P, Pc = gate_factors(cache, start, end, factors, dc_factors)
        for t in reversed(range(start, end)):
            k = t - start
            if sequence_dy is not None:
                numpy.add(dh, sequence_dy[t], out=dh)
            # dc = dc_next + dh * o * (1 - tanh(c)^2)
            numpy.multiply(dh, Pc[k], out=tmp)
            numpy.add(dc, tmp, out=dc)
            # dz_o = dh * [tanh(c) o (1 - o)];  dz_i, dz_f, dz_g = dc * [g i (1 - i), c_prev f (1 - f), i (1 - g^2)]
            dz_t = dz[t].transpose(1, 0, 2)
            numpy.multiply(dh, P[O, k], out=dz_t[O])
            numpy.multiply(dc, P[DC_GATES, k], out=dz_t[DC_GATES])
            numpy.multiply(dc, gates[F, t], out=dc)      # dc_{t-1} = dc f
            if masks is None:
                numpy.matmul(dz[t].reshape(B, 4 * H), UT, out=dh)
            else:
                numpy.matmul(dz_t, UT, out=dh_gates)
                numpy.multiply(dh_gates, masks, out=dh_gates)
                numpy.sum(dh_gates, axis=0, out=dh)

    dx, grads = weight_and_input_gradients(layer, cache, dz.reshape(T * B, 4 * H))
    dx_tm = dx.reshape(T, B, -1)
    if layer.go_backwards:
        dx_tm = dx_tm[::-1]
    return dx_tm.transpose(1, 0, 2), grads, (dh, dc)


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
    numpy.subtract(1, P[G], out=P[G])
    numpy.multiply(P[O], tanh_c, out=P[O])
    numpy.multiply(P[I], g, out=P[I])
    numpy.multiply(P[F], c_prev, out=P[F])
    numpy.multiply(P[G], i, out=P[G])
    numpy.multiply(tanh_c, tanh_c, out=Pc)
    numpy.subtract(1, Pc, out=Pc)
    numpy.multiply(Pc, o, out=Pc)
    return P, Pc


def weight_and_input_gradients(layer, cache, dz):
    """dW, dU, db (Keras's layout) and dx (T*B, D) as products over all timesteps. dz: (T*B, 4H), kernel order."""
    TB, H4 = dz.shape
    H = H4 // 4
    dz_g = dz.reshape(TB, 4, H).transpose(1, 0, 2)      # (4, T*B, H) view: each gate's block
    input_masks, x_in = cache.input_masks, cache.x_in
    D = x_in.shape[-1]
    ws = workspace(layer)
    if input_masks is not None and input_masks.shape[0] == 4:
        # each gate saw its own masked input: one product per gate, then the masked sum for dx
        B = input_masks.shape[1]
        dW = keras_layout(numpy.matmul(x_in.transpose(0, 2, 1), dz_g))
        dx_g = numpy.matmul(dz_g, gate_major(layer.W.value).transpose(0, 2, 1), out=ws.empty((4, TB, D), dz.dtype))
        dx_g.reshape(4, TB // B, B, D)[...] *= input_masks[:, None]
        dx = numpy.sum(dx_g, axis=0, out=ws.empty((TB, D), dz.dtype))
    else:
        dW = keras_columns(x_in.T @ dz)
        dx = numpy.matmul(dz, kernel_columns(layer.W.value).T, out=ws.empty((TB, D), dz.dtype))
        if input_masks is not None:
            B = input_masks.shape[1]
            dx.reshape(TB // B, B, -1)[...] *= input_masks[0]
    if cache.h_ins is None:
        dU = keras_columns(cache.hs[:-1].reshape(TB, H).T @ dz)
    else:
        dU = keras_layout(numpy.matmul(cache.h_ins.reshape(4, TB, H).transpose(0, 2, 1), dz_g))
    grads = [dW, dU]
    if layer.use_bias:
        grads.append(keras_columns(dz.sum(axis=0)[None])[0])
    return dx, grads
