"""What ``fit`` trains on: a data source shaped like Keras's ``PyDataset``.

    class Windows(PyDataset):
        def __len__(self):            return number_of_batches
        def __getitem__(self, index): return x_batch, y_batch
        def on_epoch_begin(self):     ...  # e.g. draw this epoch's order
        def on_epoch_end(self):       ...  # e.g. reshuffle (Keras's usual place)

``fit(x, y)`` with arrays wraps them in ``ArrayBatches`` (Keras 3: a fresh permutation per epoch, the last partial
batch kept), so arrays and data sources run through the same loop.
"""
import math

import numpy

from . import backend


class PyDataset:
    """Base class of a data source: ``len(source)`` batches per epoch, ``source[i] -> (x, y)``."""

    batch_size = None  # known for arrays; a data source may set it (validation then uses it too)

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class ArrayBatches(PyDataset):
    """Batches of ``batch_size`` rows of (x, y), in a new random order every epoch when ``shuffle``."""

    def __init__(self, x, y, batch_size=32, shuffle=True):
        self.x, self.y = x, y
        self.batch_size, self.shuffle = batch_size, shuffle
        self.order = backend.to_device(numpy.arange(x.shape[0]))

    def __len__(self):
        return math.ceil(self.x.shape[0] / self.batch_size)

    def on_epoch_begin(self):
        if self.shuffle:
            # drawn at the epoch's start from the shuffle stream, so a resumed run draws what a straight one does
            self.order = backend.to_device(backend.shuffle_rng().permutation(self.x.shape[0]))

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]


def is_data_source(x):
    return hasattr(x, "__len__") and hasattr(x, "__getitem__") and hasattr(x, "on_epoch_end") \
        and not hasattr(x, "shape")


def as_data_source(model, x, y, batch_size, shuffle, what):
    """``x`` itself when it is a data source (``y`` and ``batch_size`` must then be None), else ArrayBatches."""
    if is_data_source(x):
        if y is not None:
            raise ValueError(f"{what}: x is a data source that yields (x, y) batches; do not pass y")
        if batch_size is not None:
            raise ValueError(f"{what}: x is a data source that makes its own batches; do not pass batch_size")
        if len(x) == 0:
            raise ValueError(f"{what}: the data source has no batches")
        return x
    batch_size = 32 if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, numpy.integer)) or batch_size <= 0:
        raise ValueError(f"{what}: batch_size must be a positive integer, got {batch_size!r}")
    x = model.prepare_input(x)
    y = model.as_array(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y have different numbers of samples: {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: x is empty")
    return ArrayBatches(x, y, int(batch_size), shuffle)
