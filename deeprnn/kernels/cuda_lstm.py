"""The LSTM's sequence loops fused for CuPy on the GPU: the math of layers/lstm.py, arranged for speed.

The equations are those of ``LSTM.step_forward``/``LSTM.step_backward`` and docs/lstm.md (the reference, which
``tests/test_gpu.py`` holds this kernel to, outputs and every gradient):

    z = x_t W + h_{t-1} U + b;  i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_c)
    c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)

On a GPU the reference loop is bound by launches, not arithmetic: each timestep is a dozen small CuPy kernels and as
many Python calls (measured on an H100: a 2-layer LSTM, B=32, T=100, H=256, forward + BPTT, 138 ms with plain CuPy
ops against 9.1 ms for cuDNN). What is arranged differently here, and why:

- Two launches per timestep and direction: one GEMM for the recurrent product of all four gates, then ONE fused
  ``cupy.ElementwiseKernel`` for everything point-wise in the step (``STEP_FORWARD``: z -> i, f, g, o, c, tanh(c),
  h, and the next step's masked recurrent inputs; ``STEP_BACKWARD``: dh -> dc, dz of the four gates, dc_{t-1}, and
  the masked sum of the per-gate dh). Each thread owns one (b, j) and all four gates of it, so a step reads and
  writes every value once.
- Everything that does not depend on the previous step is batched over time, outside the loops: the input
  projection x W + b of all timesteps is one cuBLAS GEMM (T*B rows); dW, dU, db and dx are one GEMM each after the
  backward loop.
- No allocation inside the loops: the whole-sequence buffers are made once per call (CuPy's memory pool makes that
  cheap) and every step writes into them.
- ``GEMM = "cublas"`` (default) issues the per-step products straight to cuBLAS (``cublasSgemm``/
  ``cublasSgemmStridedBatched``) with the shapes checked once per call: ``cupy.matmul`` re-checks shapes, strides
  and dtypes on every call, and inside the loop that Python time is the step's cost. ``GEMM = "cupy"`` uses
  ``cupy.matmul(a, b, out=...)`` instead; both are tested against the reference.
- Keras's gate order [i | f | c | o] is kept in every (B, 4H) buffer, so W, U and b are used as they are stored.
  Recurrent dropout (Keras's per-gate masks, ``RNN.draw_masks``, drawn in the reference's order so reseeding gives
  the same masks) makes the recurrent product one per gate: those buffers are gate-major, (4, B, H), and the step
  is one strided-batched GEMM.

Not done, and why: CUDA graphs (CuPy refuses to capture cuBLAS calls, so a graph needs the recurrent product
written by hand, without cuBLAS; see docs/gpu.md), persistent kernels, running the layers as a wavefront.

A pure function of arrays (see deeprnn/kernels/__init__.py): the layer (``RNN.forward``) projects the inputs (one
GEMM of T*B rows), draws the masks, resolves the initial state and packages the outputs. It takes CuPy float32/
float64 arrays of one dtype, T >= 1; the LSTM decides whether its math is the one computed here. The module imports
without CuPy: CuPy is imported inside the functions that run on the GPU only.
"""
import functools
from collections import namedtuple

import numpy

NAME = "cuda_lstm"
GEMM = "cublas"   # or "cupy": how the per-step recurrent products are issued (see the module docstring)

CudaLSTMCache = namedtuple("CudaLSTMCache", "gates hs cs tanh_cs h_ins recurrent_mask")

# -- the two fused step kernels ----------------------------------------------------------------------------------------
# One thread per (b, j) of the (B, H) state. Gate k of that element lives at gates[b*4H + k*H + j] in a (B, 4H)
# buffer (Keras's order i, f, c, o) and at [(k*B + b)*H + j] in a gate-major (4, B, H) one.
SIGMOID = """
template <typename T> __device__ T deeprnn_sigmoid(T z) {
    // exp of a non-positive number only, so neither branch overflows: activations.sigmoid's formula
    const T e = exp(-fabs(z));
    return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}
"""

