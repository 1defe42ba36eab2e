"""The three recipes: what each trains on, how its model is built, and its defaults.

- ``seed``: the tutorial as written ("How to Generate Music using a LSTM Neural Network in Keras"): 100-token
  windows -> the 101st token, the scalar ``index / vocab`` as input, LSTM(256, recurrent_dropout=.3) x2 ->
  BatchNorm -> Dropout(.3) -> Dense(128) -> ReLU -> BatchNorm -> Dropout(.3) -> Dense(vocab) -> softmax, Adam,
  batch 32, 30 epochs, 200 randomly sampled files, the best checkpoint by training loss, greedy generation.
  Tokens are ``SeedTokenizer``'s notes-and-chords symbols (keyed by MIDI pitch on drums, so they exist at all).
- ``drums`` (default): ``DrumGridTokenizer``'s 16th-note grid, an Embedding, a deep LSTM (GRU or SimpleRNN
  selectable) predicting the next token at every position (``return_sequences``), dropout between layers, the
  official Groove split, the best checkpoint by validation loss, sampling with temperature.
- ``groove``: the drums recipe on ``ExpressiveDrumGridTokenizer``'s tokens: every struck class of a step is followed
  by a token of its velocity and its offset from the grid, so the model learns how the drummers play
  (docs/expressive-drums.md). Longer windows (in tokens) hold about the same bars as the drums recipe's.

A ``TrainConfig`` holds every choice of a run, one field per setting declared in ``settings.TRAIN_SETTINGS``
(with each recipe's default); it is saved in each checkpoint, so generate and resume need nothing else.
"""
import abc
import dataclasses
import functools

import numpy

from .. import layers, optimizers
from ..errors import SettingError
from ..model import Sequential
from ..music import DrumGridTokenizer, ExpressiveDrumGridTokenizer, SeedTokenizer
from ..music.seed_tokenizer import DECODE_OFFSET
from ..music.labels import parse_conditions
from .features import ConditionedInput, ScaledIndexInput, TokenInput, TokenStepInput, grid_steps
from .ngram import Triples, trigram_triples
from .scoring import piece_nll, window_nll
from .settings import TRAIN_SETTINGS, train_setting
from .windows import LastTokenWindows, NextTokenWindows, TokenStream

CELLS = {"lstm": layers.LSTM, "gru": layers.GRU, "rnn": layers.SimpleRNN}
STEP_COUNTER_BITS = 6  # Magenta's: the step in the bar (4 bits of 16ths) and the bar in a 4-bar phrase (2 bits)
LABEL_DIM = 8  # the width of each --condition label's embedding: a few dozen labels at most


class ConfigMethods:
    """What ``TrainConfig`` does beyond holding the settings; its fields are ``settings.TRAIN_SETTINGS``."""

    def __post_init__(self):
        """Every setting checked before any work (None means "not given" and passes)."""
        for setting in TRAIN_SETTINGS:
            setattr(self, setting.name, setting.check(getattr(self, setting.name)))

    def resolved(self):
        """A copy with every None replaced by the recipe's default."""
        recipe = get_recipe(self.recipe or train_setting("recipe").default)
        values = {key: recipe.defaults[key] if value is None else value for key, value in self.to_dict().items()}
        values["recipe"] = recipe.name
        config = TrainConfig(**values)
        recipe.check(config)
        return config

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


# Every choice of a training run, one field per train setting (None: the recipe's default, until ``resolved``).
# Saved in each checkpoint and in config.json, so generate and resume need nothing else.
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(setting.name, setting.type | None, dataclasses.field(default=None))
                    for setting in TRAIN_SETTINGS], bases=(ConfigMethods,), kw_only=True)
TrainConfig.__module__ = __name__

# What may change when a run is resumed: how long it trains. Everything else shapes the weights' trajectory.
RESUMABLE_CHANGES = tuple(setting.name for setting in TRAIN_SETTINGS if setting.resumable)


def recipe_defaults(name):
    """The value of every train setting when the recipe ``name`` is not told otherwise (settings.py declares them)."""
    return {**{setting.name: setting.default_for(name) for setting in TRAIN_SETTINGS}, "recipe": name}


