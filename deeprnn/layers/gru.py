"""GRU with Keras's gate order [z | r | h] and both of its variants.

reset_after=True (Keras's default, cuDNN-compatible), bias b: (2, 3H) = [input bias; recurrent bias]:
    [x_z | x_r | x_h] = x_t W + b_in           [h_z | h_r | h_h] = h_{t-1} U + b_rec
    z = sigmoid(x_z + h_z)   r = sigmoid(x_r + h_r)   n = tanh(x_h + r * h_h)
    h_t = z * h_{t-1} + (1 - z) * n
reset_after=False, bias b: (3H,) on the input side only:
    z = sigmoid(x_z + h_{t-1} U_z)   r = sigmoid(x_r + h_{t-1} U_r)   n = tanh(x_h + (r * h_{t-1}) U_h)
Backward (one step), given dh:
    dz = dh * (h_{t-1} - n)    dn = dh * (1 - z)    da_n = dn * (1 - n^2)
    reset_after=True:  dh_h = da_n * r,  dr = da_n * h_h
    reset_after=False: d_h_reset = da_n U_h^T,  dr = d_h_reset * h_in_h
    da_z = dz * z(1-z)   da_r = dr * r(1-r)
    reset_after=True:  dh_{t-1} = dh * z + [da_z | da_r | dh_h] U^T
    reset_after=False: dh_{t-1} = dh * z + [da_z | da_r] U_zr^T + d_h_reset * r
where h_in_h, the h block's recurrent input, is h_{t-1} (times its mask R_h with recurrent dropout).
See docs/gru.md. These step functions are the reference. ``implementation="auto"`` (the default) runs the same
math, both variants, through ``deeprnn/kernels/cpu_gru.py`` on NumPy (the GPU runs these lines);
``implementation="reference"`` always runs these lines.
"""
from collections import namedtuple

from .. import backend
from ..kernels import cpu_gru
from .recurrent import RNN, gate_blocks, recurrent_input, recurrent_matmul, recurrent_matmul_backward

GRUStep = namedtuple("GRUStep", "h_in h_prev z r n a_z a_r a_n h_h")


class GRU(RNN):
    """x: (B, T, D) -> (B, T, H) or (B, H). W: (D, 3H), U: (H, 3H), b: (2, 3H) (reset_after) or (3H,)."""

    gates = 3
    state_size = 1
    step_cache = GRUStep
    fused_kernels = (cpu_gru,)

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = reset_after

    def kernel_options(self):
        """The variant, and b_rec for reset_after=True: it enters inside the reset, so it cannot join xw."""
        recurrent_bias = self.b.value[1] if self.reset_after and self.use_bias else None
        return {"reset_after": self.reset_after, "recurrent_bias": recurrent_bias}

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def input_bias(self):
        if not self.use_bias:
            return None
        return self.b.value[0] if self.reset_after else self.b.value

    def step_forward(self, xw_t, state, recurrent_mask):
        """xw_t = x_t W + b_in: (B, 3H); state = (h_prev,). Returns ((h,), cache)."""
        (h_prev,) = state
        xp = backend.array_module(xw_t)
        x_z, x_r, x_h = gate_blocks(xw_t, 3)
        U_zr, U_h = self.U.value[:, :2 * self.units], self.U.value[:, 2 * self.units:]
        if self.reset_after:
            h_in = recurrent_input(h_prev, recurrent_mask)
            hu = recurrent_matmul(h_in, self.U.value)
            if self.use_bias:
                hu = hu + self.b.value[1]
            h_z, h_r, h_h = gate_blocks(hu, 3)
            a_z, a_r = x_z + h_z, x_r + h_r
            z, r = self.recurrent_activation(a_z), self.recurrent_activation(a_r)
            a_n = x_h + r * h_h
        else:
            h_in_gates = recurrent_input(h_prev, recurrent_mask)   # h_prev, or per gate (3, B, H)
            h_in_z, h_in_r, h_in_h = (h_prev,) * 3 if recurrent_mask is None else h_in_gates
            h_in_zr = h_prev if recurrent_mask is None else h_in_gates[:2]
            h_z, h_r = gate_blocks(recurrent_matmul(h_in_zr, U_zr), 2)
            a_z, a_r = x_z + h_z, x_r + h_r
            z, r = self.recurrent_activation(a_z), self.recurrent_activation(a_r)
            h_reset = r * h_in_h
            a_n = x_h + h_reset @ U_h
            h_h = None
            # per-gate recurrent inputs, so dU is one product per block after the loop
            h_in = xp.stack([h_in_z, h_in_r, h_reset])
        n = self.activation(a_n)
        h = z * h_prev + (1 - z) * n
        return (h,), GRUStep(h_in, h_prev, z, r, n, a_z, a_r, a_n, h_h)

    def step_backward(self, d_state, cache, recurrent_mask):
        """d_state = (dh,). Returns (dxw_t, dzh_t, (dh_prev,))."""
        (dh,) = d_state
        xp = backend.array_module(dh)
        z, r, n, h_prev = cache.z, cache.r, cache.n, cache.h_prev
        d_act, d_rec = self.activation.derivative, self.recurrent_activation.derivative
        dz = dh * (h_prev - n)
        dn = dh * (1 - z)
        da_n = dn * d_act(cache.a_n, n)
        dh_prev = dh * z
        if self.reset_after:
            dh_h = da_n * r
            dr = da_n * cache.h_h
            da_z, da_r = dz * d_rec(cache.a_z, z), dr * d_rec(cache.a_r, r)
            dzh = xp.concatenate([da_z, da_r, dh_h], axis=-1)
            dh_prev = dh_prev + recurrent_matmul_backward(dzh, self.U.value, recurrent_mask)
        else:
            H = self.units
            U_zr, U_h = self.U.value[:, :2 * H], self.U.value[:, 2 * H:]
            h_in_h = h_prev if recurrent_mask is None else h_prev * recurrent_mask[2]
            d_h_reset = da_n @ U_h.T
            dr = d_h_reset * h_in_h
            da_z, da_r = dz * d_rec(cache.a_z, z), dr * d_rec(cache.a_r, r)
            d_zr = xp.concatenate([da_z, da_r], axis=-1)
            dzh = xp.concatenate([d_zr, da_n], axis=-1)
            zr_mask = None if recurrent_mask is None else recurrent_mask[:2]
            dh_reset_path = d_h_reset * r
            if recurrent_mask is not None:
                dh_reset_path = dh_reset_path * recurrent_mask[2]
            dh_prev = dh_prev + recurrent_matmul_backward(d_zr, U_zr, zr_mask) + dh_reset_path
        dxw = xp.concatenate([da_z, da_r, da_n], axis=-1)
        return dxw, dzh, (dh_prev,)

    def bias_gradient(self, dxw, dzh):
        return self.bias_from_sums(dxw.sum(axis=(0, 1)), dzh.sum(axis=(0, 1)) if self.reset_after else None)

    def bias_from_sums(self, sum_dxw, sum_dzh):
        """reset_after: b = [b_in; b_rec], b_rec entering h U + b_rec, so its gradient is dzh's sum."""
        if not self.reset_after:
            return sum_dxw
        return backend.array_module(sum_dxw).stack([sum_dxw, sum_dzh])

    def get_config(self):
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config
