"""Carrying the recurrent state from one call to the next, the Keras way: a stateful twin of the trained model.

``model.forward`` starts every call from zero state, so the tutorial generates a note by re-running the whole
100-token window: 100 LSTM steps per note. Keras's answer is ``stateful=True``: a recurrent layer keeps its final
state after every call and starts the next one from it, until ``reset_states()``. ``stateful_twin`` builds that
model from the trained one's config (every recurrent layer ``stateful=True``), with the same weights. Then

    twin.reset_states()               # a piece starts
    probs = twin(primer)              # the primer, once
    probs = twin(next_token)          # one step of every recurrent layer per token, whatever the context length

and a 2,000-token piece is scored with its full context, a chunk per call. The layers run their own forward (the
fused kernels where they apply): there is no recurrent loop here. Inference mode throughout: no dropout,
BatchNormalization's moving statistics.

A model trained on logits (its loss has ``from_logits=True``: the drums recipe's, whose head then needs no softmax
backward) is served the Keras way, with a softmax appended: ``serving_model`` and the twin always give
probabilities.

Beside the twin, ``fused_step(model, labels)`` reads the same weights into ``kernels.cpu_step.StackStep``: one
token through the whole stack in a few fused NumPy calls, logits out (generation's fast path; the twin is its
reference, and ``StepUnavailable`` says why a model's layers are not ones it computes).
"""
import numpy

from ..kernels import cpu_step
from ..layers import GRU, LSTM, RNN, Activation, ConditionedEmbedding, Dense, Dropout, Embedding, SimpleRNN, \
    StepCounterEmbedding
from ..model import Sequential

# the recurrent layers the fused step computes (exactly these classes: a subclass may change the step), by name
FUSED_CELLS = {LSTM: "lstm", GRU: "gru", SimpleRNN: "simple_rnn"}


def serving_model(model):
    """``model`` as the pipeline reads it: probabilities out (a softmax after a model trained on logits)."""
    if not getattr(model.loss, "from_logits", False):
        return model
    served = Sequential.from_config(inference_config(model))
    served.set_weights(model.get_weights())
    return with_probabilities(served)


def with_probabilities(model):
    model.add(Activation("softmax", name="served_softmax"))
    return model


def inference_config(model):
    config = model.get_config()
    config.pop("compile", None)  # inference only: no optimizer to build
    return config


def stateful_twin(model):
    """A copy of ``model`` whose recurrent layers carry their state between calls (Keras's ``stateful=True``), with
    probabilities out (see ``serving_model``)."""
    model.require_built("stateful_twin")
    config = inference_config(model)
    for entry, layer in zip(config["layers"], model.layers):
        if isinstance(layer, RNN):
            if layer.go_backwards or layer.return_state:
                raise ValueError(f"stateful_twin: layer {layer.name!r} runs backwards or returns its states; "
                                 "carrying state needs forward-in-time layers")
            entry["config"]["stateful"] = True
    twin = Sequential.from_config(config)
    twin.set_weights(model.get_weights())
    return with_probabilities(twin) if getattr(model.loss, "from_logits", False) else twin


class StepUnavailable(ValueError):
    """``fused_step`` was asked for a model whose layers the fused step does not compute exactly as the twin does."""


