"""GPU speed of deeprnn's CuPy path against PyTorch's cuDNN LSTM and Keras 3 (torch backend), in one run on one GPU.

    python benchmarks/bench_gpu.py                          # about 2 minutes on an H100
    python benchmarks/bench_gpu.py --rounds 2 --skip keras --json bench-gpu.json

What is timed (the models are those of benchmarks/cpu_models.py, built the same way in each framework):

- train-tutorial: one training step (forward, loss, backward, Adam) of the tutorial's exact model: LSTM(256,
  recurrent_dropout=0.3) x2, BatchNorm, Dropout, Dense, softmax; batch 32, 100 timesteps, vocabulary 300.
  ours-fused: the fused CUDA LSTM (deeprnn/kernels/cuda_lstm.py), per-step products straight to cuBLAS;
  ours-fused-matmul: the same through cupy.matmul; ours-reference: the readable step loops on CuPy.
  torch: the PyTorch twin on cuDNN (nn.LSTM has no recurrent dropout, so it runs without: the issue's anchor).
  keras: Keras 3 on the torch backend with the tutorial's settings (recurrent dropout leaves cuDNN).
- lstm-only: the two LSTM layers alone, forward + backward (the figure docs/performance notes quote for cuDNN).
- generate: milliseconds per generated token, batch 1: ``-state`` carries the recurrent states (one step per
  layer per token: deeprnn.pipeline.stateful_twin, nn.LSTM with (h, c)); ``-window`` is the tutorial's loop (the
  model re-run on the last 100 tokens for every token).

Our batches and the torch twin's are moved to the GPU once; Keras gets NumPy per step, as the tutorial feeds it.
Every timed step ends with a device synchronization. Each framework runs in its own process (one crash or a
missing package costs one row); a ratio is taken against PyTorch's time from the same round. Without CuPy and a
GPU the script says so and exits 0.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))   # the repository: deeprnn importable without installing it

GOAL = 2.0   # issue 7: our tutorial training step at most 2x PyTorch cuDNN's, with recurrent dropout on

RUNS = [  # (case, impl, steps, warmup): slow rows get fewer steps
    ("train-tutorial", "ours-fused", 30, 5),
    ("train-tutorial", "ours-fused-matmul", 30, 5),
    ("train-tutorial", "ours-reference", 5, 2),
    ("train-tutorial", "torch", 30, 5),
    ("train-tutorial", "keras", 5, 2),
    ("lstm-only", "ours-fused", 30, 5),
    ("lstm-only", "ours-fused-no-recurrent-dropout", 30, 5),
    ("lstm-only", "torch", 30, 5),
    ("generate", "ours-state", 200, 20),
    ("generate", "ours-window", 30, 5),
    ("generate", "torch-state", 200, 20),
    ("generate", "torch-window", 30, 5),
]
NOTES = {
    ("train-tutorial", "ours-fused"): "recurrent dropout 0.3, fused CUDA LSTM, cuBLAS direct",
    ("train-tutorial", "ours-fused-matmul"): "recurrent dropout 0.3, fused CUDA LSTM, cupy.matmul",
    ("train-tutorial", "ours-reference"): "recurrent dropout 0.3, reference step loops on CuPy",
    ("train-tutorial", "torch"): "cuDNN, no recurrent dropout",
    ("train-tutorial", "keras"): "Keras 3 / torch backend, recurrent dropout 0.3",
    ("lstm-only", "ours-fused"): "2 x LSTM(256) fwd+bwd, recurrent dropout 0.3",
    ("lstm-only", "ours-fused-no-recurrent-dropout"): "2 x LSTM(256) fwd+bwd, no dropout",
    ("lstm-only", "torch"): "nn.LSTM(num_layers=2) fwd+bwd, cuDNN",
    ("generate", "ours-state"): "ms/token, states carried (stateful twin)",
    ("generate", "ours-window"): "ms/token, 100-token window re-run (fused kernel)",
    ("generate", "torch-state"): "ms/token, (h, c) carried",
    ("generate", "torch-window"): "ms/token, 100-token window re-run",
}


def have(module):
    return importlib.util.find_spec(module) is not None


# == the worker: one (case, impl) in this process ======================================================================
def timed(step, sync, steps, warmup):
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def use_fused_kernel(impl):
    """The kernel list and switch for one of our impls; returns a description of what runs."""
    from deeprnn import kernels
    from deeprnn.kernels import cuda_lstm
    if "reference" in impl:
        kernels.enabled = False
        return "reference loops"
    kernels.register(cuda_lstm)   # a no-op once deeprnn/kernels/__init__.py registers it
    cuda_lstm.GEMM = "cupy" if impl.endswith("matmul") else "cublas"
    return f"cuda_lstm (GEMM={cuda_lstm.GEMM})"


def ours_setup(impl):
    import cupy

    import deeprnn as dr
    dr.set_device("gpu")
    return use_fused_kernel(impl), cupy.cuda.get_current_stream().synchronize


def lstm_kernel_in_use(model, x):
    """Which path the model's LSTMs actually took on x (the cache type tells)."""
    from deeprnn.kernels import cuda_lstm
    from deeprnn.layers.recurrent import RNN
    _, caches = model.forward(x, training=True)
    kinds = {type(c).__name__ for layer, c in zip(model.layers, caches) if isinstance(layer, RNN)}
    return "cuda_lstm" if kinds == {cuda_lstm.CudaLSTMCache.__name__} else ",".join(sorted(kinds))


