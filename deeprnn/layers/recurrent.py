"""What every recurrent layer shares: the sequence loops of backpropagation through time (BPTT).

A cell family (``SimpleRNN``, ``LSTM``, ``GRU``) supplies two functions, one timestep each:

    state, step_cache = cell.step_forward(xw_t, state, recurrent_mask)
    dxw_t, dzh_t, d_state_prev = cell.step_backward(d_state, step_cache, recurrent_mask)

where ``xw_t = x_t W + b`` is the input projection (B, G*H) with G gate blocks, and ``dzh_t`` is the gradient
of the recurrent pre-activation ``h_in U`` (B, G*H). Everything that does not depend on the previous step is
batched over time and done once, outside the loop:

- forward:  XW = X W + b for all T timesteps in one matrix product (T*B rows);
- backward: dW = X^T dXW and dU = H_in^T dZH, one product each after the loop; dX = dXW W^T.

Shapes: x (B, T, D), h (B, H), W (D, G*H), U (H, G*H). Time-major inside: XW (T, B, G*H).
Dropout follows Keras (``dropout_rnn_cell.py``): masks drawn once per call and shared by all timesteps; with
``recurrent_dropout`` > 0 every gate block gets its own input and recurrent mask. See docs/bptt.md.

Which code runs the loops over t is the layer's ``implementation`` argument (as Keras 2 spelled it; Keras 3 says
``use_cudnn``): ``"reference"`` runs ``step_forward``/``step_backward`` above, the code docs/ derives and the
gradient checks prove; ``"fused"`` runs one of the cell's ``fused_kernels`` (deeprnn/kernels: the same loops
arranged for speed, held to the reference by tests/test_fast_paths.py) and raises if none can take the call;
``"auto"`` takes a kernel where one computes the same thing. Under ``dr.set_num_threads(n)`` with n > 1 a CPU
kernel runs in n batch shards, in threads or worker processes (``kernels/sharded.py``; ``model.summary()``
shows "cpu_lstm x2 threads"). Either way ``RNN.forward``/``RNN.backward`` do all the
bookkeeping (shapes, go_backwards, masks, the input projection, initial and carried state, outputs) once: a kernel
gets arrays and returns arrays. A layer made without ``implementation`` takes ``default_implementation()``:
``"reference"`` when the environment has ``DEEPRNN_REFERENCE=1`` as the layer is made, else ``"auto"``.
"""
import abc
import os
from collections import namedtuple

from .. import activations, arguments, backend
from ..kernels.bptt import recurrent_kernel_gradient
from ..kernels.sharded import Sharded, across_threads
from ..kernels.workspace import workspace
from .base import Backward, Layer, as_floatx

IMPLEMENTATIONS = ("auto", "reference", "fused")
# what a cell's step cache must hold for RNN.backward (the recurrent input, for dU after the loop)
STEP_CACHE_FIELDS = ("h_in",)

DropoutMasks = namedtuple("DropoutMasks", "input recurrent")


def default_implementation():
    """The ``implementation`` of a layer made without one: ``"reference"`` if ``DEEPRNN_REFERENCE`` is 1 (true,
    yes, on) in the environment now, else ``"auto"``."""
    value = os.environ.get("DEEPRNN_REFERENCE", "").strip().lower()
    return "reference" if value in ("1", "true", "yes", "on") else "auto"


class SequenceCache(namedtuple("SequenceCache", "x_tm dropout_masks initial_state loop kernel batch_size")):
    """What ``RNN.backward`` needs: the time-major input, the dropout masks, the initial state, and the loop's own
    cache (the step caches of the reference loop, or the cache of the kernel that ran it)."""

    @property
    def implementation(self):
        """Which code ran the loops: ``"reference"`` or ``"fused"`` (``kernel`` names the kernel)."""
        return "reference" if self.kernel is None else "fused"


class FusedUnavailable(ValueError):
    """``implementation="fused"`` was asked for a call no kernel computes exactly as the reference does."""


def keywords(values):
    """{"activation": "tanh"} -> "activation='tanh'": arguments as a caller writes them."""
    return ", ".join(f"{name}={value!r}" for name, value in values.items())


