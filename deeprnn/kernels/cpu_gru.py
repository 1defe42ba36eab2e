"""The GRU's sequence loops fused for NumPy on the CPU: the math of layers/gru.py, arranged for speed.

The equations are those of ``GRU.step_forward``/``GRU.step_backward`` and docs/gru.md (the reference, which
``tests/test_fast_paths.py`` holds this kernel to, outputs and every gradient), gate order [z | r | h]:

    reset_after=True (Keras's default, cuDNN's and PyTorch's form), recurrent bias b_rec:
        [h_z | h_r | h_h] = h_{t-1} U + b_rec
        z = sigmoid(x_z + h_z);  r = sigmoid(x_r + h_r);  n = tanh(x_h + r * h_h)
    reset_after=False (no recurrent bias):
        z = sigmoid(x_z + h_{t-1} U_z);  r = sigmoid(x_r + h_{t-1} U_r);  n = tanh(x_h + (r * h_{t-1}) U_h)
    h_t = z * h_{t-1} + (1 - z) * n,  computed as  n + z * (h_{t-1} - n)

What is arranged differently, and why (the ideas of cpu_lstm.py, which has the measurements):
- Gate-major layout: every per-step array is (3, B, H), one contiguous (B, H) block per gate; whole-sequence
  buffers are (3, T, B, H). Keras's order [z | r | h] already puts the two sigmoid gates side by side, so the
  kernel keeps it (no permutation) and one call covers z and r.
- sigmoid(a) = (1 + tanh(a / 2)) / 2, with the 1/2 folded into the z and r columns of xw, U and b_rec (exact in
  binary floating point).
- The recurrent bias of z and r adds to a_z, a_r just as the input bias does, so it is added to the gate buffer once
  per call; only b_rec's h block sits inside the reset (r * h_h) and is added each step.
- The recurrent product is split where the math splits: h_in U_zr as one batched (2, B, H) @ (2, H, H) product,
  and the h block on its own, written straight into the buffer the backward reads (h_h, or h_reset U_h).
- No allocation inside the loops (workspace buffers, ``out=``); the input projection and the weight gradients are
  products over all timesteps, outside the loops (the layer and ``recurrent_kernel_gradient``).
- Backward, reset_after=True: every gate gradient is dh times a factor that does not depend on the recurrence,
      da_z = dh * (h_{t-1} - n) z (1 - z)             da_n = dh * (1 - z)(1 - n^2)
      da_r = dh * (1 - z)(1 - n^2) h_h r (1 - r)      dh_h = dh * (1 - z)(1 - n^2) r
  so ``reset_after_factors`` computes them for CHUNK steps per call, and a step is two multiplications, the
  product with U^T and dh_{t-1} = dh z + [da_z | da_r | dh_h] U^T. dzh = [da_z | da_r | dh_h] is written in the
  loop; dxw shares its z and r blocks (one copy after the loop) and gets da_n.
- Backward, reset_after=False: da_n = dh (1 - z)(1 - n^2); d_h_reset = da_n U_h^T is a product inside the step;
  then da_r = d_h_reset * h_in_h r (1 - r) and dh_{t-1} = dh z + [da_z | da_r] U_zr^T + d_h_reset * r (* mask_h),
  the bracketed factors again computed per chunk (``reset_before_factors``). dxw and dzh are the same array.
  h_in_h is the h block's recurrent input, h_{t-1} (times its mask with recurrent dropout).
- Both backward loops are ``bptt.backward_steps``, the chunked loop every CPU kernel shares.
- Recurrent dropout keeps Keras's per-gate masks, drawn by the layer (G = 3): the recurrent products are batched
  over the gate blocks, as in cpu_lstm.

A pure function of arrays (see deeprnn/kernels/__init__.py), with the GRU's two options as keywords:
``reset_after`` and ``recurrent_bias`` (b_rec (3H,), reset_after only; None without a bias), passed by
``GRU.kernel_options``. It takes NumPy float32/float64 arrays of one dtype, T >= 1; the GRU decides whether its
math is the one computed here (tanh and sigmoid, the reference step).
"""
import functools
from collections import namedtuple

import numpy

from .bptt import backward_steps, recurrent_kernel_gradient, unsupported  # noqa: F401  (unsupported: the claim)

NAME = "cpu_gru"

GATE_Z, GATE_R, GATE_N = 0, 1, 2   # gate blocks, Keras's order [z | r | h], kept inside the kernel; G = 3 of them
SIGMOID = slice(0, 2)      # z, r
HALF = numpy.array([0.5, 0.5, 1.0]).reshape(3, 1, 1)
# timesteps whose gradient factors the backward computes in one go (4 x CHUNK x B x H floats, as in cpu_lstm)
CHUNK = 10

GRUKernelCache = namedtuple("GRUKernelCache", "reset_after gates hs h_hs h_resets h_ins recurrent_mask")