def ours_train_tutorial(impl, steps, warmup):
    import cpu_models
    path, sync = ours_setup(impl)
    model = cpu_models.ours_tutorial()
    batches = [(model.prepare_input(x), model.as_array(y, "y")) for x, y in cpu_models.tutorial_batches()]
    state = {"k": 0}

    def step():
        x, y = batches[state["k"] % len(batches)]
        state["k"] += 1
        model.train_step(x, y)

    times = timed(step, sync, steps, warmup)
    return times, {"path": path, "lstm_caches": lstm_kernel_in_use(model, batches[0][0])}


def ours_lstm_only(impl, steps, warmup):
    import numpy

    import cpu_models
    import deeprnn as dr
    from deeprnn import backend, layers
    path, sync = ours_setup(impl)
    rd = 0.0 if "no-recurrent-dropout" in impl else cpu_models.TUTORIAL["recurrent_dropout"]
    B, T, H = cpu_models.TUTORIAL["batch"], cpu_models.TUTORIAL["seq"], cpu_models.TUTORIAL["units"]
    dr.set_seed(0)
    first = layers.LSTM(H, recurrent_dropout=rd, return_sequences=True)
    second = layers.LSTM(H, recurrent_dropout=rd)
    x = backend.to_device(numpy.random.default_rng(0).normal(size=(B, T, 1)).astype("float32"))
    first.ensure_built(x.shape)
    second.ensure_built((B, T, H))
    dy = backend.to_device(numpy.ones((B, H), "float32"))

    def step():
        h, cache1 = first.forward(x, training=True)
        _, cache2 = second.forward(h, training=True)
        dh, _, _ = second.backward(dy, cache2)
        first.backward(dh, cache1)

    return timed(step, sync, steps, warmup), {"path": path}


def ours_generate(impl, tokens, warmup):
    import numpy

    import cpu_models
    from deeprnn import backend
    from deeprnn.pipeline.stepping import stateful_twin
    path, sync = ours_setup("ours-fused")
    V, T = cpu_models.TUTORIAL["vocab"], cpu_models.TUTORIAL["seq"]
    model = cpu_models.ours_tutorial()
    window = (numpy.random.default_rng(0).integers(0, V, size=(1, T, 1)) / V).astype("float32")
    state = {"window": window}
    if impl == "ours-state":
        twin = stateful_twin(model)
        state["x"] = window[:, -1:]

        def step():   # what generation.generate_carrying_state does per token
            p = backend.to_numpy(twin(state["x"]))[0]
            state["x"] = numpy.array([[[int(p.argmax()) / V]]], dtype="float32")
    else:
        def step():   # the tutorial's loop: predict on the whole window for every note
            p = model.predict(state["window"], verbose=0)
            nxt = numpy.array([[[int(p[0].argmax()) / V]]], dtype="float32")
            state["window"] = numpy.concatenate([state["window"][:, 1:], nxt], axis=1)

    return timed(step, sync, tokens, warmup), {"path": path}


def torch_setup():
    import torch
    if not torch.cuda.is_available():
        raise SystemExit("PyTorch sees no CUDA device")
    torch.backends.cudnn.benchmark = False
    return torch, torch.device("cuda"), torch.cuda.synchronize


