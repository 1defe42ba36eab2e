"""Batch shards in worker processes: each shard's kernel call in a process of its own, so no shard waits for a GIL.

Why: shards in threads (``sharded.py``) share one interpreter lock. NumPy releases it inside each call, but the
kernels' loops make about 20 calls per timestep, so S shard threads need S x 18 us of Python a timestep, one after
the other: past a few shards they wait for the GIL more than they compute (docs/performance.md, "Every core II",
on paper). Worker processes share no lock; they pay for copying their arrays in and out instead. Measured on the
2-core machine (quiet): the LSTM kernel (B 32, T 64, H 256, forward and backward) took 44.5 ms on one thread, 32 ms
in two shard threads and 29-30 ms in two processes; the drums LSTM training step, with the projections and the
head's products in the shards too, 94-97 ms in two threads and 99-103 ms in two processes. So
``set_num_threads(n)`` ("auto") runs 2 shards in threads and more in processes.

How. A worker is ``python -m deeprnn.kernels.shard_worker FD``, started on the first sharded call, with one BLAS
thread, joined to this process by a Unix socket pair of packets (``SOCK_SEQPACKET``: one message a packet, and a
file descriptor can ride along). Arrays do not cross the socket: each side copies the arrays it sends into an arena
of its own (an anonymous ``memfd`` that both map; its descriptor crosses once, when the arena is made or grows), and
the packet (JSON) says where they lie. The kernel's cache stays in the worker between the forward and the
backward; this process holds a ``RemoteCache`` naming it, and when that is dropped the worker drops the cache with
the next call.

    Channel(sock).send(header, tree) / .receive() -> (header, tree)   # either side: tuples, lists, dicts of arrays
    ShardProcesses().grow(n); .run(kernel, op, here, shard_args, workspaces, options) -> one result per shard:
        the first shard here (``here(*args, ws, **options)``), the others in workers (the call named ``op``)

Linux only (``memfd_create``, descriptors over sockets): ``AVAILABLE`` says so, and elsewhere shards run in threads.
"""
import itertools
import json
import mmap
import os
import socket
import subprocess
import sys
import weakref

import numpy

from . import cpu_gru, cpu_lstm, cpu_simple_rnn

AVAILABLE = (sys.platform.startswith("linux") and hasattr(os, "memfd_create") and hasattr(socket, "send_fds")
             and hasattr(socket, "SOCK_SEQPACKET"))
# the kernels a worker runs, by module name: the CPU kernels (arrays in host memory, rows independent)
KERNELS = {kernel.__name__: kernel for kernel in (cpu_gru, cpu_lstm, cpu_simple_rnn)}
# the largest packet: a header and the arrays' places (the arrays themselves are in the arena)
PACKET = 1 << 20
# arrays start on cache-line boundaries in the arena
ALIGN = 64
# an arena's first size; it grows to twice what a message needed when one does not fit
FIRST_ARENA = 16 << 20
# where `python -m deeprnn.kernels.shard_worker` finds this very deeprnn: the folder that holds the package
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# what to do where workers cannot run (a Python that cannot start `python -m deeprnn...`, a sandbox)
THREADS_INSTEAD = ("shards in threads need no worker process: deeprnn train --shard-workers threads, or "
                   "dr.set_num_threads(n, workers='threads')")

# the calls a worker runs: a kernel's forward and backward (kernels/__init__.py), and the same with the input
# projection around them (sharded.projected_forward, projected_backward); a forward's cache stays in the worker,
# and a backward's third argument names it
FORWARDS = ("forward", "projected_forward")
BACKWARDS = ("backward", "projected_backward")
# and products by rows, no kernel: a_k @ b (sharded.rows_product) and a_k^T b_k (sharded.summed_product)
PRODUCTS = ("rows_product", "summed_product")


class WorkerError(RuntimeError):
    """A shard worker failed: its kernel raised (the worker's traceback is the message) or the worker is gone."""


