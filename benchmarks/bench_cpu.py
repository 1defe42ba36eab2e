"""CPU speed of deeprnn's NumPy path against PyTorch's CPU twins (and Keras 3 on the torch backend), at one thread
and at all cores: every goal of issue 23 (and of issue 13 before it) measured the same way.

    python benchmarks/bench_cpu.py --skip keras           # the full run: about 7 minutes on a quiet 2-core machine
    python benchmarks/bench_cpu.py --quick --skip keras   # smoke run: every case once, fewest steps; no real numbers
    python benchmarks/bench_cpu.py --threads 1 --skip generate reference recipe   # a subset

What is compared (benchmarks/cpu_models.py builds the models):
- the tutorial's training step (recurrent dropout 0.3 on ours, none on PyTorch's nn.LSTM, which has none);
- the drums model's training step per cell, Embedding(515, 64) -> cell(256) x2 -> Dense(515) logits with
  sparse cross-entropy from logits: LSTM vs nn.LSTM, GRU (reset_after=True) vs nn.GRU, SimpleRNN vs nn.RNN(tanh);
- generation through the pipeline, on the drums recipe's own model (bar-position input): ``generation.
  generate_carrying_state`` as ``deeprnn generate`` runs it (the fused step where it computes the model, the
  recipe's sampler), in ms per token, against the same with the stateful twin (``step="twin"``, its reference); on
  the drums LSTM model, the twin's call alone against PyTorch's nn.LSTM stepped with its (h, c) carried; the
  pipeline's window re-run for scale;
- the drums recipe's epoch: seconds of one epoch of ``deeprnn train`` (make train's flags, the data of ``--data`` or
  $DEEPRNN_GROOVE) at ``--threads 1`` and at each other count, and the epochs that fit 15 minutes.

Every ratio is taken at each thread count N of ``--threads`` (default: 1 and all cores), both sides set the same
way: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS = N in the worker's environment, and in the worker
torch.set_num_threads(N) for PyTorch, and for ours what ``deeprnn train --threads N`` sets: dr.set_num_threads(N)
(our recurrent layers and the head's products in N batch shards: threads for 2, worker processes for more) and one
BLAS thread outside them.
Each measurement runs in its own process (benchmarks/cpu_worker.py): NumPy's and PyTorch's thread pools fight when
they share one. The frameworks alternate A B A B, each block warmed up first, and a ratio is the median of
the per-pair ratios of median step times, so that load from other processes moves both sides of a pair alike.
PyTorch and Keras are optional: without them their rows say so and the rest still runs.

Benchmark with a current OpenBLAS kernel: where OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set for old builds, unset
both in the command (``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_cpu.py``); the header
prints the kernel threadpoolctl sees.
"""
import argparse
import csv
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "cpu_worker.py")
sys.path.insert(0, HERE)
from cpu_models import CELLS  # noqa: E402  (cpu_models imports only NumPy at module level)

# issue 23's goals: ratios ours / PyTorch at every thread count, and the pipeline's generation in ms per token
GOALS = {"tutorial": 1.1, **{f"drums-{cell}": 1.1 for cell in CELLS}, "generation_ms_per_token": 0.15}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def have(module):
    return importlib.util.find_spec(module) is not None


def run_worker(case, impl, steps, warmup, threads, *options):
    env = dict(os.environ, **{var: str(threads) for var in THREAD_VARIABLES})
    if impl.startswith("keras"):
        env["KERAS_BACKEND"] = "torch"
    command = [sys.executable, WORKER, case, impl, "--steps", str(steps), "--warmup", str(warmup),
               "--threads", str(threads), *options]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def recipe_epoch(threads, data, max_files, folder):
    """Seconds of one epoch of ``deeprnn train`` (the drums recipe, make train's flags but --epochs 1) with
    ``--threads threads``, from its history.csv; and the line train starts with (what the threads do)."""
    out = os.path.join(folder, f"threads-{threads}")
    command = [sys.executable, "-m", "deeprnn", "train", "--out", out, "--epochs", "1", "--seed", "0", "--quiet",
               "--data", data, "--threads", str(threads)] + (["--max-files", str(max_files)] if max_files else [])
    # deeprnn train sets its own BLAS threads (--blas-threads, as make train runs it): no thread variables
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{done.stderr[-3000:]}")
    with open(os.path.join(out, "history.csv")) as f:
        epoch = list(csv.DictReader(f))[-1]
    said = next((line for line in done.stdout.splitlines() if line.startswith("threads:")), "threads: ?")
    return float(epoch["seconds"]), said


