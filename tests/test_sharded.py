"""Batch shards (``deeprnn/kernels/sharded.py``, chosen by ``dr.set_num_threads``) compute what the reference
computes, and the same bits run after run for a given thread count, in worker processes and in threads alike.

- Every CPU kernel (LSTM, GRU in both variants, SimpleRNN) in 1, 2 and 3 shards against the reference loops:
  outputs, final states and every gradient (weights, input, initial state), with recurrent dropout masks, initial
  states, go_backwards and stateful calls, on batches that split unevenly and batches of fewer rows than shards.
- A whole drums-shaped model and three Adam steps under 2 threads against 1 thread; twice under 2 and 3 threads:
  identical bits.
- What the threads do: the shards run in other threads, each with one BLAS thread, and the process's BLAS setting
  is back afterwards; ``model.summary()`` names the shards.
- What the worker processes do (``shard_processes.py``): the same bits as threads; a kernel's error in a worker
  is raised here and the worker serves on; an interrupted call leaves no reply to be mistaken for the next one's; a
  killed worker is an error, then replaced; the worker drops the caches and workspaces this process lets go of; the
  arenas grow for a batch larger than they hold.
"""
import multiprocessing
import threading

import numpy
import pytest
import threadpoolctl

import deeprnn as dr
from deeprnn import backend, cli, layers
from deeprnn.errors import SettingError
from deeprnn.gradcheck import relative_error
from deeprnn.kernels import cpu_gru, cpu_lstm, cpu_simple_rnn, shard_processes, sharded
from deeprnn.kernels.workspace import Workspace
from lstm_cases import CELLS, OPTIONS, TOLERANCE, drums_model, random_layer_and_inputs, set_implementation

# longer than every kernel's backward chunk, so each shard crosses a chunk boundary
T_LONG = max(cpu_lstm.CHUNK, cpu_gru.CHUNK, cpu_simple_rnn.CHUNK) + 3
SHARD_OPTIONS = {name: OPTIONS[name] for name in ("return_state", "recurrent_dropout", "dropouts backwards",
                                                  "no bias")}


WORKERS = [pytest.param("processes", marks=pytest.mark.skipif(not shard_processes.AVAILABLE,
                                                               reason="worker processes need Linux")), "threads"]


@pytest.fixture
def threads():
    """Set the shard count (and where shards run) for one test; back to 1 and the default afterwards."""
    yield dr.set_num_threads
    dr.set_num_threads(1, sharded.DEFAULT_WORKERS)


def run_layer(layer, x, dtype, seed, initial_state, calls=1):
    """``calls`` forwards (a stateful layer carries its state from one to the next), then the last one's backward
    with random upstream gradients: (outputs, dx, grads, d_initial_state, the kernel that ran)."""
    for _ in range(calls):
        backend.set_seed(seed + 2)   # the same dropout masks on every path
        outputs, cache = layer.forward(x, training=True, initial_state=initial_state)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    rng = numpy.random.default_rng(seed + 3)
    upstream = [rng.normal(size=o.shape).astype(dtype) for o in outputs]
    result = layer.backward(upstream if layer.return_state else upstream[0], cache)
    return (outputs, result.dx, result.grads, result.d_initial_state), cache.kernel


def sharded_and_reference(cell, options, dtype, shards, threads, B=5, T=T_LONG, D=4, H=6, initial_state=True,
                          seed=0, calls=1, workers="threads"):
    """The layer through its kernel in ``shards`` shards (in ``workers``) and through the reference loops, with
    the same weights (a random bias), inputs, masks and upstream gradients."""
    make, kernel = CELLS[cell]
    layer, x, state = random_layer_and_inputs(make, options, dtype, B, T, D, H, seed, True, initial_state)
    results = {}
    for path, implementation, n in (("sharded", "fused", shards), ("reference", "reference", 1)):
        threads(n, workers)
        layer.implementation = implementation
        layer.reset_state()
        results[path], ran = run_layer(layer, x, dtype, seed, state, calls)
        expected = None if path == "reference" else kernel if n == 1 else sharded.sharded(kernel, n, workers)
        assert ran is expected
        if layer.stateful:
            results[path] += (list(layer.states),)
    return results


