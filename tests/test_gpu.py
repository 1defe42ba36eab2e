"""The GPU path: the same library on CuPy arrays gives the NumPy path's numbers, and the fused CUDA LSTM
(``deeprnn/kernels/cuda_lstm.py``) gives the reference loops' numbers.

Needs CuPy and a CUDA GPU (marker ``gpu``; skipped cleanly without them), except the first section, which runs
everywhere:

- without CuPy: the kernel module imports, declines NumPy arrays and never imports CuPy;
- without a GPU: the kernel's two CUDA step functions, compiled for the CPU by the host C++ compiler (one loop
  standing in for the CUDA threads), and its cuBLAS calls, replayed on NumPy memory, give the reference loops'
  outputs and gradients. That holds the kernel's index arithmetic and cuBLAS leading dimensions to the reference on
  every CI run; CUDA compilation, cuBLAS itself and CuPy's launches are checked by the GPU tests below.

On a GPU (``benchmarks/gpu_check.sh`` runs the whole suite there): every layer and the tutorial's model on CuPy
against NumPy (forward, loss, gradients, float32, <= 1e-5 norm-wise relative); the fused kernel against the
reference loops on CuPy for every option it claims, and against central differences in float64; dropout masks
reproducible under ``dr.set_seed``; weights moved to the GPU once and kept there, NumPy out of ``predict`` and
``save``, and no host/device copy inside a training step. Most other tests take the ``device`` fixture
(tests/conftest.py), so they run on CuPy too.
"""
import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
import warnings

import numpy
import pytest

import deeprnn as dr
from deeprnn import backend, layers
from deeprnn.gradcheck import check_layer_gradients, check_model_gradients, relative_error
from deeprnn.kernels import cpu_lstm, cuda_lstm
from deeprnn.layers.recurrent import RNN
from lstm_cases import OPTIONS, drums_model, set_implementation, tutorial_batch, tutorial_model

FLOAT32 = 1e-5          # GPU against NumPy, fused against reference: norm-wise relative error in float32
FLOAT64 = 1e-12         # the same in float64
GRADCHECK = 1e-6        # analytic against central differences, float64

requires_gpu = pytest.mark.skipif(backend.cupy_or_none() is None, reason="CuPy with a CUDA GPU is not available")


def on_gpu(test):
    return pytest.mark.gpu(requires_gpu(test))




def host(a):
    """NumPy copies of an array or a (nested) list of them."""
    if isinstance(a, (list, tuple)):
        return [host(v) for v in a]
    return None if a is None else backend.to_numpy(a)


def flatten(a):
    if isinstance(a, (list, tuple)):
        return [leaf for v in a for leaf in flatten(v)]
    return [a]


def assert_same(got, want, tolerance, what=""):
    """Same structure, shapes and dtypes; every array within ``tolerance`` norm-wise relative error."""
    got, want = flatten(host(got)), flatten(host(want))
    assert len(got) == len(want), what
    for k, (a, b) in enumerate(zip(got, want)):
        assert (a is None) == (b is None), (what, k)
        if a is None:
            continue
        assert a.shape == b.shape and a.dtype == b.dtype, (what, k, a.shape, b.shape, a.dtype, b.dtype)
        error = relative_error(a, b)
        assert error <= tolerance, f"{what}[{k}]: relative error {error:.2e} > {tolerance:g}"


def assert_as_accurate_as_numpy(gpu, cpu, truth, what):
    """GPU float32 against NumPy float32 to 1e-5, norm-wise per array; where NumPy's own float32 round-off
    (against float64) is larger than that, to three times that round-off: a sum with heavy cancellation (the bias
    gradient of an LSTM under BatchNorm, whose input gradient has zero mean over the batch) is only as exact as
    float32 lets it be, on any device and in any summation order."""
    gpu, cpu, truth = flatten(host(gpu)), flatten(host(cpu)), flatten(host(truth))
    assert len(gpu) == len(cpu) == len(truth), what
    for k, (a, b, c) in enumerate(zip(gpu, cpu, truth)):
        if b is None:
            assert a is None, (what, k)
            continue
        assert a.shape == b.shape and a.dtype == b.dtype == numpy.float32, (what, k, a.shape, b.shape, a.dtype)
        tolerance = max(FLOAT32, 3 * relative_error(b, c))
        error = relative_error(a, b)
        assert error <= tolerance, f"{what}[{k}]: relative error {error:.2e} > {tolerance:.2e}"