def aligned(n):
    return -(-n // ALIGN) * ALIGN


class Channel:
    """One end of a worker's socket: messages of a header and a tree of arrays, as JSON (no pickle: nothing
    received can run code), the arrays through the arenas. A tree holds arrays, tuples, lists, dicts with string
    keys, strings, numbers, booleans and None. A received tree's arrays are views of the other side's arena, valid
    until that side sends again."""

    def __init__(self, sock):
        self.sock = sock
        self.outgoing = None       # the arena this side writes (an mmap), and its size
        self.outgoing_size = 0
        self.incoming = None       # the other side's arena, as mapped here

    def send(self, header, tree):
        places, arrays = {}, []
        end = 0

        def encode(obj):
            nonlocal end
            if isinstance(obj, numpy.ndarray):
                place = places.get(id(obj))            # an array that appears twice (dzh is dxw) arrives once
                if place is None:
                    place = places[id(obj)] = [end, list(obj.shape), obj.dtype.str]
                    arrays.append((end, obj))
                    end += aligned(obj.nbytes)
                return {"array": place}
            if type(obj) is tuple:
                return {"tuple": [encode(item) for item in obj]}
            if type(obj) is list:
                return [encode(item) for item in obj]
            if type(obj) is dict:
                return {"dict": [[key, encode(value)] for key, value in obj.items()]}
            if isinstance(obj, numpy.generic):
                return obj.item()
            if obj is None or isinstance(obj, (bool, int, float, str)):
                return obj
            raise TypeError(f"a shard message cannot carry {type(obj).__name__}")

        message = [encode(header), encode(tree)]
        fds, grown = [], None
        if end > self.outgoing_size:
            grown = max(FIRST_ARENA, 2 * end)
            fd = os.memfd_create("deeprnn-shards", os.MFD_CLOEXEC)
            os.ftruncate(fd, grown)
            self.outgoing, self.outgoing_size = mmap.mmap(fd, grown), grown
            fds.append(fd)
        for offset, array in arrays:
            numpy.copyto(numpy.ndarray(array.shape, array.dtype, buffer=self.outgoing, offset=offset), array)
        try:
            socket.send_fds(self.sock, [json.dumps(message + [grown]).encode()], fds)
        finally:
            for fd in fds:
                os.close(fd)       # the mapping stays; the other side maps its own copy of the descriptor

    def receive(self):
        """The next message: (header, tree). EOFError when the other side has closed its end."""
        data, fds, _, _ = socket.recv_fds(self.sock, PACKET, 1)
        if not data:
            raise EOFError("the other end of the shard channel closed")
        header, encoded, grown = json.loads(data)
        if fds:
            try:
                self.incoming = mmap.mmap(fds[0], grown)
            finally:
                os.close(fds[0])
        views = {}

        def decode(obj):
            if type(obj) is list:
                return [decode(item) for item in obj]
            if type(obj) is not dict:
                return obj
            if "array" in obj:
                offset, shape, dtype = obj["array"]
                view = views.get(offset)
                if view is None:
                    view = views[offset] = numpy.ndarray(tuple(shape), dtype, buffer=self.incoming, offset=offset)
                return view
            if "tuple" in obj:
                return tuple(decode(item) for item in obj["tuple"])
            return {key: decode(value) for key, value in obj["dict"]}

        return decode(header), decode(encoded)

    def close(self):
        self.sock.close()


class RemoteCache:
    """A shard's kernel cache, kept in the worker that ran its forward; named here by ``key``. When this object is
    dropped, the worker drops the cache with the next call it gets."""

    def __init__(self, worker, key):
        self.worker, self.key = worker, key
        weakref.finalize(self, worker.forget, ("cache", key))


class Worker:
    """One worker process and its channel. Calls are numbered, so a reply left unread (an exception here while
    the worker ran) is skipped by the next call, never taken for its answer."""

    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        path = os.environ.get("PYTHONPATH")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONPATH=PACKAGE_ROOT if not path else PACKAGE_ROOT + os.pathsep + path)
        with theirs:
            self.process = subprocess.Popen([sys.executable, "-m", "deeprnn.kernels.shard_worker",
                                             str(theirs.fileno())], pass_fds=[theirs.fileno()], env=env,
                                            stdin=subprocess.DEVNULL)
        self.channel = Channel(ours)
        self.calls = itertools.count()
        self.keys = itertools.count()
        self.workspaces = weakref.WeakKeyDictionary()   # a shard's Workspace here -> its name in the worker
        self.forgotten = []                             # caches and workspaces the worker may drop
        self.closed = False

    def forget(self, what):
        self.forgotten.append(what)

    def workspace_key(self, ws):
        key = self.workspaces.get(ws)
        if key is None:
            key = self.workspaces[ws] = next(self.keys)
            weakref.finalize(ws, self.forget, ("workspace", key))
        return key

    def request(self, kernel, op, args, ws, options):
        """Send one call (``FORWARDS``, ``BACKWARDS``); returns its number and key for ``reply``."""
        if self.closed:
            raise WorkerError("this shard worker was stopped; run the forward again")
        if op in BACKWARDS:
            cache = args[2]
            if cache.worker is not self:
                raise WorkerError("this cache belongs to a shard worker that was stopped; run the forward again")
            args = args[:2] + (cache.key,) + args[3:]
        return self.send(op, None if kernel is None else kernel.__name__,
                         None if ws is None else self.workspace_key(ws), (args, options))

    def held(self):
        """(caches, workspaces) the worker holds now, after dropping those this process has let go of."""
        return self.reply(*self.send("held", None, None, None), "held")

    def send(self, op, kernel_name, workspace_key, tree):
        call, key = next(self.calls), next(self.keys)
        forgotten, self.forgotten = self.forgotten, []
        try:
            self.channel.send((call, op, kernel_name, key, workspace_key, forgotten), tree)
        except OSError as error:
            self.close()
            raise WorkerError(f"a shard worker exited (status {self.process.poll()}): {error}; "
                              f"{THREADS_INSTEAD}") from None
        return call, key

    def reply(self, call, op, key):
        """The result of call ``call``: a tuple whose arrays are views of the worker's arena (valid until this
        worker's next call); a forward's cache is a RemoteCache."""
        while True:
            try:
                (number, status, detail), result = self.channel.receive()
            except (EOFError, OSError) as error:
                self.close()
                raise WorkerError(f"a shard worker exited (status {self.process.poll()}): {error}; "
                                  f"{THREADS_INSTEAD}") from None
            if number == call:
                break          # earlier numbers: replies to calls whose caller was interrupted
        if status != "ok":
            raise WorkerError(f"in a shard worker (its traceback follows):\n{detail}")
        if op in FORWARDS:
            result = result + (RemoteCache(self, key),)
        return result

    def close(self):
        if not self.closed:
            self.closed = True
            self.channel.close()          # the worker reads the end of its channel and exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ShardProcesses:
    """Worker processes beside this one: a call's first shard runs here, the others in the workers."""
    KIND = "processes"

    def __init__(self):
        self.workers = []

    def grow(self, shards):
        """Room for ``shards`` shards: ``shards - 1`` workers, a stopped one (exited, or stopped after an error)
        replaced by a new one."""
        self.workers = [worker for worker in self.workers if not worker.closed]
        while len(self.workers) < shards - 1:
            self.workers.append(Worker())

    def run(self, kernel, op, here, shard_args, workspaces, options):
        """Each shard's call ``op`` with its args and workspace: the first here, as ``here(*args, ws, **options)``,
        the others in the workers, which run the same function (``shard_worker.CALLS``); the results in shard
        order. All the workers' calls go out before the first shard runs here, and every reply is read, also when
        one fails (the first failure is raised then)."""
        pending = [(worker, worker.request(kernel, op, args, ws, options), op)
                   for worker, args, ws in zip(self.workers, shard_args[1:], workspaces[1:])]
        failure = None
        try:
            results = [here(*shard_args[0], workspaces[0], **options)]
        except BaseException as error:      # noqa: B036  (an interrupt too: the workers' replies are read first)
            failure, results = error, [None]
        for worker, (call, key), op in pending:
            try:
                results.append(worker.reply(call, op, key))
            except BaseException as error:  # noqa: B036
                failure = failure or error
                results.append(None)
        if failure is not None:
            raise failure
        return results

    def close(self):
        for worker in self.workers:
            worker.close()