def torch_train_tutorial(steps, warmup):
    import cpu_models
    torch, cuda, sync = torch_setup()
    import torch.nn.functional as F
    model, _ = cpu_models.torch_tutorial()
    model = model.to(cuda)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    data = [(torch.from_numpy(x).to(cuda), torch.from_numpy(y.argmax(axis=-1)).to(cuda))
            for x, y in cpu_models.tutorial_batches()]
    model.train()
    state = {"k": 0}

    def step():
        x, y = data[state["k"] % len(data)]
        state["k"] += 1
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()   # read the loss every step, as ours does (its NaN check)

    return timed(step, sync, steps, warmup), {"cudnn": torch.backends.cudnn.version()}


def torch_lstm_only(steps, warmup):
    import numpy

    import cpu_models
    torch, cuda, sync = torch_setup()
    B, T, H = cpu_models.TUTORIAL["batch"], cpu_models.TUTORIAL["seq"], cpu_models.TUTORIAL["units"]
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(1, H, num_layers=2, batch_first=True).to(cuda)
    x = torch.from_numpy(numpy.random.default_rng(0).normal(size=(B, T, 1)).astype("float32")).to(cuda)

    def step():
        lstm.zero_grad(set_to_none=True)
        out, _ = lstm(x)
        out[:, -1].sum().backward()

    return timed(step, sync, steps, warmup), {"cudnn": torch.backends.cudnn.version()}


def torch_generate(impl, tokens, warmup):
    import numpy

    import cpu_models
    torch, cuda, sync = torch_setup()
    V, T = cpu_models.TUTORIAL["vocab"], cpu_models.TUTORIAL["seq"]
    model, _ = cpu_models.torch_tutorial()
    model = model.to(cuda).eval()
    window = (numpy.random.default_rng(0).integers(0, V, size=(1, T, 1)) / V).astype("float32")
    state = {"window": window, "hc": None, "x": window[:, -1:]}

    def step():
        with torch.no_grad():
            if impl == "torch-state":
                out, state["hc"] = model.lstm(torch.from_numpy(state["x"]).to(cuda), state["hc"])
                p = torch.softmax(model.head(out[:, -1]), dim=-1).cpu().numpy()
                state["x"] = numpy.array([[[int(p[0].argmax()) / V]]], dtype="float32")
            else:
                p = torch.softmax(model(torch.from_numpy(state["window"]).to(cuda)), dim=-1).cpu().numpy()
                nxt = numpy.array([[[int(p[0].argmax()) / V]]], dtype="float32")
                state["window"] = numpy.concatenate([state["window"][:, 1:], nxt], axis=1)

    return timed(step, sync, tokens, warmup), {}


def keras_train_tutorial(steps, warmup):
    os.environ["KERAS_BACKEND"] = "torch"   # before the first import of keras
    import keras
    import torch

    import cpu_models
    model = cpu_models.keras_tutorial()
    batches = cpu_models.tutorial_batches()
    state = {"k": 0}

    def step():
        x, y = batches[state["k"] % len(batches)]
        state["k"] += 1
        model.train_on_batch(x, y)

    times = timed(step, torch.cuda.synchronize, steps, warmup)
    return times, {"keras": f"keras {keras.__version__}, backend {keras.config.backend()}"}


def worker(case, impl, steps, warmup):
    if impl.startswith("ours"):
        if case == "train-tutorial":
            return ours_train_tutorial(impl, steps, warmup)
        if case == "lstm-only":
            return ours_lstm_only(impl, steps, warmup)
        return ours_generate(impl, steps, warmup)
    if impl == "torch":
        return torch_train_tutorial(steps, warmup) if case == "train-tutorial" else torch_lstm_only(steps, warmup)
    if impl.startswith("torch-"):
        return torch_generate(impl, steps, warmup)
    if impl == "keras":
        return keras_train_tutorial(steps, warmup)
    raise SystemExit(f"unknown impl {impl!r} for {case!r}")


