"""One timed block in its own process (bench_cpu.py runs these, alternating frameworks).

    python benchmarks/cpu_worker.py train-tutorial ours --steps 20 --warmup 3 --threads 1
    python benchmarks/cpu_worker.py train-drums torch --cell gru --threads 2
    python benchmarks/cpu_worker.py generate ours-pipeline --steps 10 --tokens 100

Cases and implementations:
- train-tutorial: ours, reference (our layers with implementation="reference"), torch, keras;
- train-drums --cell lstm|gru|simple_rnn: ours, torch;
- generate: ours-pipeline (``generation.generate_carrying_state`` as ``deeprnn generate`` runs it, on the drums
  recipe's own model with its bar-position input, sampling as the recipe does: the fused step where it computes the
  model), ours-pipeline-twin (the same with ``step="twin"``: the stateful twin called once per token, the fused
  step's reference), ours-window (``generation.generate_window_rerun``, 64 tokens re-run per token); and on the
  drums LSTM model of train-drums: ours-twin (the twin's call alone, greedy) against torch-state (the PyTorch twin
  stepped one token per call with its (h, c) carried, greedy).

--threads N: ``torch.set_num_threads(N)`` for PyTorch; for ours what ``deeprnn train --threads N`` sets by default:
``dr.set_num_threads(N)`` (each recurrent layer's loops and input products, and the head's products, in N batch
shards: threads for 2, worker processes for more) and one BLAS thread for what stays outside the shards
(``--blas-threads 1``; two BLAS threads beside the shards measured slower, docs/performance.md, "Every core II");
ours keeps freed memory for
reuse as every ``deeprnn`` command does (``deeprnn.memory.keep_freed_memory``). The BLAS/OpenMP pools read
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS when they start, so bench_cpu.py sets those in the
environment of every worker (the JSON line reports the threads each library ended up with). Prints one JSON line:
per-step (or per-token) seconds, peak RSS, the BLAS kernel and threads. NumPy and PyTorch are never timed in one
process: their thread pools fight (see docs/performance.md).
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


def ours_threads(threads):
    """This process set up as ``deeprnn train --threads N`` sets itself up by default (cli.main): the recurrent
    layers and the head's products in ``threads`` batch shards (dr.set_num_threads, workers "auto"), one BLAS
    thread for the rest (--blas-threads 1, its default), freed memory kept for reuse (deeprnn/memory.py); what
    the record says ran."""
    import threadpoolctl

    import deeprnn as dr
    from deeprnn.memory import keep_freed_memory
    if threads:
        dr.set_num_threads(threads)
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")   # what cli.limit_blas_threads(1) does
    return {"shards": dr.get_num_threads(), "shard_workers": dr.get_shard_workers(),
            "freed_memory": keep_freed_memory() or "kept"}


def torch_threads(threads):
    import torch
    if threads:
        torch.set_num_threads(threads)
    return {"torch_threads": torch.get_num_threads()}


# -- training steps --------------------------------------------------------------------------------------------------
def ours_training(model, batches, steps, warmup, threads):
    import tracemalloc
    shards = ours_threads(threads)
    state = {"k": 0}

    def step():
        x, y = batches[state["k"] % len(batches)]
        state["k"] += 1
        model.train_on_batch(x, y)

    times = timed(step, steps, warmup)
    # one step's peak of new NumPy allocations (NumPy reports its buffers to tracemalloc), measured after the
    # timing, plus the buffers the kernels keep for reuse between steps
    from deeprnn.kernels import workspace
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    kept = sum(b.nbytes for ws in workspace._WORKSPACES.values() for pool in ws.pools.values() for b in pool)
    return times, {"step_peak_mb": (peak + kept) / 2 ** 20, "implementations": cpu_models.implementations(model),
                   **shards}


def torch_training(model, optimizer, batches, steps, warmup, labels, threads):
    import torch
    import torch.nn.functional as F
    extra = torch_threads(threads)
    data = [(torch.from_numpy(x), torch.from_numpy(labels(y))) for x, y in batches]
    state = {"k": 0}
    model.train()

    def step():
        x, y = data[state["k"] % len(data)]
        state["k"] += 1
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        logits = logits[0] if isinstance(logits, tuple) else logits   # the drums twin returns (logits, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        optimizer.step()
        loss.item()

    return timed(step, steps, warmup), extra


def keras_training(model, batches, steps, warmup):
    state = {"k": 0}

    def step():
        x, y = batches[state["k"] % len(batches)]
        state["k"] += 1
        model.train_on_batch(x, y)

    return timed(step, steps, warmup), {}


# -- generation (the drums LSTM model) -------------------------------------------------------------------------------
def primer_tokens(length=64, seed=0):
    import numpy
    from deeprnn.music.drum_grid import DrumGridTokenizer
    # step tokens only (below START): a primer as a piece's middle would be, so the picker owes no hits
    return numpy.random.default_rng(seed).integers(1, DrumGridTokenizer().start_token, size=length)


def pipeline_generation(impl, blocks, warmup, tokens, threads):
    """Each block is one call of the pipeline's generator for ``tokens`` tokens on the drums recipe's model; its
    per-token time is the one ``deeprnn generate`` reports (``Generated.ms_per_token``: the primer and the twin's
    or the fused step's construction excluded)."""
    import numpy
    from deeprnn.pipeline import generation
    from deeprnn.pipeline.features import grid_steps
    shards = ours_threads(threads)
    recipe, model, encoding, tokenizer = cpu_models.recipe_drums()
    tokens_in = primer_tokens()
    primer = generation.Primer(tokens=tokens_in, steps=grid_steps(tokens_in, tokenizer.start_token), source=None)
    rng = numpy.random.default_rng(0)
    methods = set()

    def block():
        picker = generation.TokenPicker(recipe, tokenizer, generation.Sampling(), rng, primer.tokens)
        if impl == "ours-window":
            made = generation.generate_window_rerun(model, encoding, primer, tokens, picker,
                                                    window=cpu_models.DRUMS["seq"])
        else:
            step = "twin" if impl == "ours-pipeline-twin" else "auto"
            made = generation.generate_carrying_state(model, encoding, primer, tokens, picker, step=step)
        methods.add(made.method)
        return made.seconds / len(made.tokens)

    for _ in range(warmup):
        block()
    times = [block() for _ in range(blocks)]
    return times, {"tokens_per_block": tokens, "method": sorted(methods), **shards,
                   "implementations": cpu_models.implementations(model)}


def generation(impl, steps, warmup, tokens, threads):
    import numpy
    if impl in ("ours-pipeline", "ours-pipeline-twin", "ours-window"):
        return pipeline_generation(impl, steps, warmup, tokens, threads)
    primer = primer_tokens()
    state = {"token": int(primer[-1])}
    if impl == "ours-twin":
        from deeprnn.pipeline.generation import last_distribution
        from deeprnn.pipeline.stepping import stateful_twin
        shards = ours_threads(threads)
        model = cpu_models.ours_drums("lstm")
        twin = stateful_twin(model)
        twin.reset_states()
        twin(primer[None])
        extra = {"implementations": cpu_models.implementations(twin), **shards}

        def step():  # what generate_carrying_state does per token, greedy instead of its sampler
            probs = twin(numpy.array([[state["token"]]]))
            state["token"] = int(last_distribution(probs).argmax())
    elif impl == "torch-state":
        import torch
        extra = torch_threads(threads)
        model, _ = cpu_models.torch_drums("lstm")
        model.eval()
        with torch.no_grad():
            _, state["carried"] = model(torch.from_numpy(primer[None]))

        def step():
            with torch.no_grad():
                logits, state["carried"] = model(torch.tensor([[state["token"]]]), state["carried"])
                probs = torch.softmax(logits[0, -1], dim=-1).numpy()
            state["token"] = int(probs.argmax())
    else:
        raise SystemExit(f"unknown generation impl {impl!r}")
    return timed(step, steps, warmup), extra


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["train-tutorial", "train-drums", "generate"])
    parser.add_argument("impl")
    parser.add_argument("--cell", choices=cpu_models.CELLS, default="lstm", help="train-drums: the recurrent cell")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (generate: tokens, or for ours-pipeline, "
                        "ours-pipeline-twin and ours-window, blocks of --tokens tokens)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per block of ours-pipeline(-twin) and "
                        "ours-window")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads for PyTorch, dr.set_num_threads for ours "
                        "(set the BLAS/OpenMP variables too)")
    args = parser.parse_args(argv)
    if args.impl.startswith("keras"):
        os.environ.setdefault("KERAS_BACKEND", "torch")

    extra = {}
    if args.case == "generate":
        times, extra = generation(args.impl, args.steps, args.warmup, args.tokens, args.threads)
    elif args.case == "train-tutorial":
        batches = cpu_models.tutorial_batches()
        if args.impl in ("ours", "reference"):
            model = cpu_models.ours_tutorial(implementation="auto" if args.impl == "ours" else "reference")
            times, extra = ours_training(model, batches, args.steps, args.warmup, args.threads)
        elif args.impl == "torch":
            model, optimizer = cpu_models.torch_tutorial()
            times, extra = torch_training(model, optimizer, batches, args.steps, args.warmup,
                                          labels=lambda y: y.argmax(axis=-1), threads=args.threads)
        elif args.impl == "keras":
            threads = torch_threads(args.threads)   # Keras runs on the torch backend: the same thread pool
            times, extra = keras_training(cpu_models.keras_tutorial(), batches, args.steps, args.warmup)
            extra.update(threads)
        else:
            raise SystemExit(f"unknown impl {args.impl!r}")
    else:
        batches = cpu_models.drums_batches()
        if args.impl == "ours":
            times, extra = ours_training(cpu_models.ours_drums(args.cell), batches, args.steps, args.warmup,
                                         args.threads)
        elif args.impl == "torch":
            model, optimizer = cpu_models.torch_drums(args.cell)
            times, extra = torch_training(model, optimizer, batches, args.steps, args.warmup, labels=lambda y: y,
                                          threads=args.threads)
        else:
            raise SystemExit(f"unknown impl {args.impl!r}")

    print(json.dumps({"case": args.case, "impl": args.impl, "cell": args.cell, "times": times,
                      "peak_rss_mb": rss_mb(), "blas": blas_kernel(), **extra}))


if __name__ == "__main__":
    main()