def lstm_both_ways(options, dtype, B=3, T=6, D=5, H=7, initial_state=False, training=True, seed=0):
    """One LSTM's forward and backward with implementation="fused" (cuda_lstm) and "reference", with the same
    masks (the mask generator is reseeded before each path). Arrays live on the current device."""
    dr.set_floatx(dtype)
    dr.set_seed(seed)
    layer = layers.LSTM(H, **options)
    rng = numpy.random.default_rng(seed + 1)
    x = backend.to_device(rng.normal(size=(B, T, D)).astype(dtype))
    layer.ensure_built(x.shape)
    state = [backend.to_device(rng.normal(size=(B, H)).astype(dtype)) for _ in range(2)] if initial_state else None
    results = {}
    for path in ("fused", "reference"):
        layer.implementation = path
        backend.set_seed(seed + 2)   # the same dropout masks on both paths
        outputs, cache = layer.forward(x, training=training, initial_state=state)
        assert cache.kernel is (cuda_lstm if path == "fused" else None), path
        outputs = outputs if isinstance(outputs, list) else [outputs]
        upstream_rng = numpy.random.default_rng(seed + 3)
        upstream = [backend.to_device(upstream_rng.normal(size=o.shape).astype(dtype)) for o in outputs]
        result = layer.backward(upstream if layer.return_state else upstream[0], cache)
        results[path] = (outputs, result.dx, result.grads, list(result.d_initial_state))
    return results


# == everywhere: the module without CuPy, the kernel's arithmetic without a GPU ========================================
def test_cuda_kernel_imports_and_declines_numpy_without_cupy():
    """With CuPy unimportable, cuda_lstm imports, declines NumPy input (the LSTM takes cpu_lstm), and the CPU path
    runs as before without importing CuPy."""
    code = """
import sys
sys.modules["cupy"] = None          # any `import cupy` now raises ImportError
import numpy
import deeprnn as dr
from deeprnn import layers
from deeprnn.kernels import cpu_lstm, cuda_lstm
dr.set_seed(0)
layer = layers.LSTM(3, recurrent_dropout=0.2, return_sequences=True)
x = numpy.ones((2, 4, 5), "float32")
layer.ensure_built(x.shape)
assert cuda_lstm in layer.fused_kernels
assert cuda_lstm.unsupported(x, [v.value for v in layer.variables]) == "takes CuPy arrays"
assert layer.select_kernel(x) is cpu_lstm
y, cache = layer.forward(x, training=True)
layer.backward(numpy.ones_like(y), cache)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


class EmulatedCublas:
    """cublas{S,D}gemm and cublas{S,D}gemmStridedBatched (no transposes, host pointer mode), column-major, carried
    out by NumPy on the memory behind the raw pointers the kernel passes."""

    CUBLAS_OP_N = 0
    CUBLAS_POINTER_MODE_HOST = 0

    def __init__(self):
        self.mode, self.calls = 0, 0

    @staticmethod
    def matrices(ptr, rows, cols, ld, ctype, batch, stride):
        size = ctypes.sizeof(ctype)
        memory = numpy.ctypeslib.as_array((ctype * ((batch - 1) * stride + ld * (cols - 1) + rows)).from_address(ptr))
        return numpy.lib.stride_tricks.as_strided(memory, (batch, rows, cols), (stride * size, size, ld * size))

    def run(self, ctype, transa, transb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch):
        assert transa == transb == self.CUBLAS_OP_N and self.mode == self.CUBLAS_POINTER_MODE_HOST
        assert lda >= m and ldb >= k and ldc >= m
        self.calls += 1
        alpha, beta = (ctypes.cast(p, ctypes.POINTER(ctype))[0] for p in (alpha, beta))
        a = self.matrices(A, m, k, lda, ctype, batch, sA)
        b = self.matrices(B, k, n, ldb, ctype, batch, sB)
        c = self.matrices(C, m, n, ldc, ctype, batch, sC)
        c[...] = alpha * numpy.matmul(a, b) + (beta * c if beta else 0)

    def sgemm(self, handle, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        self.run(ctypes.c_float, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1)

    def dgemm(self, handle, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        self.run(ctypes.c_double, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1)

    def sgemmStridedBatched(self, handle, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, count):
        self.run(ctypes.c_float, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, count)

    def dgemmStridedBatched(self, handle, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, count):
        self.run(ctypes.c_double, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, count)

    def getPointerMode(self, handle):
        return self.mode

    def setPointerMode(self, handle, mode):
        self.mode = mode


def parse_params(in_params, out_params):
    """ElementwiseKernel parameter strings -> [(name, type, raw, is_output)]."""
    params = []
    for spec, is_output in ((in_params, False), (out_params, True)):
        for declaration in spec.split(","):
            words = declaration.split()
            raw = words[0] == "raw"
            params.append((words[-1], words[-2], raw, is_output))
    return params


def host_source(name, params, operation):
    """The operation as a C++ function: raw arguments are pointers indexed flat, the others are the i-th element
    (what CuPy binds for one thread), and a loop over i replaces the grid of threads."""
    args, binds = ["ptrdiff_t _n"], []
    for pname, ptype, raw, is_output in params:
        if ptype == "int32":
            args.append(f"int {pname}")
        elif raw:
            args.append(f"Raw<T> {pname}")
        else:
            args.append(f"T* _raw_{pname}")
            binds.append(f"{'' if is_output else 'const '}T &{pname} = _raw_{pname}[i];")
    source = (f"template <typename T> void {name}({', '.join(args)}) {{\n  Ind _ind{{_n}};\n"
              f"  for (ptrdiff_t i = 0; i < _n; ++i) {{\n    {' '.join(binds)}\n{operation}\n  }}\n}}\n")
    for ctype, suffix in (("float", "f"), ("double", "d")):
        c_args = ["ptrdiff_t _n"] + [f"int {p}" if t == "int32" else f"{ctype}* {p}" for p, t, _, _ in params]
        forwarded = ["_n"] + [p if t == "int32" else (f"Raw<{ctype}>{{{p}}}" if raw else p) for p, t, raw, _ in params]
        call = f'{name}<{ctype}>({", ".join(forwarded)})'
        source += f'extern "C" void {name}_{suffix}({", ".join(c_args)}) {{ {call}; }}\n'
    return source


def host_kernel(library, name, params):
    """A callable with the ElementwiseKernel's argument order, running the host-compiled step on NumPy arrays."""
    def call(*args):
        arrays = [a for a, (_, ptype, _, _) in zip(args, params) if ptype != "int32"]
        size = {a.size for a, (_, ptype, raw, _) in zip(args, params) if ptype != "int32" and not raw}
        assert len(args) == len(params) and len(size) == 1 and all(a.flags.c_contiguous for a in arrays)
        c_args = [ctypes.c_ssize_t(size.pop())]
        c_args += [ctypes.c_int(int(a)) if ptype == "int32" else ctypes.c_void_p(a.ctypes.data)
                   for a, (_, ptype, _, _) in zip(args, params)]
        getattr(library, f"{name}_{'f' if arrays[0].dtype == numpy.float32 else 'd'}")(*c_args)
    return call


