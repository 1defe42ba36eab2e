"""Freed memory kept for reuse: glibc's malloc told not to hand big freed blocks back to the operating system.

Why (measured, docs/performance.md, "Results for issue 23"): a training step allocates and frees arrays of
megabytes (the input projections, the head's logits and their gradients, the weight gradients). With glibc's
default, dynamic thresholds, the free memory at the top of the heap goes back to the operating system once it
exceeds twice the largest block freed so far, and the next step's arrays are fresh pages again: a page fault and a
zeroed page per 4 KB. The drums LSTM training step took about 3,000 page faults and 16 ms of system time, and
211 ms of CPU time against 182 ms with the thresholds below (one thread, same process; PyTorch's step: ~150 faults
and no system time). The kernels' own buffers were already reused (``kernels/workspace.py``); this covers every
other array of the step without touching the code that makes it.

    keep_freed_memory() -> None | str      # None when set, else why not (a C library other than glibc)

Process-wide and for the rest of the process, like a BLAS thread count: the process keeps the memory of its
busiest moment instead of returning it between steps. ``deeprnn`` commands call it (``cli.main``); a program of
its own calls it once before training.
"""
import ctypes
import ctypes.util

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# blocks up to this size come from the heap and are reused (the largest glibc accepts on 64-bit, its dynamic
# threshold's own maximum); a larger one is mapped and unmapped whole, as before (the tutorial's largest: 13 MB)
MMAP_THRESHOLD = 32 * 2 ** 20
# free memory at the top of the heap goes back to the system only past this much
TRIM_THRESHOLD = 2 ** 30


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds so freed blocks stay in the heap for the next step's arrays.

    Returns None when set, else why not (no glibc: musl, macOS, Windows keep their own policies)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt, version = libc.mallopt, libc.gnu_get_libc_version
    except (OSError, AttributeError, TypeError):
        return "the C library is not glibc"
    version.restype = ctypes.c_char_p
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return f"glibc {version().decode()} refused the thresholds"
    return None
