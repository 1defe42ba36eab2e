"""How far back a loss reaches: dL/dh_t at every distance from the loss, through a recurrent layer's own BPTT.

For a loss computed from the last hidden state ``h_T`` alone, backpropagation through time carries ``dL/dh_T`` back
one step at a time (docs/bptt.md), so the gradient at distance ``k`` is a product of ``k`` step Jacobians:

    dL/dh_{T-k} = dL/dh_T · ∂h_T/∂h_{T-1} · ... · ∂h_{T-k+1}/∂h_{T-k}

A recurrent layer's ``backward`` returns the gradient of its initial state, so ``dL/dh_{T-k}`` is the initial-state
gradient of the layer run over the last ``k`` steps from the state it had reached at ``T-k``. One prefix forward and
one suffix forward and backward per distance: O(T^2) steps, nothing but the layer's public forward/backward.
docs/gradients-through-time.md draws these numbers (examples/gradient_flow.py).
"""
import numpy as np

from . import layers, losses, optimizers
from .backend import array_module, to_device
from .errors import DataError
from .model import Sequential
from .music.drum_grid import DrumGridTokenizer
from .music.midi_io import read_events


def state_gradient_norms(layer, x, head, distances):
    """Mean over the batch of ``|dL/dh_{T-k}|`` (the L2 norm over units) for every ``k`` in ``distances``, and of
    ``|dL/dc_{T-k}|`` for an LSTM's cell state.

    layer: a built recurrent layer with ``return_state=True`` and ``return_sequences=False``; x: (B, T, D) its input;
    head: ``h_T (B, H) -> (loss, dL/dh_T (B, H))``, the part of the model after the layer; distances: integers in
    [0, T] (0 is ``dL/dh_T`` itself, T the gradient of the initial state). Returns ``{"h": [...]}`` (and ``"c"``).
    """
    if not layer.return_state or layer.return_sequences:
        raise ValueError(f"layer {layer.name!r}: state_gradient_norms needs return_state=True and "
                         "return_sequences=False (the loss reads the last state)")
    xp = array_module(x)
    T = x.shape[1]
    if any(not 0 <= k <= T for k in distances):
        raise ValueError(f"distances {list(distances)} reach outside [0, {T}] for a sequence of {T} steps")
    # the state at every T - k from one pass over the sequence in chunks, not one prefix per distance
    starts = sorted({T - k for k in distances if 0 < k < T} | {T})
    state_at, state, position = {0: None}, None, 0
    for start in starts:
        (_, *state), _ = layer.forward(x[:, position:start], initial_state=state)
        state_at[start], position = state, start
    names = ("h", "c")[:layer.state_size]
    norms = {name: [] for name in names}
    for k in distances:
        if k == 0:
            # the loss reads h_T; c_T reaches it only through h_T
            _, dh_T = head(state_at[T][0])
            gradients = [dh_T] + [xp.zeros_like(dh_T)] * (layer.state_size - 1)
        else:
            # the last k steps from the state reached at T - k: the gradient of that initial state is dL/dh_{T-k}
            (h_T, *_), cache = layer.forward(x[:, T - k:], initial_state=state_at[T - k])
            _, dh_T = head(h_T)
            gradients = layer.backward([dh_T] + [None] * layer.state_size, cache).d_initial_state
        for name, gradient in zip(names, gradients):
            norms[name].append(float(xp.sqrt((gradient * gradient).sum(axis=-1)).mean()))
    return norms