# z = x_t W + b (already in gates) + h_in U (zh);  i, f, g, o;  c = f c_prev + i g;  h = o tanh(c).
# With recurrent dropout (per_gate = 1) zh is gate-major (4, B, H), and the step also writes the next step's
# recurrent inputs h * mask_k, so the next GEMM needs no separate masking launch.
STEP_FORWARD = """
    const int B = _ind.size() / H;
    const int b = i / H, j = i % H;
    const int row = b * 4 * H + j;
    T z[4];
    for (int k = 0; k < 4; ++k) {
        z[k] = gates[row + k * H] + zh[per_gate ? (k * B + b) * H + j : row + k * H];
    }
    const T in_g = deeprnn_sigmoid(z[0]), forget_g = deeprnn_sigmoid(z[1]);
    const T cell_g = tanh(z[2]), out_g = deeprnn_sigmoid(z[3]);
    gates[row] = in_g;
    gates[row + H] = forget_g;
    gates[row + 2 * H] = cell_g;
    gates[row + 3 * H] = out_g;
    const T c_new = forget_g * c_prev + in_g * cell_g;
    const T tanh_c_new = tanh(c_new);
    const T h_new = out_g * tanh_c_new;
    c = c_new;
    tanh_c = tanh_c_new;
    h = h_new;
    if (per_gate) {
        for (int k = 0; k < 4; ++k) {
            h_in_next[(k * B + b) * H + j] = h_new * mask[(k * B + b) * H + j];
        }
    }
"""
FORWARD_PARAMS = ("raw T zh, T c_prev, raw T mask, int32 H, int32 per_gate",
                  "raw T gates, T c, T tanh_c, T h, raw T h_in_next")

# dh = (dh from step t+1) + dy_t; dc = dc_next + dh o (1 - tanh(c)^2);
# dz = [dc g i(1-i) | dc c_prev f(1-f) | dc i (1-g^2) | dh tanh(c) o(1-o)];  dc_{t-1} = dc f.
# dh from step t+1 is dz_{t+1} U^T: shared (B, H), or with recurrent dropout sum_k (dz_k U_k^T) * mask_k from the
# gate-major (4, B, H) product (dh_gates = 1), summed here in the reference's order.
STEP_BACKWARD = """
    const int B = _ind.size() / H;
    const int b = i / H, j = i % H;
    const int row = b * 4 * H + j;
    T dh_next;
    if (dh_gates) {
        dh_next = 0;
        for (int k = 0; k < 4; ++k) {
            dh_next = dh_next + dh_rec[(k * B + b) * H + j] * mask[(k * B + b) * H + j];
        }
    } else {
        dh_next = dh_rec[i];
    }
    const T dh = dh_next + dy;
    const T in_g = gates[row], forget_g = gates[row + H], cell_g = gates[row + 2 * H], out_g = gates[row + 3 * H];
    const T d_out = dh * tanh_c;
    const T dc_total = dc + dh * out_g * (1 - tanh_c * tanh_c);
    const T d_in = dc_total * cell_g;
    const T d_forget = dc_total * c_prev;
    const T d_cell = dc_total * in_g;
    T dz_k[4];
    dz_k[0] = d_in * (in_g * (1 - in_g));
    dz_k[1] = d_forget * (forget_g * (1 - forget_g));
    dz_k[2] = d_cell * (1 - cell_g * cell_g);
    dz_k[3] = d_out * (out_g * (1 - out_g));
    for (int k = 0; k < 4; ++k) {
        dz[gate_major ? (k * B + b) * H + j : row + k * H] = dz_k[k];
    }
    dc = dc_total * forget_g;
"""
BACKWARD_PARAMS = ("raw T dh_rec, raw T mask, T dy, raw T gates, T tanh_c, T c_prev, int32 H, int32 dh_gates, "
                   "int32 gate_major",
                   "T dc, raw T dz")


# -- what touches CuPy: each behind one function, imported on first use ------------------------------------------------
def _cupy():
    import cupy
    return cupy