def gate_blocks(a, gates):
    """Split the last axis into ``gates`` equal blocks (views, no copies)."""
    width = a.shape[-1] // gates
    return [a[..., k * width:(k + 1) * width] for k in range(gates)]


def time_matmul(a, M):
    """(T, B, K) @ (K, N) -> (T, B, N) as ONE matrix product of T*B rows.

    ``a @ M`` on a 3-D array would run T separate (B, K) products (6x slower measured at T=100, B=32).
    """
    T, B, K = a.shape
    return (a.reshape(T * B, K) @ M).reshape(T, B, M.shape[-1])


def project_inputs(x_tm, W, bias, input_mask, gates):
    """XW = (X * M) W + b for every timestep at once. x_tm: (T, B, D) -> (T, B, G*H); input_mask: None, one mask
    (1, B, D) or one per gate block (G, B, D); bias: None or (G*H,). ``RNN.project_inputs`` with the layer's
    weights; a function, so that batch shards run it too (kernels/sharded.py)."""
    xp = backend.array_module(x_tm)
    if input_mask is None:
        xw = time_matmul(x_tm, W)
    elif input_mask.shape[0] == 1:
        xw = time_matmul(x_tm * input_mask[0], W)
    else:
        xw = xp.concatenate([time_matmul(x_tm * input_mask[k], W_k)
                             for k, W_k in enumerate(gate_blocks(W, gates))], axis=-1)
    return xw if bias is None else xw + bias


def project_inputs_backward(dxw, x_tm, W, input_mask, gates):
    """dX and dW of ``project_inputs``, each one product over all timesteps."""
    xp = backend.array_module(dxw)
    D = x_tm.shape[-1]
    if input_mask is None or input_mask.shape[0] == 1:
        x_in = x_tm if input_mask is None else x_tm * input_mask[0]
        dW = x_in.reshape(-1, D).T @ dxw.reshape(-1, dxw.shape[-1])
        dx = time_matmul(dxw, W.T)
        if input_mask is not None:
            dx *= input_mask[0]
        return dx, dW
    dx, dW_blocks = 0, []
    for k, (dxw_k, W_k) in enumerate(zip(gate_blocks(dxw, gates), gate_blocks(W, gates))):
        x_in = x_tm * input_mask[k]
        dW_blocks.append(x_in.reshape(-1, D).T @ dxw_k.reshape(-1, dxw_k.shape[-1]))
        dx = dx + time_matmul(dxw_k, W_k.T) * input_mask[k]
    return dx, xp.concatenate(dW_blocks, axis=-1)


def recurrent_input(h, recurrent_mask):
    """What the recurrent kernel multiplies: h itself, or one masked copy per gate block (G, B, H)."""
    return h if recurrent_mask is None else h * recurrent_mask


def recurrent_matmul(h_in, U):
    """h_in U for a shared h_in (B, H), or block by block for per-gate inputs (G, B, H) -> (B, G*H)."""
    xp = backend.array_module(U)
    if h_in.ndim == 2:
        return h_in @ U
    return xp.concatenate([h_in[k] @ U_k for k, U_k in enumerate(gate_blocks(U, h_in.shape[0]))], axis=-1)


def recurrent_matmul_backward(dzh, U, recurrent_mask):
    """Gradient of h_in U with respect to h, given recurrent_mask (None or (G, B, H))."""
    if recurrent_mask is None:
        return dzh @ U.T
    G = recurrent_mask.shape[0]
    dh = 0
    for k, (dz_k, U_k) in enumerate(zip(gate_blocks(dzh, G), gate_blocks(U, G))):
        dh = dh + (dz_k @ U_k.T) * recurrent_mask[k]
    return dh


def stacked_recurrent_input(step_caches):
    """The steps' ``h_in`` over time, as ``recurrent_kernel_gradient`` takes it: one (T, B, H) array, or G arrays
    (T, B, H), one per gate block, when the steps' h_in is per gate (G, B, H)."""
    xp = backend.array_module(step_caches[0].h_in)
    if step_caches[0].h_in.ndim == 2:
        return xp.stack([c.h_in for c in step_caches])
    return [xp.stack([c.h_in[k] for c in step_caches]) for k in range(step_caches[0].h_in.shape[0])]


