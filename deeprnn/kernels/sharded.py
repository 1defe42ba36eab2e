"""Batch shards: a CPU kernel's loops on several cores, each shard of the batch's rows in a thread or worker process.

Rows of a batch never meet in the recurrence (row b's h_t depends on row b's inputs and state alone), so the batch
splits into S contiguous shards of rows and each runs the same kernel, forward and backward, with its own workspace:
the first in the caller's thread, the others in threads of this process or in worker processes
(``shard_processes.py``, Linux). The results join:

    hs, final state, dxw, dzh, d_initial_state: the shards' rows side by side (B = B_0 + ... + B_{S-1})
    dU = ((dU_0 + dU_1) + dU_2) + ...: summed in shard order, so a given S gives the same bits run after run

A recurrent layer hands its shards more than the loops where it can (``RNN.projects_in_shards``): each shard
projects its own rows of x (``projected_forward``: xw_k = (x_k * M_k) W + b, then the loops) and, going back,
computes its dx, its share of dW and of the bias gradient's sums (``projected_backward``). A Dense layer over many
rows (the drums head: B*T rows) splits its products by rows the same way (``rows_product``, ``summed_product``).
The products then run on every core without BLAS threads. dW, dU and the bias sums add up in shard order.

Threads or processes (``set_num_threads(n, workers)``). They run the same functions on the same rows with one
BLAS thread, so they give the same bits (``tests/test_sharded.py``). Shard threads share the GIL: the kernels'
loops make about 20 NumPy calls a timestep, each handing it over, and S threads need S x 18 us of Python a
timestep, one after the other. Worker processes share nothing but the arrays, which they copy through shared
memory. Measured on the 2-core machine (docs/performance.md, "Every core II"), the drums LSTM training step: 159-164
ms on one thread, 94-97 ms in two shard threads, 99-103 ms in two worker processes (their copies). So "auto", the
default, runs 2 shards in threads and more in processes, where the GIL would bind threads (on paper: no machine
with more cores here). Half a batch costs about 60% of a whole one in the loops (each timestep's Python and NumPy
calls cost the same at any B): most of what keeps two shards from 2x.

OpenBLAS's thread count is process-wide. While shards run it is 1 (``one_blas_thread``: each shard's products stay
on its own thread), and it is put back after, so what runs outside the shards keeps the BLAS threads the process
set (``deeprnn train --blas-threads``). Two BLAS threads beside shards measured slower than one.

    set_num_threads(n, workers=None) / get_num_threads() / get_shard_workers()   # the library-wide setting
    across_threads(kernel) -> kernel      # what RNN.select_kernel runs: the kernel itself, or a Sharded
    rows_product(a, b), summed_product(a, b)   # a @ b and a^T b by rows in the shards (Dense)
    stop_workers()                        # end the shard threads and processes (the next sharded call starts them)

A ``Sharded`` has a kernel's interface (deeprnn/kernels/__init__.py), so ``RNN`` runs it like any kernel, and its
``NAME`` ("cpu_lstm x2 threads", "cpu_lstm x3 processes") is what ``model.summary()`` shows. A batch of fewer rows
than threads runs fewer shards (one row each); one shard is the kernel called directly, in the caller's thread
(generation's B = 1). Not for calls from several threads at once: the BLAS setting and the shards are the process's.
"""
import atexit
import functools
import os
import sys
import weakref
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor, wait

import numpy
import threadpoolctl

from . import cpu_gru, cpu_lstm, cpu_simple_rnn, shard_processes
from .workspace import Workspace

# the kernels whose arrays live in host memory and whose rows are independent: the CPU kernels
SHARDABLE = (cpu_lstm, cpu_gru, cpu_simple_rnn)
# how many threads a user may ask for: more than any machine's cores
MAX_THREADS = 1024