@pytest.fixture(scope="module")
def host_compiled_steps(tmp_path_factory):
    """cuda_lstm's STEP_FORWARD/STEP_BACKWARD compiled by the host C++ compiler, as two callables."""
    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if compiler is None:
        pytest.skip("no host C++ compiler to build the CUDA step functions for the CPU")
    forward_params, backward_params = parse_params(*cuda_lstm.FORWARD_PARAMS), parse_params(*cuda_lstm.BACKWARD_PARAMS)
    source = "\n".join([
        "#include <cmath>", "#include <cstddef>", "#define __device__",
        "using std::exp; using std::tanh; using std::fabs;",
        "struct Ind { ptrdiff_t n; ptrdiff_t size() const { return n; } };",
        "template <typename T> struct Raw { T* p; T& operator[](ptrdiff_t k) const { return p[k]; } };",
        cuda_lstm.SIGMOID,
        host_source("step_forward", forward_params, cuda_lstm.STEP_FORWARD),
        host_source("step_backward", backward_params, cuda_lstm.STEP_BACKWARD)])
    folder = tmp_path_factory.mktemp("cuda_lstm_on_host")
    (folder / "steps.cpp").write_text(source)
    library = folder / "libsteps.so"
    subprocess.run([compiler, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(library),
                    str(folder / "steps.cpp")], check=True, capture_output=True)
    compiled = ctypes.CDLL(str(library))
    return (host_kernel(compiled, "step_forward", forward_params),
            host_kernel(compiled, "step_backward", backward_params))


@pytest.fixture(params=["cublas", "cupy"])
def emulated_gpu(request, monkeypatch, host_compiled_steps):
    """cuda_lstm with NumPy for CuPy, the host-compiled steps for its ElementwiseKernels, emulated cuBLAS; the LSTM
    offered cuda_lstm alone, so implementation="fused" runs it through RNN.forward's own bookkeeping."""
    cublas = EmulatedCublas()
    monkeypatch.setattr(cuda_lstm, "unsupported", lambda x, weights: None)
    monkeypatch.setattr(layers.LSTM, "fused_kernels", (cuda_lstm,))
    monkeypatch.setattr(cuda_lstm, "_cupy", lambda: numpy)
    monkeypatch.setattr(cuda_lstm, "_kernels", lambda: host_compiled_steps)
    monkeypatch.setattr(cuda_lstm, "_cublas", lambda: (cublas, 0))
    monkeypatch.setattr(cuda_lstm, "device_pointer", lambda a: a.ctypes.data)
    monkeypatch.setattr(cuda_lstm, "GEMM", request.param)
    return cublas


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_cuda_step_functions_on_the_host_equal_the_reference_loops(emulated_gpu, option, dtype):
    """The CUDA kernels' arithmetic (host-compiled) == LSTM.step_forward/step_backward loops: outputs, final states,
    dx, dW, dU, db, dh_0, dc_0, to 1e-6 in float32; the per-step products went through the cuBLAS calls."""
    results = lstm_both_ways(OPTIONS[option], dtype, initial_state=True)
    assert_same(results["fused"], results["reference"], 1e-6 if dtype == "float32" else 1e-13, option)
    if cuda_lstm.GEMM == "cublas":
        assert emulated_gpu.calls == 2 * 6, "one recurrent product per timestep, forward and backward"


