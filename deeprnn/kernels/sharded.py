"""Batch shards: a CPU kernel's loops on several cores, each shard of the batch's rows in its own thread.

Rows of a batch never meet in the recurrence (row b's h_t depends on row b's inputs and state alone), so the batch
splits into S contiguous shards of rows and each runs the same kernel, forward and backward, in its own thread with
its own workspace; the results join:

    hs, final state, dxw, dzh, d_initial_state: the shards' rows side by side (B = B_0 + ... + B_{S-1})
    dU = ((dU_0 + dU_1) + dU_2) + ...: summed in shard order, so a given S gives the same bits run after run

What two shards buy, measured on the 2-core machine (docs/performance.md, "Every core", 2026-12-06): a drums LSTM
training step 178 -> 161 ms and 173 -> 141 ms, an epoch of the drums recipe 26.3 -> 24.6 s and 28.0 -> 23.8 s (two
rounds). Less than OpenBLAS's two threads buy on an idle machine (the step 178 -> 123 ms): NumPy releases the GIL in
BLAS calls and ufunc loops, so the shards' arithmetic overlaps, but their Python (about 18 us per step) takes turns,
and every NumPy call hands the GIL over. With another job on one core, though, two BLAS threads fell apart (the
epoch 42.5 s: each per-step product waits for its second thread) while the shards, which never wait for each other
inside a step, stayed ahead.

OpenBLAS's thread count is process-wide. While shards run it is 1 (``one_blas_thread``: each shard's products stay
on its own thread, none waits for a pool the other shard holds), and it is put back after, so the products over all
timesteps outside the kernel (the input projection, dW, dx) and the rest of the model keep the BLAS threads the
process set (``deeprnn train --blas-threads``).

    set_num_threads(n) / get_num_threads()     # the library-wide setting the recurrent layers read (default 1)
    across_threads(kernel) -> kernel            # what RNN.select_kernel runs: the kernel itself, or Sharded(kernel, n)

A ``Sharded`` has a kernel's interface (deeprnn/kernels/__init__.py), so ``RNN`` runs it like any kernel, and its
``NAME`` ("cpu_lstm x2 shards") is what ``model.summary()`` shows. A batch of fewer rows than threads runs fewer
shards (one row each); one shard is the kernel called directly, in the caller's thread (generation's B = 1).
Not for calls from several threads at once: the BLAS setting and the shard threads are the process's.
"""
import functools
import os
import weakref
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor, wait

import numpy
import threadpoolctl

from . import cpu_gru, cpu_lstm, cpu_simple_rnn
from .workspace import Workspace

# the kernels whose arrays live in host memory and whose rows are independent: the CPU kernels
SHARDABLE = (cpu_lstm, cpu_gru, cpu_simple_rnn)
# how many threads a user may ask for: more than any machine's cores
MAX_THREADS = 1024

ShardedCache = namedtuple("ShardedCache", "rows caches shape")   # shape: xw's (T, B, G*H)

_threads = 1
_pool = None          # the shard threads beside the caller's: a ThreadPoolExecutor of _threads - 1 workers
_shard_workspaces = weakref.WeakKeyDictionary()   # a layer's workspace -> its shards' workspaces


def _forget_pool():
    """In a forked child: the parent's shard threads do not exist there, so the next call makes new ones."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def set_num_threads(n):
    """Run the recurrent layers' CPU kernels in ``n`` batch shards, one thread each (1: the kernel as it is).

    Like ``torch.set_num_threads``: process-wide, read by every recurrent layer when it picks its kernel.
    """
    global _threads, _pool
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be an integer from 1 to {MAX_THREADS}, got {n!r}")
    n = int(n)
    if n != _threads and _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None
    _threads = n


def get_num_threads():
    """The number of batch shards the recurrent layers' CPU kernels run in (``set_num_threads``)."""
    return _threads


def across_threads(kernel):
    """``kernel`` in ``get_num_threads()`` batch shards where it is a CPU kernel and more than one thread is set;
    else ``kernel`` itself."""
    if _threads == 1 or kernel not in SHARDABLE:
        return kernel
    return sharded(kernel, _threads)


@functools.cache
def sharded(kernel, shards):
    """The one ``Sharded`` of each (kernel, shards): the same object every call, as a kernel module is."""
    return Sharded(kernel, shards)


def shard_rows(B, shards):
    """min(shards, B) contiguous row ranges covering 0..B (one, empty, for B = 0), sizes differing by at most one (the larger first)."""
    shards = max(1, min(shards, B))
    size, larger = divmod(B, shards)
    bounds = numpy.cumsum([0] + [size + 1] * larger + [size] * (shards - larger))
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