def median_ms(result):
    return 1000 * statistics.median(result["times"])


def machine():
    lines = []
    try:
        model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                     platform.processor())
    except OSError:
        model = platform.processor()
    lines.append(f"CPU: {model}, {os.cpu_count()} logical cores; Python {platform.python_version()}")
    import numpy
    import scipy
    lines.append(f"numpy {numpy.__version__}, scipy {scipy.__version__}")
    try:
        import threadpoolctl
        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas":
                lines.append(f"BLAS: {info.get('internal_api')} {info.get('version')}, "
                             f"kernel {info.get('architecture')} ({os.path.basename(info.get('filepath', ''))})")
    except ImportError:
        lines.append("BLAS: threadpoolctl not installed")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", *THREAD_VARIABLES):
        if os.environ.get(var):
            lines.append(f"note: {var}={os.environ[var]} is set (the benchmark sets the thread variables itself)")
    # versions from the package metadata: importing torch or keras here would start their thread pools in the
    # process that only orchestrates
    from importlib import metadata
    if have("torch"):
        lines.append(f"torch {metadata.version('torch')}")
    if have("keras"):
        lines.append(f"keras {metadata.version('keras')} (run with KERAS_BACKEND=torch)")
    return lines


def alternate(case, a, b, rounds, threads, steps_a, warmup_a, steps_b, warmup_b, options=(), log=print):
    """Run a and b alternately ``rounds`` times; returns (a results, b results, per-pair ratios a/b)."""
    results_a, results_b, ratios = [], [], []
    for r in range(rounds):
        ra = run_worker(case, a, steps_a, warmup_a, threads, *options)
        rb = run_worker(case, b, steps_b, warmup_b, threads, *options)
        results_a.append(ra)
        results_b.append(rb)
        ratios.append(median_ms(ra) / median_ms(rb))
        log(f"  {threads} thread(s), round {r + 1}: {case} {' '.join(options)} {a} {median_ms(ra):.3f} ms, "
            f"{b} {median_ms(rb):.3f} ms, ratio {ratios[-1]:.2f}")
    return results_a, results_b, ratios


def verdict(value, goal, unit="x"):
    return f"<= {goal}{unit}: {'met' if value <= goal else 'NOT met'}"


