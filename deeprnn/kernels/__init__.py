"""Fast kernels beside the readable reference, selected in this one place.

The layers in ``deeprnn/layers`` are the reference: one equation a line, a step function and the BPTT loops.
A kernel computes exactly the same thing for the cases it claims, arranged for speed (fused buffers, in-place
operations, other memory layouts), and a test holds it to the reference on random inputs
(``tests/test_fast_paths.py``).

``RNN.forward`` asks ``select(layer, x, training)`` for a kernel; ``None`` means the reference loops. The cache a
kernel's forward returns belongs to that kernel, so ``RNN.backward`` asks ``owner(cache)`` and hands the cache back
to the kernel that made it. A kernel is a module (or object) with:

    supports(layer, x, training) -> bool
    forward(layer, x, training, initial_state) -> (outputs, cache)       # RNN.forward's contract
    backward(layer, dout, cache) -> (dx, grads, d_initial_state)         # RNN.backward's contract
    CACHE_TYPES: the cache classes its forward returns

The first kernel in ``KERNELS`` that supports the call runs it: ``cuda_lstm`` (CuPy arrays) and ``cpu_lstm`` (NumPy
arrays); another kernel plugs in with ``register(module)``.

Switching the kernels off (every layer then runs the reference loops):
- ``deeprnn.kernels.enabled = False``, or ``with deeprnn.kernels.reference(): ...`` for a block;
- the environment variable ``DEEPRNN_REFERENCE=1`` at import time.
"""
import contextlib
import os

from . import cpu_lstm, cuda_lstm

enabled = os.environ.get("DEEPRNN_REFERENCE", "").strip().lower() not in ("1", "true", "yes", "on")

# cuda_lstm claims CuPy input only and cpu_lstm NumPy input only; cuda_lstm imports without CuPy
KERNELS = [cuda_lstm, cpu_lstm]


def register(kernel, first=True):
    """Add a kernel (a module with supports/forward/backward/CACHE_TYPES); ``first`` gives it priority."""
    if kernel not in KERNELS:
        KERNELS.insert(0, kernel) if first else KERNELS.append(kernel)


def select(layer, x, training):
    """The kernel that runs ``layer.forward(x, training)``, or None for the reference loops."""
    if not enabled:
        return None
    for kernel in KERNELS:
        if kernel.supports(layer, x, training):
            return kernel
    return None


def owner(cache):
    """The kernel whose forward made ``cache`` (None for a reference cache)."""
    for kernel in KERNELS:
        if isinstance(cache, kernel.CACHE_TYPES):
            return kernel
    return None


@contextlib.contextmanager
def reference():
    """Run the block on the reference loops (the kernels switched off), then restore the switch."""
    global enabled
    saved, enabled = enabled, False
    try:
        yield
    finally:
        enabled = saved
