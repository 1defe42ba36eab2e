"""The models bench_cpu.py times, each built the same way in deeprnn, PyTorch and Keras.

- tutorial: x (B, 100, 1) scalar notes -> LSTM(256, recurrent_dropout=.3, return_sequences) -> LSTM(256,
  recurrent_dropout=.3) -> BatchNorm -> Dropout(.3) -> Dense(128) -> ReLU -> BatchNorm -> Dropout(.3) -> Dense(V)
  -> softmax, categorical cross-entropy, Adam; B=32, V=300. The PyTorch twin has no recurrent dropout (nn.LSTM has
  none), as in the issue's anchor.
- drums, per cell (lstm, gru, simple_rnn): tokens (B, 64) -> Embedding(515, 64) -> cell(256, return_sequences) x2 ->
  Dense(515) logits, predicting every next token with sparse cross-entropy from logits (the drums recipe's head:
  ``SparseCategoricalCrossentropy(from_logits=True)``), Adam; B=32. Our layers run ``implementation="auto"`` (the
  fused kernel of each cell). The PyTorch twins are ``nn.LSTM``, ``nn.GRU`` (Keras's ``reset_after=True``
  formulation, our GRU's default) and ``nn.RNN`` (tanh), with ``CrossEntropyLoss`` on the logits.

- generation: the drums recipe's own model as ``deeprnn train`` builds it with the recipe's defaults (bar-position
  counters beside the token, 2 x LSTM(256) with dropout, Dense logits) and its input encoding, with the weights it
  is initialized with: what ``deeprnn generate`` runs on a drums checkpoint.

Every Adam is Keras's: learning rate 1e-3, epsilon 1e-7 (PyTorch's default epsilon is 1e-8; it is set to match).
"""
import numpy

TUTORIAL = dict(batch=32, seq=100, vocab=300, units=256, recurrent_dropout=0.3)
DRUMS = dict(batch=32, seq=64, vocab=515, embed=64, units=256)
CELLS = ("lstm", "gru", "simple_rnn")


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


def check_cell(cell):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")


# -- deeprnn ---------------------------------------------------------------------------------------------------------
def ours_tutorial(implementation="auto"):
    """implementation: every LSTM's ``implementation`` ("reference" times the readable loops)."""
    import deeprnn as dr
    from deeprnn import layers
    H, V, rd = TUTORIAL["units"], TUTORIAL["vocab"], TUTORIAL["recurrent_dropout"]
    dr.set_seed(0)
    model = dr.Sequential([
        layers.Input((TUTORIAL["seq"], 1)),
        layers.LSTM(H, recurrent_dropout=rd, return_sequences=True, implementation=implementation),
        layers.LSTM(H, recurrent_dropout=rd, implementation=implementation),
        layers.BatchNormalization(), layers.Dropout(0.3),
        layers.Dense(128), layers.Activation("relu"),
        layers.BatchNormalization(), layers.Dropout(0.3),
        layers.Dense(V), layers.Activation("softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def ours_drums(cell="lstm", implementation="auto"):
    """The drums recipe's shape (DrumsRecipe.build_model without dropout or the bar-position input): logits out.

    Built for any sequence length, as the recipe builds it, so that its stateful twin takes one token per call.
    """
    import deeprnn as dr
    from deeprnn import layers
    check_cell(cell)
    recurrent = {"lstm": layers.LSTM, "gru": layers.GRU, "simple_rnn": layers.SimpleRNN}[cell]
    H, V = DRUMS["units"], DRUMS["vocab"]
    dr.set_seed(0)
    model = dr.Sequential([
        layers.Embedding(V, DRUMS["embed"]),
        recurrent(H, return_sequences=True, implementation=implementation),
        recurrent(H, return_sequences=True, implementation=implementation),
        layers.Dense(V)], name=f"drums-{cell}")
    model.build((None, None))
    model.compile(optimizer="adam", loss=dr.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def recipe_drums(seed=0):
    """The drums recipe's model with the recipe's defaults: (recipe, model, input encoding, tokenizer)."""
    from deeprnn import backend
    from deeprnn.pipeline.recipes import TrainConfig, get_recipe
    config = TrainConfig(recipe="drums").resolved()
    recipe = get_recipe("drums")
    tokenizer = recipe.make_tokenizer()
    backend.set_seed(seed)
    model = recipe.build_model(config, tokenizer.vocab_size)
    return recipe, model, recipe.input_encoding(config, tokenizer.vocab_size), tokenizer


def implementations(model):
    """What runs each recurrent layer's loops ("fused (kernel)" or "reference"), for the worker's record."""
    from deeprnn.layers import RNN
    return [layer.describe_implementation() for layer in model.layers if isinstance(layer, RNN)]


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


def torch_drums(cell="lstm"):
    """The drums twin: ``forward(x, state=None) -> (logits, state)``; the state is carried when generating."""
    import torch
    from torch import nn
    check_cell(cell)
    H, V, E = DRUMS["units"], DRUMS["vocab"], DRUMS["embed"]
    torch.manual_seed(0)
    recurrent = {"lstm": lambda: nn.LSTM(E, H, num_layers=2, batch_first=True),
                 "gru": lambda: nn.GRU(E, H, num_layers=2, batch_first=True),
                 "simple_rnn": lambda: nn.RNN(E, H, num_layers=2, nonlinearity="tanh", batch_first=True)}[cell]

    class Drums(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, E)
            self.rnn = recurrent()
            self.out = nn.Linear(H, V)

        def forward(self, x, state=None):
            hs, state = self.rnn(self.embed(x), state)
            return self.out(hs), state

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