def fused_step(model, labels=None):
    """``kernels.cpu_step.StackStep`` with ``model``'s weights, for generating after its stateful twin ran the
    primer; labels: (K,) the label ids a conditioned model is told for the whole generation.

    The layers it computes: a token embedding (``Embedding``, ``StepCounterEmbedding``, ``ConditionedEmbedding``),
    then LSTM, GRU (``reset_after=True``) or SimpleRNN layers with their default activations and Dropout
    (the identity at inference), then a Dense head whose output is served as probabilities (a softmax Dense, a
    Dense followed by a softmax Activation, or logits under a ``from_logits`` loss). Anything else raises
    ``StepUnavailable`` naming the layer and why.
    """
    model.require_built("fused_step")
    layers = [layer for layer in model.layers if not isinstance(layer, Dropout)]
    if not layers or not isinstance(layers[0], (Embedding, StepCounterEmbedding, ConditionedEmbedding)):
        first = layers[0] if layers else None
        raise StepUnavailable("the fused step starts from a token embedding" + ("" if first is None else
                              f", not layer {first.name!r} ({type(first).__name__})"))
    embedding, rest = layers[0], layers[1:]
    cells = []
    while rest and isinstance(rest[0], RNN):
        cells.append(keras_cell(rest.pop(0)))
    if not cells:
        raise StepUnavailable("the fused step carries the state of recurrent layers: this model has none after its "
                              "embedding")
    head = head_of(model, rest)
    weights = [v.value for v in model.variables]
    if any(type(w) is not numpy.ndarray for w in weights):
        raise StepUnavailable("the fused step runs on NumPy arrays; this model's weights are on the GPU")
    counter_bits = getattr(embedding, "counter_bits", None)
    if counter_bits is not None and counter_bits > cpu_step.MAX_COUNTER_BITS:
        raise StepUnavailable(f"layer {embedding.name!r}: the fused step keeps the bar-position counter's cycle as a "
                              f"table, up to {cpu_step.MAX_COUNTER_BITS} bits, not {counter_bits}")
    label_vector = None
    if isinstance(embedding, ConditionedEmbedding):
        if labels is None:
            raise StepUnavailable(f"layer {embedding.name!r}: a conditioned model's step needs the label ids")
        label_vector = numpy.concatenate([C.value[int(i)] for C, i in zip(embedding.C, labels)])
    return cpu_step.StackStep(embedding.E.value, counter_bits, label_vector, cells, head, weights[0].dtype)


def keras_cell(layer):
    """One recurrent layer's weights as ``cpu_step.KerasCell``; StepUnavailable if its step is not the kernel's."""
    cell = FUSED_CELLS.get(type(layer))
    why = None
    if cell is None:
        why = f"{type(layer).__name__} is not one of {', '.join(c.__name__ for c in FUSED_CELLS)}"
    elif layer.go_backwards:
        why = "it runs backwards"
    elif layer.activation.name != "tanh" or (cell != "simple_rnn" and layer.recurrent_activation.name != "sigmoid"):
        why = "the fused step computes activation='tanh' and recurrent_activation='sigmoid'"
    elif cell == "gru" and not layer.reset_after:
        why = "the fused step computes the GRU with reset_after=True"
    if why is not None:
        raise StepUnavailable(f"layer {layer.name!r} ({type(layer).__name__}): {why}")
    b_in, b_rec = layer.input_bias(), None
    if cell == "gru" and layer.use_bias:
        b_rec = layer.b.value[1]
    return cpu_step.KerasCell(cell, layer.W.value, layer.U.value, b_in, b_rec)


def head_of(model, rest):
    """(W_d, b_d) of the Dense head whose logits the served model turns into probabilities; StepUnavailable else."""
    if not rest or not isinstance(rest[0], Dense):
        after = f"layer {rest[0].name!r} ({type(rest[0]).__name__})" if rest else "nothing"
        raise StepUnavailable(f"the fused step ends in a Dense head after the recurrent layers, not {after}")
    dense, tail = rest[0], rest[1:]
    softmax_after = [layer for layer in tail if isinstance(layer, Activation) and layer.activation == "softmax"]
    if len(tail) != len(softmax_after) or len(tail) > 1:
        raise StepUnavailable(f"layer {tail[0].name!r} ({type(tail[0]).__name__}) after the head: the fused step "
                              "ends in the head's softmax")
    # what the served model applies after the head's product: exactly one softmax (the Dense's own, a softmax
    # layer, or the one serving_model appends to a model trained on logits)
    softmaxes = int(dense.activation == "softmax") + len(tail) + int(getattr(model.loss, "from_logits", False))
    if dense.activation not in (None, "linear", "softmax") or softmaxes != 1:
        raise StepUnavailable(f"layer {dense.name!r} (Dense, activation={dense.activation!r}): the fused step "
                              "serves the head's logits through one softmax")
    return dense.W.value, dense.b.value if dense.use_bias else None
