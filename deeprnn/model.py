"""Sequential: a stack of layers, its forward and backward passes, and Keras's training loop.

    y, caches = model.forward(x, training)          # each layer's forward, in order
    dx, grads = model.backward(dy, caches)          # each layer's backward, in reverse order
    step = model.compute_gradients(x, y)            # forward -> loss -> backward, the one place they run together

``fit`` follows Keras 3's ``Trainer.fit``: a fresh permutation per epoch, the last partial batch kept, the epoch loss
the sample-weighted mean of the batch losses computed before each update, validation after each epoch between the
callbacks' ``on_test_begin``/``on_test_end``, and ``optimizer.finalize_variable_values`` at the end (with
``use_ema``, the model keeps the averaged weights). The optimizer is reached only through its own API
(``apply_gradients``, ``variables``/``get_state``/``set_state``, ``to_device``). docs/keras-parity.md lists what the
parity tests hold to Keras.
"""
import json
import math
from collections import namedtuple

import numpy

from . import backend, serialization
from . import callbacks as callbacks_module
from . import data as data_module
from . import losses as losses_module
from . import optimizers as optimizers_module
from .errors import DeeprnnError, ModelFileError, SettingError
from .layers.base import Layer, as_floatx
from .layers.core import Input
from .layers.recurrent import RNN


class NonFiniteLossError(DeeprnnError, FloatingPointError):
    """Training produced a NaN or infinite loss; the weights were left as they were before that batch."""


Gradients = namedtuple("Gradients", "loss grads_per_layer dx caches")
Gradients.__doc__ = """What ``Sequential.compute_gradients`` returns: the batch's loss (a float), each layer's
gradients (aligned with its trainable variables), the input's gradient and each layer's forward cache."""