def gate_major(U):
    """(H, 3H) -> (3, H, H), block k = U_k, contiguous."""
    H = U.shape[0]
    return numpy.ascontiguousarray(U.reshape(H, 3, H).transpose(1, 0, 2))


def transposed_blocks(U):
    """(H, 3H) -> (3, H, H), block k = U_k^T (what dh = dz_k U_k^T multiplies by)."""
    H = U.shape[0]
    return numpy.ascontiguousarray(U.reshape(H, 3, H).transpose(1, 2, 0))


# -- forward ---------------------------------------------------------------------------------------------------------
def forward(xw, U, initial_state, recurrent_mask, ws, reset_after=True, recurrent_bias=None):
    """The GRU's forward loop. xw: (T, B, 3H) = x_t W + b_in; U: (H, 3H); initial_state (h_0,); recurrent_mask:
    None or (3, B, H) per gate; ws: a Workspace; recurrent_bias: None or b_rec (3H,) (reset_after only).

    Returns (hs (T, B, H), (h_T,), cache).
    """
    T, B, H3 = xw.shape
    H, dtype = H3 // 3, xw.dtype
    (h0,) = initial_state
    half = HALF.astype(dtype)
    if recurrent_bias is not None and not reset_after:
        raise ValueError("cpu_gru: recurrent_bias is part of the reset_after=True form only")

    # gates (3, T, B, H), z and r halved: holds the pre-activations, becomes the activated gates z, r, n
    gates = ws.empty((3, T, B, H), dtype)
    xw_blocks = xw.reshape(T, B, 3, H)
    for k in range(3):
        numpy.multiply(xw_blocks[:, :, k], half[k], out=gates[k])
    b_h = None
    if recurrent_bias is not None:
        b_rec = recurrent_bias.reshape(3, 1, 1, H)
        numpy.add(gates[SIGMOID], b_rec[SIGMOID] * half[SIGMOID, None], out=gates[SIGMOID])
        b_h = b_rec[GATE_N, 0]
    U_k = gate_major(U) * half
    U_zr, U_h = U_k[SIGMOID], U_k[GATE_N]

    hs = ws.empty((T + 1, B, H), dtype)                # hs[t] = h_{t-1}: hs[0] is the initial state
    hs[0] = h0
    # reset_after: h_hs[t] = h_in U_h + b_h (r multiplies it); else h_resets[t] = r * h_in (U_h multiplies it)
    h_hs = ws.empty((T, B, H), dtype) if reset_after else None
    h_resets = None if reset_after else ws.empty((T, B, H), dtype)
    h_ins = None if recurrent_mask is None else ws.empty((3, T, B, H), dtype)
    zh = numpy.empty((2, B, H), dtype=dtype)
    tmp = numpy.empty((B, H), dtype=dtype)
    for t in range(T):
        a = gates[:, t]
        if h_ins is None:
            h_in_zr = h_in_h = hs[t]
        else:
            h_in = h_ins[:, t]
            numpy.multiply(hs[t], recurrent_mask, out=h_in)
            h_in_zr, h_in_h = h_in[SIGMOID], h_in[GATE_N]
        numpy.matmul(h_in_zr, U_zr, out=zh)               # (B, H) or (2, B, H) @ (2, H, H)
        numpy.add(a[SIGMOID], zh, out=a[SIGMOID])
        numpy.tanh(a[SIGMOID], out=a[SIGMOID])
        numpy.multiply(a[SIGMOID], 0.5, out=a[SIGMOID])   # z, r = (1 + tanh(a / 2)) / 2
        numpy.add(a[SIGMOID], 0.5, out=a[SIGMOID])
        z, r, n = a
        if reset_after:
            h_h = h_hs[t]
            numpy.matmul(h_in_h, U_h, out=h_h)
            if b_h is not None:
                numpy.add(h_h, b_h, out=h_h)
            numpy.multiply(r, h_h, out=tmp)               # a_n = x_h + r * h_h
        else:
            h_reset = h_resets[t]
            numpy.multiply(r, h_in_h, out=h_reset)
            numpy.matmul(h_reset, U_h, out=tmp)           # a_n = x_h + (r * h) U_h
        numpy.add(n, tmp, out=n)
        numpy.tanh(n, out=n)
        numpy.subtract(hs[t], n, out=tmp)                 # h = n + z * (h_prev - n)
        numpy.multiply(z, tmp, out=tmp)
        numpy.add(n, tmp, out=hs[t + 1])

    final = (hs[T].copy(),)
    return hs[1:], final, GRUKernelCache(reset_after, gates, hs, h_hs, h_resets, h_ins, recurrent_mask)