class Recipe(abc.ABC):
    """What a recipe declares: its tokens, the model's inputs and layers, the loss and what the best checkpoint is
    chosen by, how it is scored and generated from. Its settings' defaults are read from ``settings.py``
    (``defaults``). The methods with a body here are what most recipes share; a recipe overrides what differs.
    """

    name: str                # the --recipe value (settings.RECIPE_NAMES)
    loss: object             # what ``model.compile(loss=...)`` takes
    monitor: str             # the log entry the best checkpoint is chosen by ("val_loss" or "loss")
    validation_label: str    # how the per-epoch validation score is described in the run's log
    greedy_by_default: bool  # generate's decoding when no sampling flag is given
    defaults: dict           # every train setting's value for this recipe, from the declarations

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.defaults = recipe_defaults(cls.name)

    @abc.abstractmethod
    def make_tokenizer(self):
        """A fresh tokenizer (the seed recipe's learns its vocabulary from the training split)."""

    @abc.abstractmethod
    def input_encoding(self, config, vocab_size):
        """Tokens -> the model's input (``features.py``)."""

    @abc.abstractmethod
    def build_model(self, config, vocab_size, labels=None):
        """The compiled model of ``config`` for a vocabulary of ``vocab_size`` tokens (and, with --condition, the
        label vocabularies ``labels``)."""

    @abc.abstractmethod
    def windows(self, sequences, config, tokenizer, labels=None):
        """The training windows of ``sequences`` (``windows.py``); ``labels``: (P, K) label ids of each piece."""

    @abc.abstractmethod
    def score(self, model, sequences, config, tokenizer, stride=None, labels=None):
        """(sum of NLL, count) of the tokens the recipe predicts in ``sequences`` (told ``labels``, as ``windows``)."""

    @abc.abstractmethod
    def scored_triples(self, sequences, config, tokenizer, stride=None):
        """The targets ``score`` scores, with their two-token histories, for the n-gram baselines."""

    @abc.abstractmethod
    def training_triples(self, sequences, config, tokenizer, stride=None):
        """Every target of the training split with its history, to fit the n-gram baselines."""

    @abc.abstractmethod
    def window_starts(self, piece, length, time_signature, tokenizer):
        """Offsets where a primer of ``length`` tokens of ``piece`` may begin."""

    @abc.abstractmethod
    def duration_of(self, tokens, tokenizer):
        """How long ``tokens`` last when decoded, in quarter notes."""

    @abc.abstractmethod
    def quarters_per_token(self, tokenizer):
        """The most quarter notes one token can add to the decoded music (bounds the length a MIDI file holds)."""

    @abc.abstractmethod
    def forbidden_tokens(self, tokenizer):
        """Tokens never sampled mid-piece."""

    def check(self, config):
        """Settings that do not fit this recipe together (each alone is checked by its declaration)."""
        conditions = parse_conditions(config.condition)  # --condition's grammar, which its declaration cannot say
        if not conditions and config.condition_dropout != self.defaults["condition_dropout"]:
            raise SettingError(f"--condition-dropout drops the labels of --condition; this run has none (give "
                               f"--condition, or leave --condition-dropout at {self.defaults['condition_dropout']:g})")

    def steps_of(self, config, tokenizer):
        """piece -> grid step of each token, when the input needs it, else None."""
        return None

    def next_step(self, step, token, tokenizer):
        """The step counter after ``token``."""
        return step + 1

    def grammar(self, tokenizer):
        """What a sampler must keep beyond ``forbidden_tokens``: nothing (every token may follow any)."""
        return None

    def decode_generated(self, tokens, tokenizer, rng):
        """Generated tokens -> note events."""
        return tokenizer.decode(tokens)

    def stream(self, sequences, config, tokenizer, labels=None):
        return TokenStream.from_sequences(sequences, self.steps_of(config, tokenizer), labels)

    def validation_score(self, model, sequences, config, tokenizer, labels=None):
        """The per-epoch validation score: ``score`` unless that costs too much to run every epoch."""
        return self.score(model, sequences, config, tokenizer, labels=labels)