ShardedCache = namedtuple("ShardedCache", "rows caches shape")   # shape: xw's (T, B, G*H)
# a shard's cache on the projected path: the kernel's, and the rows of x and of the input masks dW needs
ProjectedCache = namedtuple("ProjectedCache", "loop x_tm input_mask")

# where shards run: worker processes (no shared GIL; Linux), threads of this process, or "auto": threads up to
# AUTO_PROCESSES_FROM - 1 shards, processes from there. Measured on 2 cores (docs/performance.md, "Every core II"),
# two shard threads ran the drums LSTM step in 94-97 ms, two processes in 99-103 ms (their copies); past two
# shards, threads share one GIL for S x 18 us of Python a timestep (on paper: no machine with more cores here)
WORKERS = ("auto", "processes", "threads")
DEFAULT_WORKERS = "auto"
AUTO_PROCESSES_FROM = 3

_threads = 1
_workers = DEFAULT_WORKERS
_runners = {}         # "processes"/"threads" -> the runner of that kind, grown to the most shards asked for yet
_shard_workspaces = weakref.WeakKeyDictionary()   # a layer's workspace -> its shards' workspaces


def _forget_runners():
    """In a forked child: the parent's shard threads do not exist there and its workers are the parent's, so the
    next call makes its own."""
    _runners.clear()


os.register_at_fork(after_in_child=_forget_runners)


def stop_workers():
    """Stop the shard threads and worker processes (made again by the next sharded call); at exit too."""
    runners = list(_runners.values())
    _runners.clear()
    for runner in runners:
        runner.close()


atexit.register(stop_workers)


def set_num_threads(n, workers=None):
    """Run the recurrent layers' CPU kernels (and the products of layers over many rows) in ``n`` batch shards
    (1: the kernel as it is), each in a worker process (``workers="processes"``, Linux) or a thread of this
    process (``"threads"``); ``"auto"``, the default: threads for 2 shards, processes for more (``shard_kind``);
    ``workers=None`` keeps the current choice.

    Like ``torch.set_num_threads``: process-wide, read by every recurrent layer when it picks its kernel.
    """
    global _threads, _workers
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"set_num_threads: n must be an integer from 1 to {MAX_THREADS}, got {n!r}")
    workers = _workers if workers is None else workers
    if workers not in WORKERS:
        raise ValueError(f"set_num_threads: workers must be one of {', '.join(WORKERS)}, got {workers!r}")
    if workers == "processes" and not shard_processes.AVAILABLE:
        raise ValueError(f"set_num_threads: workers='processes' needs Linux (memfd_create), not {sys.platform}; "
                         "use workers='threads'")
    _threads, _workers = int(n), workers


def get_num_threads():
    """The number of batch shards the recurrent layers' CPU kernels run in (``set_num_threads``)."""
    return _threads


def get_shard_workers():
    """Where the shards run as set: "auto", "processes" or "threads" (``set_num_threads``)."""
    return _workers


def shard_kind(workers, shards):
    """What ``workers`` means for ``shards`` shards: "processes" or "threads" ("auto": threads below
    AUTO_PROCESSES_FROM shards or where the OS has no worker processes, processes from there)."""
    if workers != "auto":
        return workers
    return "processes" if shards >= AUTO_PROCESSES_FROM and shard_processes.AVAILABLE else "threads"


def across_threads(kernel):
    """``kernel`` in ``get_num_threads()`` batch shards where it is a CPU kernel and more than one thread is set;
    else ``kernel`` itself."""
    if _threads == 1 or kernel not in SHARDABLE:
        return kernel
    return sharded(kernel, _threads, _workers)


def sharded(kernel, shards, workers=DEFAULT_WORKERS):
    """The one ``Sharded`` of each (kernel, shards, kind): the same object every call, as a kernel module is."""
    return sharded_of_kind(kernel, shards, shard_kind(workers, shards))


@functools.cache
def sharded_of_kind(kernel, shards, kind):
    return Sharded(kernel, shards, kind)


