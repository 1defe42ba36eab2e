"""Every setting of ``train``, ``generate`` and ``evaluate``, declared once: name, type, range, default (per recipe
where the recipes differ) and one line of help.

Everything else reads these declarations: the command line's flags and their ``--help`` (cli.py), the checks of
``TrainConfig`` and ``Sampling``, ``config.json`` and what a resume may change (recipes.py, checkpoints.py), and
the sweep's search space. A new setting is one ``Setting(...)`` line in the right tuple below.

    train_setting("seq_len").default_for("groove")   # 128
    train_setting("units").check(2.7)                # SettingError: --units must be an integer >= 1 and <= 4096, ...

Every number whose work or memory grows with it has an upper bound as well as a lower one (a flag without a
ceiling runs until the machine gives out): each bound is far past what a run of these recipes asks for, and the
comment beside it says why it is where it is.
"""
import os
from dataclasses import dataclass, field

from .. import arguments
from ..errors import SettingError
from ..kernels.sharded import DEFAULT_WORKERS, WORKERS
from .lr_schedule import SCHEDULES

# The recipes (recipes.RECIPES implements each; a test holds the two lists equal) and the recurrent cells.
RECIPE_NAMES = ("drums", "groove", "seed")
CELL_NAMES = ("lstm", "gru", "rnn")
OPTIMIZER_NAMES = ("adam", "adamw")  # optimizers.OPTIMIZERS (a test holds the two lists equal)
# numpy.random.default_rng and SeedSequence take any non-negative integer; 32 bits keep seeds portable.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Setting:
    """One setting: its name (a ``TrainConfig`` field, the flag ``--name-with-dashes``), type, range and default.

    type: int, float, str or bool. A number must lie in [minimum, maximum] and (above, below); ``allowed`` lists
    values accepted outside that range (``--temperature 0``: greedy). ``default`` is the value every recipe uses
    unless ``per_recipe`` names another; ``unset`` says in words what a default of None means ("all" files);
    ``default_text`` describes a default computed at run time (``--out``: runs/<recipe>). ``resumable``: a resumed
    run may change it (how long to train; everything else shapes the weights' trajectory).
    """

    name: str
    help: str
    type: type = str
    default: object = None
    per_recipe: dict = field(default_factory=dict)
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    allowed: tuple = ()
    unset: str = "none"
    default_text: str | None = None
    metavar: str | None = None
    required: bool = False
    negatable: bool = False  # a bool with --name and --no-name (else a bool is a switch, off unless given)
    const: object = None     # the value of the flag given without one (``--generation-stats`` alone: 500)
    resumable: bool = False
    exclusive: str | None = None  # switches of one group exclude each other

    @property
    def flag(self):
        """``seq_len`` -> ``--seq-len``."""
        return "--" + self.name.replace("_", "-")

    @property
    def is_switch(self):
        return self.type is bool and not self.negatable

    def default_for(self, recipe_name):
        """The value the recipe ``recipe_name`` uses when the setting is not given."""
        return self.per_recipe.get(recipe_name, self.default)

    def check(self, value):
        """``value``, checked against the type and range (None, "not given", passes); else a SettingError."""
        if value is None:
            return None
        if self.type is bool:
            if not isinstance(value, bool):
                raise SettingError(f"{self.flag} must be True or False, got {value!r}")
            return value
        if self.type is int:
            return arguments.integer(self.flag, value, minimum=self.minimum, maximum=self.maximum)
        if self.type is float:
            return float(arguments.real(self.flag, value, minimum=self.minimum, maximum=self.maximum,
                                        above=self.above, below=self.below, allowed=self.allowed))
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise SettingError(f"{self.flag} must be text, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise SettingError(f"{self.flag} must be one of {', '.join(self.choices)}, got {value!r}")
        return value

    def parse(self, text):
        """A command-line word as this setting's value, checked; a SettingError naming the flag and the word."""
        if self.type is int:
            try:
                value = int(text)
            except ValueError:
                raise SettingError(f"{self.flag} expected an integer, got {text!r}") from None
        elif self.type is float:
            try:
                value = float(text)
            except ValueError:
                raise SettingError(f"{self.flag} expected a number, got {text!r}") from None
        else:
            value = text
        return self.check(value)

    def shown_default(self, recipe_names=RECIPE_NAMES):
        """The default as ``--help`` shows it: "64", or "drums 64, groove 128, seed 100" where recipes differ."""
        if self.default_text is not None:
            return self.default_text
        values = [self.default_for(name) for name in recipe_names]
        if all(value == values[0] for value in values):
            return self.format(values[0])
        return ", ".join(f"{name} {self.format(value)}" for name, value in zip(recipe_names, values))

    def format(self, value):
        if value is None:
            return self.unset
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    def help_text(self):
        """One help line with the default in brackets (none for a required setting or a switch)."""
        if self.required or (self.is_switch and self.default_text is None):
            return self.help
        return f"{self.help} [{self.shown_default()}]"


# --- train: the fields of TrainConfig, saved in every checkpoint ----------------------------------------------------
TRAIN_SETTINGS = (
    Setting("data", "Groove folder or zip, a folder of MIDI files, or music21:COMPOSER",
            default_text="$DEEPRNN_GROOVE, else the cached or downloaded Groove dataset"),
    Setting("recipe", "drums: drum grid + embedding + deep LSTM; groove: the drums recipe with each hit's velocity "
                      "and timing offset learned from the drummers; seed: the tutorial as written",
            choices=RECIPE_NAMES, default="drums"),
    Setting("cell", "recurrent cell", choices=CELL_NAMES, default="lstm"),
    # bounds: far past any recipe's need; each layer, unit and width costs memory in proportion
    Setting("layers", "recurrent layers", int, 2, minimum=1, maximum=64),
    # 4096 units: 4 * 4096 * 8192 weights, 0.5 GB per LSTM layer in float32
    Setting("units", "units per recurrent layer", int, 256, minimum=1, maximum=4096),
    Setting("embedding_dim", "token embedding width, drums and groove", int, 64, {"seed": None},
            minimum=1, maximum=4096, unset="unused"),
    # 16384 steps x 32 windows x 1024 gate values is 2 GB of activations per layer
    Setting("seq_len", "training window length in tokens", int, 64, {"groove": 128, "seed": 100},
            minimum=1, maximum=16384),
    # 4096 windows of 64 steps x 1024 gate values is 1 GB of activations per layer
    Setting("batch_size", "windows per batch", int, 32, minimum=1, maximum=4096),
    # each epoch is a pass over the data; 100000 is years of the 15-minute runs' epochs
    Setting("epochs", "epochs", int, 30, minimum=1, maximum=100_000, resumable=True),
    # lr, optimizer, weight decay, ema, dropout and recurrent dropout of drums and groove: the best configuration of
    # a sweep at 15 minutes a trial, mean of 3 seeds on the validation split (docs/results.md, "The defaults from a
    # sweep"); the cooldown from 15-minute runs before it; the seed recipe's are the tutorial's
    Setting("lr", "the optimizer's learning rate", float, 5.6e-3, {"seed": 1e-3}, above=0),
    # Keras's optimizers (docs/adam.md)
    Setting("optimizer", "adam, or adamw: Adam with decoupled weight decay (Keras's AdamW)",
            choices=OPTIMIZER_NAMES, default="adamw", per_recipe={"seed": "adam"}),
    # Keras 3 applies every optimizer's weight_decay the decoupled way (BaseOptimizer._apply_weight_decay:
    # w <- w - w * weight_decay * lr before the step), so adam with it is the same update as adamw with it
    Setting("weight_decay", "decoupled weight decay: w <- w - lr * weight_decay * w before each step (Keras's "
                            "weight_decay, the same for adam and adamw; none: AdamW's 0.004, Adam's none)", float,
            0.051, {"seed": None}, minimum=0, unset="none"),
    Setting("ema", "keep an exponential moving average of the weights with this momentum (Keras's use_ema, "
                   "ema_momentum), used for validation and best.npz, e.g. 0.99 or 0.999; 0 for none",
            # 1 would keep the first update's weights forever
            float, 0.99, {"seed": 0.0}, minimum=0, below=1, metavar="MOMENTUM"),
    Setting("lr_schedule", "the learning rate over the run: constant; cosine decay from --lr over the epochs that "
                           "fit --epochs and --time-budget; or cooldown, constant then that decay over the last 30%",
            choices=SCHEDULES, default="cooldown", per_recipe={"seed": "constant"}),
    Setting("dropout", "dropout after each recurrent layer, in [0, 1)", float, 0.35, {"seed": 0.3},
            minimum=0, below=1),  # 1 would drop everything
    Setting("recurrent_dropout", "Keras recurrent_dropout of each cell, in [0, 1)", float, 0.24, {"seed": 0.3},
            minimum=0, below=1),
    Setting("clipnorm", "clip each gradient to this L2 norm, 0 for none", float, 1.0, {"seed": None},
            minimum=0),
    # the Groove dataset has 1150 files; a million is any MIDI folder one would train on
    Setting("max_files", "at most N files per split, sampled with --seed", int, None, {"seed": 200},
            minimum=1, maximum=1_000_000, unset="all"),
    Setting("bar_position", "drums and groove: feed the step in the bar as binary counters (Magenta)", bool, True,
            {"seed": False}, negatable=True),
    # a year of training, in minutes
    Setting("time_budget", "stop before an epoch that would end past this many minutes of training", float,
            above=0, maximum=525_600, metavar="MINUTES", resumable=True),
    # Keras's EarlyStopping(patience=N) on the recipe's validation loss; none by default: the time budget and the
    # schedule decide, and a run that stops early leaves its budget unspent
    Setting("patience", "stop after N epochs in a row without a better validation loss (Keras's EarlyStopping)", int,
            minimum=0, maximum=100_000, unset="none", resumable=True, metavar="N"),
    Setting("seed", "seed of weights, dropout, shuffles and file sampling", int, 0, minimum=0, maximum=MAX_SEED),
    # checked by music.labels.parse_conditions: a comma-separated subset, which argparse choices cannot say
    Setting("condition", "drums and groove: tell the model each file's labels from info.csv at every step, any of "
                         "style,tempo,fill (docs/conditioning.md)", metavar="LABELS", unset="none"),
    # label dropout (docs/conditioning.md): without it style x tempo names a recording session and the model
    # memorizes; 0.3 is not tuned yet. 1 would never tell the model a label.
    Setting("condition_dropout", "with --condition: the share of training windows that see unknown instead of each "
                                 "label", float, 0.3, {"seed": None}, minimum=0, below=1, unset="unused", metavar="P"),
)

# --- what the machine does: every command that computes ---------------------------------------------------------
MACHINE_SETTINGS = (
    Setting("device", "cpu (NumPy) or gpu (CuPy with a CUDA GPU)", choices=("cpu", "gpu"), default="cpu"),
    # Measured (docs/performance.md, docs/results.md): on the 2-core CPU the results were made on, one BLAS thread
    # per process was faster and far steadier than OpenBLAS's default of one per core, and the README's numbers
    # were trained with one. 1024: more threads than any machine's cores.
    Setting("blas_threads", "threads of NumPy's BLAS on the CPU, 0 for the library's default (one per core)", int, 1,
            minimum=0, maximum=1024, metavar="N"),
    # N > 1: each recurrent layer's CPU kernel runs its batch in N shards (kernels/sharded.py), each projecting its
    # own rows too, and the head's products split by rows. Measured on the 2-core machine (docs/performance.md,
    # "Every core II"), the drums recipe's epoch: 16.5-18.4 s in 2 shards against 26.3-27.4 s in one thread, all
    # with --blas-threads 1; with another job on one core 29.1-30.0 against 26.0-26.9 s. --threads 1
    # --blas-threads 2 took 17.6 s quiet but minutes an epoch with a core busy. More than 2 shards is not
    # measured, so the default is 2 where there are 2 cores or more.
    Setting("threads", "CPU cores for the recurrent layers and the head: their batch in N shards, one BLAS thread "
                       "each, in threads or worker processes (--shard-workers; dr.set_num_threads)", int,
            min(os.cpu_count() or 1, 2), minimum=1, maximum=1024, metavar="N",
            default_text="2, or 1 on a 1-core machine"),
    # processes: no GIL shared between the shards (Linux: memfd and descriptors over a Unix socket), but their
    # arrays copied; threads: measured faster for 2 shards on 2 cores (94-97 against 99-103 ms a drums LSTM step),
    # so auto takes threads for 2 shards and processes for more
    Setting("shard_workers", "where the --threads shards run: worker processes (Linux), threads of this process, "
                             "or auto: threads for 2 shards, processes for more", choices=WORKERS,
            default=DEFAULT_WORKERS),
)

# --- train: how this invocation runs, not part of the run's config ------------------------------------------------
TRAIN_RUN_SETTINGS = (
    Setting("out", "output folder", default_text="runs/<recipe>"),
    Setting("resume", "continue the run in --out from its last.npz (weights, optimizer, RNG, epoch); --epochs and "
                      "--time-budget may grow", bool, False),
    Setting("overwrite", "train afresh into an --out that holds a run, replacing its checkpoints", bool, False),
    Setting("quiet", "no progress bar", bool, False),
)

GENERATE_SETTINGS = (
    Setting("checkpoint", "a best.npz or last.npz written by train", required=True),
    Setting("out", "MIDI file to write (.mid)", default_text="generated.mid beside the checkpoint"),
    # 32768 tokens are 8192 quarter notes of drum grid, what a MIDI file holds (checked per recipe before generating)
    Setting("num_steps", "tokens to generate", int, 500, minimum=1, maximum=32768),
    Setting("greedy", "always take the most likely token (seed default)", bool, False, exclusive="decoding"),
    Setting("sample", "sample from the distribution (drums and groove default)", bool, False, exclusive="decoding"),
    # 1/T multiplies the log-probabilities: T = 1e-320 overflows them (it ended in an index error); below 0.001 two
    # tokens 1% apart in probability are e^10 apart, the argmax in all but name, so 0 (greedy) says it; above 100 a
    # token of probability 1e-30 weighs half the likeliest one's: noise
    Setting("temperature", "sampling temperature; implies --sample; 0 means greedy", float, 1.0, minimum=1e-3,
            maximum=100, allowed=(0,)),
    # more than any tokenizer's vocabulary
    Setting("top_k", "sample among the k most likely tokens; implies --sample", int, minimum=1, maximum=100_000,
            default_text="all"),
    Setting("primer", "continue this MIDI file", metavar="FILE.mid",
            default_text="a random window of the validation split"),
    Setting("primer_steps", "primer length in tokens", int, minimum=1, maximum=16384,
            default_text="the training --seq-len; a --primer file is used whole"),
    Setting("include_primer", "write the primer before the continuation", bool, False),
    Setting("seed", "seed of the primer choice and the sampling", int, minimum=0, maximum=MAX_SEED,
            default_text="random, printed"),
    Setting("window_rerun", "the tutorial's method: re-run the last --seq-len tokens for every new token", bool, False),
    Setting("reference_step", "carry the state through the stateful twin, each layer's own forward per token (the "
                              "reference the fused single-token step is tested against)", bool, False),
    Setting("plot", "also write a PNG drum grid / piano roll beside --out", bool, False),
    Setting("wav", "also render a WAV with fluidsynth (if installed)", bool, False),
    Setting("data", "where the validation split is, if not where the checkpoint was trained",
            default_text="the checkpoint's data"),
    # the three below ask a checkpoint trained with --condition for a piece: from silence unless --primer is given
    Setting("style", "a --condition style checkpoint: generate in this style from silence (`deeprnn show` lists "
                     "them)", metavar="STYLE", default_text="the primer's"),
    # Groove's tempi are 50 to 290 bpm; 1000 is past any drummer
    Setting("bpm", "the tempo written to --out and, for a --condition tempo checkpoint, asked for", float,
            above=0, maximum=1000, default_text="the primer's, else 120"),
    Setting("fill", "a --condition fill checkpoint: generate a fill rather than a beat", bool, False),
) + MACHINE_SETTINGS

EVALUATE_SETTINGS = (
    Setting("checkpoint", "a best.npz or last.npz written by train", required=True),
    Setting("split", "the split to score", choices=("validation", "test"), default="validation"),
    Setting("data", "where the data is, if not where the checkpoint was trained", default_text="the checkpoint's data"),
    # the stride-1 score already costs a forward pass per token: a larger stride only drops windows
    Setting("stride", "seed recipe only: score every stride-th window", int, 1, minimum=1, maximum=16384),
    Setting("json", "also write the numbers as JSON", metavar="FILE", unset="no file"),
    Setting("generation_stats", "also generate N tokens greedy and sampled from one validation primer and report "
                                "distinct tokens, longest run and longest loop of each", int, minimum=1,
            maximum=32768, const=500, metavar="N", default_text="off; N alone: 500"),
    # each primer is a generation of N tokens
    Setting("primers", "groove recipe with --generation-stats: also generate N tokens after each of this many "
                       "validation primers and compare each drum class's velocities and offsets with the split's "
                       "and with robotic output's", int, 10, minimum=1, maximum=1000),
    Setting("seed", "seed of the --generation-stats primer and sampling", int, 0, minimum=0, maximum=MAX_SEED),
) + MACHINE_SETTINGS


def find(settings, name):
    """The setting ``name`` of ``settings``; a SettingError listing the known ones."""
    for setting in settings:
        if setting.name == name:
            return setting
    raise SettingError(f"unknown setting {name}; known: {', '.join(setting.name for setting in settings)}")


def train_setting(name):
    return find(TRAIN_SETTINGS, name)


def generate_setting(name):
    return find(GENERATE_SETTINGS, name)


def evaluate_setting(name):
    return find(EVALUATE_SETTINGS, name)
