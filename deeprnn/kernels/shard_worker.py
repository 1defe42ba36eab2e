"""A shard worker: ``python -m deeprnn.kernels.shard_worker FD`` runs kernel calls sent over the socket FD.

Started by ``shard_processes.Worker`` (never by hand), with one BLAS thread. It answers each call with the kernel's
result, or with the traceback of what the kernel raised, and keeps each forward's cache until told to drop it. It
exits when the other end of its socket closes: when the process that started it stops its shards or exits.
"""
import signal
import socket
import sys
import traceback

import numpy

from ..layers.recurrent import project_inputs, project_inputs_backward
from ..memory import keep_freed_memory
from .shard_processes import KERNELS, PRODUCTS, Channel
from .sharded import projected_backward, projected_forward
from .workspace import Workspace


def owned(tree):
    """Copies of a received tree's arrays: what a cache may keep must outlive the arena's next message."""
    if isinstance(tree, numpy.ndarray):
        return tree.copy()
    if type(tree) in (tuple, list):
        return type(tree)(owned(item) for item in tree)
    if type(tree) is dict:
        return {key: owned(value) for key, value in tree.items()}
    return tree


def serve(channel):
    caches, workspaces = {}, {}
    while True:
        try:
            (call, op, kernel_name, key, workspace_key, forgotten), tree = channel.receive()
        except EOFError:
            return
        for kind, name in forgotten:
            (caches if kind == "cache" else workspaces).pop(name, None)
        if op == "held":
            channel.send((call, "ok", None), (len(caches), len(workspaces)))
            continue
        try:
            if op in PRODUCTS:
                a, b = tree[0]
                channel.send((call, "ok", None), a @ b if op == "rows_product" else a.T @ b)
                continue
            kernel = KERNELS[kernel_name]
            ws = workspaces.setdefault(workspace_key, Workspace())
            if op == "forward":
                # xw and U are only read; the initial state, the masks and the options may be kept in the cache
                (xw, U, initial_state, recurrent_mask), options = tree
                hs, final, cache = kernel.forward(xw, U, owned(initial_state), owned(recurrent_mask), ws,
                                                  **owned(options))
                caches[key] = cache
                result = (hs, final)
            elif op == "backward":
                dhs, d_final, cache_key, U = tree[0]
                result = kernel.backward(dhs, d_final, caches[cache_key], U, ws)
            elif op == "projected_forward":
                # x and the input masks are kept for dW, with the initial state, the masks and the options
                (x_tm, W, bias, input_mask, gates, U, initial_state, recurrent_mask), options = tree
                hs, final, cache = projected_forward(kernel, project_inputs, owned(x_tm), W, bias, owned(input_mask),
                                                     gates, U, owned(initial_state), owned(recurrent_mask), ws,
                                                     **owned(options))
                caches[key] = cache
                result = (hs, final)
            elif op == "projected_backward":
                dhs, d_final, cache_key, U, W, gates = tree[0]
                result = projected_backward(kernel, project_inputs_backward, dhs, d_final, caches[cache_key], U, W,
                                            gates, ws)
            else:
                raise ValueError(f"unknown call {op!r}")
        except Exception:                     # the caller raises it; this worker serves the next call
            channel.send((call, "error", traceback.format_exc()), None)
            continue
        channel.send((call, "ok", None), result)


def main(argv):
    # Ctrl-C in a terminal reaches the whole process group: the process that started this worker decides what an
    # interrupt does, and this worker leaves when that process closes its socket
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()
    serve(Channel(socket.socket(fileno=int(argv[1]))))


if __name__ == "__main__":
    main(sys.argv)
