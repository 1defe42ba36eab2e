"""Shards in worker processes (``deeprnn/kernels/shard_processes.py``): what the processes themselves do.

What they compute is held to the reference and to threads in ``tests/test_sharded.py``; here, the machinery:
- a kernel's (or a product's) error in a worker is raised in this process, with the worker's traceback, and the
  worker serves on;
- a call interrupted here (Ctrl-C while this process runs its own shard) leaves the worker's reply unread, and the
  next call is not answered with it;
- a worker killed from outside is a one-line error, and the next call starts a new one;
- the worker drops a forward's cache when this process lets go of it, and a layer's workspace when the layer goes;
- an arena grows for arrays larger than it holds; arrays that appear twice in a reply (dzh is dxw) arrive as one.
"""
import gc
import os
import signal

import numpy
import pytest

from deeprnn.kernels import cpu_lstm, shard_processes, sharded
from deeprnn.kernels.workspace import Workspace

pytestmark = pytest.mark.skipif(not shard_processes.AVAILABLE, reason="worker processes need Linux")


@pytest.fixture
def pool():
    """Worker processes of their own for one test (not the process-wide runner other tests share)."""
    runner = shard_processes.ShardProcesses()
    runner.grow(2)
    yield runner
    runner.close()


def lstm_shards(B=4, T=3, H=5, seed=0):
    """Two shards' forward arguments for the LSTM kernel, float64, and what the kernel gives on each."""
    rng = numpy.random.default_rng(seed)
    xw = rng.normal(size=(T, B, 4 * H))
    U = rng.normal(size=(H, 4 * H)) * 0.3
    state = (rng.normal(size=(B, H)), rng.normal(size=(B, H)))
    rows = sharded.shard_rows(B, 2)
    args = [(xw[:, r], U, tuple(s[r] for s in state), None) for r in rows]
    expected = [cpu_lstm.forward(*a, Workspace()) for a in args]
    return args, expected


def test_a_kernel_error_in_a_worker_is_raised_here_and_the_worker_serves_on(pool):
    args, expected = lstm_shards()
    xw, U, state, mask = args[1]
    broken = (xw, U[:, :-1], state, mask)             # U one column short: the worker's kernel raises
    with pytest.raises(shard_processes.WorkerError, match="in a shard worker(.|\n)*ValueError"):
        pool.run(cpu_lstm, "forward", cpu_lstm.forward, [args[0], broken], [Workspace(), Workspace()], {})
    results = pool.run(cpu_lstm, "forward", cpu_lstm.forward, args, [Workspace(), Workspace()], {})
    hs0, hs1 = (result[0] for result in results)
    numpy.testing.assert_array_equal(hs1, expected[1][0])
    numpy.testing.assert_array_equal(hs0, expected[0][0])
    # a product by rows whose shapes do not meet: the same
    a, b = numpy.ones((4, 3)), numpy.ones((3, 2))
    with pytest.raises(shard_processes.WorkerError, match="in a shard worker(.|\n)*ValueError"):
        pool.run(None, "rows_product", lambda a, b, ws: a @ b, [(a, b), (a, b[:2])], [None, None], {})
    _, product = pool.run(None, "rows_product", lambda a, b, ws: a @ b, [(a, b), (a, b)], [None, None], {})
    numpy.testing.assert_array_equal(product, a @ b)


def interrupted(*args, **options):
    """This process's shard, interrupted (Ctrl-C) while the workers run theirs."""
    raise KeyboardInterrupt


