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
"""
from ..layers import RNN, Activation
from ..model import Sequential


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