def test_cuda_step_functions_on_the_host_single_step_and_inference(emulated_gpu):
    """T = 1 (the backward loop is only its entry step) and training=False (no masks) still equal the reference."""
    for options, kwargs in [({"recurrent_dropout": 0.3, "return_state": True}, {"T": 1}),
                            ({"dropout": 0.5, "recurrent_dropout": 0.5}, {"training": False})]:
        results = lstm_both_ways(options, "float64", **kwargs)
        assert_same(results["fused"], results["reference"], 1e-13, str(options))


# == on the GPU ========================================================================================================
@pytest.fixture
def gpu():
    """The GPU backend for this test (conftest restores the CPU and float32 afterwards)."""
    dr.set_device("gpu")
    import cupy
    return cupy


@contextlib.contextmanager
def per_step_products(gemm):
    """cuda_lstm's per-step products issued through ``gemm`` ("cublas" or "cupy"), restored afterwards."""
    saved, cuda_lstm.GEMM = cuda_lstm.GEMM, gemm
    try:
        yield gemm
    finally:
        cuda_lstm.GEMM = saved


@pytest.fixture(params=["cublas", "cupy"])
def fused(request, gpu):
    """The GPU, once per way cuda_lstm issues its per-step products (the kernel's own tests)."""
    with per_step_products(request.param):
        yield request.param


@pytest.fixture
def gpu_fused(gpu):
    """The GPU with cuda_lstm as it ships (the library-level tests)."""
    yield


def is_cupy(a):
    return type(a).__module__.startswith("cupy")


# -- the fused kernel against the reference loops, both on CuPy --------------------------------------------------------
@on_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_fused_cuda_lstm_equals_reference_loops_on_cupy(fused, option, dtype):
    """cuda_lstm == the reference loops on CuPy (same masks): outputs, states, dx, dW, dU, db, dh_0, dc_0."""
    results = lstm_both_ways(OPTIONS[option], dtype, initial_state=True)
    assert all(is_cupy(a) for a in flatten(results["fused"]))
    assert_same(results["fused"], results["reference"], FLOAT32 if dtype == "float32" else FLOAT64, option)


@on_gpu
def test_fused_cuda_lstm_at_the_tutorials_widths(fused):
    """H = 256, recurrent dropout 0.3, float32: the fused kernel stays within 1e-5 of the reference."""
    results = lstm_both_ways({"recurrent_dropout": 0.3, "return_sequences": True}, "float32",
                             B=32, T=20, D=256, H=256)
    assert_same(results["fused"], results["reference"], FLOAT32)


