"""keep_freed_memory (deeprnn/memory.py): freed blocks stay in the heap, so a step's arrays are not fresh pages.

Each case runs in its own process: the setting is process-wide and permanent."""
import platform
import subprocess
import sys

import pytest

# a step's pattern: three 8 MB arrays written and freed together, ten times; the page faults of the last nine
STEPS = """
import resource, sys
import numpy
from deeprnn.memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() is None
def step():
    arrays = [numpy.ones(2 ** 20) for _ in range(3)]   # 8 MB each
    return sum(float(a[-1]) for a in arrays)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode):
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_kept_freed_memory_makes_no_page_faults_where_the_default_makes_one_per_page():
    """Nine steps of three 8 MB arrays: with glibc's default thresholds the freed top of the heap goes back to the
    system and every step faults pages in again (measured: ~1,000 per step, 4 MB); with keep_freed_memory, none."""
    assert page_faults("default") > 9 * 500
    assert page_faults("keep") < 200


def test_keep_freed_memory_says_why_not_or_nothing():
    from deeprnn.memory import keep_freed_memory
    why = keep_freed_memory()
    assert why is None or "glibc" in why
