"""Which LSTM calls a fused kernel may take: the ones whose math is exactly the reference LSTM's."""
import numpy


def is_reference_lstm_call(layer, x):
    """True for an LSTM (or a subclass that keeps its math) with tanh/sigmoid on float32/float64 (B, T>=1, D) input.

    The kernel still checks that ``x`` and the weights live on its own device.
    """
    from ..layers.lstm import LSTM  # here, not at import: layers import this package
    if not isinstance(layer, LSTM):
        return False
    cls = type(layer)
    if (cls.step_forward is not LSTM.step_forward or cls.step_backward is not LSTM.step_backward
            or cls.project_inputs is not LSTM.project_inputs or cls.input_bias is not LSTM.input_bias):
        return False  # a subclass that changes the math runs its own reference code
    if layer.activation.name != "tanh" or layer.recurrent_activation.name != "sigmoid":
        return False
    return x.dtype in (numpy.float32, numpy.float64) and x.ndim == 3 and x.shape[1] >= 1


def layer_weights(layer):
    return [layer.W.value, layer.U.value] + ([layer.b.value] if layer.use_bias else [])
