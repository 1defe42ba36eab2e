"""SimpleRNN, the Elman cell:  a_t = x_t W + b + h_{t-1} U,  h_t = tanh(a_t).

Backward (one step):  da = dh * tanh'(a),  dh_{t-1} = da U^T.  See docs/rnn.md.
These step functions are the reference. ``implementation="auto"`` (the default) runs the same math through
``deeprnn/kernels/cpu_simple_rnn.py`` on NumPy when the activation is tanh (the GPU runs these lines);
``implementation="reference"`` always runs these lines.
"""
from collections import namedtuple

from ..kernels import cpu_simple_rnn
from .recurrent import RNN, recurrent_input, recurrent_matmul, recurrent_matmul_backward

SimpleRNNStep = namedtuple("SimpleRNNStep", "h_in a h")


class SimpleRNN(RNN):
    """x: (B, T, D) -> (B, T, H) or (B, H). W: (D, H), U: (H, H), b: (H,)."""

    gates = 1
    state_size = 1
    step_cache = SimpleRNNStep
    fused_kernels = (cpu_simple_rnn,)
    fused_activations = {"activation": "tanh"}   # no gates, so no recurrent activation

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)  # SimpleRNN has no gates; accepted for a uniform signature
        super().__init__(units, activation=activation, **kwargs)

    def step_forward(self, xw_t, state, recurrent_mask):
        """xw_t = x_t W + b: (B, H); state = (h_prev,). Returns ((h,), cache)."""
        (h_prev,) = state
        h_in = recurrent_input(h_prev, recurrent_mask)
        a = xw_t + recurrent_matmul(h_in, self.U.value)
        h = self.activation(a)
        return (h,), SimpleRNNStep(h_in, a, h)

    def step_backward(self, d_state, cache, recurrent_mask):
        """d_state = (dh,). Returns (dxw_t, dzh_t, (dh_prev,))."""
        (dh,) = d_state
        da = dh * self.activation.derivative(cache.a, cache.h)
        dh_prev = recurrent_matmul_backward(da, self.U.value, recurrent_mask)
        return da, da, (dh_prev,)

    def get_config(self):
        config = super().get_config()
        config.pop("recurrent_activation")
        return config
