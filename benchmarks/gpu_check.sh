#!/usr/bin/env bash
# The one script for the GPU machine (issue 7): the test suite with CuPy present, then the GPU benchmark.
#
#     bash benchmarks/gpu_check.sh     # from anywhere; writes under $OUT (default /tmp/deeprnn-gpu-check)
#
# Budget: about 8 minutes in all (GPU_CHECK_BUDGET seconds, default 470), in this order, each phase under a timeout
# so a hang cannot eat the next one, and each phase runs whatever the previous one did:
#   1. environment: the card, which packages import; carried wheels installed if needed (see below)  ~10 s
#   2. pytest -m gpu: every test that runs on CuPy (tests/test_gpu.py and the `device`-parametrized tests
#      with id `cupy`)                                      -> $OUT/pytest-gpu.log, $OUT/pytest-gpu.xml   <= 240 s
#   3. benchmarks/bench_gpu.py                              -> $OUT/bench-gpu.txt, $OUT/bench-gpu.json    <= 170 s
#   4. the rest of the suite (-m "not gpu and not slow") with CuPy importable
#                                                           -> $OUT/pytest-rest.log, $OUT/pytest-rest.xml  what is left
#   then a summary on stdout and in $OUT/summary.txt.
#
# It installs nothing it does not need. The machine has CuPy (CUDA 13), PyTorch and JAX; deeprnn itself runs from
# this checkout (PYTHONPATH), so only test dependencies can be missing: pytest, hypothesis, mido, music21, tqdm,
# matplotlib, keras (+ h5py, optree, ml-dtypes). The machine has no network: carry wheels. On the dev machine,
# before the run (pure-Python wheels; binary ones must match the machine's Python, so fetch them for a few versions
# with --only-binary=:all: --python-version 3.1x, the script installs the ones that fit):
#     pip download --no-deps -d .gpu-wheels pytest pluggy iniconfig packaging sortedcontainers mido tqdm \
#         music21 chardet joblib jsonpickle more-itertools webcolors keras==3.15.1 namex absl-py rich \
#         markdown-it-py mdurl pygments
#     pip download --no-deps --only-binary=:all: --python-version 3.12 -d .gpu-wheels hypothesis optree \
#         ml-dtypes h5py matplotlib contourpy kiwisolver fonttools pillow cycler pyparsing python-dateutil six
# and pass `carry: [".gpu-wheels"]` to the device call (64 MiB in all). Every wheel there whose distribution is
# not installed is installed with --no-deps into a private folder on PYTHONPATH (never into the system). What is
# still missing then is reported, and the test files that import it at module level are left out (--ignore) and
# listed (keras -> tests/test_keras_parity.py; music21 -> tests/music/test_midi_io.py, test_seed_tokenizer.py;
# mido -> all of tests/music; hypothesis -> tests/music/test_*tokenizer.py); tests that need a missing package only
# at run time (music21: the corpus and CLI tests; tqdm, matplotlib: the training CLI) fail with "No module named
# ...", counted in the summary. Without pytest at all, phases 2 and 4 are skipped and the benchmark still runs.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT=${OUT:-/tmp/deeprnn-gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-$ROOT/.gpu-wheels}
BUDGET=${GPU_CHECK_BUDGET:-470}
START=$(date +%s)
DEPS=$(mktemp -d /tmp/deeprnn-deps.XXXXXX)
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

left() { echo $(( BUDGET - ($(date +%s) - START) )); }
smaller() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
note() { echo "$*" | tee -a "$SUMMARY"; }

export PYTHONPATH="$ROOT:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax                       # the parity tests' Keras runs on JAX ...
export JAX_PLATFORMS=cpu                       # ... on the CPU: JAX must not take the GPU's memory from CuPy
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONDONTWRITEBYTECODE=1

# -- 1. environment ---------------------------------------------------------------------------------------------------
note "== gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), budget ${BUDGET}s, python $($PY --version 2>&1)"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
note "card: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
if ! $PY -c "import cupy; assert cupy.cuda.runtime.getDeviceCount() > 0; print('cupy', cupy.__version__)" \
        > "$OUT/cupy.txt" 2>&1; then
    note "CuPy with a GPU is NOT available here:"; cat "$OUT/cupy.txt" | tee -a "$SUMMARY"
    note "(the GPU tests will skip and the benchmark will say so)"