# -- backward --------------------------------------------------------------------------------------------------------
def backward(dhs, d_final, cache, U, ws):
    """The GRU's backward loop. dhs: None or (T, B, H), the gradient entering each h_t from the outputs;
    d_final: (dh_T,). Returns (dxw, dzh, dU, (dh_0,)) with dxw = [da_z | da_r | da_n] and dzh the gradient of
    the recurrent products, [da_z | da_r | dh_h] (reset_after; its sum is b_rec's gradient) or dxw itself. The
    cache is only read.
    """
    if cache.reset_after:
        return reset_after_backward(dhs, d_final, cache, U, ws)
    return reset_before_backward(dhs, d_final, cache, U, ws)


def reset_after_backward(dhs, d_final, cache, U, ws):
    gates, recurrent_mask = cache.gates, cache.recurrent_mask
    _, T, B, H = gates.shape
    dtype = gates.dtype
    dh = numpy.array(d_final[0], dtype=dtype)          # a copy: the loop updates it in place
    if recurrent_mask is None:   # dh_{t-1} += dzh U^T, one product with U^T (3H, H)
        UT = numpy.ascontiguousarray(U.T)
    else:                        # dh_{t-1} += sum_k (dzh_k U_k^T) * mask_k, a batched (3, B, H) @ (3, H, H) product
        UT = transposed_blocks(U)

    # (T, B, 3, H): reshaped to (T * B, 3H) they feed dW, dU and the biases as single products; in the loop,
    # dzh[t] seen gate-major (3, B, H) is written in one call
    dzh = ws.empty((T, B, 3, H), dtype)
    dxw = ws.empty((T, B, 3, H), dtype)
    factors = ws.empty((4, CHUNK, B, H), dtype)
    dh_gates = None if recurrent_mask is None else numpy.empty((3, B, H), dtype=dtype)
    dh_rec = numpy.empty((B, H), dtype=dtype)
    chunk_factors = functools.partial(reset_after_factors, cache, P=factors)
    for t, k, P in backward_steps(T, CHUNK, chunk_factors, dh, dhs):
        # [da_z | da_r | dh_h] = dh * [(h_prev - n) z(1-z),  (1-z)(1-n^2) h_h r(1-r),  (1-z)(1-n^2) r]
        numpy.multiply(dh, P[0:3, k], out=dzh[t].transpose(1, 0, 2))
        numpy.multiply(dh, P[3, k], out=dxw[t, :, GATE_N])   # da_n = dh (1-z)(1-n^2)
        if recurrent_mask is None:
            numpy.matmul(dzh[t].reshape(B, 3 * H), UT, out=dh_rec)
        else:
            numpy.matmul(dzh[t].transpose(1, 0, 2), UT, out=dh_gates)
            numpy.multiply(dh_gates, recurrent_mask, out=dh_gates)
            numpy.sum(dh_gates, axis=0, out=dh_rec)
        numpy.multiply(dh, gates[GATE_Z, t], out=dh)          # dh_{t-1} = dh z + dzh U^T
        numpy.add(dh, dh_rec, out=dh)

    numpy.copyto(dxw[:, :, SIGMOID], dzh[:, :, SIGMOID])    # da_z, da_r: the same in both
    dxw, dzh = dxw.reshape(T, B, 3 * H), dzh.reshape(T, B, 3 * H)
    return dxw, dzh, recurrent_kernel_gradient(recurrent_inputs(cache), dzh), (dh,)


def reset_after_factors(cache, start, end, P):
    """The factors of reset_after's step gradients that do not depend on the recurrence, for start <= t < end:

        P (4, K, B, H) = [(h_prev - n) z (1 - z),  (1 - z)(1 - n^2) h_h r (1 - r),  (1 - z)(1 - n^2) r,
                          (1 - z)(1 - n^2)]

    the factors of da_z, da_r, dh_h (dzh's blocks, in order) and da_n; s (1 - s) and 1 - n^2 are the activations'
    derivatives, taken from their outputs.
    """
    K = end - start
    a, h_prev, h_h = cache.gates[:, start:end], cache.hs[start:end], cache.h_hs[start:end]
    P = P[:, :K]
    r = a[GATE_R]
    dn = P[3]
    shared_factors(a, h_prev, P, dn, scratch=P[2])
    numpy.multiply(P[1], h_h, out=P[1])
    numpy.multiply(P[1], dn, out=P[1])
    numpy.multiply(dn, r, out=P[2])
    return P


def shared_factors(a, h_prev, P, dn, scratch):
    """What both variants' factors share, for a chunk of activated gates a = (z, r, n) (3, K, B, H):
    P[0] = (h_prev - n) z (1 - z),  P[1] = r (1 - r),  dn = (1 - z)(1 - n^2); ``scratch`` is overwritten."""
    z, r, n = a
    numpy.multiply(a[SIGMOID], a[SIGMOID], out=P[0:2])
    numpy.subtract(a[SIGMOID], P[0:2], out=P[0:2])          # z(1-z), r(1-r)
    numpy.multiply(n, n, out=dn)
    numpy.subtract(1, dn, out=dn)
    numpy.multiply(z, dn, out=scratch)
    numpy.subtract(dn, scratch, out=dn)                      # (1-z)(1-n^2)
    numpy.subtract(h_prev, n, out=scratch)
    numpy.multiply(P[0], scratch, out=P[0])


