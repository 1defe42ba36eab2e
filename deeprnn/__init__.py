"""deeprnn: deep recurrent networks by hand, in NumPy and CuPy, with every gradient checked.

    import deeprnn as dr
    from deeprnn import layers
    model = dr.Sequential([layers.Input((100, 1)), layers.LSTM(256, return_sequences=True), ...])
"""
from . import backend, callbacks, initializers, layers, losses, optimizers
from .backend import floatx, set_device, set_floatx, set_seed
from .kernels.sharded import get_num_threads, get_shard_workers, set_num_threads
from .layers.base import clear_session
from .model import NonFiniteLossError, Sequential
from .saving import load_metadata, load_model

__version__ = "0.1.0"

__all__ = ["backend", "callbacks", "initializers", "layers", "losses", "optimizers", "floatx", "set_device",
           "set_floatx", "set_seed", "clear_session", "Sequential", "NonFiniteLossError", "load_model", "load_metadata",
           "get_num_threads", "get_shard_workers", "set_num_threads"]