else
    note "$(cat "$OUT/cupy.txt")"
fi

if [ -d "$WHEELS" ]; then
    # carried wheels whose distribution is not installed: installed without dependencies into $DEPS
    mapfile -t NEEDED < <($PY - "$WHEELS" <<'EOF'
import importlib.metadata as md, os, re, sys
folder = sys.argv[1]
for name in sorted(os.listdir(folder)):
    if not name.endswith(".whl"):
        continue
    dist = re.sub(r"[-_.]+", "-", name.split("-")[0]).lower()
    try:
        md.version(dist)
    except md.PackageNotFoundError:
        print(os.path.join(folder, name))
EOF
)
    if [ "${#NEEDED[@]}" -gt 0 ]; then
        # one at a time: a wheel built for another Python is refused alone, the others still go in
        INSTALLED=()
        for wheel in "${NEEDED[@]}"; do
            if $PY -m pip install --quiet --no-deps --no-index --disable-pip-version-check --target "$DEPS" \
                    "$wheel" >> "$OUT/pip.txt" 2>&1; then
                INSTALLED+=("$(basename "$wheel")")
            fi
        done
        note "installed ${#INSTALLED[@]} of ${#NEEDED[@]} carried wheel(s) into $DEPS: ${INSTALLED[*]-}"
    else
        note "carried wheels: everything in $WHEELS is installed already"
    fi
else
    note "no carried wheels ($WHEELS absent): using what the machine has"
fi

# which test dependencies import; test files that import a missing one at module level are left out
$PY - "$ROOT/tests" > "$OUT/test-deps.txt" 2> "$OUT/test-deps.err" <<'EOF'
import ast, importlib.util, os, sys
tests = sys.argv[1]
wanted = ["numpy", "scipy", "cupy", "pytest", "hypothesis", "mido", "music21", "tqdm", "matplotlib", "keras", "jax",
          "h5py", "torch"]
status = {m: importlib.util.find_spec(m) is not None for m in wanted}
print("# " + "  ".join(f"{m}:{'yes' if ok else 'NO'}" for m, ok in status.items()))
local = {os.path.splitext(f)[0] for _, _, files in os.walk(tests) for f in files if f.endswith(".py")}
stdlib = set(sys.stdlib_module_names)

