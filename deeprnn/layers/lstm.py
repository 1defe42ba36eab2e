"""LSTM with Keras's gate order [i | f | c | o] and a single bias.

Forward (one step), z = x_t W + b + h_{t-1} U split into four blocks:
    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_c)   o = sigmoid(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)
Backward (one step), given dh (from above and from t+1) and dc_next (from t+1):
    do = dh * tanh(c_t)
    dc = dc_next + dh * o * (1 - tanh(c_t)^2)
    di = dc * g    df = dc * c_{t-1}    dg = dc * i    dc_{t-1} = dc * f
    dz = [di * i(1-i) | df * f(1-f) | dg * (1-g^2) | do * o(1-o)]
    dh_{t-1} = dz U^T
See docs/lstm.md. These step functions are the reference. ``implementation="auto"`` (the default) runs the same
math through a fused whole-sequence kernel where one computes exactly this: ``deeprnn/kernels/cpu_lstm.py`` on
NumPy, ``cuda_lstm.py`` on CuPy; ``implementation="reference"`` always runs these lines.
"""
from collections import namedtuple

from .. import backend
from ..kernels import cpu_lstm, cuda_lstm
from .recurrent import RNN, gate_blocks, recurrent_input, recurrent_matmul, recurrent_matmul_backward

LSTMStep = namedtuple("LSTMStep", "h_in c_prev i f g o c tanh_c z")


class LSTM(RNN):
    """x: (B, T, D) -> (B, T, H) or (B, H); states (h, c). W: (D, 4H), U: (H, 4H), b: (4H,)."""

    gates = 4
    state_size = 2
    step_cache = LSTMStep
    fused_kernels = (cuda_lstm, cpu_lstm)   # each claims its own device's arrays

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    def build(self, input_shape):
        super().build(input_shape)
        if self.use_bias and self.unit_forget_bias:
            # Keras: the forget block starts at 1 so the cell remembers by default
            H = self.units
            bias = backend.to_numpy(self.b.value).copy()
            bias[H:2 * H] = 1.0
            self.b.value = backend.to_device(bias)

    def step_forward(self, xw_t, state, recurrent_mask):
        """xw_t = x_t W + b: (B, 4H); state = (h_prev, c_prev). Returns ((h, c), cache)."""
        h_prev, c_prev = state
        h_in = recurrent_input(h_prev, recurrent_mask)
        z = xw_t + recurrent_matmul(h_in, self.U.value)
        z_i, z_f, z_c, z_o = gate_blocks(z, 4)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        g = self.activation(z_c)
        o = self.recurrent_activation(z_o)
        c = f * c_prev + i * g
        tanh_c = self.activation(c)
        h = o * tanh_c
        return (h, c), LSTMStep(h_in, c_prev, i, f, g, o, c, tanh_c, z)

    def step_backward(self, d_state, cache, recurrent_mask):
        """d_state = (dh, dc_next). Returns (dz, dz, (dh_prev, dc_prev)): the gate gradient feeds W and U alike."""
        dh, dc_next = d_state
        xp = backend.array_module(dh)
        i, f, g, o, tanh_c = cache.i, cache.f, cache.g, cache.o, cache.tanh_c
        z_i, z_f, z_c, z_o = gate_blocks(cache.z, 4)
        d_act, d_rec = self.activation.derivative, self.recurrent_activation.derivative
        do = dh * tanh_c
        dc = dc_next + dh * o * d_act(cache.c, tanh_c)
        di = dc * g
        df = dc * cache.c_prev
        dg = dc * i
        dc_prev = dc * f
        dz = xp.concatenate([di * d_rec(z_i, i), df * d_rec(z_f, f), dg * d_act(z_c, g), do * d_rec(z_o, o)],
                            axis=-1)
        dh_prev = recurrent_matmul_backward(dz, self.U.value, recurrent_mask)
        return dz, dz, (dh_prev, dc_prev)

    def get_config(self):
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config