@functools.cache
def blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries (NumPy's OpenBLAS): made once, ~0.4 ms."""
    return threadpoolctl.ThreadpoolController()


def one_blas_thread():
    """A context in which BLAS runs each product on the calling thread alone (~12 us to enter and leave)."""
    return blas_controller().limit(limits=1, user_api="blas")


def shard_workspaces(ws, count):
    """``count`` workspaces for the shards of the layer whose workspace is ``ws``, one per shard thread (a workspace
    is not for concurrent use); kept as long as ``ws`` is, that is, the layer's lifetime."""
    shards = _shard_workspaces.setdefault(ws, [])
    while len(shards) < count:
        shards.append(Workspace())
    return shards[:count]


def run_shards(tasks):
    """Run the zero-argument ``tasks``, one per shard: the first in the caller's thread, the others in the shard
    threads, all with one BLAS thread. Their results, in order; the caller waits for every task, also when one
    raises (its exception is raised then)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, _threads - 1), thread_name_prefix="deeprnn-shard")
    with one_blas_thread():
        futures = [_pool.submit(task) for task in tasks[1:]]
        try:
            first = tasks[0]()
        finally:
            wait(futures)
        return [first] + [future.result() for future in futures]


class Sharded:
    """``kernel``'s loops in ``shards`` batch shards, one thread each; a kernel itself (the interface of
    deeprnn/kernels/__init__.py), made by ``sharded(kernel, shards)``."""

    def __init__(self, kernel, shards):
        self.kernel, self.shards = kernel, shards
        self.NAME = f"{kernel.NAME} x{shards} shards"
        self.unsupported = kernel.unsupported    # the same claim: the kernel's arrays

    def __repr__(self):
        return f"<kernel {self.NAME}>"

    def forward(self, xw, U, initial_state, recurrent_mask, ws, **options):
        """The kernel's forward on each shard's rows of xw (T, B, G*H), the initial state (B, H) and the masks
        (G, B, H); returns (hs (T, B, H), final state, ShardedCache) like the kernel's."""
        T, B, _ = xw.shape
        rows = shard_rows(B, self.shards)
        if len(rows) == 1:
            hs, final, cache = self.kernel.forward(xw, U, initial_state, recurrent_mask, ws, **options)
            return hs, final, ShardedCache(rows, (cache,), xw.shape)
        workspaces = shard_workspaces(ws, len(rows))
        hs = ws.empty((T, B, U.shape[0]), xw.dtype)

        def shard(k, r):
            mask = None if recurrent_mask is None else recurrent_mask[:, r]
            hs_k, final_k, cache_k = self.kernel.forward(xw[:, r], U, tuple(s[r] for s in initial_state), mask,
                                                         workspaces[k], **options)
            hs[:, r] = hs_k
            return final_k, cache_k

        finals, caches = zip(*run_shards([functools.partial(shard, k, r) for k, r in enumerate(rows)]))
        final = tuple(numpy.concatenate(parts) for parts in zip(*finals))
        return hs, final, ShardedCache(rows, caches, xw.shape)

    def backward(self, dhs, d_final, cache, U, ws):
        """The kernel's backward on each shard's rows; dxw, dzh (T, B, G*H) and d_initial_state joined along B,
        dU summed in shard order. The cache is only read (as the kernels' are)."""
        rows = cache.rows
        if len(rows) == 1:
            return self.kernel.backward(dhs, d_final, cache.caches[0], U, ws)
        workspaces = shard_workspaces(ws, len(rows))
        dtype = U.dtype
        dxw = ws.empty(cache.shape, dtype)
        dzh = ws.empty(cache.shape, dtype)       # written only where the kernel's dzh is not its dxw (the GRU's)

        def shard(k, r):
            dxw_k, dzh_k, dU_k, d_initial_k = self.kernel.backward(
                None if dhs is None else dhs[:, r], tuple(d[r] for d in d_final), cache.caches[k], U, workspaces[k])
            dxw[:, r] = dxw_k
            shared = dzh_k is dxw_k
            if not shared:
                dzh[:, r] = dzh_k
            return shared, dU_k, d_initial_k

        shared, dUs, d_initials = zip(*run_shards([functools.partial(shard, k, r) for k, r in enumerate(rows)]))
        dU = functools.reduce(numpy.add, dUs)    # ((dU_0 + dU_1) + dU_2) + ...: a fixed order, the same bits
        d_initial = tuple(numpy.concatenate(parts) for parts in zip(*d_initials))
        return dxw, (dxw if all(shared) else dzh), dU, d_initial