def reset_before_backward(dhs, d_final, cache, U, ws):
    gates, recurrent_mask = cache.gates, cache.recurrent_mask
    _, T, B, H = gates.shape
    dtype = gates.dtype
    dh = numpy.array(d_final[0], dtype=dtype)
    U_hT = numpy.ascontiguousarray(U[:, 2 * H:].T)
    if recurrent_mask is None:   # [da_z | da_r] U_zr^T, one product with U_zr^T (2H, H)
        U_zrT = numpy.ascontiguousarray(U[:, :2 * H].T)
    else:
        U_zrT = transposed_blocks(U)[SIGMOID]

    dxw = ws.empty((T, B, 3, H), dtype)
    factors = ws.empty((4, CHUNK, B, H), dtype)
    dh_gates = None if recurrent_mask is None else numpy.empty((2, B, H), dtype=dtype)
    d_h_reset = numpy.empty((B, H), dtype=dtype)
    dh_rec = numpy.empty((B, H), dtype=dtype)
    chunk_factors = functools.partial(reset_before_factors, cache, P=factors)
    for t, k, P in backward_steps(T, CHUNK, chunk_factors, dh, dhs):
        da = dxw[t]
        numpy.multiply(dh, P[GATE_N, k], out=da[:, GATE_N])     # da_n = dh (1-z)(1-n^2)
        numpy.multiply(dh, P[GATE_Z, k], out=da[:, GATE_Z])     # da_z = dh (h_prev - n) z(1-z)
        numpy.matmul(da[:, GATE_N], U_hT, out=d_h_reset)         # d_h_reset = da_n U_h^T
        numpy.multiply(d_h_reset, P[GATE_R, k], out=da[:, GATE_R])   # da_r = d_h_reset h_in_h r(1-r)
        if recurrent_mask is None:
            numpy.matmul(da[:, SIGMOID].reshape(B, 2 * H), U_zrT, out=dh_rec)
        else:
            numpy.matmul(da[:, SIGMOID].transpose(1, 0, 2), U_zrT, out=dh_gates)
            numpy.multiply(dh_gates, recurrent_mask[SIGMOID], out=dh_gates)
            numpy.sum(dh_gates, axis=0, out=dh_rec)
        # dh_{t-1} = dh z + [da_z | da_r] U_zr^T + d_h_reset r (* mask_h)
        numpy.multiply(dh, gates[GATE_Z, t], out=dh)
        numpy.add(dh, dh_rec, out=dh)
        numpy.multiply(d_h_reset, P[3, k], out=d_h_reset)
        numpy.add(dh, d_h_reset, out=dh)

    dxw = dxw.reshape(T, B, 3 * H)
    return dxw, dxw, recurrent_kernel_gradient(recurrent_inputs(cache), dxw), (dh,)


def reset_before_factors(cache, start, end, P):
    """reset_after=False's recurrence-independent factors for start <= t < end:

        P (4, K, B, H) = [(h_prev - n) z (1 - z),  h_in_h r (1 - r),  (1 - z)(1 - n^2),  r (* mask_h)]

    the factors of da_z (of dh), da_r (of d_h_reset), da_n (of dh) and of d_h_reset's path to h_{t-1}.
    """
    K = end - start
    a, h_prev = cache.gates[:, start:end], cache.hs[start:end]
    recurrent_mask = cache.recurrent_mask
    h_in_h = h_prev if recurrent_mask is None else cache.h_ins[GATE_N, start:end]
    P = P[:, :K]
    r = a[GATE_R]
    shared_factors(a, h_prev, P, dn=P[GATE_N], scratch=P[3])
    numpy.multiply(P[GATE_R], h_in_h, out=P[GATE_R])
    if recurrent_mask is None:
        numpy.copyto(P[3], r)
    else:
        numpy.multiply(r, recurrent_mask[GATE_N], out=P[3])
    return P


def recurrent_inputs(cache):
    """What each block of U multiplied, for ``bptt.recurrent_kernel_gradient``: h_{t-1} (or its per-gate masked
    copies), except the h block of reset_after=False, whose input is h_reset = r * h_in_h."""
    if cache.h_ins is None:
        h_prev = cache.hs[:-1]
        return h_prev if cache.reset_after else [h_prev, h_prev, cache.h_resets]
    h_in_z, h_in_r, h_in_h = cache.h_ins
    return [h_in_z, h_in_r, h_in_h if cache.reset_after else cache.h_resets]
