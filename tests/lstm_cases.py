"""The LSTM options and the small models that both fused kernels (CPU and CUDA) are held to the reference on."""
import functools

import numpy

import deeprnn as dr
from deeprnn import backend, layers
from deeprnn.kernels import cpu_gru, cpu_lstm, cpu_simple_rnn

OPTIONS = {
    "last output": {},
    "return_sequences": {"return_sequences": True},
    "return_state": {"return_state": True},
    "go_backwards": {"go_backwards": True, "return_sequences": True, "return_state": True},
    "dropout": {"dropout": 0.3},
    "recurrent_dropout": {"recurrent_dropout": 0.3, "return_sequences": True},
    "both dropouts": {"dropout": 0.2, "recurrent_dropout": 0.4, "return_state": True},
    "dropouts backwards": {"dropout": 0.2, "recurrent_dropout": 0.4, "go_backwards": True},
    "no bias": {"use_bias": False, "return_sequences": True},
}


def can_fuse(layer):
    """True when ``implementation="fused"`` can run this built recurrent layer on arrays like its weights."""
    saved, layer.implementation = layer.implementation, "auto"
    try:
        return layer.select_kernel(layer.W.value) is not None
    finally:
        layer.implementation = saved


def set_implementation(model, implementation):
    """Every recurrent layer of ``model`` runs ``implementation``; with "fused", the layers that have no kernel for
    this call run "reference" (a GRU next to an LSTM). Returns the model."""
    for layer in model.layers:
        if isinstance(layer, layers.RNN):
            layer.implementation = "reference" if implementation == "fused" and not can_fuse(layer) else implementation
    return model


def implementations(model):
    """"reference", and "fused" when a recurrent layer of ``model`` has a kernel: every path to hold to a gold."""
    fusable = any(isinstance(layer, layers.RNN) and can_fuse(layer) for layer in model.layers)
    return ["reference", "fused"] if fusable else ["reference"]


def tutorial_model(units=8, vocab=6, rate=0.3):
    """The tutorial's architecture, narrow; ``rate`` is every dropout and recurrent dropout."""
    model = dr.Sequential([
        layers.Input((7, 1)),
        layers.LSTM(units, recurrent_dropout=rate, return_sequences=True),
        layers.LSTM(units, recurrent_dropout=rate),
        layers.BatchNormalization(), layers.Dropout(rate),
        layers.Dense(5), layers.Activation("relu"),
        layers.BatchNormalization(), layers.Dropout(rate),
        layers.Dense(vocab), layers.Activation("softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def drums_model(vocab=9, input_dropout=0.0):
    """The drums recipe's shape, narrow: Embedding -> 2 x LSTM (every step) -> softmax."""
    model = dr.Sequential([
        layers.Input((6,)), layers.Embedding(vocab, 4),
        layers.LSTM(8, return_sequences=True, dropout=input_dropout),
        layers.LSTM(8, return_sequences=True),
        layers.Dense(vocab), layers.Activation("softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def tutorial_batch(B=4, T=7, vocab=6, seed=0):
    """x = index / vocab (B, T, 1) and the one-hot next token (B, vocab), in floatx."""
    rng = numpy.random.default_rng(seed)
    tokens = rng.integers(0, vocab, size=(B, T + 1))
    dtype = backend.floatx()
    return (tokens[:, :T, None] / vocab).astype(dtype), numpy.eye(vocab, dtype=dtype)[tokens[:, T]]


def random_layer_and_inputs(make, options, dtype, B, T, D, H, seed, random_bias, initial_state):
    """``make(H, **options)`` built for (B, T, D) inputs in ``dtype``, seeded: (layer, x, initial state or None);
    ``random_bias`` replaces the zero/one initial bias, so a bias gradient error cannot hide behind it."""
    dr.set_floatx(dtype)
    dr.set_seed(seed)
    layer = make(H, **options)
    rng = numpy.random.default_rng(seed + 1)
    x = rng.normal(size=(B, T, D)).astype(dtype)
    layer.ensure_built(x.shape)
    if random_bias and layer.use_bias:
        weights = layer.get_weights()
        layer.set_weights(weights[:2] + [rng.normal(scale=0.5, size=weights[2].shape).astype(dtype)])
    state = [rng.normal(size=(B, H)).astype(dtype) for _ in range(layer.state_size)] if initial_state else None
    return layer, x, state


# norm-wise relative error (gradcheck.relative_error) of a fast path against the reference
TOLERANCE = {"float32": 1e-6, "float64": 1e-13}

# cell name -> (layer factory, the CPU kernel its fused path runs)
CELLS = {
    "lstm": (layers.LSTM, cpu_lstm),
    "gru": (functools.partial(layers.GRU, reset_after=True), cpu_gru),
    "gru_reset_before": (functools.partial(layers.GRU, reset_after=False), cpu_gru),
    "simple_rnn": (layers.SimpleRNN, cpu_simple_rnn),
}