@functools.lru_cache(maxsize=None)
def _kernels():
    """(step_forward, step_backward) ElementwiseKernels; CuPy compiles each once per dtype and caches it on disk."""
    cupy = _cupy()
    forward = cupy.ElementwiseKernel(*FORWARD_PARAMS, STEP_FORWARD, "deeprnn_lstm_step_forward", preamble=SIGMOID)
    backward = cupy.ElementwiseKernel(*BACKWARD_PARAMS, STEP_BACKWARD, "deeprnn_lstm_step_backward")
    return forward, backward


def _cublas():
    """CuPy's thin cuBLAS bindings and the current device's handle."""
    from cupy.cuda import device
    from cupy_backends.cuda.libs import cublas
    return cublas, device.get_cublas_handle()


def device_pointer(a):
    return a.data.ptr


class CublasGemm:
    """``out = a @ b`` for C-contiguous row-major matrices (M, K) @ (K, N), or stacks of ``batch`` of them, issued
    straight to cuBLAS with every shape and leading dimension fixed when the plan is made.

    cuBLAS is column-major: a row-major (M, N) matrix is the column-major (N, M) matrix of its transpose, so
    C = A B is computed as C^T = B^T A^T: B goes first, with m = N, n = M, and each leading dimension is a row length.
    The caller guarantees contiguity and shapes (the buffers are made for this plan); nothing is checked per call.
    """

    def __init__(self, dtype, M, K, N, batch=1):
        cublas, self.handle = _cublas()
        single = numpy.dtype(dtype) == numpy.float32
        self.gemm = cublas.sgemm if single else cublas.dgemm
        self.gemm_batched = cublas.sgemmStridedBatched if single else cublas.dgemmStridedBatched
        self.no_transpose = cublas.CUBLAS_OP_N
        self.M, self.K, self.N, self.batch = M, K, N, batch
        # alpha = 1, beta = 0 as host scalars (pointer mode HOST, set by ``host_pointer_mode``); kept alive here
        self.scalars = numpy.array([1, 0], dtype=dtype)
        self.alpha = self.scalars.ctypes.data
        self.beta = self.alpha + self.scalars.itemsize

    def __call__(self, a, b, out):
        M, K, N = self.M, self.K, self.N
        if self.batch == 1:
            self.gemm(self.handle, self.no_transpose, self.no_transpose, N, M, K, self.alpha,
                      device_pointer(b), N, device_pointer(a), K, self.beta, device_pointer(out), N)
        else:
            self.gemm_batched(self.handle, self.no_transpose, self.no_transpose, N, M, K, self.alpha,
                              device_pointer(b), N, K * N, device_pointer(a), K, M * K, self.beta,
                              device_pointer(out), N, M * N, self.batch)
        return out


class CupyGemm:
    """``cupy.matmul(a, b, out=out)``: the same products through CuPy's checked path."""

    def __init__(self, dtype, M, K, N, batch=1):
        self.matmul = _cupy().matmul

    def __call__(self, a, b, out):
        return self.matmul(a, b, out=out)


def make_gemm(dtype, M, K, N, batch=1):
    return (CublasGemm if GEMM == "cublas" else CupyGemm)(dtype, M, K, N, batch)


class host_pointer_mode:
    """cuBLAS reads alpha and beta from host memory inside the block (the handle is CuPy's: restore its mode)."""

    def __enter__(self):
        if GEMM == "cublas":
            self.cublas, self.handle = _cublas()
            self.saved = self.cublas.getPointerMode(self.handle)
            self.cublas.setPointerMode(self.handle, self.cublas.CUBLAS_POINTER_MODE_HOST)
        return self

    def __exit__(self, *exc):
        if GEMM == "cublas":
            self.cublas.setPointerMode(self.handle, self.saved)
        return False


# -- eligibility -------------------------------------------------------------------------------------------------------
def is_cupy_array(a):
    # the type's module, not an import: without CuPy installed this must stay free
    return type(a).__module__.startswith("cupy") and hasattr(a, "data") and hasattr(a, "dtype")


