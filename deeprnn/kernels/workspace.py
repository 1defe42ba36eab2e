"""Reusable whole-sequence buffers for a kernel, one workspace per layer.

Why: a fresh multi-megabyte array is fresh memory from the operating system, and its first write costs a page fault
per 4 KB page. Measured on the 2-core machine, the tutorial's training step took ~8,000 page faults and ~25 ms of
system time in fresh buffers (about 10% of the step); reused buffers take none.

A buffer is handed out again only when nothing else refers to it: its reference count shows the workspace's own
references alone. A cache or an output still alive (a view keeps its base array alive) therefore keeps its buffer,
and the next call gets another one, so gradient checks that run forward many times before one backward stay
correct. Not for concurrent use of one layer from several threads.
"""
import sys
import weakref

import numpy

# buffers of one shape kept per layer: a forward takes two of (4, T, B, H) (gates and masked h), and a cache kept
# alive (a gradient check) holds one set while the next call runs
PER_SHAPE = 4
# distinct shapes kept per layer (a partial last batch, validation batches): the oldest shape is dropped past this
SHAPES = 8

_WORKSPACES = weakref.WeakKeyDictionary()


class Workspace:
    def __init__(self):
        self.pools = {}

    def empty(self, shape, dtype):
        """An uninitialized array of ``shape``/``dtype``: a free buffer of this workspace, or a new one it keeps."""
        key = (tuple(shape), numpy.dtype(dtype).str)
        pool = self.pools.get(key)
        if pool is None:
            if len(self.pools) >= SHAPES:
                del self.pools[next(iter(self.pools))]
            pool = self.pools[key] = []
        for buffer in pool:
            # references: the pool's list, this loop's variable, getrefcount's argument; any other is a user
            if sys.getrefcount(buffer) <= 3:
                return buffer
        buffer = numpy.empty(shape, dtype=dtype)
        if len(pool) < PER_SHAPE:
            pool.append(buffer)
        return buffer


def workspace(layer):
    """The workspace of ``layer`` (made on first use, released with the layer)."""
    ws = _WORKSPACES.get(layer)
    if ws is None:
        ws = _WORKSPACES[layer] = Workspace()
    return ws