# == the driver ========================================================================================================
def card():
    """The GPU's name and driver as nvidia-smi reports them (or why not)."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
        return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else \
            f"unknown (nvidia-smi exit {done.returncode})"
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({error})"


def versions():
    from importlib import metadata
    import cupy
    runtime = cupy.cuda.runtime.runtimeGetVersion()
    lines = [f"CuPy {cupy.__version__}, CUDA runtime {runtime // 1000}.{runtime % 1000 // 10}, "
             f"Python {sys.version.split()[0]}"]
    for package in ("torch", "keras"):
        if have(package):
            lines.append(f"{package} {metadata.version(package)}")
    return lines


def run_worker(case, impl, steps, warmup, timeout):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, os.path.abspath(__file__), "--worker", case, impl, "--steps", str(steps),
               "--warmup", str(warmup)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return {"error": output[-1][-300:] if output else f"exit status {done.returncode}",
                "stderr": done.stderr[-4000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def wanted(case, impl, skip):
    if impl.startswith("torch") and not have("torch"):
        return "PyTorch not installed"
    if impl == "keras" and not (have("keras") and have("torch")):
        return "Keras 3 (torch backend) not importable"
    if any(word in (case, impl) or impl.startswith(word) for word in skip):
        return "skipped (--skip)"
    return None


def table(results):
    """Rows: case, impl, median ms, ratio to the same case's torch row (train/lstm) or torch-state (generate)."""
    def median(key):
        entry = results.get(key)
        return None if not entry or "times" not in entry else 1000 * statistics.median(entry["all_times"])

    lines = [f"{'case':16} {'impl':34} {'median ms':>10} {'vs torch':>9}  notes",
             "-" * 110]
    for case, impl, _, _ in RUNS:
        entry = results.get((case, impl))
        if entry is None:
            continue
        if "times" not in entry:
            lines.append(f"{case:16} {impl:34} {'-':>10} {'-':>9}  {entry.get('error', entry.get('skipped'))}")
            continue
        base = "torch-state" if impl.endswith("-state") else "torch-window" if impl.endswith("-window") else "torch"
        mine, theirs = median((case, impl)), median((case, base))
        ratio = f"{mine / theirs:.2f}x" if theirs and not impl.startswith("torch") else ""
        extra = entry.get("path") or entry.get("keras") or (f"cuDNN {entry['cudnn']}" if entry.get("cudnn") else "")
        lines.append(f"{case:16} {impl:34} {mine:10.2f} {ratio:>9}  {NOTES.get((case, impl), '')}"
                     f"{'; ' + str(extra) if extra else ''}")
    ours, torch = median(("train-tutorial", "ours-fused")), median(("train-tutorial", "torch"))
    if ours and torch:
        verdict = "MET" if ours / torch <= GOAL else "NOT MET"
        lines.append("")
        lines.append(f"goal (issue 7): our tutorial training step with recurrent dropout <= {GOAL:g}x PyTorch cuDNN: "
                     f"{ours:.2f} ms / {torch:.2f} ms = {ours / torch:.2f}x -> {verdict}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="run every row this many times, interleaved")
    parser.add_argument("--skip", nargs="*", default=[], help="cases or impls to leave out (e.g. keras generate)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every row's step count")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per worker process")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        times, extra = worker(*args.worker, args.steps, args.warmup)
        print(json.dumps({"case": args.worker[0], "impl": args.worker[1], "times": times, **extra}))
        return 0

    from deeprnn import backend
    if backend.cupy_or_none() is None:
        print("bench_gpu: skipped: CuPy with a working CUDA GPU is required (pip install 'deeprnn[gpu]' on a "
              "machine with an NVIDIA GPU)")
        return 0
    began = time.perf_counter()
    print(f"GPU: {card()}")
    for line in versions():
        print(line)
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(flush=True)
    results = {}
    for round_index in range(args.rounds):
        for case, impl, steps, warmup in RUNS:
            reason = wanted(case, impl, args.skip)
            if reason:
                results[(case, impl)] = {"skipped": reason}
                continue
            steps = max(3, int(round(steps * args.scale)))
            started = time.perf_counter()
            result = run_worker(case, impl, steps, warmup, args.timeout)
            entry = results.setdefault((case, impl), {})
            if "times" in result:
                entry.update({k: v for k, v in result.items() if k != "times"})
                entry.setdefault("times", []).append(result["times"])
                entry["all_times"] = [t for block in entry["times"] for t in block]
                status = f"median {1000 * statistics.median(result['times']):.2f} ms"
            else:
                entry.setdefault("error", result["error"])
                if result.get("stderr"):
                    print(result["stderr"], file=sys.stderr)
                status = f"FAILED: {result['error']}"
            print(f"[round {round_index + 1}] {case} {impl}: {status} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    print()
    print(table(results))
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({f"{case} {impl}": entry for (case, impl), entry in results.items()}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
