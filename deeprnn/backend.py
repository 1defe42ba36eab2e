"""The array-module seam: NumPy on the CPU, CuPy on the GPU, one code path for both.

Layers never import NumPy for array math; they ask for ``xp`` (the module that owns their arrays) and call it.
This module also owns the float dtype (``set_floatx``) and the random streams (``set_seed``):

- ``init_rng``: weight initialization, always drawn on the host so the same seed gives the same initial weights on
  either device;
- ``shuffle_rng``: epoch permutations, on the host;
- ``mask_rng``: dropout masks, on the device that holds the activations (NumPy's or CuPy's generator).
"""
import numpy

_FLOATX = {"name": "float32"}
_DEVICE = {"name": "cpu"}
_RNG = {}


def floatx():
    """The float dtype name every weight and activation uses ('float32' by default)."""
    return _FLOATX["name"]


def set_floatx(name):
    if name not in ("float32", "float64"):
        raise ValueError(f"set_floatx: expected 'float32' or 'float64', got {name!r}")
    _FLOATX["name"] = name


def cupy_or_none():
    """CuPy if it imports and sees a GPU, else None (the package must import and run without it)."""
    try:
        import cupy
    except Exception:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:
        return None
    return cupy


def set_device(name):
    """Choose where weights and activations live: 'cpu' (NumPy) or 'gpu' (CuPy).

    Models built before the switch keep their arrays; call ``model.to_device()`` to move them.
    """
    if name not in ("cpu", "gpu"):
        raise ValueError(f"set_device: expected 'cpu' or 'gpu', got {name!r}")
    if name == "gpu" and cupy_or_none() is None:
        raise RuntimeError(
            "set_device('gpu'): CuPy with a working CUDA GPU is required "
            "(pip install 'deeprnn[gpu]' on a machine with an NVIDIA GPU), or use --device cpu")
    _DEVICE["name"] = name
    if "seed" in _RNG:
        _RNG["mask"] = _make_mask_rng(_RNG["seed"])


def device():
    return _DEVICE["name"]


def xp():
    """The array module of the current device."""
    if _DEVICE["name"] == "gpu":
        import cupy
        return cupy
    return numpy


def array_module(*arrays):
    """The module (NumPy or CuPy) that owns these arrays, Chainer-style."""
    for a in arrays:
        if a is not None and type(a).__module__.startswith("cupy"):
            import cupy
            return cupy
    return numpy


def to_numpy(a):
    """A host copy of ``a`` (no copy when it already is a NumPy array)."""
    if a is None or isinstance(a, numpy.ndarray):
        return a
    if hasattr(a, "get"):
        return a.get()
    return numpy.asarray(a)


def to_device(a, dtype=None):
    """``a`` as an array of the current device (a no-op when it already is one)."""
    if a is None:
        return None
    module = xp()
    if module is numpy:
        a = to_numpy(a)   # a CuPy array refuses NumPy's implicit conversion: copy it to the host explicitly
    if dtype is not None:
        return module.asarray(a, dtype=dtype)
    return module.asarray(a)


def value_range(a):
    """(min, max) of a non-empty array as Python numbers, read in one copy: one device sync on the GPU, not two."""
    module = array_module(a)
    if module is numpy:   # nothing to sync: two reductions, no stacking
        return a.min().item(), a.max().item()
    low, high = to_numpy(module.stack([a.min(), a.max()])).tolist()
    return low, high


def _make_mask_rng(seed):
    if _DEVICE["name"] == "gpu":
        import cupy
        return cupy.random.default_rng(seed + 2)
    return numpy.random.default_rng(seed + 2)


def set_seed(seed):
    """Make initial weights, dropout masks and shuffles reproducible."""
    seed = int(seed)
    _RNG["seed"] = seed
    _RNG["init"] = numpy.random.default_rng(seed)
    _RNG["shuffle"] = numpy.random.default_rng(seed + 1)
    _RNG["mask"] = _make_mask_rng(seed)


def _ensure_seeded():
    if "seed" not in _RNG:
        set_seed(int(numpy.random.SeedSequence().generate_state(1)[0]))


def init_rng():
    _ensure_seeded()
    return _RNG["init"]


def shuffle_rng():
    _ensure_seeded()
    return _RNG["shuffle"]


def mask_rng():
    _ensure_seeded()
    return _RNG["mask"]


def get_rng_state():
    """JSON-serializable state of the host random streams (for resuming training exactly)."""
    _ensure_seeded()
    state = {"seed": _RNG["seed"],
             "init": _RNG["init"].bit_generator.state,
             "shuffle": _RNG["shuffle"].bit_generator.state}
    if isinstance(_RNG["mask"], numpy.random.Generator):
        state["mask"] = _RNG["mask"].bit_generator.state
    return state


def set_rng_state(state):
    set_seed(state["seed"])
    _RNG["init"].bit_generator.state = state["init"]
    _RNG["shuffle"].bit_generator.state = state["shuffle"]
    if "mask" in state and isinstance(_RNG["mask"], numpy.random.Generator):
        _RNG["mask"].bit_generator.state = state["mask"]


def dropout_mask(shape, rate, dtype=None):
    """Keras's dropout mask: 0 with probability ``rate``, else 1/(1-rate), drawn from the device generator."""
    rng = mask_rng()
    dtype = dtype or floatx()
    keep = rng.random(shape, dtype=dtype) >= rate
    return keep.astype(dtype) / dtype_cast(1.0 - rate, dtype)


def dtype_cast(value, dtype):
    return numpy.dtype(dtype).type(value)


def scatter_add(target, indices, values):
    """``target[indices] += values`` with repeated indices accumulated (NumPy's add.at, CuPy's scatter_add)."""
    module = array_module(target)
    if module is numpy:
        numpy.add.at(target, indices, values)
    else:
        import cupyx
        cupyx.scatter_add(target, indices, values)
    return target