def test_an_interrupted_call_leaves_no_reply_to_be_taken_for_the_next(pool):
    """Ctrl-C in this process's shard: the workers' replies are read before it is raised, and the next call runs.
    Ctrl-C while waiting for a reply leaves that reply unread: the next call skips it by its number."""
    args, expected = lstm_shards(seed=1)
    with pytest.raises(KeyboardInterrupt):
        pool.run(cpu_lstm, "forward", interrupted, args, [Workspace(), Workspace()], {})
    _, (hs1, _, _) = pool.run(cpu_lstm, "forward", cpu_lstm.forward, args, [Workspace(), Workspace()], {})
    numpy.testing.assert_array_equal(hs1, expected[1][0])
    worker = pool.workers[0]
    worker.request(cpu_lstm, "forward", args[1], Workspace(), {})            # its reply is never read
    other, other_expected = lstm_shards(seed=2)
    call, key = worker.request(cpu_lstm, "forward", other[1], Workspace(), {})
    hs, final, cache = worker.reply(call, "forward", key)
    numpy.testing.assert_array_equal(hs, other_expected[1][0])
    assert isinstance(cache, shard_processes.RemoteCache)


def test_a_killed_worker_is_an_error_and_the_next_call_starts_another(pool):
    args, expected = lstm_shards()
    dead = pool.workers[0]
    os.kill(dead.process.pid, signal.SIGKILL)
    dead.process.wait()
    with pytest.raises(shard_processes.WorkerError, match="a shard worker exited"):
        pool.run(cpu_lstm, "forward", cpu_lstm.forward, args, [Workspace(), Workspace()], {})
    assert dead.closed
    pool.grow(2)                                       # what sharded.runner does before every call
    assert pool.workers[0] is not dead
    _, (hs1, _, _) = pool.run(cpu_lstm, "forward", cpu_lstm.forward, args, [Workspace(), Workspace()], {})
    numpy.testing.assert_array_equal(hs1, expected[1][0])


def test_the_worker_drops_what_this_process_lets_go_of(pool):
    args, _ = lstm_shards()
    worker = pool.workers[0]
    layer_workspaces = [Workspace(), Workspace()]
    caches = [pool.run(cpu_lstm, "forward", cpu_lstm.forward, args, layer_workspaces, {})[1][2]
              for _ in range(3)]
    assert worker.held() == (3, 1)                     # three caches, one workspace
    del caches
    gc.collect()
    assert worker.held() == (0, 1)
    # a backward after its forward's cache is gone there: the error names the cache, the worker serves on
    _, (_, _, cache) = pool.run(cpu_lstm, "forward", cpu_lstm.forward, args, layer_workspaces, {})
    del layer_workspaces
    gc.collect()
    assert worker.held() == (1, 0)
    del cache
    gc.collect()
    assert worker.held() == (0, 0)


def test_forward_and_backward_through_a_worker_equal_the_kernel_and_the_arena_grows():
    """A shard's xw of 21 MB, past the 16 MB first arena, through the process-wide runner: the arenas grow; the
    LSTM's dzh arrives as its dxw (one array)."""
    B, T, H = 128, 80, 64
    rng = numpy.random.default_rng(3)
    xw = rng.normal(size=(T, 2 * B, 4 * H))
    U = rng.normal(size=(H, 4 * H)) * 0.1
    state = (numpy.zeros((2 * B, H)), numpy.zeros((2 * B, H)))
    dhs = rng.normal(size=(T, 2 * B, H))
    run = sharded.Sharded(cpu_lstm, 2, "processes")
    hs, final, cache = run.forward(xw, U, state, None, Workspace())
    dxw, dzh, dU, d_initial = run.backward(dhs, state, cache, U, Workspace())
    ws = Workspace()
    hs_ref, final_ref, cache_ref = cpu_lstm.forward(xw, U, state, None, ws)
    dxw_ref, _, dU_ref, d_initial_ref = cpu_lstm.backward(dhs, state, cache_ref, U, ws)
    numpy.testing.assert_allclose(hs, hs_ref, rtol=0, atol=1e-13)
    numpy.testing.assert_allclose(dxw, dxw_ref, rtol=0, atol=1e-12)
    numpy.testing.assert_allclose(dU, dU_ref, rtol=1e-12, atol=1e-11)
    assert dzh is dxw
    worker = sharded.runner(2, "processes").workers[0]
    assert worker.channel.outgoing_size > shard_processes.FIRST_ARENA
    for a, b in zip(final + d_initial, final_ref + d_initial_ref):
        numpy.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