def unsupported(x, weights):
    """None when x and the weights are CuPy arrays of one float dtype; else why not."""
    if not all(is_cupy_array(a) for a in [x] + list(weights)):
        return "takes CuPy arrays"
    if numpy.dtype(x.dtype) not in (numpy.float32, numpy.float64):
        return f"takes float32 or float64, got {x.dtype}"
    if any(w.dtype != x.dtype for w in weights):
        return "takes input and weights of one dtype"
    return None


# -- layouts -----------------------------------------------------------------------------------------------------------
def gate_major(M, xp):
    """(R, 4H) with Keras's gate blocks -> (4, R, H), contiguous: block k is M[:, kH:(k+1)H]."""
    R, H = M.shape[0], M.shape[1] // 4
    return xp.ascontiguousarray(M.reshape(R, 4, H).transpose(1, 0, 2))


def gate_major_transposed(M, xp):
    """(R, 4H) -> (4, H, R), contiguous: block k is M_k^T (what dh = dz_k U_k^T multiplies by)."""
    R, H = M.shape[0], M.shape[1] // 4
    return xp.ascontiguousarray(M.reshape(R, 4, H).transpose(1, 2, 0))


def keras_layout(Mg):
    """(4, R, H) gate-major -> (R, 4H) with Keras's gate blocks (the inverse of ``gate_major``)."""
    _, R, H = Mg.shape
    return Mg.transpose(1, 0, 2).reshape(R, 4 * H)


def as_device_masks(masks, xp):
    """The masks ``draw_masks`` made, as arrays of this device (they already are when the backend is 'gpu')."""
    return None if masks is None else xp.asarray(masks)


# -- forward -----------------------------------------------------------------------------------------------------------
def forward(xw, U, initial_state, recurrent_mask, ws=None):
    """The LSTM's forward loop. xw: (T, B, 4H) = x_t W + b, Keras's order; U: (H, 4H); initial_state (h_0, c_0);
    recurrent_mask: None or (4, B, H) per gate. ``ws`` is unused: CuPy's memory pool already reuses buffers.

    Returns (hs (T, B, H), (h_T, c_T), cache).
    """
    xp = _cupy()
    T, B, H4 = xw.shape
    H, dtype = H4 // 4, xw.dtype
    h0, c0 = initial_state
    gates = xp.array(xw, dtype=dtype)               # a copy the step kernel overwrites with the activated gates
    recurrent_mask = as_device_masks(recurrent_mask, xp)

    per_gate = recurrent_mask is not None
    hs = xp.empty((T + 1, B, H), dtype=dtype)       # hs[t] = h_{t-1}: hs[0] is the initial state
    cs = xp.empty((T + 1, B, H), dtype=dtype)
    hs[0], cs[0] = h0, c0
    tanh_cs = xp.empty((T, B, H), dtype=dtype)
    if per_gate:
        # h_ins[t] = h_{t-1} * mask_k per gate: what step t's product multiplies (and dU needs); slot T is the
        # last step's write, never read
        h_ins = xp.empty((T + 1, 4, B, H), dtype=dtype)
        xp.multiply(h0[None], recurrent_mask, out=h_ins[0])
        U_rec, zh = gate_major(U, xp), xp.empty((4, B, H), dtype=dtype)
        gemm = make_gemm(dtype, B, H, H, batch=4)
        mask, unused = recurrent_mask, None
    else:
        h_ins = None
        U_rec, zh = xp.ascontiguousarray(U), xp.empty((B, 4 * H), dtype=dtype)
        gemm = make_gemm(dtype, B, H, 4 * H)
        unused = xp.empty(1, dtype=dtype)           # stands in for the mask and h_in_next the kernel does not touch
        mask = unused
    step_forward, _ = _kernels()
    with host_pointer_mode():
        for t in range(T):
            if per_gate:
                gemm(h_ins[t], U_rec, zh)           # (4, B, H) @ (4, H, H): h_in_k U_k
                h_in_next = h_ins[t + 1]
            else:
                gemm(hs[t], U_rec, zh)              # (B, H) @ (H, 4H): all four gates in one product
                h_in_next = unused
            step_forward(zh, cs[t], mask, H, int(per_gate), gates[t], cs[t + 1], tanh_cs[t], hs[t + 1], h_in_next)

    final = (hs[T].copy(), cs[T].copy())
    return hs[1:], final, CudaLSTMCache(gates, hs, cs, tanh_cs, None if h_ins is None else h_ins[:T],
                                        recurrent_mask)


