"""The models bench_cpu.py times, each built the same way in deeprnn, PyTorch and Keras.

- tutorial: x (B, 100, 1) scalar notes -> LSTM(256, recurrent_dropout=.3, return_sequences) -> LSTM(256,
  recurrent_dropout=.3) -> BatchNorm -> Dropout(.3) -> Dense(128) -> ReLU -> BatchNorm -> Dropout(.3) -> Dense(V)
  -> softmax, categorical cross-entropy, Adam; B=32, V=300. The PyTorch twin has no recurrent dropout (nn.LSTM has
  none), as in the issue's anchor.
- drums: tokens (B, 64) -> Embedding(515, 64) -> LSTM(256) x2 (return_sequences) -> Dense(515) -> softmax,
  predicting every next token (sparse cross-entropy), Adam; B=32.
"""
import numpy

TUTORIAL = dict(batch=32, seq=100, vocab=300, units=256, recurrent_dropout=0.3)
DRUMS = dict(batch=32, seq=64, vocab=515, embed=64, units=256)


# -- data (the same arrays for every framework) ----------------------------------------------------------------------
def tutorial_batches(count=4, seed=0):
    rng = numpy.random.default_rng(seed)
    B, T, V = TUTORIAL["batch"], TUTORIAL["seq"], TUTORIAL["vocab"]
    batches = []
    for _ in range(count):
        tokens = rng.integers(0, V, size=(B, T + 1))
        x = (tokens[:, :T, None] / V).astype("float32")
        y = numpy.eye(V, dtype="float32")[tokens[:, T]]
        batches.append((x, y))
    return batches


def drums_batches(count=4, seed=0):
    rng = numpy.random.default_rng(seed)
    B, T, V = DRUMS["batch"], DRUMS["seq"], DRUMS["vocab"]
    batches = []
    for _ in range(count):
        tokens = rng.integers(0, V, size=(B, T + 1))
        batches.append((tokens[:, :T].astype("int64"), tokens[:, 1:].astype("int64")))
    return batches


# -- deeprnn ---------------------------------------------------------------------------------------------------------
def ours_tutorial():
    import deeprnn as dr
    from deeprnn import layers
    H, V, rd = TUTORIAL["units"], TUTORIAL["vocab"], TUTORIAL["recurrent_dropout"]
    dr.set_seed(0)
    model = dr.Sequential([
        layers.Input((TUTORIAL["seq"], 1)),
        layers.LSTM(H, recurrent_dropout=rd, return_sequences=True),
        layers.LSTM(H, recurrent_dropout=rd),
        layers.BatchNormalization(), layers.Dropout(0.3),
        layers.Dense(128), layers.Activation("relu"),
        layers.BatchNormalization(), layers.Dropout(0.3),
        layers.Dense(V), layers.Activation("softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def ours_drums():
    import deeprnn as dr
    from deeprnn import layers
    H, V = DRUMS["units"], DRUMS["vocab"]
    dr.set_seed(0)
    model = dr.Sequential([
        layers.Input((DRUMS["seq"],)),
        layers.Embedding(V, DRUMS["embed"]),
        layers.LSTM(H, return_sequences=True),
        layers.LSTM(H, return_sequences=True),
        layers.Dense(V), layers.Activation("softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def ours_generation_step(model):
    """One token through the stack with the recurrent states carried: ``step(x_t (1, D), states) -> (p, states)``.

    Uses the layers' public step API (``project_inputs`` then ``step_forward``), as state-carrying generation does.
    """
    from deeprnn.layers.recurrent import RNN

    def step(x_t, states):
        new_states, h = [], x_t
        for layer in model.layers:
            if isinstance(layer, RNN):
                xw = layer.project_inputs(h[None], None)[0]       # (1, 1, D) time-major -> (1, G*H)
                state, _ = layer.step_forward(xw, states[len(new_states)], None)
                new_states.append(state)
                h = state[0]
            else:
                h, _ = layer.forward(h, training=False)
        return h, new_states

    def zero_states():
        return [layer.zero_state(numpy, 1, numpy.float32) for layer in model.layers if isinstance(layer, RNN)]

    return step, zero_states


# -- PyTorch twins ---------------------------------------------------------------------------------------------------
def torch_tutorial():
    import torch
    from torch import nn
    H, V = TUTORIAL["units"], TUTORIAL["vocab"]
    torch.manual_seed(0)

    class Tutorial(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(1, H, num_layers=2, batch_first=True)
            self.head = nn.Sequential(nn.BatchNorm1d(H), nn.Dropout(0.3), nn.Linear(H, 128), nn.ReLU(),
                                      nn.BatchNorm1d(128), nn.Dropout(0.3), nn.Linear(128, V))

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.head(out[:, -1])   # logits; softmax + cross-entropy fused in the loss

    model = Tutorial()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)


def torch_drums():
    import torch
    from torch import nn
    H, V = DRUMS["units"], DRUMS["vocab"]
    torch.manual_seed(0)

    class Drums(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, DRUMS["embed"])
            self.lstm = nn.LSTM(DRUMS["embed"], H, num_layers=2, batch_first=True)
            self.out = nn.Linear(H, V)

        def forward(self, x):
            out, _ = self.lstm(self.embed(x))
            return self.out(out)

    model = Drums()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)


# -- Keras (torch backend) -------------------------------------------------------------------------------------------
def keras_tutorial():
    import keras
    from keras import layers
    H, V, rd = TUTORIAL["units"], TUTORIAL["vocab"], TUTORIAL["recurrent_dropout"]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((TUTORIAL["seq"], 1)),
        layers.LSTM(H, recurrent_dropout=rd, return_sequences=True),
        layers.LSTM(H, recurrent_dropout=rd),
        layers.BatchNormalization(), layers.Dropout(0.3),
        layers.Dense(128), layers.Activation("relu"),
        layers.BatchNormalization(), layers.Dropout(0.3),
        layers.Dense(V), layers.Activation("softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model