class RNN(Layer, abc.ABC):
    """Base class of the recurrent layers: Keras's arguments and outputs, the BPTT loops, dropout masks.

    What a cell provides (checked when its class is defined, and by ``abc`` when it is made):

    - ``gates`` (G, the number of gate blocks of W, U and the bias) and ``state_size`` (1 for h, 2 for h and c);
    - ``step_forward(xw_t, state, recurrent_mask) -> (state, step_cache)`` and
      ``step_backward(d_state, step_cache, recurrent_mask) -> (dxw_t, dzh_t, d_state_prev)``;
    - ``step_cache``: the namedtuple class ``step_forward`` returns, with the fields of ``STEP_CACHE_FIELDS``
      (``h_in``: what U multiplied, (B, H) or per gate (G, B, H));
    - optionally ``fused_kernels``, the kernels that run its loops fused (tried in order), and
      ``kernel_options``/``input_bias``/``bias_shape``/``bias_gradient`` where its bias is not one (G*H,) vector.
    """

    gates = 1
    state_size = 1
    step_cache = None
    fused_kernels = ()
    # what the kernels hard-code: a layer with other activations runs the reference
    fused_activations = {"activation": "tanh", "recurrent_activation": "sigmoid"}

    def __init_subclass__(cls, **kwargs):
        """A cell class (one whose step functions are defined) declares its step cache with ``STEP_CACHE_FIELDS``."""
        super().__init_subclass__(**kwargs)
        if getattr(cls.step_forward, "__isabstractmethod__", False):
            return
        fields = getattr(cls.step_cache, "_fields", None)
        if fields is None or not set(STEP_CACHE_FIELDS) <= set(fields):
            raise TypeError(f"{cls.__name__}: an RNN cell sets step_cache to the namedtuple its step_forward returns, "
                            f"with the fields {', '.join(STEP_CACHE_FIELDS)} (got {cls.step_cache!r})")
        for name in ("gates", "state_size"):
            value = getattr(cls, name)
            if not isinstance(value, int) or value < 1:
                raise TypeError(f"{cls.__name__}: an RNN cell sets {name} to a positive int, got {value!r}")

    @abc.abstractmethod
    def step_forward(self, xw_t, state, recurrent_mask):
        """One timestep: xw_t (B, G*H) = x_t W + b, state a tuple of (B, H). Returns (state, step_cache)."""

    @abc.abstractmethod
    def step_backward(self, d_state, step_cache, recurrent_mask):
        """One timestep back: d_state like the state. Returns (dxw_t, dzh_t, d_state_prev), dxw_t and dzh_t
        (B, G*H) the gradients of the input projection and of the recurrent pre-activation h_in U."""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", bias_initializer="zeros",
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, implementation=None, name=None):
        super().__init__(name)
        implementation = default_implementation() if implementation is None else implementation
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"{type(self).__name__}: implementation must be one of {', '.join(IMPLEMENTATIONS)}, "
                             f"got {implementation!r}")
        self.implementation = implementation
        cls = type(self).__name__
        self.units = arguments.integer(f"{cls}: units", units, minimum=1)
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            arguments.real(f"{cls}: {arg}", rate, minimum=0, below=1)
        self.activation_name, self.recurrent_activation_name = activation, recurrent_activation
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards, self.stateful = go_backwards, stateful
        self.states = None

    # -- weights -----------------------------------------------------------------------------------------------------
    def build(self, input_shape):
        if len(input_shape) != 3:
            self.check_input_shape(input_shape, 3)
        H, G = self.units, self.gates
        self.W = self.add_weight("kernel", (input_shape[-1], G * H), self.kernel_initializer)
        self.U = self.add_weight("recurrent_kernel", (H, G * H), self.recurrent_initializer)
        self.b = self.add_weight("bias", self.bias_shape(), self.bias_initializer) if self.use_bias else None
        super().build(input_shape)

    def bias_shape(self):
        return (self.gates * self.units,)

    def input_bias(self):
        """The bias added to the input projection (all of it, except for GRU with reset_after)."""
        return self.b.value if self.use_bias else None

    def compute_output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        out = (B, T, self.units) if self.return_sequences else (B, self.units)
        if self.return_state:
            return [out] + [(B, self.units)] * self.state_size
        return out

    # -- state -------------------------------------------------------------------------------------------------------
    def reset_state(self):
        """Forget the carried state of a stateful layer (the next call starts from zeros)."""
        self.states = None

    reset_states = reset_state

    def zero_state(self, xp, B, dtype):
        return tuple(xp.zeros((B, self.units), dtype=dtype) for _ in range(self.state_size))

    def resolve_initial_state(self, initial_state, xp, B, dtype):
        if initial_state is not None:
            if not isinstance(initial_state, (list, tuple)):
                initial_state = [initial_state]
            if len(initial_state) != self.state_size:
                raise ValueError(f"layer {self.name!r} ({type(self).__name__}): initial_state needs "
                                 f"{self.state_size} arrays, received {len(initial_state)}")
            states = []
            for s in initial_state:
                s = backend.to_device(s, dtype=dtype)
                if tuple(s.shape) != (B, self.units):
                    raise ValueError(f"layer {self.name!r} ({type(self).__name__}): expected initial state of shape "
                                     f"({B}, {self.units}), received {tuple(s.shape)}")
                states.append(s)
            return tuple(states)
        if self.stateful and self.states is not None:
            if self.states[0].shape[0] != B:
                raise ValueError(f"layer {self.name!r}: stateful layer was called with batch size "
                                 f"{self.states[0].shape[0]}, now {B}; call reset_state() first")
            return self.states
        return self.zero_state(xp, B, dtype)

    # -- dropout masks -----------------------------------------------------------------------------------------------
    def draw_masks(self, B, D, dtype, training):
        """Keras's masks: one per call, shared over time; per gate block when recurrent_dropout > 0."""
        if not training:
            return DropoutMasks(None, None)
        G, H = self.gates, self.units
        if self.recurrent_dropout > 0:
            input_mask = backend.dropout_mask((G, B, D), self.dropout, dtype) if self.dropout > 0 else None
            return DropoutMasks(input_mask, backend.dropout_mask((G, B, H), self.recurrent_dropout, dtype))
        if self.dropout > 0:
            return DropoutMasks(backend.dropout_mask((1, B, D), self.dropout, dtype), None)
        return DropoutMasks(None, None)

    # -- input projection for all timesteps ----------------------------------------------------------------------------
    def project_inputs(self, x_tm, input_mask):
        """XW = (X * M) W + b for every timestep at once. x_tm: (T, B, D) -> (T, B, G*H)."""
        return project_inputs(x_tm, self.W.value, self.input_bias(), input_mask, self.gates)

    def project_inputs_backward(self, dxw, x_tm, input_mask):
        """dX and dW of the input projection, each one product over all timesteps."""
        return project_inputs_backward(dxw, x_tm, self.W.value, input_mask, self.gates)

    def projects_in_shards(self, kernel):
        """Whether ``kernel`` runs this layer's input projection too: batch shards do (each its rows,
        ``Sharded.projected_forward``), running the function ``project_inputs``, so only where this class keeps
        the RNN's own projection."""
        return (isinstance(kernel, Sharded) and type(self).project_inputs is RNN.project_inputs
                and type(self).project_inputs_backward is RNN.project_inputs_backward)

    # -- which code runs the loops -----------------------------------------------------------------------------------
    def fused_ineligibility(self):
        """Why no kernel can stand in for this layer's step functions (None when one can)."""
        if not self.fused_kernels:
            return f"{type(self).__name__} has no fused kernel"
        # the class that lists the kernels is the one whose step functions they compute: a subclass that
        # redefines a step computes something else
        cell = next(c for c in type(self).__mro__ if "fused_kernels" in vars(c))
        if type(self).step_forward is not cell.step_forward or type(self).step_backward is not cell.step_backward:
            return f"{type(self).__name__} changes the {cell.__name__}'s step functions"
        given = {arg: getattr(self, arg).name for arg in self.fused_activations}
        if given != self.fused_activations:
            return f"the kernels compute {keywords(self.fused_activations)}, not {keywords(given)}"
        return None

    def kernel_options(self):
        """The cell's own keyword arguments to its kernels' ``forward`` (the GRU's ``reset_after`` and recurrent
        bias); none for a cell whose weights are W, U and one input bias."""
        return {}

    def select_kernel(self, x):
        """The kernel that runs this call's loops, or None for the reference loops; raises ``FusedUnavailable``
        when ``implementation="fused"`` and no kernel computes this call exactly as the reference does."""
        if self.implementation == "reference":
            return None
        reason = self.fused_ineligibility()
        if reason is None:
            weights = [v.value for v in self.variables]
            reasons = []
            for kernel in self.fused_kernels:
                why = kernel.unsupported(x, weights)
                if why is None:
                    return across_threads(kernel)   # in batch shards under dr.set_num_threads(n > 1)
                reasons.append(f"{kernel.NAME}: {why}")
            reason = "; ".join(reasons) or "no kernel listed"
        if self.implementation == "fused":
            raise FusedUnavailable(f"layer {self.name!r} ({type(self).__name__}): implementation='fused' cannot run "
                                   f"this call: {reason}")
        return None

    def describe_implementation(self):
        """What this layer runs on arrays like its weights: "reference" or "fused (kernel)"; for model.summary()."""
        if not self.built:
            return self.implementation
        try:
            kernel = self.select_kernel(self.W.value)
        except FusedUnavailable:
            return "fused (unavailable)"
        return "reference" if kernel is None else f"fused ({kernel.NAME})"

    # -- the sequence loops ----------------------------------------------------------------------------------------------
    def forward(self, x, training=False, initial_state=None):
        """x: (B, T, D) -> y: (B, T, H) with return_sequences, else (B, H); plus final states with return_state.

        Returns ``(outputs, cache)``. The bookkeeping is here, once; the loop over t is ``reference_loop`` or the
        selected kernel's ``forward`` (see ``implementation``).
        """
        self.check_input_shape(x.shape, 3, self.W.shape[0])
        kernel = self.select_kernel(x)
        xp = backend.array_module(x)
        B, T, D = x.shape
        x_tm = x.transpose(1, 0, 2)
        if self.go_backwards:
            # Keras consumes x_{T-1} .. x_0 and returns the outputs in processing order
            x_tm = x_tm[::-1]
        masks = self.draw_masks(B, D, x.dtype, training)
        initial = self.resolve_initial_state(initial_state, xp, B, x.dtype)
        if kernel is None:
            hs, final, loop_cache = self.reference_loop(self.project_inputs(x_tm, masks.input), initial,
                                                        masks.recurrent)
        elif self.projects_in_shards(kernel):
            # batch shards: each projects its own rows of x too, then runs the loops (kernels/sharded.py)
            hs, final, loop_cache = kernel.projected_forward(project_inputs, x_tm, self.W.value, self.input_bias(),
                                                             masks.input, self.gates, self.U.value, initial,
                                                             masks.recurrent, workspace(self),
                                                             **self.kernel_options())
        else:
            hs, final, loop_cache = kernel.forward(self.project_inputs(x_tm, masks.input), self.U.value, initial,
                                                   masks.recurrent, workspace(self), **self.kernel_options())

        if self.stateful:
            # Keras keeps a stateful layer's final state after every call, inference included, so this is the
            # one place a forward changes its layer; gradient checks save and restore it
            self.states = final
        # hs is time-major (T, B, H): the transpose is a view, and the next layer's transpose is contiguous again
        y = hs.transpose(1, 0, 2) if self.return_sequences else final[0]
        outputs = [y, *final] if self.return_state else y
        return outputs, SequenceCache(x_tm, masks, initial, loop_cache, kernel, B)

    def reference_loop(self, xw, state, recurrent_mask):
        """The forward loop over t with ``step_forward``. xw: (T, B, G*H) -> (hs (T, B, H), final state, caches)."""
        xp = backend.array_module(xw)
        hs, step_caches = [], []
        for t in range(xw.shape[0]):
            state, step_cache = self.step_forward(xw[t], state, recurrent_mask)
            hs.append(state[0])
            step_caches.append(step_cache)
        return xp.stack(hs), state, step_caches

    def backward(self, dout, cache):
        """dout: dy (or [dy, dh_T, (dc_T)] with return_state; None entries mean zero).

        Returns ``Backward(dx, grads, d_initial_state)``: dx (B, T, D), grads aligned with
        ``trainable_variables``, d_initial_state a tuple like the initial state.
        """
        xp = backend.array_module(cache.x_tm)
        B = cache.batch_size
        dy, d_final = (dout[0], dout[1:]) if self.return_state else (dout, [None] * self.state_size)
        dtype = cache.x_tm.dtype
        # fresh arrays: the loops may accumulate into them, and the caller's arrays stay untouched
        d_state = tuple(xp.zeros((B, self.units), dtype=dtype) if d is None else xp.array(d, dtype=dtype)
                        for d in d_final)
        dhs = None   # the gradient entering every h_t from the outputs, time-major (T, B, H)
        if dy is not None:
            if self.return_sequences:
                dhs = dy.transpose(1, 0, 2)
            else:
                d_state = (d_state[0] + dy,) + d_state[1:]

        if self.projects_in_shards(cache.kernel):
            dx_tm, dW, dU, (sum_dxw, sum_dzh), d_initial = cache.kernel.projected_backward(
                project_inputs_backward, dhs, d_state, cache.loop, self.U.value, self.W.value, self.gates,
                workspace(self))
            grads = [dW, dU] + ([self.bias_from_sums(sum_dxw, sum_dzh)] if self.use_bias else [])
        else:
            if cache.kernel is None:
                dxw, dzh, d_initial = self.reference_loop_backward(dhs, d_state, cache.loop,
                                                                   cache.dropout_masks.recurrent)
                dU = recurrent_kernel_gradient(stacked_recurrent_input(cache.loop), dzh)
            else:
                dxw, dzh, dU, d_initial = cache.kernel.backward(dhs, d_state, cache.loop, self.U.value,
                                                                workspace(self))
            dx_tm, dW = self.project_inputs_backward(dxw, cache.x_tm, cache.dropout_masks.input)
            grads = [dW, dU] + ([self.bias_gradient(dxw, dzh)] if self.use_bias else [])
        if self.go_backwards:
            dx_tm = dx_tm[::-1]
        return Backward(dx_tm.transpose(1, 0, 2), grads, d_initial)

    def reference_loop_backward(self, dhs, d_state, step_caches, recurrent_mask):
        """The backward loop over reversed t with ``step_backward``: (dXW, dZH) (T, B, G*H) and the initial
        state's gradient. dhs: None or (T, B, H), the outputs' gradient; d_state: the final state's."""
        xp = backend.array_module(d_state[0])
        T = len(step_caches)
        dxw = xp.empty((T,) + d_state[0].shape[:1] + (self.gates * self.units,), dtype=d_state[0].dtype)
        dzh = xp.empty_like(dxw)
        for t in reversed(range(T)):
            if dhs is not None:
                d_state = (d_state[0] + dhs[t],) + d_state[1:]
            dxw[t], dzh[t], d_state = self.step_backward(d_state, step_caches[t], recurrent_mask)
        return dxw, dzh, d_state

    def bias_gradient(self, dxw, dzh):
        """The bias's gradient from the input projection's (dxw) and the recurrent products' (dzh) gradients."""
        return self.bias_from_sums(dxw.sum(axis=(0, 1)), None)

    def bias_from_sums(self, sum_dxw, sum_dzh):
        """The bias's gradient from dxw and dzh summed over t and B (what batch shards hand back): b enters the
        input projection only, so it is sum_dxw (the GRU's reset_after bias also enters h U)."""
        return sum_dxw

    def __call__(self, x, initial_state=None, training=False):
        x = as_floatx(backend.to_device(x))
        self.ensure_built(x.shape)
        outputs, _ = self.forward(x, training=training, initial_state=initial_state)
        return outputs

    # -- serialization ---------------------------------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "units": self.units, "activation": self.activation_name,
                "recurrent_activation": self.recurrent_activation_name, "use_bias": self.use_bias,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful,
                "implementation": self.implementation}