class DrumsRecipe(Recipe):
    name = "drums"
    loss = {"name": "sparse_categorical_crossentropy", "from_logits": True}
    monitor = "val_loss"  # best checkpoint by validation loss
    validation_label = "validation loss (whole pieces)"
    greedy_by_default = False

    def make_tokenizer(self):
        return DrumGridTokenizer()

    def input_encoding(self, config, vocab_size):
        tokens = TokenStepInput() if config.bar_position else TokenInput()
        return ConditionedInput(tokens) if parse_conditions(config.condition) else tokens

    def build_model(self, config, vocab_size, labels=None):
        """Embedding -> [RNN(units, return_sequences) -> Dropout] x layers -> Dense(vocab) logits.

        With --condition the embedding is a ConditionedEmbedding: each label of ``labels`` (style, tempo, fill)
        embedded in ``LABEL_DIM`` numbers beside the token at every step (docs/conditioning.md).

        The softmax lives in the loss (``from_logits=True``, Keras's spelling): softmax and cross-entropy over the
        (B, T, vocab) head as one pass, gradient p - onehot. Generation and scoring serve the model with a softmax
        appended (``stepping.serving_model``).

        Dropout sits between the recurrent layers and before the output (as PyTorch's nn.LSTM dropout), not on
        the embedding, whose bar-position counters should reach the network intact.
        """
        cell = CELLS[config.cell]
        if labels is not None:
            conditions = [(name, size, LABEL_DIM) for name, size in zip(labels.names, labels.sizes)]
            counter_bits = STEP_COUNTER_BITS if config.bar_position else None
            stack = [layers.ConditionedEmbedding(vocab_size, config.embedding_dim, conditions, counter_bits,
                                                 label_dropout=config.condition_dropout)]
            input_shape = (None, None, 1 + int(config.bar_position) + len(conditions))
        elif config.bar_position:
            stack = [layers.StepCounterEmbedding(vocab_size, config.embedding_dim, STEP_COUNTER_BITS)]
            input_shape = (None, None, 2)
        else:
            stack = [layers.Embedding(vocab_size, config.embedding_dim)]
            input_shape = (None, None)
        for _ in range(config.layers):
            stack.append(cell(config.units, return_sequences=True, recurrent_dropout=config.recurrent_dropout))
            if config.dropout:
                stack.append(layers.Dropout(config.dropout))
        stack.append(layers.Dense(vocab_size))
        return compiled(Sequential(stack, name="drums"), input_shape, config, self.loss)

    def steps_of(self, config, tokenizer):
        """piece -> grid step of each token, when the input needs it (--bar-position), else None."""
        return functools.partial(grid_steps, start_token=tokenizer.start_token) if config.bar_position else None

    def next_step(self, step, token, tokenizer):
        """The grid step of the token after ``token`` (velocity tokens and specials do not advance the grid)."""
        return step + int(token < tokenizer.start_token)

    def window_starts(self, piece, length, time_signature, tokenizer):
        """Offsets of the windows of ``length`` tokens of a piece that begin with a grid step on a downbeat."""
        numerator, denominator = time_signature
        bar = max(1, round(numerator * 4 * tokenizer.steps_per_quarter / denominator))
        piece = numpy.asarray(piece)
        downbeats = (piece < tokenizer.start_token) & (grid_steps(piece, tokenizer.start_token) % bar == 0)
        offsets = numpy.nonzero(downbeats)[0]
        return offsets[offsets + length <= len(piece)]

    def duration_of(self, tokens, tokenizer):
        """How long ``tokens`` last when decoded, in quarter notes: one grid step per step token."""
        return float(numpy.sum(numpy.asarray(tokens) < tokenizer.start_token)) / tokenizer.steps_per_quarter

    def quarters_per_token(self, tokenizer):
        """A step token is one grid step; hit tokens and specials add nothing."""
        return 1 / tokenizer.steps_per_quarter

    def forbidden_tokens(self, tokenizer):
        """Never sampled mid-piece: START, and END (we want the number of steps asked for)."""
        return [tokenizer.start_token, tokenizer.end_token]

    def windows(self, sequences, config, tokenizer, labels=None):
        encoding = self.input_encoding(config, tokenizer.vocab_size)
        return NextTokenWindows(self.stream(sequences, config, tokenizer, labels), config.seq_len, encoding)

    def score(self, model, sequences, config, tokenizer, stride=None, labels=None):
        """(sum of NLL, count) of every token after each piece's START, with its whole piece as context."""
        encoding = self.input_encoding(config, tokenizer.vocab_size)
        return piece_nll(model, sequences, encoding, self.steps_of(config, tokenizer), labels=labels)

    def scored_triples(self, sequences, config, tokenizer, stride=None):
        """The same targets as ``score``, with their two-token histories, for the n-gram baselines."""
        pad = tokenizer.vocab_size
        return Triples.join(trigram_triples(s, numpy.arange(1, len(s)), pad)
                                       for s in sequences)

    training_triples = scored_triples