def shard_rows(B, shards):
    """min(shards, B) contiguous row ranges covering 0..B (one, empty, for B = 0), sizes differing by at most one
    (the larger first)."""
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
    """``count`` workspaces for the shards of the layer whose workspace is ``ws``, one per shard (a workspace
    is not for concurrent use); kept as long as ``ws`` is, that is, the layer's lifetime."""
    shards = _shard_workspaces.setdefault(ws, [])
    while len(shards) < count:
        shards.append(Workspace())
    return shards[:count]


class ShardThreads:
    """Threads beside the caller's: a call's first shard runs in the caller's thread, the others in these (the
    caller sets one BLAS thread: the setting is the process's)."""
    KIND = "threads"

    def __init__(self):
        self.pool, self.shards = None, 1

    def grow(self, shards):
        """Room for ``shards`` shards: ``shards - 1`` threads."""
        if shards > self.shards:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
            self.pool = ThreadPoolExecutor(max_workers=shards - 1, thread_name_prefix="deeprnn-shard")
            self.shards = shards

    def run(self, kernel, op, here, shard_args, workspaces, options):
        """``here(*args, ws, **options)`` for each shard's args and workspace (``op`` names it for worker
        processes); the results in shard order. The caller waits for every shard, also when one raises (its
        exception is raised then)."""
        tasks = [functools.partial(here, *args, ws, **options) for args, ws in zip(shard_args, workspaces)]
        futures = [self.pool.submit(task) for task in tasks[1:]]
        try:
            first = tasks[0]()
        finally:
            wait(futures)
        return [first] + [future.result() for future in futures]

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)


RUNNERS = {"processes": shard_processes.ShardProcesses, "threads": ShardThreads}


def runner(shards, workers):
    """The runner of ``workers`` ("processes" or "threads") with room for ``shards`` shards: made on first use
    (worker processes start then, ~0.3 s each) and kept for the process's life, grown when more shards are asked
    for; ``stop_workers`` ends them."""
    runner = _runners.get(workers)
    if runner is None:
        runner = _runners[workers] = RUNNERS[workers]()
    runner.grow(shards)
    return runner


