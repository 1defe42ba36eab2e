"""CPU speed of deeprnn's NumPy path against PyTorch's CPU nn.LSTM and Keras 3 (torch backend).

    python benchmarks/bench_cpu.py                  # everything; about 5 minutes on 2 cores
    python benchmarks/bench_cpu.py --rounds 5 --skip keras

Each measurement runs in its own process (benchmarks/cpu_worker.py): NumPy's and PyTorch's thread pools fight when
they share one. The frameworks alternate A B A B, each block warmed up first, and a ratio is the median of the
per-pair ratios of median step times, so that load from other processes moves both sides of a pair alike.
PyTorch and Keras are optional: without them their rows say so and the rest still runs.

Benchmark with a current OpenBLAS kernel: where OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set for old builds, unset
both in the command (``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_cpu.py``); the header
prints the kernel threadpoolctl sees.
"""
import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "cpu_worker.py")

GOALS = {"train-tutorial": 1.25, "train-drums": 1.25}


def have(module):
    return importlib.util.find_spec(module) is not None


THREADS = {}


def run_worker(case, impl, steps, warmup, env_extra=None):
    env = dict(os.environ, **THREADS, **(env_extra or {}))
    if impl == "keras" or impl.startswith("keras"):
        env["KERAS_BACKEND"] = "torch"
    done = subprocess.run([sys.executable, WORKER, case, impl, "--steps", str(steps), "--warmup", str(warmup)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{case} {impl} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
                             f"kernel {info.get('architecture')}"
                             f", {info.get('num_threads')} threads ({os.path.basename(info.get('filepath', ''))})")
    except ImportError:
        lines.append("BLAS: threadpoolctl not installed")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if os.environ.get(var):
            lines.append(f"note: {var}={os.environ[var]} is set")
    # versions from the package metadata: importing torch or keras here would start their thread pools in the
    # process that only orchestrates
    from importlib import metadata
    if have("torch"):
        lines.append(f"torch {metadata.version('torch')}")
    if have("keras"):
        lines.append(f"keras {metadata.version('keras')} (run with KERAS_BACKEND=torch)")
    return lines


def alternate(case, a, b, rounds, steps, warmup, steps_b=None, warmup_b=None, log=print, env_a=None):
    """Run a and b alternately ``rounds`` times; returns (a results, b results, per-pair ratios a/b)."""
    results_a, results_b, ratios = [], [], []
    for r in range(rounds):
        ra = run_worker(case, a, steps, warmup, env_a)
        rb = run_worker(case, b, steps_b or steps, warmup_b if warmup_b is not None else warmup)
        results_a.append(ra)
        results_b.append(rb)
        ratios.append(median_ms(ra) / median_ms(rb))
        log(f"  round {r + 1}: {case} {a} {median_ms(ra):.1f} ms, {b} {median_ms(rb):.1f} ms, ratio {ratios[-1]:.2f}")
    return results_a, results_b, ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="A/B pairs per comparison (default 3)")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per block (default 12)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["torch", "keras", "reference", "drums",
                                                                   "generate", "tutorial"])
    parser.add_argument("--threads", type=int, help="BLAS/OpenMP threads in every worker (default: the libraries' "
                        "own choice, one per core); 1 is far steadier on a machine that other jobs load")
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args(argv)
    if args.threads:
        THREADS.update({var: str(args.threads) for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                           "MKL_NUM_THREADS")})
    log = lambda *a: print(*a, flush=True)  # noqa: E731

    torch_ok = have("torch") and "torch" not in args.skip
    keras_ok = have("keras") and torch_ok and "keras" not in args.skip
    for line in machine():
        log(line)
    log(f"threads per worker: {args.threads or 'library default'}")
    if not have("torch"):
        log("PyTorch is not installed: its rows are skipped (pip install torch==2.13.0 for the CPU wheel)")
    if not have("keras"):
        log("Keras is not installed: its rows are skipped")
    log("")

    rows, record = [], {}

    def row(what, ours, other, ratio, goal=""):
        rows.append((what, ours, other, ratio, goal))

    # -- the tutorial's training step ----------------------------------------------------------------------------------
    if "tutorial" not in args.skip:
        log("tutorial training step (2x LSTM(256), B=32, T=100, V=300; recurrent dropout 0.3 for deeprnn and Keras)")
        if torch_ok:
            ours, torch_runs, ratios = alternate("train-tutorial", "ours", "torch", args.rounds, args.steps, 3,
                                                 log=log)
            ratio = statistics.median(ratios)
            row("tutorial training step", f"{statistics.median(map(median_ms, ours)):.1f} ms",
                f"PyTorch {statistics.median(map(median_ms, torch_runs)):.1f} ms", f"{ratio:.2f}x",
                f"<= {GOALS['train-tutorial']}x: {'met' if ratio <= GOALS['train-tutorial'] else 'NOT met'}")
            record["tutorial"] = {"ours": ours, "torch": torch_runs, "ratios": ratios}
        else:
            ours = [run_worker("train-tutorial", "ours", args.steps, 3)]
            row("tutorial training step", f"{median_ms(ours[0]):.1f} ms", "PyTorch: not installed or skipped", "-")
        if keras_ok:
            ours_k, keras_runs, ratios = alternate("train-tutorial", "ours", "keras", max(1, args.rounds // 2),
                                                   args.steps, 3, steps_b=3, warmup_b=1, log=log)
            speedup = statistics.median(1 / r for r in ratios)
            row("tutorial training step", f"{statistics.median(map(median_ms, ours_k)):.1f} ms",
                f"Keras {statistics.median(map(median_ms, keras_runs)):.0f} ms", f"{1 / speedup:.3f}x",
                f"{speedup:.1f}x faster (goal >= 5x)")
            record["tutorial-keras"] = {"ours": ours_k, "keras": keras_runs, "ratios": ratios}
        if "reference" not in args.skip:
            ours_f, ref, ratios = alternate("train-tutorial", "ours", "reference", 1, args.steps, 2, steps_b=4,
                                            warmup_b=1, log=log)
            row("tutorial step, kernels off (DEEPRNN_REFERENCE=1)", f"{median_ms(ours_f[0]):.1f} ms",
                f"reference {median_ms(ref[0]):.1f} ms", f"{ratios[0]:.2f}x", "the fused kernel's gain")
            record["tutorial-reference"] = {"ours": ours_f, "reference": ref}

    # -- the drums recipe's training step ------------------------------------------------------------------------------
    if "drums" not in args.skip:
        log("drums training step (Embedding(515, 64) -> 2x LSTM(256) sequences -> Dense(515) softmax, B=32, T=64)")
        if torch_ok:
            ours, torch_runs, ratios = alternate("train-drums", "ours", "torch", args.rounds, args.steps, 3, log=log)
            ratio = statistics.median(ratios)
            row("drums training step", f"{statistics.median(map(median_ms, ours)):.1f} ms",
                f"PyTorch {statistics.median(map(median_ms, torch_runs)):.1f} ms", f"{ratio:.2f}x",
                f"<= {GOALS['train-drums']}x: {'met' if ratio <= GOALS['train-drums'] else 'NOT met'}")
            record["drums"] = {"ours": ours, "torch": torch_runs, "ratios": ratios}
        else:
            ours = [run_worker("train-drums", "ours", args.steps, 3)]
            row("drums training step", f"{median_ms(ours[0]):.1f} ms", "PyTorch: not installed or skipped", "-")

    # -- generation ----------------------------------------------------------------------------------------------------
    if "generate" not in args.skip:
        log("generation, tutorial model, per token")
        state = run_worker("generate", "ours-state", 300, 20)
        window = run_worker("generate", "ours-window", 20, 2)
        ms_state = median_ms(state)
        row("generation, state carried (step_forward)", f"{ms_state:.3f} ms/token", "-", "-",
            f"<= 0.5 ms: {'met' if ms_state <= 0.5 else 'NOT met'}")
        row("generation, window re-run (deeprnn)", f"{median_ms(window):.2f} ms/token", "-",
            f"{median_ms(window) / ms_state:.0f}x the state-carrying step")
        record["generate"] = {"ours-state": state, "ours-window": window}
        if torch_ok:
            tw = run_worker("generate", "torch-window", 50, 5)
            row("generation: ours state-carried vs PyTorch window re-run", f"{ms_state:.3f} ms/token",
                f"PyTorch window {median_ms(tw):.2f} ms/token", f"{ms_state / median_ms(tw):.3f}x")
            record["generate"]["torch-window"] = tw
        if keras_ok:
            kw = run_worker("generate", "keras-window", 4, 1)
            speedup = median_ms(kw) / ms_state
            row("generation: ours state-carried vs Keras window re-run (model.predict)", f"{ms_state:.3f} ms/token",
                f"Keras window {median_ms(kw):.0f} ms/token", f"{ms_state / median_ms(kw):.5f}x",
                f"{speedup:.0f}x faster (goal >= 500x)")
            record["generate"]["keras-window"] = kw

    # -- memory --------------------------------------------------------------------------------------------------------
    for key, label in (("tutorial", "tutorial"), ("drums", "drums")):
        if key in record:
            ours = record[key]["ours"][0]
            other = record[key]["torch"][0]
            row(f"peak RSS of the {label} training process", f"{ours['peak_rss_mb']:.0f} MB "
                f"(one step's NumPy arrays {ours['step_peak_mb']:.0f} MB)", f"PyTorch {other['peak_rss_mb']:.0f} MB",
                "-")

    log("")
    header = ("measurement", "deeprnn (NumPy)", "other", "ratio (ours / other)", "goal")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    for i, r in enumerate([header] + rows):
        log("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
        if i == 0:
            log("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "rows": rows, "runs": record}, f, indent=1)


if __name__ == "__main__":
    main()