class SeedRecipe(Recipe):
    name = "seed"
    loss = "categorical_crossentropy"  # the tutorial's one-hot targets
    monitor = "loss"  # the tutorial's ModelCheckpoint(monitor='loss', save_best_only=True)
    validation_label = "validation loss (one window in seq_len)"
    greedy_by_default = True
    head_units = 128

    def check(self, config):
        if config.condition:
            raise SettingError("--condition belongs to the drums and groove recipes; the seed recipe's input is "
                               "index/vocab")
        if config.condition_dropout is not None:
            raise SettingError("--condition-dropout belongs to the drums and groove recipes' --condition; the seed "
                               "recipe's input is index/vocab")
        if config.bar_position:
            raise SettingError("--bar-position belongs to the drums and groove recipes; the seed recipe's input is index/vocab")

    def make_tokenizer(self):
        return SeedTokenizer()

    def input_encoding(self, config, vocab_size):
        return ScaledIndexInput(vocab_size)

    def build_model(self, config, vocab_size, labels=None):
        """[RNN(units, recurrent_dropout)] x layers (the last returns its final state) -> BatchNorm -> Dropout ->
        Dense(128) -> ReLU -> BatchNorm -> Dropout -> Dense(vocab) -> softmax."""
        cell = CELLS[config.cell]
        stack = [cell(config.units, recurrent_dropout=config.recurrent_dropout,
                      return_sequences=index < config.layers - 1) for index in range(config.layers)]
        stack += [layers.BatchNormalization(), layers.Dropout(config.dropout), layers.Dense(self.head_units),
                  layers.Activation("relu"), layers.BatchNormalization(), layers.Dropout(config.dropout),
                  layers.Dense(vocab_size), layers.Activation("softmax")]
        return compiled(Sequential(stack, name="seed"), (None, None, 1), config, self.loss)

    def window_starts(self, piece, length, time_signature, tokenizer):
        """Any offset: the tutorial's tokens follow onsets, not a grid, so they know no bars."""
        return numpy.arange(len(piece) - length + 1)

    def duration_of(self, tokens, tokenizer):
        """The tutorial's decoding: 0.5 quarter notes per token."""
        return len(tokens) * self.quarters_per_token(tokenizer)

    def quarters_per_token(self, tokenizer):
        return DECODE_OFFSET

    def forbidden_tokens(self, tokenizer):
        """UNK stands for symbols unseen in training; it decodes to silence, so it is never generated."""
        return [tokenizer.unk_id]

    def windows(self, sequences, config, tokenizer, labels=None):
        encoding = self.input_encoding(config, tokenizer.vocab_size)
        return LastTokenWindows(self.stream(sequences, config, tokenizer), config.seq_len, encoding,
                                tokenizer.vocab_size)

    def score(self, model, sequences, config, tokenizer, stride=1, labels=None):
        """(sum of NLL, count) of token i + T given the T before it, every ``stride``-th window of the pieces
        joined end to end (the tutorial's task)."""
        windows = self.windows(sequences, config, tokenizer)
        return window_nll(model, windows, windows.evaluation_starts(stride))

    def validation_score(self, model, sequences, config, tokenizer, labels=None):
        """Per epoch, one window in seq_len: the full stride-1 score costs seq_len times more."""
        return self.score(model, sequences, config, tokenizer, stride=config.seq_len)

    def scored_triples(self, sequences, config, tokenizer, stride=1):
        stream = self.stream(sequences, config, tokenizer)
        positions = numpy.arange(0, len(stream) - config.seq_len, stride) + config.seq_len
        return Triples(*trigram_triples(stream.tokens, positions, tokenizer.vocab_size))

    def training_triples(self, sequences, config, tokenizer, stride=None):
        stream = self.stream(sequences, config, tokenizer)
        return Triples(*trigram_triples(stream.tokens, numpy.arange(1, len(stream)),
                                                              tokenizer.vocab_size))


class GrooveRecipe(DrumsRecipe):
    """The drums recipe on the expressive grid: hit tokens carry velocity and microtiming (docs/expressive-drums.md).

    A step is 2.2 tokens on average here (1.2 hit tokens after each step token), so the windows are twice the drums
    recipe's in tokens: 128 tokens hold about 58 steps, 3.6 bars, as 64 step tokens hold 4.
    """

    name = "groove"

    def make_tokenizer(self):
        return ExpressiveDrumGridTokenizer()

    def grammar(self, tokenizer):
        """After a step token come exactly as many hit tokens as it strikes classes: the tokenizer counts them."""
        return tokenizer

    def decode_generated(self, tokens, tokenizer, rng):
        """Velocities and offsets drawn uniformly inside their sampled bins, so they spread like the drummers'."""
        return tokenizer.decode(tokens, rng=rng)


RECIPES = {"drums": DrumsRecipe(), "groove": GrooveRecipe(), "seed": SeedRecipe()}


def get_recipe(name):
    if name not in RECIPES:
        raise SettingError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[name]


def compiled(model, input_shape, config, loss):
    model.build(input_shape)
    model.compile(optimizer=make_optimizer(config), loss=loss)
    return model


def make_optimizer(config):
    """The optimizer of ``config``: Keras's Adam or AdamW (--optimizer) with its learning rate, clipnorm (0: none),
    weight_decay (None: the optimizer's default, AdamW's 0.004 or Adam's none) and, with --ema, use_ema at that
    momentum (the averages the trainer validates and saves as best.npz)."""
    options = {"learning_rate": config.lr, "clipnorm": config.clipnorm or None}
    if config.weight_decay is not None:
        options["weight_decay"] = config.weight_decay
    if config.ema:
        options.update(use_ema=True, ema_momentum=config.ema)
    return optimizers.OPTIMIZERS[config.optimizer](**options)