class Sharded:
    """``kernel``'s loops in ``shards`` batch shards, in worker processes or threads; a kernel itself (the
    interface of deeprnn/kernels/__init__.py), made by ``sharded(kernel, shards, workers)``."""

    def __init__(self, kernel, shards, workers=DEFAULT_WORKERS):
        workers = shard_kind(workers, shards)
        self.kernel, self.shards, self.workers = kernel, shards, workers
        self.NAME = f"{kernel.NAME} x{shards} {workers}"
        self.unsupported = kernel.unsupported    # the same claim: the kernel's arrays

    def __repr__(self):
        return f"<kernel {self.NAME}>"

    def run(self, op, here, shard_args, ws, options):
        """Each shard's call (``here`` in this process, ``op`` by name in a worker) on one BLAS thread; the
        results in shard order. One shard: ``here`` alone, on the BLAS threads the process has."""
        if len(shard_args) == 1:
            return [here(*shard_args[0], ws, **options)]
        with one_blas_thread():
            return runner(self.shards, self.workers).run(self.kernel, op, here, shard_args,
                                                         shard_workspaces(ws, len(shard_args)), options)

    def join_forward(self, rows, results, ws, xw_shape):
        """The shards' (hs_k, final_k, cache_k) joined: (hs (T, B, H), final state, ShardedCache)."""
        if len(rows) == 1:
            hs, final, cache = results[0]
            return hs, final, ShardedCache(rows, (cache,), xw_shape)
        hs_parts, finals, caches = zip(*results)
        hs = ws.empty((hs_parts[0].shape[0], rows[-1].stop, hs_parts[0].shape[2]), hs_parts[0].dtype)
        for r, hs_k in zip(rows, hs_parts):
            hs[:, r] = hs_k
        return hs, tuple(numpy.concatenate(parts) for parts in zip(*finals)), ShardedCache(rows, caches, xw_shape)

    def forward(self, xw, U, initial_state, recurrent_mask, ws, **options):
        """The kernel's forward on each shard's rows of xw (T, B, G*H), the initial state (B, H) and the masks
        (G, B, H); returns (hs (T, B, H), final state, ShardedCache) like the kernel's."""
        rows = shard_rows(xw.shape[1], self.shards)
        shard_args = [(xw[:, r], U, tuple(s[r] for s in initial_state),
                       None if recurrent_mask is None else recurrent_mask[:, r]) for r in rows]
        return self.join_forward(rows, self.run("forward", self.kernel.forward, shard_args, ws, options), ws,
                                 xw.shape)

    def backward(self, dhs, d_final, cache, U, ws):
        """The kernel's backward on each shard's rows; dxw, dzh (T, B, G*H) and d_initial_state joined along B,
        dU summed in shard order. The cache is only read (as the kernels' are)."""
        rows = cache.rows
        shard_args = [(None if dhs is None else dhs[:, r], tuple(d[r] for d in d_final), cache_k, U)
                      for r, cache_k in zip(rows, cache.caches)]
        results = self.run("backward", self.kernel.backward, shard_args, ws, {})
        if len(rows) == 1:
            return results[0]
        dxw = ws.empty(cache.shape, U.dtype)
        dzh = ws.empty(cache.shape, U.dtype)     # written only where the kernel's dzh is not its dxw (the GRU's)
        shared = True
        for r, (dxw_k, dzh_k, _, _) in zip(rows, results):
            dxw[:, r] = dxw_k
            if dzh_k is not dxw_k:
                shared = False
                dzh[:, r] = dzh_k
        _, _, dUs, d_initials = zip(*results)
        return dxw, (dxw if shared else dzh), in_order_sum(dUs), joined_rows(d_initials)

    # -- the input projection in the shards too ------------------------------------------------------------------------
    def projected_forward(self, projection, x_tm, W, bias, input_mask, gates, U, initial_state, recurrent_mask, ws,
                          **options):
        """The layer's input projection and this kernel's forward, each shard on its rows: xw_k = (x_k * M_k) W + b
        by ``projection`` (``RNN``'s ``project_inputs`` function), then the loops. x_tm: (T, B, D); input_mask:
        None or (1 or G, B, D). Returns (hs (T, B, H), final state, ShardedCache) like ``forward``.

        Why: the products over all timesteps are about a third of a step (docs/performance.md); in the shards they
        use every core without BLAS threads, and a worker process receives x (D wide) instead of xw (G*H wide)."""
        rows = shard_rows(x_tm.shape[1], self.shards)
        shard_args = [(x_tm[:, r], W, bias, None if input_mask is None else input_mask[:, r], gates, U,
                       tuple(s[r] for s in initial_state), None if recurrent_mask is None else recurrent_mask[:, r])
                      for r in rows]
        here = functools.partial(projected_forward, self.kernel, projection)
        return self.join_forward(rows, self.run("projected_forward", here, shard_args, ws, options), ws, None)

    def projected_backward(self, projection_backward, dhs, d_final, cache, U, W, gates, ws):
        """The backward of ``projected_forward``: each shard's loops, then its dx and its share of dW by
        ``projection_backward`` (``RNN``'s ``project_inputs_backward``) and of the bias gradient's sums. Returns
        (dx (T, B, D) joined along B, dW, dU, (sum of dxw, sum of dzh or None), d_initial_state), the sums over
        shards in shard order."""
        shard_args = [(None if dhs is None else dhs[:, r], tuple(d[r] for d in d_final), cache_k, U, W, gates)
                      for r, cache_k in zip(cache.rows, cache.caches)]
        here = functools.partial(projected_backward, self.kernel, projection_backward)
        results = self.run("projected_backward", here, shard_args, ws, {})
        if len(results) == 1:
            return results[0]
        dxs, dWs, dUs, sums, d_initials = zip(*results)
        sums_dxw, sums_dzh = zip(*sums)
        return (numpy.concatenate(dxs, axis=1), in_order_sum(dWs), in_order_sum(dUs),
                (in_order_sum(sums_dxw), None if sums_dzh[0] is None else in_order_sum(sums_dzh)),
                joined_rows(d_initials))