def mean_carry(layer, x):
    """The mean over batch, steps and units of the factor by which each cell's step Jacobian carries the gradient
    straight back to the previous state (docs/gradients-through-time.md): ``1 - h_t^2`` for SimpleRNN (times its
    ``U``), the update gate ``z_t`` for GRU (Keras's ``h = z h_prev + (1 - z) n``), the forget gate ``f_t`` for the
    LSTM's cell (``dc_prev = dc f``). layer: a built cell with ``implementation="reference"``; x: (B, T, D)."""
    if layer.implementation != "reference":
        raise ValueError(f"layer {layer.name!r}: mean_carry reads the step caches of implementation='reference'")
    _, cache = layer.forward(x)
    step = cache.loop[0]
    if hasattr(step, "f"):
        factors = [step.f for step in cache.loop]
    elif hasattr(step, "z") and hasattr(step, "r"):
        factors = [step.z for step in cache.loop]
    else:
        factors = [1 - step.h * step.h for step in cache.loop]
    return float(sum(float(factor.mean()) for factor in factors) / len(factors))


# -- the experiment of docs/gradients-through-time.md -----------------------------------------------------------------
CELLS = ("SimpleRNN", "GRU", "LSTM")


def copy_task(n, steps, vocab, rng):
    """Recall the first token after ``steps`` steps: tokens (n, steps) uniform in [0, vocab), labels (n,) = tokens[:, 0]."""
    tokens = rng.integers(0, vocab, (n, steps))
    return tokens, tokens[:, 0].copy()


def drum_windows(paths, steps, n, rng):
    """Predict the next 16th-note step of real drumming: ``n`` windows of ``steps`` drum-grid tokens cut at random
    from the MIDI files ``paths`` (each long enough), and the token after each. Returns (tokens, labels, vocab)."""
    tokenizer = DrumGridTokenizer()
    pieces = [tokenizer.encode(read_events(path).events) for path in paths]
    pieces = [piece for piece in pieces if len(piece) > steps]
    if not pieces:
        raise DataError(f"none of the {len(paths)} MIDI files holds more than {steps} drum-grid steps")
    which = rng.integers(0, len(pieces), n)
    starts = [int(rng.integers(0, len(pieces[i]) - steps)) for i in which]
    windows = np.stack([pieces[i][start:start + steps + 1] for i, start in zip(which, starts)])
    return windows[:, :-1], windows[:, -1].copy(), tokenizer.vocab_size


def gradient_flow(cell, train, probe, vocab, epochs, distances, units=64, embedding=16, learning_rate=3e-3):
    """``Embedding -> cell -> Dense(vocab)`` on a task whose loss reads the last step: ``|dL/dh_{T-k}|`` on the
    ``probe`` batch at every distance, at initialization and after ``epochs`` epochs of Adam on ``train``.

    cell: a name of ``CELLS``; train, probe: (tokens (B, T), labels (B,)). Returns ``{"initial": measured,
    "trained": measured, "loss": [per epoch]}``, each ``measured`` the norms of ``state_gradient_norms`` (``"h"``, and
    ``"c"`` for the LSTM) aligned with ``distances`` and the cell's ``"carry"`` (``mean_carry``).
    """
    cell_class = getattr(layers, cell)
    steps = train[0].shape[1]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    model = Sequential([layers.Input((steps,)), layers.Embedding(vocab, embedding), cell_class(units),
                        layers.Dense(vocab)])
    model.compile(loss=loss, optimizer=optimizers.Adam(learning_rate))
    embed, recurrent, dense = model.layers

    def twin(**options):
        """The trained cell's weights in a layer that returns its state (or keeps its step caches)."""
        layer = cell_class(units, **options)
        layer.ensure_built((None, steps, embedding))
        layer.set_weights(recurrent.get_weights())
        return layer

    def measure():
        x, _ = embed.forward(to_device(probe[0]))
        labels = to_device(probe[1])

        def head(h):
            z, dense_cache = dense.forward(h)
            value, loss_cache = loss.forward(labels, z)
            return value, dense.backward(loss.backward(loss_cache), dense_cache).dx

        return {**state_gradient_norms(twin(return_state=True), x, head, distances),
                "carry": mean_carry(twin(implementation="reference"), x)}

    initial = measure()
    history = model.fit(train[0], train[1], epochs=epochs, batch_size=64, verbose=0)
    return {"initial": initial, "trained": measure(), "loss": [float(value) for value in history.history["loss"]]}