def settings(args):
    """Rounds, steps and warm-up of every kind of block; --quick takes the fewest that still run every case."""
    if args.quick:
        return dict(rounds=1, steps=2, warmup=1, keras_steps=1, reference_steps=1, gen_blocks=2, gen_tokens=20,
                    gen_steps=20, gen_warmup=5, window_blocks=1, recipe_files=6)
    return dict(rounds=args.rounds, steps=args.steps, warmup=3, keras_steps=3, reference_steps=4, gen_blocks=10,
                gen_tokens=200, gen_steps=300, gen_warmup=20, window_blocks=3, recipe_files=args.max_files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="A/B pairs per comparison (default 3)")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per block (default 12)")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}),
                        help="thread counts to measure at, each side set the same way (default: 1 and all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one round, fewest steps and tokens (overrides --rounds and --steps)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["torch", "keras", "reference", "tutorial", "drums", *CELLS, "generate", "recipe",
                                 "memory"])
    parser.add_argument("--data", default=os.environ.get("DEEPRNN_GROOVE"),
                        help="the Groove data for the recipe's epoch (default: $DEEPRNN_GROOVE; none: skipped)")
    parser.add_argument("--max-files", type=int, help="the recipe's epoch on at most N files per split (default: "
                        "all, as make train; --quick takes 6)")
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.threads):
        parser.error(f"--threads: each count must be >= 1, got {args.threads}")
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be >= 1")
    s = settings(args)
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    began = time.perf_counter()

    torch_ok = have("torch") and "torch" not in args.skip
    keras_ok = have("keras") and torch_ok and "keras" not in args.skip
    for line in machine():
        log(line)
    log(f"thread counts: {', '.join(map(str, args.threads))} (each side: {', '.join(THREAD_VARIABLES)} and "
        f"torch.set_num_threads); {'--quick: smoke run, the numbers mean nothing' if args.quick else ''}")
    if not have("torch"):
        log("PyTorch is not installed: its rows are skipped (pip install torch==2.13.0 for the CPU wheel)")
    if not have("keras"):
        log("Keras is not installed: its rows are skipped")
    log("")

    rows, record = {}, {}   # rows: measurement -> [(threads, ours, other, ratio, goal)], in first-seen order

    def row(what, threads, ours, other="-", ratio="-", goal=""):
        rows.setdefault(what, []).append((str(threads), ours, other, ratio, goal))

    def versus_torch(label, key, case, threads, options=()):
        if torch_ok:
            ours, theirs, ratios = alternate(case, "ours", "torch", s["rounds"], threads, s["steps"], s["warmup"],
                                             s["steps"], s["warmup"], options, log)
            ratio = statistics.median(ratios)
            row(label, threads, f"{statistics.median(map(median_ms, ours)):.1f} ms",
                f"PyTorch {statistics.median(map(median_ms, theirs)):.1f} ms", f"{ratio:.2f}x",
                verdict(ratio, GOALS[key]))
            record[f"{key}@{threads}"] = {"ours": ours, "torch": theirs, "ratios": ratios}
        else:
            ours = run_worker(case, "ours", s["steps"], s["warmup"], threads, *options)
            row(label, threads, f"{median_ms(ours):.1f} ms", "PyTorch: not installed or skipped")
            record[f"{key}@{threads}"] = {"ours": [ours]}

    for threads in args.threads:
        # -- the tutorial's training step --------------------------------------------------------------------------
        if "tutorial" not in args.skip:
            log(f"tutorial training step, {threads} thread(s) (2x LSTM(256), B=32, T=100, V=300; recurrent dropout "
                "0.3 for deeprnn and Keras)")
            versus_torch("tutorial training step", "tutorial", "train-tutorial", threads)
            if keras_ok:
                ours_k, keras_runs, ratios = alternate("train-tutorial", "ours", "keras", max(1, s["rounds"] // 2),
                                                       threads, s["steps"], s["warmup"], s["keras_steps"], 1, (), log)
                speedup = statistics.median(1 / r for r in ratios)
                row("tutorial training step vs Keras", threads, f"{statistics.median(map(median_ms, ours_k)):.1f} ms",
                    f"Keras {statistics.median(map(median_ms, keras_runs)):.0f} ms", f"{1 / speedup:.3f}x",
                    f"{speedup:.1f}x faster")
                record[f"tutorial-keras@{threads}"] = {"ours": ours_k, "keras": keras_runs, "ratios": ratios}
            if "reference" not in args.skip:
                fused, reference, ratios = alternate("train-tutorial", "ours", "reference", 1, threads, s["steps"],
                                                     s["warmup"], s["reference_steps"], 1, (), log)
                row('tutorial step, implementation="reference"', threads, f"{median_ms(fused[0]):.1f} ms fused",
                    f"reference {median_ms(reference[0]):.1f} ms", f"{ratios[0]:.2f}x", "the fused kernel's gain")
                record[f"tutorial-reference@{threads}"] = {"ours": fused, "reference": reference}

        # -- the drums model's training step, per cell ----------------------------------------------------------------
        if "drums" not in args.skip:
            for cell in CELLS:
                if cell in args.skip:
                    continue
                log(f"drums training step, {cell}, {threads} thread(s) (Embedding(515, 64) -> 2x {cell}(256) -> "
                    "Dense(515) logits, B=32, T=64)")
                versus_torch(f"drums training step, {cell}", f"drums-{cell}", "train-drums", threads,
                             ("--cell", cell))

        # -- generation through the pipeline (the drums recipe's model) ------------------------------------------------
        if "generate" not in args.skip:
            log(f"generation, the drums recipe's model (2x LSTM(256), bar position), {threads} thread(s), per token")
            tokens = ("--tokens", str(s["gen_tokens"]))
            pipeline, twin_path, ratios = alternate("generate", "ours-pipeline", "ours-pipeline-twin", s["rounds"],
                                                    threads, s["gen_blocks"], 1, s["gen_blocks"], 1, tokens, log)
            ms = statistics.median(map(median_ms, pipeline))
            method = ", ".join(pipeline[0].get("method", ["?"]))
            row(f"generation through the pipeline (generate_carrying_state, sampling: {method})", threads,
                f"{ms:.3f} ms/token", "-", "-", verdict(ms, GOALS["generation_ms_per_token"], " ms"))
            row("generation through the pipeline, the stateful twin (step=\"twin\", the fused step's reference)",
                threads, f"{ms:.3f} ms/token", f"twin {statistics.median(map(median_ms, twin_path)):.3f} ms/token",
                f"{statistics.median(ratios):.2f}x", "the fused step's gain")
            record[f"generate-pipeline@{threads}"] = {"ours-pipeline": pipeline, "ours-pipeline-twin": twin_path,
                                                      "ratios": ratios}
            if torch_ok:
                twin, torch_state, ratios = alternate("generate", "ours-twin", "torch-state", s["rounds"], threads,
                                                      s["gen_steps"], s["gen_warmup"], s["gen_steps"],
                                                      s["gen_warmup"], (), log)
                row("generation step: the stateful twin's call vs nn.LSTM with (h, c) carried (greedy)", threads,
                    f"{statistics.median(map(median_ms, twin)):.3f} ms/token",
                    f"PyTorch {statistics.median(map(median_ms, torch_state)):.3f} ms/token",
                    f"{statistics.median(ratios):.2f}x")
                record[f"generate-step@{threads}"] = {"ours-twin": twin, "torch-state": torch_state,
                                                      "ratios": ratios}
            else:
                twin = run_worker("generate", "ours-twin", s["gen_steps"], s["gen_warmup"], threads)
                row("generation step: the stateful twin's call (greedy)", threads, f"{median_ms(twin):.3f} ms/token",
                    "PyTorch: not installed or skipped")
                record[f"generate-step@{threads}"] = {"ours-twin": [twin]}
            window = run_worker("generate", "ours-window", s["window_blocks"], 1, threads,
                                "--tokens", str(s["gen_tokens"] // 10))
            row("generation, window re-run through the pipeline (generate_window_rerun, 64 tokens)", threads,
                f"{median_ms(window):.2f} ms/token", "-", f"{median_ms(window) / ms:.0f}x the state-carrying")
            record[f"generate-window@{threads}"] = window

    # -- the drums recipe's epoch through deeprnn train, at 1 thread and at each other count ----------------------------
    if "recipe" not in args.skip:
        if not args.data:
            row("drums recipe: one epoch of deeprnn train", "-", "skipped: no data (--data or DEEPRNN_GROOVE)")
        else:
            counts = sorted({1, *args.threads})
            log(f"drums recipe: one epoch of deeprnn train --threads N (make train's other flags), N = "
                f"{', '.join(map(str, counts))}; data {args.data}"
                + (f", --max-files {s['recipe_files']}" if s["recipe_files"] else ""))
            seconds = {}
            with tempfile.TemporaryDirectory(prefix="bench_cpu_recipe_") as folder:
                for threads in counts:
                    seconds[threads], said = recipe_epoch(threads, args.data, s["recipe_files"], folder)
                    log(f"  --threads {threads}: {seconds[threads]:.1f} s per epoch ({said})")
            for threads in counts:
                faster = seconds[1] / seconds[threads]
                step = record.get(f"drums-lstm@{threads}"), record.get("drums-lstm@1")
                goal = "" if threads == 1 else f"up by the cores' factor ({threads} cores"
                if threads > 1 and all(step):
                    step_factor = (statistics.median(map(median_ms, step[1]["ours"]))
                                   / statistics.median(map(median_ms, step[0]["ours"])))
                    goal += f"; the drums LSTM step above: {step_factor:.2f}x"
                row("drums recipe: one epoch of deeprnn train, epochs in 15 minutes", threads,
                    f"{seconds[threads]:.1f} s, {900 / seconds[threads]:.1f} epochs", "-",
                    "-" if threads == 1 else f"{faster:.2f}x the epochs of 1 thread", goal + (")" if goal else ""))
                record[f"recipe-epoch@{threads}"] = seconds[threads]

    # -- memory (the first thread count's runs) -----------------------------------------------------------------------
    if "memory" not in args.skip:
        threads = args.threads[0]
        for key, label in (("tutorial", "tutorial"), ("drums-lstm", "drums LSTM")):
            runs = record.get(f"{key}@{threads}")
            if runs:
                ours = runs["ours"][0]
                other = f"PyTorch {runs['torch'][0]['peak_rss_mb']:.0f} MB" if "torch" in runs else "-"
                row(f"peak RSS of the {label} training process", threads, f"{ours['peak_rss_mb']:.0f} MB "
                    f"(one step's NumPy arrays {ours['step_peak_mb']:.0f} MB)", other)

    log("")
    header = ("measurement", "threads", "deeprnn (NumPy)", "other", "ratio (ours / other)", "goal")
    table = [(what, *entry) for what, entries in rows.items() for entry in entries]
    widths = [max(len(str(r[i])) for r in table + [header]) for i in range(len(header))]
    for i, r in enumerate([header] + table):
        log("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            log("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    log(f"\n{'--quick smoke run' if args.quick else 'run'} took {time.perf_counter() - began:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "threads": args.threads, "settings": s, "goals": GOALS,
                       "table": [dict(zip(header, r)) for r in table], "runs": record}, f, indent=1)


if __name__ == "__main__":
    main()