def missing_imports(path, seen=()):
    """Third-party modules imported at module level by this file (and the local helpers it imports) that are
    not importable here."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    missing = []
    for name in names:
        if name in stdlib or name == "deeprnn":
            continue
        if name in local:
            helper = next((os.path.join(d, name + ".py") for d, _, fs in os.walk(tests) if name + ".py" in fs), None)
            if helper and helper not in seen:
                missing += missing_imports(helper, seen + (path,))
        elif importlib.util.find_spec(name) is None:
            missing.append(name)
    return missing

for folder, _, files in os.walk(tests):
    if "conftest.py" in files and folder != tests:
        gone = missing_imports(os.path.join(folder, "conftest.py"))
        if gone:
            print(f"{os.path.relpath(folder)}\t{','.join(sorted(set(gone)))}")
            continue
    for name in sorted(files):
        if name.startswith("test_") and name.endswith(".py"):
            gone = missing_imports(os.path.join(folder, name))
            if gone:
                print(f"{os.path.relpath(os.path.join(folder, name))}\t{','.join(sorted(set(gone)))}")
EOF
note "$(head -1 "$OUT/test-deps.txt")"
IGNORES=()
while IFS=$'\t' read -r path mods; do
    case "$path" in "#"*|"") continue ;; esac
    IGNORES+=("--ignore=$path")
    note "left out (missing $mods): $path"
done < "$OUT/test-deps.txt"
HAVE_PYTEST=1
$PY -c "import pytest" 2>/dev/null || { HAVE_PYTEST=0; note "pytest is NOT importable: test phases skipped"; }

PYTEST=(-p no:cacheprovider -o junit_family=xunit2 -rfE -v --durations=15)

# -- 2. the GPU tests --------------------------------------------------------------------------------------------------
T=$(smaller 240 $(( $(left) - 190 )))
if [ "$HAVE_PYTEST" = 1 ] && [ "$T" -ge 30 ]; then
    note "== pytest -m gpu (timeout ${T}s)"
    timeout -k 15 "$T" $PY -m pytest -m gpu "${PYTEST[@]}" --junitxml="$OUT/pytest-gpu.xml" \
        ${IGNORES[@]+"${IGNORES[@]}"} tests > "$OUT/pytest-gpu.log" 2>&1
    RC_GPU=$?
    note "pytest -m gpu: exit $RC_GPU$([ $RC_GPU = 124 ] && echo ' (TIMED OUT: see the log for how far it got)')"
elif [ "$HAVE_PYTEST" = 1 ]; then
    note "no time left for the GPU tests (${T}s)"
fi

# -- 3. the benchmark --------------------------------------------------------------------------------------------------
T=$(smaller 170 $(( $(left) - 20 )))
if [ "$T" -ge 20 ]; then
    note "== bench_gpu.py (timeout ${T}s)"
    timeout -k 10 "$T" $PY benchmarks/bench_gpu.py --timeout 120 --json "$OUT/bench-gpu.json" \
        > "$OUT/bench-gpu.txt" 2>&1
    RC_BENCH=$?
    note "bench_gpu.py: exit $RC_BENCH$([ $RC_BENCH = 124 ] && echo ' (TIMED OUT)')"
else
    note "no time left for the benchmark (${T}s)"
fi

# -- 4. the rest of the suite ------------------------------------------------------------------------------------------
if [ "$HAVE_PYTEST" = 1 ]; then
    T=$(( $(left) - 15 ))
    if [ "$T" -gt 30 ]; then
        note "== pytest -m 'not gpu and not slow' (timeout ${T}s)"
        timeout -k 10 "$T" $PY -m pytest -m "not gpu and not slow" "${PYTEST[@]}" --junitxml="$OUT/pytest-rest.xml" \
            ${IGNORES[@]+"${IGNORES[@]}"} tests > "$OUT/pytest-rest.log" 2>&1
        RC_REST=$?
        note "pytest rest: exit $RC_REST$([ $RC_REST = 124 ] && echo ' (TIMED OUT)')"
    else
        note "no time left for the rest of the suite (${T}s)"
    fi
fi

# -- summary -----------------------------------------------------------------------------------------------------------
note ""
note "== summary ($(( $(date +%s) - START ))s)"
for phase in gpu rest; do
    [ -f "$OUT/pytest-$phase.log" ] || continue
    $PY - "$OUT/pytest-$phase.xml" "$OUT/pytest-$phase.log" "$phase" <<'EOF' | tee -a "$SUMMARY"
import collections, os, re, sys
import xml.etree.ElementTree as ET
xml, log, phase = sys.argv[1:4]
text = open(log, encoding="utf-8", errors="replace").read()
if os.path.exists(xml):
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    print(f"pytest {phase}: {counts['tests']} tests, {counts['failures']} failed, {counts['errors']} errors, "
          f"{counts['skipped']} skipped, {float(suite.get('time', 0)):.0f}s")
else:   # killed by the timeout: count the -v lines
    tally = collections.Counter(re.findall(r" (PASSED|FAILED|ERROR|SKIPPED)", text))
    print(f"pytest {phase}: no junit xml (timed out?); from the log: {dict(tally)}")
failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
for line in failed[:25]:
    print(f"  {line}")
if len(failed) > 25:
    print(f"  ... {len(failed) - 25} more")
missing = collections.Counter(re.findall(r"No module named '([^']+)'", text))
if missing:
    print(f"  missing modules seen in failures: {dict(missing)}")
EOF
done
if [ -f "$OUT/bench-gpu.txt" ]; then
    note "bench: $(grep -E '^GPU:' "$OUT/bench-gpu.txt" | head -1)"
    grep -E '^(train-tutorial|lstm-only|generate) |^goal|skipped' "$OUT/bench-gpu.txt" | tee -a "$SUMMARY"
fi
note "logs in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
rm -rf "$DEPS"
exit 0
