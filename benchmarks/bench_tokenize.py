"""Benchmark: tokenize every Groove file with DrumGridTokenizer, cold (empty cache) and warm, with peak memory.

    python benchmarks/bench_tokenize.py [--data DIR] [--workers N] [--repeats R]

Each phase runs in a fresh Python process, so the warm number includes nothing left in memory by the cold run
and each process's peak RSS is its own. Targets (issue 3): cold <= 15 s on 2 cores, warm <= 1 s, < 1 GB.

--data: a Groove folder or zip, or anything `deeprnn.music.resolve_data` accepts; default $DEEPRNN_GROOVE, else
../shared/data/groove next to the repository, else the downloaded copy in the data cache.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data() -> str:
    if os.environ.get("DEEPRNN_GROOVE"):
        return os.environ["DEEPRNN_GROOVE"]
    beside_repo = REPO_ROOT.parent / "shared" / "data" / "groove"
    if (beside_repo / "info.csv").is_file():
        return str(beside_repo)
    from deeprnn.music import groove

    return str(groove.default_root())


def run_phase(data: str, cache: str, workers: int | None) -> dict:
    """One tokenize_corpus call in this process; returns timings and peak RSS as a dict."""
    started = time.perf_counter()
    from deeprnn.music import DrumGridTokenizer, resolve_data, tokenize_corpus

    imported = time.perf_counter()
    paths = resolve_data(data)
    listed = time.perf_counter()
    result = tokenize_corpus(paths, DrumGridTokenizer(), cache_dir=cache, workers=workers)
    finished = time.perf_counter()
    own, workers_usage = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN reports the largest finished worker, not their sum.
    # CPU seconds (this process + its workers) do not grow when other jobs share the cores, wall time does.
    return {
        "files": len(paths),
        "tokenized": len(result.sequences),
        "skipped": len(result.skipped),
        "tokens": int(sum(len(tokens) for tokens in result.sequences)),
        "import_s": imported - started,
        "list_s": listed - imported,
        "tokenize_s": finished - listed,
        "cpu_s": own.ru_utime + own.ru_stime + workers_usage.ru_utime + workers_usage.ru_stime,
        "peak_rss_mb": own.ru_maxrss / 1024,
        "worker_peak_rss_mb": workers_usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="Groove folder/zip (default: see above)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default min(2, cpus))")
    parser.add_argument("--repeats", type=int, default=1, help="cold+warm pairs to run (each on a new cache)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # internal: run one phase, print JSON
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(run_phase(args.data, args.cache, args.workers)))
        return

    data = args.data or default_data()
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                           os.environ.get("PYTHONPATH")])))
    rows = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="bench-token-cache-") as cache:
            for phase in ("cold", "warm"):
                command = [sys.executable, __file__, "--phase", phase, "--data", data, "--cache", cache]
                if args.workers is not None:
                    command += ["--workers", str(args.workers)]
                started = time.perf_counter()
                output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
                measured = json.loads(output.stdout.strip().splitlines()[-1])
                measured.update(phase=phase, repeat=repeat, process_s=time.perf_counter() - started)
                rows.append(measured)

    print(f"data: {data}   workers: {args.workers or f'default (min(2, {os.cpu_count()}))'}   "
          f"cpus: {os.cpu_count()}")
    header = (f"{'phase':<6}{'files':>7}{'ok':>7}{'skipped':>9}{'tokenize s':>12}{'process s':>11}{'CPU s':>8}"
              f"{'import s':>10}{'peak RSS MB':>13}{'worker RSS MB':>15}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['phase']:<6}{row['files']:>7}{row['tokenized']:>7}{row['skipped']:>9}"
              f"{row['tokenize_s']:>12.2f}{row['process_s']:>11.2f}{row['cpu_s']:>8.2f}{row['import_s']:>10.2f}"
              f"{row['peak_rss_mb']:>13.0f}{row['worker_peak_rss_mb']:>15.0f}")
    print("tokenize s: the tokenize_corpus call; process s: the whole fresh process (start, imports, listing);")
    print("CPU s: user + system seconds of the process and its workers (unaffected by other jobs on the cores).")
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; above the "
          f"core count, other jobs were competing for the cores and wall times are inflated")
    print("Total peak memory is at most peak RSS + workers x worker RSS.")


if __name__ == "__main__":
    main()