def in_order_sum(parts):
    """((p_0 + p_1) + p_2) + ...: the shards' shares summed in a fixed order, so a given S gives the same bits."""
    return functools.reduce(numpy.add, parts)


def joined_rows(states):
    """The shards' state tuples ((B_k, H), ...) joined along B into one tuple."""
    return tuple(numpy.concatenate(parts) for parts in zip(*states))


def projected_forward(kernel, projection, x_tm, W, bias, input_mask, gates, U, initial_state, recurrent_mask, ws,
                      **options):
    """One shard's input projection and loops (``Sharded.projected_forward``): (hs, final state, ProjectedCache)."""
    xw = projection(x_tm, W, bias, input_mask, gates)
    hs, final, loop = kernel.forward(xw, U, initial_state, recurrent_mask, ws, **options)
    return hs, final, ProjectedCache(loop, x_tm, input_mask)


def projected_backward(kernel, projection_backward, dhs, d_final, cache, U, W, gates, ws):
    """One shard's loops backward, its dx, dW and the bias gradient's sums (``Sharded.projected_backward``)."""
    dxw, dzh, dU, d_initial = kernel.backward(dhs, d_final, cache.loop, U, ws)
    dx, dW = projection_backward(dxw, cache.x_tm, W, cache.input_mask, gates)
    sums = (dxw.sum(axis=(0, 1)), None if dzh is dxw else dzh.sum(axis=(0, 1)))
    return dx, dW, dU, sums, d_initial


# -- products by rows: the head's, beside the recurrent layers' shards ----------------------------------------------
# fewer rows than this a shard, and a product stays whole: handing it over would cost more than it saves
MIN_SHARD_ROWS = 256


def row_parts(a):
    """The row ranges of a 2-D NumPy ``a`` for the shards set by ``set_num_threads``, or None: one thread, a
    GPU array, or too few rows."""
    if _threads == 1 or type(a) is not numpy.ndarray or a.shape[0] < 2 * MIN_SHARD_ROWS:
        return None
    return shard_rows(a.shape[0], min(_threads, a.shape[0] // MIN_SHARD_ROWS))


def run_products(op, here, shard_args):
    """Each shard's product, on one BLAS thread: the first in this process, the others in the shards' workers."""
    with one_blas_thread():
        return runner(len(shard_args), shard_kind(_workers, _threads)).run(None, op, here, shard_args,
                                                                            [None] * len(shard_args), {})


def rows_product(a, b):
    """a @ b for a 2-D a: under ``set_num_threads(n)``, a's rows in n shards (each its rows of the product,
    joined in order: the same bits as one product); else the one product.

    Why: the drums head, Dense(515) over B*T = 2048 rows, is 11% of a one-thread training step and a sixth of a
    two-shard one once the recurrent layers run in shards (docs/performance.md, "Every core II")."""
    parts = row_parts(a)
    if parts is None:
        return a @ b
    return numpy.concatenate(run_products("rows_product", lambda a_k, b, ws: a_k @ b, [(a[r], b) for r in parts]))


def summed_product(a, b):
    """a^T b over the rows of a (R, K) and b (R, N): under ``set_num_threads(n)``, each shard's rows' product,
    summed in shard order (a given n gives the same bits every run); else the one product."""
    parts = row_parts(a)
    if parts is None:
        return a.T @ b
    return in_order_sum(run_products("summed_product", lambda a_k, b_k, ws: a_k.T @ b_k,
                                     [(a[r], b[r]) for r in parts]))