def assert_close(fast, reference, dtype):
    for name, a, b in zip(["outputs", "dx", "grads", "d_initial_state", "carried state"], fast, reference):
        a, b = (a, b) if isinstance(a, (list, tuple)) else ([a], [b])
        assert len(a) == len(b), name
        for k, (u, v) in enumerate(zip(a, b)):
            assert u.shape == v.shape and u.dtype == numpy.dtype(dtype), (name, k, u.shape, v.shape, u.dtype)
            error = relative_error(u, v)
            assert error < TOLERANCE[dtype], f"{name}[{k}]: relative error {error:.2e}"


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("option", list(SHARD_OPTIONS))
@pytest.mark.parametrize("shards", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_shards_equal_the_reference_loops(cell, shards, option, workers, threads):
    """B = 5 rows in 1, 2 (3 + 2 rows) and 3 (2 + 2 + 1) shards == the step functions' loops: outputs, states, dx,
    dW, dU, db and the initial state's gradient, to 1e-13 in float64 (masks and initial states included)."""
    results = sharded_and_reference(cell, SHARD_OPTIONS[option], "float64", shards, threads, workers=workers)
    assert_close(results["sharded"], results["reference"], "float64")


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_fewer_rows_than_shards_and_stateful_calls(cell, workers, threads):
    """B = 2 rows under 3 threads runs 2 shards of one row; a stateful layer carries the same state over two calls,
    and a one-row batch (generation) is the kernel called directly."""
    options = {"stateful": True, "recurrent_dropout": 0.3, "return_sequences": True, "return_state": True}
    results = sharded_and_reference(cell, options, "float64", 3, threads, B=2, initial_state=False, calls=2,
                                    workers=workers)
    assert_close(results["sharded"], results["reference"], "float64")
    assert sharded.shard_rows(2, 3) == [slice(0, 1), slice(1, 2)]
    results = sharded_and_reference(cell, {"return_state": True}, "float64", 3, threads, B=1, workers=workers)
    assert_close(results["sharded"], results["reference"], "float64")


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_shards_at_the_drums_widths_float32(cell, workers, threads):
    """At the drums model's width (H=256, recurrent dropout) float32 round-off stays at 1e-6 in 2 shards."""
    results = sharded_and_reference(cell, {"recurrent_dropout": 0.3, "return_sequences": True}, "float32", 2,
                                    threads, B=6, D=16, H=256, workers=workers)
    assert_close(results["sharded"], results["reference"], "float32")


class DoubledInputs(layers.LSTM):
    """An LSTM whose input projection is its own (2 x W): the shards must not run RNN's in its place."""

    def project_inputs(self, x_tm, input_mask):
        return 2 * super().project_inputs(x_tm, input_mask)

    def project_inputs_backward(self, dxw, x_tm, input_mask):
        dx, dW = super().project_inputs_backward(dxw, x_tm, input_mask)
        return 2 * dx, 2 * dW


@pytest.mark.parametrize("workers", WORKERS)
def test_shards_project_the_inputs_only_for_the_rnns_own_projection(workers, threads):
    """Batch shards run the input projection in each shard (``Sharded.projected_forward``) for the cells as they
    are; a layer with a projection of its own gets the kernel's loops in shards, its projection outside them, and
    still equals the reference loops."""
    threads(2, workers)
    kernel = sharded.sharded(cpu_lstm, 2, workers)
    assert layers.LSTM(3).projects_in_shards(kernel) and not DoubledInputs(3).projects_in_shards(kernel)
    assert not layers.LSTM(3).projects_in_shards(cpu_lstm)
    results = sharded_and_reference("lstm", {"return_sequences": True, "dropout": 0.2}, "float64", 2, threads,
                                    workers=workers)
    assert_close(results["sharded"], results["reference"], "float64")
    CELLS["doubled"] = (DoubledInputs, cpu_lstm)
    try:
        results = sharded_and_reference("doubled", {"return_sequences": True, "dropout": 0.2}, "float64", 2,
                                        threads, workers=workers)
    finally:
        del CELLS["doubled"]
    assert_close(results["sharded"], results["reference"], "float64")


def test_auto_runs_two_shards_in_threads_and_more_in_processes(threads):
    """"auto" (the default): 2 shards in threads, measured faster on 2 cores; 3 or more in worker processes,
    which share no GIL (threads where the OS has no worker processes)."""
    assert dr.get_shard_workers() == "auto"
    threads(2)
    assert sharded.across_threads(cpu_lstm).NAME == "cpu_lstm x2 threads"
    threads(3)
    expected = "processes" if shard_processes.AVAILABLE else "threads"
    assert sharded.across_threads(cpu_lstm).NAME == f"cpu_lstm x3 {expected}"
    assert sharded.shard_kind("auto", 4) == expected and sharded.shard_kind("threads", 4) == "threads"


# -- products by rows (the head's) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("n", [2, 3])
def test_products_by_rows_equal_the_one_product(n, workers, threads):
    """rows_product: a's rows in n shards == a @ b (to float64 round-off), 3 shards of 200+ rows; summed_product
    == a^T b, the same bits run after run; under 2 x MIN_SHARD_ROWS rows, the one product itself."""
    rng = numpy.random.default_rng(n)
    rows = 3 * sharded.MIN_SHARD_ROWS + 5
    a, b, c = rng.normal(size=(rows, 7)), rng.normal(size=(7, 5)), rng.normal(size=(rows, 5))
    threads(n, workers)
    assert len(sharded.row_parts(a)) == min(n, 3)
    numpy.testing.assert_allclose(sharded.rows_product(a, b), a @ b, rtol=1e-13, atol=1e-13)
    summed = sharded.summed_product(a, c)
    numpy.testing.assert_allclose(summed, a.T @ c, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_array_equal(sharded.summed_product(a, c), summed)
    small = a[:2 * sharded.MIN_SHARD_ROWS - 1]
    assert sharded.row_parts(small) is None
    numpy.testing.assert_array_equal(sharded.rows_product(small, b), small @ b)


@pytest.mark.parametrize("workers", WORKERS)
def test_dense_over_many_rows_in_shards_equals_one_thread(workers, threads):
    """A Dense head over B*T = 1,200 rows: under 2 shards its forward, dx, dW and db equal one thread's (float64)."""
    dr.set_floatx("float64")
    dr.set_seed(0)
    dense = layers.Dense(6)
    rng = numpy.random.default_rng(1)
    x, dy = rng.normal(size=(40, 30, 8)), rng.normal(size=(40, 30, 6))
    dense.ensure_built(x.shape)
    results = []
    for n in (1, 2):
        threads(n, workers)
        y, cache = dense.forward(x)
        back = dense.backward(dy, cache)
        results.append([y, back.dx, *back.grads])
    for one, two in zip(*results):
        assert relative_error(two, one) < 1e-13


def test_shard_rows_split_evenly_larger_first():
    assert sharded.shard_rows(32, 2) == [slice(0, 16), slice(16, 32)]
    assert sharded.shard_rows(5, 3) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert sharded.shard_rows(1, 4) == [slice(0, 1)]


# -- determinism and whole models -------------------------------------------------------------------------------------
def drums_training(steps=3, B=12):
    """Three Adam steps of the drums-shaped model (2 LSTMs, input and recurrent dropout): its weights."""
    dr.set_seed(0)
    model = drums_model(input_dropout=0.1)
    tokens = numpy.random.default_rng(1).integers(0, 9, size=(B, 15))
    for _ in range(steps):
        model.train_on_batch(tokens[:, :-1], tokens[:, 1:])
    return model.get_weights()


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("n", [2, 3])
def test_training_in_shards_gives_the_same_bits_every_run(n, workers, threads):
    """Under n threads, three training steps give identical weights run after run (dU summed in a fixed order);
    and they equal the one-thread run's to float32 round-off."""
    threads(1)
    one = drums_training()
    threads(n, workers)
    first, second = drums_training(), drums_training()
    for a, b, c in zip(first, second, one):
        numpy.testing.assert_array_equal(a, b)
        assert relative_error(a, c) < 1e-5


@pytest.mark.skipif(not shard_processes.AVAILABLE, reason="worker processes need Linux")
@pytest.mark.parametrize("n", [2, 3])
def test_worker_processes_give_the_bits_of_threads(n, threads):
    """The same kernel on the same rows with one BLAS thread: training in n worker processes gives exactly the
    weights of training in n threads."""
    threads(n, "threads")
    in_threads = drums_training()
    threads(n, "processes")
    for a, b in zip(drums_training(), in_threads):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("workers", WORKERS)
def test_whole_model_gradients_in_shards_equal_reference(workers, threads):
    """loss_and_gradients of the drums-shaped model: 2 shards == the reference loops, every gradient (float64)."""
    dr.set_floatx("float64")
    dr.set_seed(0)
    model = drums_model(input_dropout=0.1)
    tokens = numpy.random.default_rng(1).integers(0, 9, size=(5, 7))
    results = {}
    for implementation, n in (("fused", 2), ("reference", 1)):
        threads(n, workers)
        set_implementation(model, implementation)
        backend.set_seed(11)
        results[implementation] = model.loss_and_gradients(tokens[:, :6], tokens[:, 1:], training=True)
    (loss, grads), (loss_ref, grads_ref) = results["fused"], results["reference"]
    assert abs(loss - loss_ref) <= 1e-12 * abs(loss_ref)
    for variable, a, b in zip(model.variables, grads, grads_ref):
        assert (a is None) == (b is None), variable.name
        if a is not None:
            assert relative_error(a, b) < 1e-12, variable.name


# -- what the threads do ---------------------------------------------------------------------------------------------
class RecordingKernel:
    """A kernel that records, for each shard it runs, its thread and the BLAS threads it sees; forward returns
    its rows' xw as hs."""
    NAME = "recording"

    def __init__(self):
        self.seen = []

    def unsupported(self, x, weights):
        return None

    def blas_threads(self):
        return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]

    def forward(self, xw, U, initial_state, recurrent_mask, ws):
        self.seen.append((threading.current_thread().name, self.blas_threads(), xw.shape[1]))
        return xw, tuple(s.copy() for s in initial_state), xw.shape[1]

    def backward(self, dhs, d_final, cache, U, ws):
        self.seen.append((threading.current_thread().name, self.blas_threads(), cache))
        dxw = numpy.zeros((dhs.shape[0], cache, U.shape[1]))
        return dxw, dxw, numpy.full(U.shape, float(cache)), tuple(d.copy() for d in d_final)


def test_shards_run_in_their_own_threads_with_one_blas_thread_each(threads):
    """3 shards: one in the caller's thread, two in shard threads, each seeing one BLAS thread; the process's two
    BLAS threads are back afterwards; hs joins the rows in order, dU sums the shards'."""
    threads(3, "threads")
    kernel = RecordingKernel()
    run = sharded.Sharded(kernel, 3, "threads")
    xw = numpy.arange(2 * 7 * 4, dtype=float).reshape(2, 7, 4)
    U = numpy.zeros((4, 4))
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        hs, final, cache = run.forward(xw, U, (numpy.ones((7, 4)),), None, Workspace())
        dxw, dzh, dU, (dh0,) = run.backward(numpy.ones((2, 7, 4)), (numpy.ones((7, 4)),), cache, U,
                                            Workspace())
        after = kernel.blas_threads()
    numpy.testing.assert_array_equal(hs, xw)
    assert final[0].shape == (7, 4) and dh0.shape == (7, 4) and dxw is dzh and dxw.shape == (2, 7, 4)
    numpy.testing.assert_array_equal(dU, numpy.full((4, 4), 7.0))   # 3 + 2 + 2 rows
    # shard 0 (3 rows) runs in the caller's thread, the two of 2 rows in shard threads: forward and backward
    assert sorted(rows for _, _, rows in kernel.seen) == [2, 2, 2, 2, 3, 3]
    for name, blas, rows in kernel.seen:
        assert (name == threading.current_thread().name) == (rows == 3)
        assert rows == 3 or name.startswith("deeprnn-shard")
        assert blas and set(blas) == {1}
    assert after and set(after) == {2}


@pytest.mark.parametrize("workers", WORKERS)
def test_summary_names_the_shards_and_the_reference_is_never_sharded(workers, threads):
    threads(2, workers)
    model = dr.Sequential([layers.Input((5, 2)), layers.LSTM(3, return_sequences=True),
                           layers.GRU(3, return_sequences=True), layers.SimpleRNN(3, implementation="reference"),
                           layers.Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    runs = [line.split("fused")[-1].strip() if "fused" in line else line.split()[-1]
            for line in lines if line.startswith(("lstm", "gru", "simple_rnn"))]
    assert runs == [f"(cpu_lstm x2 {workers})", f"(cpu_gru x2 {workers})", "reference"]
    threads(1)
    assert model.layers[0].describe_implementation() == "fused (cpu_lstm)"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", 1025])
def test_set_num_threads_takes_a_count(bad):
    with pytest.raises(ValueError, match="set_num_threads: n must be an integer from 1 to 1024"):
        dr.set_num_threads(bad)
    assert dr.get_num_threads() == 1


def test_set_num_threads_takes_processes_or_threads(threads):
    with pytest.raises(ValueError, match="workers must be one of auto, processes, threads, got 'gpu'"):
        dr.set_num_threads(2, "gpu")
    assert dr.get_num_threads() == 1 and dr.get_shard_workers() == sharded.DEFAULT_WORKERS
    threads(2, "threads")
    threads(3)                         # None keeps the choice
    assert (dr.get_num_threads(), dr.get_shard_workers()) == (3, "threads")


# -- the command line: --threads -------------------------------------------------------------------------------------
def test_threads_flag_sets_the_shards_for_the_command_and_train_prints_them(tmp_path, capsys, monkeypatch):
    """`deeprnn train --threads 2` trains with 2 shards, says so first, and leaves the process's setting as it was."""
    seen = []

    def no_work(config, out, **kwargs):
        seen.append(dr.get_num_threads())
        raise SettingError("stop here")

    monkeypatch.setattr(cli, "train", no_work)
    assert cli.main(["train", "--threads", "2", "--blas-threads", "2", "--out", str(tmp_path / "run")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("threads: 2 (the recurrent layers in 2 batch shards in threads, one BLAS thread each; "
                      "BLAS threads outside them: 2)")
    assert seen == [2] and dr.get_num_threads() == 1
    assert cli.main(["train", "--threads", "1", "--out", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().out.splitlines()[0].startswith("threads: 1 (the recurrent layers in one thread")
    assert seen == [2, 1]
    assert cli.main(["train", "--threads", "3", "--shard-workers", "threads", "--out", str(tmp_path / "run")]) == 1
    assert capsys.readouterr().out.splitlines()[0].startswith("threads: 3 (the recurrent layers in 3 batch shards "
                                                              "in threads,")
    if shard_processes.AVAILABLE:
        assert cli.main(["train", "--threads", "3", "--out", str(tmp_path / "run")]) == 1
        assert capsys.readouterr().out.splitlines()[0].startswith("threads: 3 (the recurrent layers in 3 batch "
                                                                  "shards in worker processes,")
    assert seen[:3] == [2, 1, 3] and dr.get_shard_workers() == sharded.DEFAULT_WORKERS


@pytest.mark.parametrize("value, message", [("0", "must be an integer >= 1 and <= 1024, got 0"),
                                            ("two", "expected an integer, got 'two'")])
def test_a_bad_threads_value_is_one_line(value, message, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["train", "--threads", value])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"deeprnn train: error: argument --threads: {message} "
                                                    "(see deeprnn train --help)"]


def test_deeprnn_train_with_threads_gives_the_same_weights_every_run(groove, tmp_path, capsys):
    """`deeprnn train --threads 2` (2 LSTM layers in shards, dropout) twice with one seed: identical weights in
    last.npz; the same run in one thread lands within float32 round-off of it."""
    def weights(threads, name):
        out = tmp_path / name
        assert cli.main(["train", "--data", groove, "--max-files", "3", "--units", "6", "--layers", "2",
                         "--embedding-dim", "4", "--seq-len", "16", "--batch-size", "8", "--epochs", "2",
                         "--threads", str(threads), "--quiet", "--out", str(out)]) == 0
        with numpy.load(out / "last.npz") as saved:
            return [saved[key] for key in sorted(saved.files) if key.startswith("weight_")]

    first, second, one = weights(2, "first"), weights(2, "second"), weights(1, "one")
    assert "threads: 2 (the recurrent layers in 2 batch shards" in capsys.readouterr().out
    assert len(first) >= 8
    for a, b, c in zip(first, second, one):
        numpy.testing.assert_array_equal(a, b)
        assert relative_error(a, c) < 1e-4


def test_a_forked_child_makes_its_own_shard_threads(threads):
    """After a fork the parent's shard threads are gone: the child's sharded call still runs (and returns)."""
    threads(2)
    layer = layers.LSTM(4, return_sequences=True)
    x = numpy.ones((4, 3, 2), "float32")
    expected = layer(x)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(layer, (x,)).get(timeout=60)
    numpy.testing.assert_array_equal(got, expected)