# -- backward ----------------------------------------------------------------------------------------------------------
def backward(dhs, d_final, cache, U, ws=None):
    """The LSTM's backward loop. dhs: None or (T, B, H), the gradient entering each h_t from the outputs;
    d_final: (dh_T, dc_T). Returns (dz, dz, dU, (dh_0, dc_0)) with dz (T, B, 4H) in Keras's order (the gate
    gradient is both the input projection's and the recurrent product's). The cache is only read.
    """
    xp = _cupy()
    gates, cs, tanh_cs = cache.gates, cache.cs, cache.tanh_cs
    T, B, H4 = gates.shape
    H, dtype = H4 // 4, gates.dtype
    # copies: the loop writes dc in place, and the caller's arrays stay untouched
    dh_start = xp.array(d_final[0], dtype=dtype)
    dc = xp.array(d_final[1], dtype=dtype)
    zeros = xp.zeros((B, H), dtype)
    dy_tm = None if dhs is None else xp.ascontiguousarray(xp.asarray(dhs, dtype=dtype))   # (T, B, H)

    recurrent_mask = cache.recurrent_mask
    per_gate = recurrent_mask is not None
    if per_gate:   # dz gate-major (T, 4, B, H); dh = sum_k (dz_k U_k^T) * mask_k, the product (4, B, H) @ (4, H, H)
        dz = xp.empty((T, 4, B, H), dtype=dtype)
        UT, dh_rec = gate_major_transposed(U, xp), xp.empty((4, B, H), dtype=dtype)
        gemm = make_gemm(dtype, B, H, H, batch=4)
        mask = recurrent_mask
    else:          # dz (T, B, 4H) in Keras's order; dh = dz U^T, one (B, 4H) @ (4H, H) product
        dz = xp.empty((T, B, 4 * H), dtype=dtype)
        UT, dh_rec = xp.ascontiguousarray(U.T), xp.empty((B, H), dtype=dtype)
        gemm = make_gemm(dtype, B, 4 * H, H)
        mask = xp.empty(1, dtype=dtype)
    _, step_backward = _kernels()
    with host_pointer_mode():
        for t in reversed(range(T)):
            dy_t = zeros if dy_tm is None else dy_tm[t]
            if t == T - 1:   # the gradient that enters the last step from outside: (B, H), unmasked
                step_backward(dh_start, mask, dy_t, gates[t], tanh_cs[t], cs[t], H, 0, int(per_gate), dc, dz[t])
            else:
                gemm(dz[t + 1], UT, dh_rec)
                step_backward(dh_rec, mask, dy_t, gates[t], tanh_cs[t], cs[t], H, int(per_gate), int(per_gate),
                              dc, dz[t])
        gemm(dz[0], UT, dh_rec)                     # the gradient of the initial h
    dh_0 = (dh_rec * recurrent_mask).sum(axis=0) if per_gate else dh_rec

    if per_gate:
        dz_g = dz.transpose(1, 0, 2, 3).reshape(4, T * B, H)                               # (4, T*B, H)
        h_g = xp.ascontiguousarray(cache.h_ins.transpose(1, 0, 2, 3)).reshape(4, T * B, H)
        dU = keras_layout(xp.matmul(h_g.transpose(0, 2, 1), dz_g))                       # dU_k = h_in_k^T dz_k
        dz = xp.ascontiguousarray(dz.transpose(0, 2, 1, 3)).reshape(T, B, 4 * H)
    else:
        dU = cache.hs[:-1].reshape(T * B, H).T @ dz.reshape(T * B, 4 * H)
    return dz, dz, dU, (dh_0, dc)