class Sequential:
    def __init__(self, layers=None, name="sequential"):
        self.name = name
        self.input_spec = None
        self.layers = []
        self.loss = None
        self.optimizer = None
        self.stop_training = False
        self._initial_epoch = None  # Keras's hook: BackupAndRestore sets the epoch fit resumes from
        self.built_input_shape = None
        for layer in layers or []:
            self.add(layer)

    # -- assembling ----------------------------------------------------------------------------------------------------
    def add(self, layer):
        if isinstance(layer, Input):
            if self.layers or self.input_spec is not None:
                raise ValueError("Sequential: an Input can only be the first entry")
            self.input_spec = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential: expected a deeprnn layer, received {type(layer).__name__}")
        if isinstance(layer, RNN) and layer.return_state:
            raise ValueError(f"Sequential: layer {layer.name!r} has return_state=True, which returns several "
                             "arrays; call the layer directly instead")
        self.layers.append(layer)
        self.built_input_shape = None
        if self.input_spec is not None:
            # Keras builds a Sequential that starts with an Input as soon as its layers are known
            self.build(self.input_spec.batch_shape)

    def build(self, input_shape=None):
        """Create every layer's weights for ``input_shape`` (batch first; None allowed for the batch)."""
        if input_shape is None:
            if self.input_spec is None:
                raise ValueError("Sequential.build: give input_shape, or start the model with layers.Input(shape)")
            input_shape = self.input_spec.batch_shape
        shape = tuple(input_shape)
        self.built_input_shape = shape
        for layer in self.layers:
            layer.ensure_built(shape)
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def built(self):
        return self.built_input_shape is not None

    def ensure_built(self, x_shape):
        if not self.layers:
            # Keras: "Sequential model ... cannot be built because it has no layers"
            raise SettingError(f"Sequential model {self.name!r} has no layers; call model.add(layer) first")
        if not self.built:
            if self.input_spec is not None:
                self.build(self.input_spec.batch_shape)
            else:
                self.build((None,) + tuple(x_shape[1:]))

    # -- weights -----------------------------------------------------------------------------------------------------
    @property
    def variables(self):
        return [v for layer in self.layers for v in layer.variables]

    @property
    def trainable_variables(self):
        return [v for v in self.variables if v.trainable]

    def get_weights(self):
        """Every weight in Keras's order (per layer, in creation order; BatchNorm's moving stats included)."""
        self.require_built("get_weights")
        return [backend.to_numpy(v.value).copy() for v in self.variables]

    def set_weights(self, weights):
        self.require_built("set_weights")
        weights = list(weights)
        if len(weights) != len(self.variables):
            raise ValueError(f"set_weights: the model has {len(self.variables)} weights, received {len(weights)}")
        start = 0
        for layer in self.layers:
            count = len(layer.variables)
            layer.set_weights(weights[start:start + count])
            start += count

    def to_device(self):
        """Move weights (and optimizer state) to the current backend device."""
        for layer in self.layers:
            layer.to_device()
        if self.optimizer is not None:
            self.optimizer.to_device()

    def require_built(self, what):
        if not self.built:
            raise ValueError(f"{what}: the model is not built yet; call it on data, call build(), or start it "
                             "with layers.Input(shape)")

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    # -- forward and backward ----------------------------------------------------------------------------------------
    def forward(self, x, training=False):
        """Returns ``(y, caches)``, one cache per layer."""
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x, training=training)
            caches.append(cache)
        return x, caches

    def backward(self, dy, caches):
        """Returns ``(dx, grads)``: dx for the model input (None for integer input) and, per layer, its grads."""
        grads_per_layer = [None] * len(self.layers)
        for index in reversed(range(len(self.layers))):
            result = self.layers[index].backward(dy, caches[index])
            dy, grads_per_layer[index] = result.dx, result.grads
        return dy, grads_per_layer

    def __call__(self, x, training=False):
        x = self.prepare_input(x)
        y, caches = self.forward(x, training=training)
        if training:
            self.update_layer_state(caches)
        return y

    def update_layer_state(self, caches):
        for layer, cache in zip(self.layers, caches):
            layer.update_state(cache)

    def prepare_input(self, x):
        x = self.as_array(x, "x")
        self.ensure_built(x.shape)
        return x

    @staticmethod
    def as_array(a, what):
        if a is None:
            raise ValueError(f"{what} is None")
        a = as_floatx(backend.to_device(a))
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{what}: expected a numeric array, received dtype {a.dtype}")
        # after the cast to floatx, so a float64 value beyond float32's range is caught too: one NaN or inf in a
        # batch would turn every weight it reaches into NaN while the loss of other batches still looks finite
        if a.dtype.kind == "f":
            finite = backend.array_module(a).isfinite(a)
            if not bool(finite.all()):
                bad = int(finite.size - finite.sum())
                raise ValueError(f"{what} contains {bad} NaN or infinite value(s) (of {finite.size}) in {backend.floatx()}")
        return a

    # -- compile, gradients, one training step -------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss="categorical_crossentropy"):
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)

    def require_compiled(self, what):
        if self.loss is None or self.optimizer is None:
            raise ValueError(f"{what}: call model.compile(optimizer=..., loss=...) first")

    def loss_and_gradients(self, x, y, training=True, return_input_gradient=False):
        """The loss of one batch and its gradients, aligned with ``get_weights()`` (None where not trainable).

        Nothing is updated: BatchNorm's moving statistics and the optimizer are left alone (a stateful RNN still
        carries its final state forward, as every Keras call does).
        """
        if self.loss is None:
            raise ValueError("loss_and_gradients: call model.compile(loss=...) first")
        x = self.prepare_input(x)
        y = self.as_array(y, "y")
        step = self.compute_gradients(x, y, training=training)
        grads = []
        for layer, layer_grads in zip(self.layers, step.grads_per_layer):
            trainable = iter(layer_grads)
            grads.extend(backend.to_numpy(next(trainable)) if v.trainable else None for v in layer.variables)
        if return_input_gradient:
            return step.loss, grads, backend.to_numpy(step.dx)
        return step.loss, grads

    def compute_gradients(self, x, y, training=True, finite_loss=False):
        """Forward, loss and backward on one batch of prepared arrays: a ``Gradients``. Nothing is updated.

        ``finite_loss``: raise ``NonFiniteLossError`` on a NaN or infinite loss, before the backward pass.
        """
        y_pred, caches = self.forward(x, training=training)
        loss, loss_cache = self.loss.forward(y, y_pred)
        loss = float(loss)
        if finite_loss and not math.isfinite(loss):
            raise NonFiniteLossError(f"loss is {loss}")
        dx, grads_per_layer = self.backward(self.loss.backward(loss_cache), caches)
        return Gradients(loss, grads_per_layer, dx, caches)

    def train_step(self, x, y):
        """Forward, loss, backward, one optimizer update. Returns the loss computed before the update.

        A non-finite loss raises before anything is updated.
        """
        step = self.compute_gradients(x, y, training=True, finite_loss=True)
        grads = [g for layer_grads in step.grads_per_layer for g in layer_grads]
        self.optimizer.apply_gradients(grads, self.trainable_variables)
        self.update_layer_state(step.caches)
        return step.loss

    def train_on_batch(self, x, y):
        self.require_compiled("train_on_batch")
        x = self.prepare_input(x)
        y = self.as_array(y, "y")
        check_lengths(x, y)
        return self.train_step(x, y)

    # -- Keras's loops ---------------------------------------------------------------------------------------------
    def fit(self, x, y=None, epochs=1, batch_size=None, shuffle=True, validation_data=None, callbacks=None,
            verbose=1, initial_epoch=0):
        """Train for ``epochs``; returns a History whose ``history['loss']`` is Keras's epoch loss.

        ``x`` is an array (with ``y``), or a data source shaped like Keras's ``PyDataset`` (``len(data)`` batches,
        ``data[i] -> (x, y)``, ``on_epoch_begin``/``on_epoch_end`` hooks), with ``y`` and ``batch_size`` left
        None. Arrays are wrapped in ``data.ArrayBatches``, so both go through the one loop below. After every epoch
        the weights are checked: an update that overflowed stops fit before any callback could save it.
        """
        self.require_compiled("fit")
        data = data_module.as_data_source(self, x, y, batch_size, shuffle, "fit")
        history = callbacks_module.History()
        # Keras's order: History last, so it records what other callbacks add to the logs (a validation score)
        callback_list = callbacks_module.CallbackList(list(callbacks or []) + [history], self)
        if verbose:
            callback_list.append(callbacks_module.ProgressLogger(verbose))
        self.stop_training = False
        self._initial_epoch = None
        callback_list.on_train_begin({"epochs": epochs, "steps": len(data)})
        initial_epoch = self._initial_epoch if self._initial_epoch is not None else initial_epoch
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            data.on_epoch_begin()
            steps = len(data)  # after on_epoch_begin: a source may cut its epoch differently each time
            total, count = 0.0, 0
            for step in range(steps):
                xb, yb = data[step]
                xb, yb = self.prepare_input(xb), self.as_array(yb, "y")
                check_lengths(xb, yb)
                try:
                    loss = self.train_step(xb, yb)
                except NonFiniteLossError as error:
                    raise NonFiniteLossError(f"fit: {error} at epoch {epoch + 1}, batch {step + 1} of {steps}; "
                                             "training stopped, weights are those before this batch") from None
                total += loss * int(xb.shape[0])
                count += int(xb.shape[0])
                callback_list.on_batch_end(step, {"loss": total / count})
            data.on_epoch_end()
            self.check_finite_weights(f"fit: after epoch {epoch + 1}")
            logs = {"loss": total / count}
            if validation_data is not None:
                callback_list.on_test_begin()
                logs["val_loss"] = self.evaluate(*validation_data[:2], batch_size=data.batch_size, verbose=0)
                callback_list.on_test_end({"loss": logs["val_loss"]})
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        if epochs > 0:
            # Keras's end of fit (epochs > 0, even when a resumed fit had none left): with use_ema the model takes
            # the averaged weights
            self.optimizer.finalize_variable_values(self.trainable_variables)
        callback_list.on_train_end()
        return history

    def check_finite_weights(self, where):
        """Raise NonFiniteLossError if any weight is NaN or infinite (an update that overflowed)."""
        for layer in self.layers:
            for variable in layer.variables:
                if not bool(backend.array_module(variable.value).isfinite(variable.value).all()):
                    raise NonFiniteLossError(f"{where}, weight {variable.name!r} of layer {layer.name!r} is no "
                                             "longer finite (the last update overflowed); training stopped")

    def evaluate(self, x, y, batch_size=None, verbose=0):
        """The mean loss over all samples in inference mode."""
        if self.loss is None:
            raise ValueError("evaluate: call model.compile(loss=...) first")
        x = self.prepare_input(x)
        y = self.as_array(y, "y")
        check_lengths(x, y)
        if x.shape[0] == 0:
            raise ValueError("evaluate: x holds no samples")
        batch_size = 32 if batch_size is None else batch_size
        total, n = 0.0, x.shape[0]
        for start in range(0, n, batch_size):
            y_pred, _ = self.forward(x[start:start + batch_size], training=False)
            loss, _ = self.loss.forward(y[start:start + batch_size], y_pred)
            total += float(loss) * int(y_pred.shape[0])
        return total / n

    def predict(self, x, batch_size=32, verbose=0):
        """Inference in batches; always returns a NumPy array (empty, of the output's shape, for 0 samples)."""
        x = self.prepare_input(x)
        if x.shape[0] == 0:
            shape = tuple(x.shape)
            for layer in self.layers:
                shape = layer.compute_output_shape(shape)
            return numpy.empty(shape, dtype=backend.floatx())
        outputs = [backend.to_numpy(self.forward(x[start:start + batch_size], training=False)[0])
                   for start in range(0, x.shape[0], batch_size)]
        return numpy.concatenate(outputs, axis=0)

    def reset_states(self):
        for layer in self.layers:
            if isinstance(layer, RNN):
                layer.reset_state()

    # -- description ---------------------------------------------------------------------------------------------------
    def summary(self, print_fn=None):
        print_fn = print_fn or print
        self.require_built("summary")
        # "Runs": which code computes a recurrent layer's loops on this device (see RNN.implementation)
        rows = [("Layer (type)", "Output Shape", "Param #", "Runs")]
        shape = self.built_input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            runs = layer.describe_implementation() if isinstance(layer, RNN) else ""
            rows.append((f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}", runs))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(4)]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        for i, row in enumerate(rows):
            print_fn("".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
            print_fn("=" * sum(widths) if i == 0 else line)
        trainable = sum(int(numpy.prod(v.shape)) for v in self.trainable_variables)
        total = self.count_params()
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")

    # -- saving ------------------------------------------------------------------------------------------------------
    def get_config(self):
        """The architecture as a JSON-able dict: every layer's class and config, the build shape, compile settings."""
        config = {
            "format": serialization.FORMAT, "version": serialization.VERSION, "class_name": "Sequential",
            "name": self.name, "floatx": backend.floatx(),
            "build_input_shape": list(self.built_input_shape) if self.built_input_shape else None,
            "input": self.input_spec.get_config() if self.input_spec is not None else None,
            "layers": [serialization.layer_to_config(layer) for layer in self.layers],
        }
        if self.loss is not None:
            config["compile"] = {"loss": self.loss.get_config(), "optimizer": self.optimizer.get_config()}
        return config

    @classmethod
    def from_config(cls, config):
        """A new, built and compiled model with the architecture of ``config`` (fresh weights)."""
        if config.get("format") != serialization.FORMAT:
            raise ValueError("not a deeprnn model config (missing format marker)")
        model = cls(name=config.get("name", "sequential"))
        if config.get("input"):
            model.add(Input.from_config(config["input"]))
        for entry in config["layers"]:
            model.add(serialization.layer_from_config(entry))
        if config.get("build_input_shape"):
            model.build(tuple(config["build_input_shape"]))
        if config.get("compile"):
            model.compile(optimizer=config["compile"]["optimizer"], loss=config["compile"]["loss"])
        return model

    def save(self, path, include_optimizer=True, metadata=None):
        """Write one .npz (weights + architecture JSON + optimizer state), atomically (see ``serialization``)."""
        self.require_built("save")
        arrays = {"architecture": numpy.array(json.dumps(self.get_config()))}
        for index, weight in enumerate(self.get_weights()):
            arrays[f"weight_{index:04d}"] = weight
        if include_optimizer and self.optimizer is not None:
            arrays["optimizer_iterations"] = numpy.array(self.optimizer.iterations)
            for index, state in enumerate(self.optimizer.get_state()):
                arrays[f"optimizer_{index:04d}"] = state
        if metadata is not None:
            arrays["metadata"] = numpy.array(json.dumps(metadata))
        serialization.write_archive(path, arrays)

    def load_weights(self, path):
        """Load the weights (and optimizer state, when the file has it) that ``save`` wrote into this model."""
        self.restore_arrays(serialization.read_archive(path, self), path)

    def restore_arrays(self, arrays, path):
        """Weights and optimizer state from the arrays of a model file (``path`` names it in errors)."""
        try:
            self.set_weights(serialization.numbered(arrays, "weight_"))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        if self.optimizer is not None and "optimizer_iterations" in arrays:
            state = serialization.numbered(arrays, "optimizer_")
            try:
                self.optimizer.set_state(int(arrays["optimizer_iterations"]), state, self.trainable_variables)
            except ValueError as error:
                raise ModelFileError(f"{path}: {error}") from None


def check_lengths(x, y):
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y have different numbers of samples: {x.shape[0]} and {y.shape[0]}")
