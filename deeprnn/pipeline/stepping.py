"""A trained Sequential run a chunk of time at a time, carrying every recurrent layer's state between chunks.

``model.forward`` starts each call from zero state, so the tutorial generates a note by re-running the whole
100-token window: 100 LSTM steps per note. ``StackRunner.run`` keeps each recurrent layer's final state and
starts the next chunk from it, so feeding one token at a time costs one step per layer, whatever the context
length; and a validation piece of 2,000 tokens is scored with its full context, in chunks.

Inference mode throughout: no dropout, BatchNormalization's moving statistics. Layers that act per position
(Embedding, Dense, Activation, BatchNormalization, Dropout) run as in ``model.forward``. A recurrent layer with
``return_sequences=False`` (the seed recipe's last LSTM) emits its h at every step here: at step t, what the model
would output if its window ended at t.
"""
from .. import backend
from ..layers.recurrent import RNN


def run_recurrent(layer, x, state, keep=None):
    """The forward loop of ``RNN.forward`` in inference mode, from ``state``, returning every h and the final state.

    x: (B, T, D); state: tuple of (B, H) arrays; keep: None or (B, T) 0/1 floats, state row b is multiplied by
    keep[b, t] before step t (0 where a new piece starts). Returns (h: (B, T, H), final state).
    """
    layer.check_input_shape(x.shape, 3, layer.W.shape[0])
    xp = backend.array_module(x)
    xw = layer.project_inputs(x.transpose(1, 0, 2), None)  # x_t W + b for all T steps in one product
    hs = []
    for t in range(x.shape[1]):
        if keep is not None:
            state = tuple(s * keep[:, t, None] for s in state)
        state, _ = layer.step_forward(xw[t], state, None)
        hs.append(state[0])
    return xp.stack(hs, axis=1), state


class StackRunner:
    """``y, states = runner.run(x, states)``: the model on x (B, T, ...) continuing from ``states``."""

    def __init__(self, model):
        model.require_built("StackRunner")
        for layer in model.layers:
            if isinstance(layer, RNN) and (layer.go_backwards or layer.return_state):
                raise ValueError(f"StackRunner: layer {layer.name!r} runs backwards or returns states; "
                                 "state carrying needs forward-in-time layers")
        self.model = model

    def zero_states(self, batch_size):
        """One entry per layer: a tuple of zero (B, H) arrays for a recurrent layer, None otherwise."""
        xp = backend.xp()
        return [layer.zero_state(xp, batch_size, backend.floatx()) if isinstance(layer, RNN) else None
                for layer in self.model.layers]

    def run(self, x, states, resets=None):
        """x: the model's input for T steps, (B, T) or (B, T, D); resets: None or (B, T) bool, True where a new
        piece starts (the recurrent states of that row are zeroed before that step).

        Returns (y: (B, T, V) on the device, new states).
        """
        x = self.model.prepare_input(x)
        keep = None
        if resets is not None:
            keep = backend.to_device(1 - backend.to_numpy(resets).astype(backend.floatx()))
        new_states = []
        for layer, state in zip(self.model.layers, states):
            if isinstance(layer, RNN):
                x, state = run_recurrent(layer, x, state, keep)
            else:
                x, _ = layer.forward(x, training=False)
            new_states.append(state)
        return x, new_states