@on_gpu
def test_fused_cuda_lstm_inference_single_step_and_reused_cache(fused):
    """training=False ignores dropout like the reference; T = 1 works; a second backward on one cache is identical."""
    for options, kwargs in [({"dropout": 0.5, "recurrent_dropout": 0.5}, {"training": False}),
                            ({"recurrent_dropout": 0.3, "return_state": True}, {"T": 1})]:
        results = lstm_both_ways(options, "float64", **kwargs)
        assert_same(results["fused"], results["reference"], FLOAT64, str(options))
    dr.set_floatx("float32")
    dr.set_seed(0)
    layer = layers.LSTM(4, recurrent_dropout=0.2, return_sequences=True)
    x = backend.to_device(numpy.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32"))
    layer.ensure_built(x.shape)
    y, cache = layer.forward(x, training=True)
    assert cache.kernel is cuda_lstm
    dy = backend.array_module(y).ones_like(y)
    first, second = layer.backward(dy, cache), layer.backward(dy, cache)
    for a, b in zip(flatten(list(first)), flatten(list(second))):
        numpy.testing.assert_array_equal(host(a), host(b))


@on_gpu
def test_fused_cuda_lstm_stateful_carries_the_reference_states(fused):
    """stateful=True: after two calls the carried (h, c) equal the reference path's, and stay on the GPU."""
    x = backend.to_device(numpy.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32"))
    states = {}
    for path in ("fused", "reference"):
        dr.set_seed(0)
        layer = layers.LSTM(5, stateful=True, implementation=path)
        layer(x)
        layer(x)
        assert all(is_cupy(s) for s in layer.states)
        states[path] = host(list(layer.states))
    assert_same(states["fused"], states["reference"], FLOAT32)


@on_gpu
@pytest.mark.parametrize("option", ["return_sequences", "go_backwards", "both dropouts", "dropouts backwards",
                                    "no bias"])
def test_fused_cuda_lstm_gradients_equal_central_differences_float64(fused, float64, option):
    """Fused CUDA LSTM on the GPU: analytic gradients (W, U, b, x, h_0, c_0) equal central differences to 1e-6."""
    dr.set_seed(3)
    layer = layers.LSTM(4, implementation="fused", **OPTIONS[option])
    rng = numpy.random.default_rng(4)
    x = backend.to_device(rng.normal(size=(2, 5, 3)))
    layer.ensure_built(x.shape)
    assert layer.select_kernel(x) is cuda_lstm
    errors = check_layer_gradients(layer, x, seed=5, initial_state=[rng.normal(size=(2, 4)) for _ in range(2)])
    assert set(errors) >= {"input", "initial_state[0]", "initial_state[1]"}
    assert max(errors.values()) < GRADCHECK, errors


@on_gpu
def test_kernel_selection_by_device_dtype_and_cell(gpu_fused):
    """'auto': CuPy float input of the weights' dtype runs cuda_lstm; NumPy runs cpu_lstm; anything else the
    reference; 'reference' always the reference."""
    lstm = layers.LSTM(3)
    x = backend.to_device(numpy.zeros((2, 3, 4), "float32"))
    lstm.ensure_built(x.shape)
    assert lstm.select_kernel(x) is cuda_lstm
    assert lstm.select_kernel(x.astype("float64")) is None          # the weights are float32
    assert cuda_lstm.unsupported(backend.to_numpy(x), [v.value for v in lstm.variables]) is not None
    relu = layers.LSTM(3, activation="relu")
    relu.ensure_built(x.shape)
    assert relu.select_kernel(x) is None
    _, cache = relu.forward(x, training=True)
    assert cache.implementation == "reference"
    gru = layers.GRU(3)
    gru.ensure_built(x.shape)
    assert gru.select_kernel(x) is None
    lstm.implementation = "reference"
    assert lstm.select_kernel(x) is None
    dr.set_device("cpu")
    cpu = layers.LSTM(3)
    cpu.ensure_built((2, 3, 4))
    assert cpu.select_kernel(numpy.zeros((2, 3, 4), "float32")) is cpu_lstm


# -- every layer: CuPy against NumPy -----------------------------------------------------------------------------------
def random_weights(layer, seed):
    """Random values for every weight (biases and BatchNorm statistics included: nothing checked at 0 or 1)."""
    rng = numpy.random.default_rng(seed)
    weights = []
    for variable, value in zip(layer.variables, layer.get_weights()):
        if variable.name.endswith("moving_variance"):
            weights.append(rng.uniform(0.5, 2.0, size=value.shape))
        else:
            weights.append(rng.normal(scale=0.5, size=value.shape))
    return weights


def dense(activation):
    return lambda: layers.Dense(4, activation=activation)


LAYER_CASES = {
    **{f"dense_{a}": (dense(a), (3, 5), True) for a in (None, "relu", "tanh", "sigmoid", "softmax")},
    "dense_on_sequence": (lambda: layers.Dense(3, activation="tanh"), (2, 4, 5), True),
    **{f"activation_{a}": (lambda a=a: layers.Activation(a), (3, 6), True)
       for a in ("relu", "softmax", "tanh", "sigmoid", "linear")},
    "dropout_inference": (lambda: layers.Dropout(0.5), (4, 6), False),
    "batchnorm_training": (lambda: layers.BatchNormalization(), (5, 4), True),
    "batchnorm_inference": (lambda: layers.BatchNormalization(), (5, 4), False),
    "batchnorm_on_sequence": (lambda: layers.BatchNormalization(), (3, 4, 2), True),
    "embedding": (lambda: layers.Embedding(5, 3), "tokens", True),
    "simple_rnn": (lambda: layers.SimpleRNN(4, return_sequences=True), (3, 5, 3), True),
    "simple_rnn_backwards_state": (lambda: layers.SimpleRNN(4, go_backwards=True, return_state=True), (3, 5, 3), True),
    "gru_reset_after": (lambda: layers.GRU(4, return_sequences=True), (3, 5, 3), True),
    "gru_reset_before": (lambda: layers.GRU(4, reset_after=False, return_state=True), (3, 5, 3), True),
    "lstm_last": (lambda: layers.LSTM(4), (3, 5, 3), True),
    "lstm_sequences": (lambda: layers.LSTM(4, return_sequences=True), (3, 5, 3), True),
    "lstm_backwards_state": (lambda: layers.LSTM(4, go_backwards=True, return_state=True), (3, 5, 3), True),
}


def run_layer(make, weights, x, training, implementation="auto", upstream_seed=9):
    """forward and backward of a fresh layer on the current device with ``weights``; host copies of everything."""
    layer = make()
    if isinstance(layer, RNN):
        layer.implementation = implementation
    layer.ensure_built(x.shape)
    if weights:
        layer.set_weights(weights)
    x = backend.to_device(x)
    outputs, cache = layer.forward(x, training=training)
    rng = numpy.random.default_rng(upstream_seed)
    upstream = [backend.to_device(rng.normal(size=o.shape).astype("float32").astype(o.dtype))
                for o in flatten(outputs)]
    result = layer.backward(upstream if isinstance(outputs, list) else upstream[0], cache)
    return host([outputs, *result])


LAYER_RUNS = ([pytest.param(case, "fused", id=case) for case in LAYER_CASES]
              + [pytest.param(case, "reference", id=f"{case}-reference-loops") for case in LAYER_CASES
                 if case.startswith("lstm")])


@on_gpu
@pytest.mark.parametrize("case,path", LAYER_RUNS)
def test_every_layer_on_cupy_equals_numpy_float32(gpu_fused, case, path):
    """The same weights, input and upstream gradient on both devices: outputs, dx, every weight gradient (and
    d_initial_state) agree to 1e-5 in float32 (see assert_as_accurate_as_numpy). ``path``: the GPU's LSTMs on the
    fused kernel or on the reference loops."""
    make, shape, training = LAYER_CASES[case]
    rng = numpy.random.default_rng(0)
    x = rng.integers(0, 5, size=(4, 6)) if shape == "tokens" else rng.normal(size=shape).astype("float32")
    dr.set_device("cpu")
    dr.set_seed(0)
    probe = make()
    probe.ensure_built(x.shape)
    weights = [w.astype("float32") for w in random_weights(probe, 1)]   # the same values in either precision
    results = {}
    for device, dtype in (("cpu", "float32"), ("gpu", "float32"), ("cpu", "float64")):
        dr.set_device(device)
        dr.set_floatx(dtype)
        # on the GPU, "fused" is "auto": cuda_lstm for the LSTMs, the reference for cells without a CUDA kernel
        implementation = "auto" if device == "cpu" or path == "fused" else path
        results[device, dtype] = run_layer(make, weights, x.astype(dtype) if x.dtype.kind == "f" else x, training,
                                           implementation)
    dr.set_floatx("float32")
    assert_as_accurate_as_numpy(results["gpu", "float32"], results["cpu", "float32"], results["cpu", "float64"], case)


# -- whole models: CuPy against NumPy ----------------------------------------------------------------------------------
def drums_batch(vocab=9, seed=1):
    tokens = numpy.random.default_rng(seed).integers(0, vocab, size=(4, 7))
    return tokens[:, :6], tokens[:, 1:]


def on_devices(build, batch, action, runs=(("cpu", "float32"), ("gpu", "float32"), ("cpu", "float64"))):
    """``action(model, x, y)`` for each (device, float dtype), the model's weights drawn once (float64, on the
    host) and set on each; returns {(device, dtype): result}."""
    dr.set_device("cpu")
    dr.set_floatx("float64")
    dr.set_seed(0)
    weights = [w.astype("float32") for w in build().get_weights()]   # the same values in either precision
    results = {}
    for device, dtype in runs:
        dr.set_device(device)
        dr.set_floatx(dtype)
        dr.set_seed(0)
        model = build()
        model.set_weights(weights)
        x, y = (a.astype(dtype) if a.dtype.kind == "f" else a for a in batch)
        results[device, dtype] = action(model, x, y)
    dr.set_floatx("float32")
    return results


@on_gpu
@pytest.mark.parametrize("build,batch", [(lambda: tutorial_model(rate=0.0), tutorial_batch()),
                                         (drums_model, drums_batch())], ids=["tutorial", "drums"])
def test_whole_model_on_cupy_equals_numpy_float32(gpu_fused, build, batch):
    """Dropout off (the two devices draw from different generators): predict, the loss and every gradient of the
    tutorial's model (and the drum model), and the weights after three Adam steps, agree with NumPy's to 1e-5
    (or to NumPy's own float32 round-off where that is larger; float64 on the CPU is the yardstick)."""
    def action(model, x, y):
        predicted = model.predict(x)
        loss, grads = model.loss_and_gradients(x, y, training=True)
        for _ in range(3):
            model.train_on_batch(x, y)
        return predicted, loss, grads, model.get_weights()

    results = on_devices(build, batch, action)
    cpu, gpu, truth = results["cpu", "float32"], results["gpu", "float32"], results["cpu", "float64"]
    assert isinstance(gpu[0], numpy.ndarray) and isinstance(gpu[1], float)
    assert abs(gpu[1] - cpu[1]) <= max(FLOAT32 * abs(cpu[1]), 3 * abs(cpu[1] - truth[1]))
    for index, what in [(0, "predict"), (2, "gradients"), (3, "weights after 3 steps")]:
        assert_as_accurate_as_numpy(gpu[index], cpu[index], truth[index], what)


@on_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tutorial_model_fused_equals_reference_on_cupy_with_dropout(gpu_fused, dtype):
    """With recurrent dropout 0.3 and Dropout 0.3 (the same masks: both paths draw in the same order), the fused
    kernel's loss and gradients equal the GPU reference loops' (float64: to 1e-12; float32: the loss to 1e-5, the
    gradients to 5e-5, because the second LSTM's bias gradient under BatchNorm carries ~1.2e-5 of float32 round-off
    on any path, see assert_as_accurate_as_numpy); the LSTMs' caches are the fused kernel's."""
    dr.set_floatx(dtype)
    dr.set_seed(0)
    model = tutorial_model()
    x, y = tutorial_batch()
    x, y = model.prepare_input(x), model.as_array(y, "y")
    results = {}
    for path in ("fused", "reference"):
        set_implementation(model, path)
        backend.set_seed(11)
        _, caches = model.forward(x, training=True)
        lstm_caches = [c for layer, c in zip(model.layers, caches) if isinstance(layer, RNN)]
        assert all(c.kernel is (cuda_lstm if path == "fused" else None) for c in lstm_caches), path
        backend.set_seed(11)
        results[path] = model.loss_and_gradients(x, y, training=True)
    (loss_fused, grads_fused), (loss_ref, grads_ref) = results["fused"], results["reference"]
    tolerance = FLOAT32 if dtype == "float32" else FLOAT64
    assert abs(loss_fused - loss_ref) <= tolerance * abs(loss_ref)
    assert_same(grads_fused, grads_ref, 5 * tolerance)


@on_gpu
def test_tutorial_model_gradients_on_the_gpu_fast_path_float64(fused, float64):
    """The narrow tutorial model on the GPU, fused LSTMs, training mode: every weight's gradient (sampled) and the
    input's equal central differences to 1e-6."""
    dr.set_seed(0)
    model = tutorial_model(units=4, vocab=5)
    x, y = tutorial_batch(B=3, T=7, vocab=5)
    errors = check_model_gradients(model, x.astype("float64"), y, seed=2, max_checks_per_weight=12)
    assert max(errors.values()) < GRADCHECK, errors


# -- dropout masks on the GPU ------------------------------------------------------------------------------------------
@on_gpu
def test_dropout_masks_come_from_cupys_generator_and_repeat_under_set_seed(gpu_fused):
    """Dropout's mask is a CuPy array of 0 and 1/(1-rate); the same seed gives the same mask, another seed another;
    a recurrent layer with both dropouts gives the same training output after the same seed."""
    dropout = layers.Dropout(0.25)
    x = backend.to_device(numpy.ones((64, 128), "float32"))
    masks = []
    for seed in (5, 5, 6):
        dr.set_seed(seed)
        _, mask = dropout.forward(x, training=True)
        assert is_cupy(mask)
        masks.append(host(mask))
    numpy.testing.assert_array_equal(masks[0], masks[1])
    assert not numpy.array_equal(masks[0], masks[2])
    assert set(numpy.unique(masks[0]).tolist()) == {0.0, float(numpy.float32(1) / numpy.float32(0.75))}
    assert 0.2 < (masks[0] == 0).mean() < 0.3

    dr.set_seed(0)
    lstm = layers.LSTM(6, dropout=0.2, recurrent_dropout=0.3, return_sequences=True)
    x = backend.to_device(numpy.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32"))
    outputs = []
    for seed in (7, 7, 8):
        dr.set_seed(seed)
        outputs.append(host(lstm(x, training=True)))
    numpy.testing.assert_array_equal(outputs[0], outputs[1])
    assert not numpy.allclose(outputs[0], outputs[2])


# -- where the arrays live ---------------------------------------------------------------------------------------------
def data_pointers(model):
    # trainable weights only: BatchNormalization replaces its moving statistics (on the GPU) after every step
    return [v.value.data.ptr for v in model.trainable_variables]


@on_gpu
def test_set_device_gpu_moves_the_weights_once_and_training_keeps_them_in_place(gpu_fused):
    """A model built on the CPU moves with to_device() (values unchanged); one built after set_device('gpu') starts
    from the same weights (initializers draw on the host); Adam updates the GPU arrays in place (the trainable
    weights never move) and keeps its own state on the GPU."""
    dr.set_device("cpu")
    dr.set_seed(0)
    moved = tutorial_model()
    on_cpu = moved.get_weights()
    dr.set_device("gpu")
    moved.to_device()
    assert all(is_cupy(v.value) for v in moved.variables)
    assert_same(moved.get_weights(), on_cpu, 0.0)

    dr.set_seed(0)
    built = tutorial_model()
    assert all(is_cupy(v.value) for v in built.variables)
    assert_same(built.get_weights(), on_cpu, 0.0)

    x, y = tutorial_batch()
    pointers = data_pointers(built)
    for _ in range(3):
        built.train_on_batch(x, y)
    assert data_pointers(built) == pointers, "every weight updated in place, never reallocated or copied"
    assert all(is_cupy(a) for a in built.optimizer.m + built.optimizer.v)


@on_gpu
def test_predict_get_weights_and_save_hand_numpy_to_the_user(gpu_fused, tmp_path):
    """predict, get_weights and loss_and_gradients return NumPy; save writes NumPy arrays; load_model on the GPU
    puts the weights back on the GPU and predicts the same."""
    dr.set_seed(0)
    model = tutorial_model()
    x, y = tutorial_batch()
    model.train_on_batch(x, y)
    predicted = model.predict(x)
    assert isinstance(predicted, numpy.ndarray)
    assert all(isinstance(w, numpy.ndarray) for w in model.get_weights())
    loss, grads = model.loss_and_gradients(x, y)
    assert isinstance(loss, float) and all(isinstance(g, numpy.ndarray) for g in grads if g is not None)

    path = tmp_path / "model.npz"
    model.save(path)
    with numpy.load(path, allow_pickle=False) as archive:
        saved = [archive[k] for k in sorted(k for k in archive.files if k.startswith("weight_"))]
    assert_same(saved, model.get_weights(), 0.0)
    loaded = dr.load_model(path)
    assert all(is_cupy(v.value) for v in loaded.variables)
    assert_same(loaded.predict(x), predicted, FLOAT32)


@on_gpu
def test_fit_moves_numpy_data_to_the_gpu_once_and_no_step_copies_back(gpu_fused, monkeypatch):
    """fit(x, y) with NumPy data: x and y go to the GPU once, then one shuffle order per epoch; no array comes back
    to the host during the steps (the loss scalar is the one value read, for the NaN check)."""
    x, y = tutorial_batch(B=12)
    dr.set_seed(0)
    model = tutorial_model()
    model.predict(x[:2])  # warm up outside the count
    to_device, to_numpy = backend.to_device, backend.to_numpy
    uploads, downloads = [], []

    def counting_to_device(a, dtype=None):
        if isinstance(a, numpy.ndarray):
            uploads.append(a.shape)
        return to_device(a, dtype)

    def counting_to_numpy(a):
        if is_cupy(a):
            downloads.append(a.shape)
        return to_numpy(a)

    monkeypatch.setattr(backend, "to_device", counting_to_device)
    monkeypatch.setattr(backend, "to_numpy", counting_to_numpy)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert sorted(uploads) == sorted([x.shape, y.shape, (12,), (12,)]), uploads
    assert downloads == []


@on_gpu
def test_a_training_step_never_synchronizes_with_the_host(gpu_fused):
    """Forward, loss, backward and the Adam update of the tutorial model run without one device synchronization
    (CuPy raises on any .get(), float(), bool() of a GPU array in the block); train_step reads the loss after."""
    import cupyx
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize")
    dr.set_seed(0)
    model = tutorial_model()
    x, y = tutorial_batch()
    x, y = model.prepare_input(x), model.as_array(y, "y")
    model.train_step(x, y)   # builds Adam's state and compiles every kernel first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # allow_synchronize is deprecated (false negatives are possible)
        with cupyx.allow_synchronize(False):
            y_pred, caches = model.forward(x, training=True)
            loss, loss_cache = model.loss.forward(y, y_pred)
            _, grads = model.backward(model.loss.backward(loss_cache), caches)
            model.optimizer.apply_gradients([g for layer_grads in grads for g in layer_grads],
                                            model.trainable_variables)
            model.update_layer_state(caches)
    assert numpy.isfinite(float(loss))
