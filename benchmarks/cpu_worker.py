"""One timed block in its own process (bench_cpu.py runs these, alternating frameworks).

    python benchmarks/cpu_worker.py train-tutorial ours --steps 20 --warmup 3

Prints one JSON line: per-step (or per-token) seconds, peak RSS, the BLAS kernel. NumPy and PyTorch are never timed
in one process: their thread pools fight (see docs/performance.md).
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_models  # noqa: E402


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def blas_kernel():
    try:
        import threadpoolctl
        info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                         f"x{i.get('num_threads')}" for i in info)
    except Exception as error:  # threadpoolctl is optional
        return f"unknown ({error})"


def timed(step, steps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


# -- training steps --------------------------------------------------------------------------------------------------
def ours_training(model, batches, steps, warmup):
    import tracemalloc
    state = {"k": 0}

    def step():
        x, y = batches[state["k"] % len(batches)]
        state["k"] += 1
        model.train_on_batch(x, y)

    times = timed(step, steps, warmup)
    # one step's peak of new NumPy allocations (NumPy reports its buffers to tracemalloc), measured after the
    # timing, plus the buffers the LSTM kernels keep for reuse between steps
    from deeprnn.kernels import workspace
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    kept = sum(b.nbytes for ws in workspace._WORKSPACES.values() for pool in ws.pools.values() for b in pool)
    return times, {"step_peak_mb": (peak + kept) / 2 ** 20}


def torch_training(model, optimizer, batches, steps, warmup, labels):
    import torch
    import torch.nn.functional as F
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    data = [(torch.from_numpy(x), torch.from_numpy(labels(y))) for x, y in batches]
    state = {"k": 0}
    model.train()

    def step():
        x, y = data[state["k"] % len(data)]
        state["k"] += 1
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        optimizer.step()
        loss.item()

    return timed(step, steps, warmup), {"threads": torch.get_num_threads()}


def keras_training(model, batches, steps, warmup):
    state = {"k": 0}

    def step():
        x, y = batches[state["k"] % len(batches)]
        state["k"] += 1
        model.train_on_batch(x, y)

    return timed(step, steps, warmup), {}


# -- generation ------------------------------------------------------------------------------------------------------
def generation(impl, tokens, warmup):
    import numpy
    V, T = cpu_models.TUTORIAL["vocab"], cpu_models.TUTORIAL["seq"]
    window = (numpy.random.default_rng(0).integers(0, V, size=(1, T, 1)) / V).astype("float32")
    state = {"window": window}

    if impl == "ours-state":
        model = cpu_models.ours_tutorial()
        step_fn, zero_states = cpu_models.ours_generation_step(model)
        state["states"], state["x"] = zero_states(), window[:, -1]

        def step():
            p, state["states"] = step_fn(state["x"], state["states"])
            state["x"] = numpy.array([[int(p[0].argmax()) / V]], dtype="float32")
    elif impl == "ours-window":
        model = cpu_models.ours_tutorial()

        def step():
            p = model.predict(state["window"], verbose=0)
            nxt = numpy.array([[[int(p[0].argmax()) / V]]], dtype="float32")
            state["window"] = numpy.concatenate([state["window"][:, 1:], nxt], axis=1)
    elif impl == "torch-window":
        import torch
        model, _ = cpu_models.torch_tutorial()
        model.eval()

        def step():
            with torch.no_grad():
                p = torch.softmax(model(torch.from_numpy(state["window"])), dim=-1).numpy()
            nxt = numpy.array([[[int(p[0].argmax()) / V]]], dtype="float32")
            state["window"] = numpy.concatenate([state["window"][:, 1:], nxt], axis=1)
    elif impl == "keras-window":
        model = cpu_models.keras_tutorial()

        def step():  # the tutorial's method: model.predict on the whole window for every note
            p = model.predict(state["window"], verbose=0)
            nxt = numpy.array([[[int(p[0].argmax()) / V]]], dtype="float32")
            state["window"] = numpy.concatenate([state["window"][:, 1:], nxt], axis=1)
    else:
        raise SystemExit(f"unknown generation impl {impl!r}")
    return timed(step, tokens, warmup), {}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=["train-tutorial", "train-drums", "generate"])
    parser.add_argument("impl")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    if args.impl.startswith("keras"):
        os.environ.setdefault("KERAS_BACKEND", "torch")

    extra = {}
    if args.case == "generate":
        times, extra = generation(args.impl, args.steps, args.warmup)
    elif args.case == "train-tutorial":
        batches = cpu_models.tutorial_batches()
        if args.impl in ("ours", "reference"):
            times, extra = ours_training(cpu_models.ours_tutorial(), batches, args.steps, args.warmup)
        elif args.impl == "torch":
            model, optimizer = cpu_models.torch_tutorial()
            times, extra = torch_training(model, optimizer, batches, args.steps, args.warmup,
                                          labels=lambda y: y.argmax(axis=-1))
        elif args.impl == "keras":
            times, extra = keras_training(cpu_models.keras_tutorial(), batches, args.steps, args.warmup)
        else:
            raise SystemExit(f"unknown impl {args.impl!r}")
    else:
        batches = cpu_models.drums_batches()
        if args.impl in ("ours", "reference"):
            times, extra = ours_training(cpu_models.ours_drums(), batches, args.steps, args.warmup)
        elif args.impl == "torch":
            model, optimizer = cpu_models.torch_drums()
            times, extra = torch_training(model, optimizer, batches, args.steps, args.warmup, labels=lambda y: y)
        else:
            raise SystemExit(f"unknown impl {args.impl!r}")

    if args.impl in ("ours", "reference", "ours-state", "ours-window"):
        from deeprnn import kernels
        extra["kernels"] = kernels.enabled
    print(json.dumps({"case": args.case, "impl": args.impl, "times": times, "peak_rss_mb": rss_mb(),
                      "blas": blas_kernel(), **extra}))


if __name__ == "__main__":
    main()
