"""What every CPU kernel's loops share: the claim on NumPy arrays, the chunked backward loop, and dU.

    unsupported(x, weights) -> None | str              # the CPU kernels' claim: NumPy floats of one dtype
    for t, k, P in backward_steps(T, CHUNK, factors, dh, dhs): ...
    recurrent_kernel_gradient(h_in, dzh) -> dU          # sum_t h_in_t^T dzh_t as one product per block

The backward of a fused kernel splits each step's gradient into factors that do not depend on the recurrence (the
activations' derivatives times the other factor of each product) and the few operations that do (dh, dc). The
factors are computed for ``CHUNK`` steps in one call (fewer, larger element-wise calls than step by step; the
measurements are in cpu_lstm.py), and ``backward_steps`` is the loop that walks reversed t chunk by chunk.
``recurrent_kernel_gradient`` is also the reference loops' dU (``RNN.backward``), so it takes NumPy or CuPy arrays.
"""
import numpy

from ..backend import array_module


def unsupported(x, weights):
    """None when x and the weights are NumPy arrays of one float dtype; else why not."""
    arrays = [x] + list(weights)
    if any(type(a) is not numpy.ndarray for a in arrays):
        return "takes NumPy arrays"
    if x.dtype not in (numpy.float32, numpy.float64):
        return f"takes float32 or float64, got {x.dtype}"
    if any(w.dtype != x.dtype for w in weights):
        return "takes input and weights of one dtype"
    return None


def backward_steps(T, chunk, factors, dh, dhs):
    """The backward loop over t = T-1 .. 0, in chunks of ``chunk`` steps.

    ``factors(start, end)`` returns the recurrence-independent factors P of steps start <= t < end (step t at index
    k = t - start of P's time axis); it runs once per chunk. Before each step the gradient from the outputs, ``dhs[t]`` (T, B, H) unless
    None, is added to ``dh`` (B, H) in place. Yields ``(t, k, P)`` with k = t - start, P's index of step t.
    """
    for end in range(T, 0, -chunk):
        start = max(0, end - chunk)
        P = factors(start, end)
        for t in reversed(range(start, end)):
            if dhs is not None:
                numpy.add(dh, dhs[t], out=dh)
            yield t, t - start, P


def recurrent_kernel_gradient(h_in, dzh):
    """dU = sum_t h_in_t^T dzh_t over all timesteps at once. dzh: (T, B, G*H) -> dU (H, G*H).

    ``h_in`` is the recurrent input: one array (T, B, H) when every gate block multiplied the same h, or a
    sequence of G arrays (T, B, H), block k's own input (per-gate dropout masks, the GRU's h_reset).
    """
    T, B, GH = dzh.shape
    dzh = dzh.reshape(T * B, GH)
    if not isinstance(h_in, (list, tuple)):
        return h_in.reshape(T * B, -1).T @ dzh
    H = GH // len(h_in)
    blocks = [h_k.reshape(T * B, H).T @ dzh[:, k * H:(k + 1) * H] for k, h_k in enumerate(h_in)]
    return array_module(dzh).concatenate(blocks, axis=1)
