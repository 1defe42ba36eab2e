"""One checkpoint file per model: weights and architecture (``model.save``, written atomically), plus metadata
holding everything else a later command needs: the tokenizer (its JSON, vocabulary included), the recipe, the
training config, where the data came from, the training state (epoch, history, best value, RNG state), and for a
run with ``--condition`` its label vocabularies (``labels``: the styles, tempo bins and fill labels, by name).

    save_checkpoint(path, model, tokenizer, config, source, training)
    checkpoint = load_checkpoint(path)      # model, tokenizer, recipe, config, source, training

Loading checks that the parts fit: the tokenizer's vocabulary against the model's input and output layers, the
config's cell, depth and widths against the layers; a mismatch is a ``CheckpointError`` saying what differs.
"""
from dataclasses import dataclass, field

from .. import saving
from ..errors import ModelFileError
from ..layers import RNN, ConditionedEmbedding, Dense, Embedding, StepCounterEmbedding
from ..music import Tokenizer
from ..music.labels import LabelVocabulary, parse_conditions
from ..serialization import JsonText, Optional, check_fields
from .recipes import CELLS, RESUMABLE_CHANGES, TrainConfig, get_recipe
from .settings import train_setting

FORMAT = "deeprnn-music-checkpoint"
VERSION = 1


class CheckpointError(ModelFileError):
    """A checkpoint is missing, not one of ours, or does not fit the tokenizer, config or data it is used with."""


@dataclass
class Checkpoint:
    path: str
    model: object
    tokenizer: Tokenizer
    config: TrainConfig
    source: str
    training: dict = field(default_factory=dict)
    labels: LabelVocabulary | None = None  # a --condition run's label vocabularies

    @property
    def recipe(self):
        return get_recipe(self.config.recipe)

    @property
    def encoding(self):
        return self.recipe.input_encoding(self.config, self.tokenizer.vocab_size)


def checkpoint_metadata(tokenizer, config, source, training=None, labels=None):
    return {"format": FORMAT, "version": VERSION, "recipe": config.recipe, "tokenizer": tokenizer.to_json(),
            "config": config.to_dict(), "source": source,
            "encoding": get_recipe(config.recipe).input_encoding(config, tokenizer.vocab_size).name,
            "training": training or {}, "labels": None if labels is None else labels.to_json()}


# What load_checkpoint reads from the metadata, checked field by field before use: a hand edit is one line naming
# the field (the settings inside "config" are checked by TrainConfig.from_dict, the training state by BackupAndRestore)
METADATA_FIELDS = {"format": str, "version": int, "recipe": str, "tokenizer": JsonText({"type": str}),
                   "config": {"recipe": str},
                   "source": Optional((str, None)), "encoding": Optional((str, None)), "training": Optional(dict),
                   "labels": Optional((dict, None))}


def save_checkpoint(path, model, tokenizer, config, source, training=None, include_optimizer=True, labels=None):
    """Write model + metadata to ``path`` (.npz), atomically: a crash mid-write leaves the previous file."""
    model.save(path, include_optimizer=include_optimizer,
               metadata=checkpoint_metadata(tokenizer, config, source, training, labels))


def load_checkpoint(path):
    """Checkpoint at ``path``, checked for consistency; raises CheckpointError with the reason."""
    path = str(path)
    try:
        metadata = saving.load_metadata(path)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a deeprnn music checkpoint (no tokenizer or training config in it); "
                              "use one written by `deeprnn train` (best.npz or last.npz)")
    try:
        check_fields(metadata, METADATA_FIELDS, path, "metadata")
        tokenizer = Tokenizer.from_json(metadata["tokenizer"])
        config = TrainConfig.from_dict(metadata["config"]).resolved()  # a setting edited out: the recipe's default
        labels = LabelVocabulary.from_json(metadata["labels"]) if metadata.get("labels") else None
    except ModelFileError as error:
        raise CheckpointError(str(error)) from None
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # metadata edited by hand: a missing entry, a list where an object goes, a setting out of its range
        raise CheckpointError(f"{path}: its metadata does not describe a model it can load "
                              f"({type(error).__name__}: {error})") from None
    try:
        model = saving.load_model(path)
    except ValueError as error:  # a ModelFileError names the file already
        raise CheckpointError(str(error) if isinstance(error, ModelFileError) else f"{path}: {error}") from None
    check_fits(model, tokenizer, config, path, labels)
    if metadata.get("encoding") != get_recipe(config.recipe).input_encoding(config, tokenizer.vocab_size).name:
        raise CheckpointError(f"{path}: its input encoding {metadata.get('encoding')!r} is not what the "
                              f"{config.recipe} recipe with this config feeds")
    return Checkpoint(path, model, tokenizer, config, metadata.get("source"), metadata.get("training", {}), labels)


def check_fits(model, tokenizer, config, path="model", labels=None):
    """Raise CheckpointError unless the model's layers are those ``config`` builds for ``tokenizer``'s vocabulary
    (and, for a --condition run, for the label vocabularies ``labels``)."""
    V = tokenizer.vocab_size
    problems = []
    first = model.layers[0]
    conditions = parse_conditions(config.condition)
    if conditions != (labels.names if labels is not None else ()):
        problems.append(f"the config conditions on {', '.join(conditions) or 'nothing'}, its label vocabularies "
                        f"name {', '.join(labels.names) if labels is not None else 'nothing'}")
    elif conditions:
        sizes = [size for _, size, _ in first.conditions] if isinstance(first, ConditionedEmbedding) else None
        if sizes != labels.sizes:
            problems.append(f"its first layer takes label ids {sizes}, the label vocabularies have {labels.sizes}")
    if isinstance(first, (Embedding, StepCounterEmbedding, ConditionedEmbedding)):
        if first.input_dim != V:
            problems.append(f"its embedding takes {first.input_dim} token ids, the tokenizer has {V}")
        if config.embedding_dim is not None and first.output_dim != config.embedding_dim:
            problems.append(f"its embedding is {first.output_dim} wide, the config says {config.embedding_dim}")
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    if not dense or dense[-1].units != V:
        units = dense[-1].units if dense else None
        problems.append(f"its output layer predicts {units} tokens, the tokenizer has {V}")
    recurrent = [layer for layer in model.layers if isinstance(layer, RNN)]
    if len(recurrent) != config.layers:
        problems.append(f"it has {len(recurrent)} recurrent layers, the config says {config.layers}")
    for layer in recurrent:
        if type(layer) is not CELLS[config.cell]:
            problems.append(f"layer {layer.name!r} is a {type(layer).__name__}, the config says {config.cell}")
        if layer.units != config.units:
            problems.append(f"layer {layer.name!r} has {layer.units} units, the config says {config.units}")
    if problems:
        raise CheckpointError(f"{path} does not fit its vocabulary or config: " + "; ".join(problems))


def check_resume(requested, saved, path):
    """Raise CheckpointError if a ``--resume`` run asks for other settings than the checkpoint was trained with.

    requested: the TrainConfig of the command line, None where a flag was not given; saved: the checkpoint's.
    Only ``RESUMABLE_CHANGES`` (how long to train) may differ.
    """
    differences = []
    for key, value in requested.to_dict().items():
        if value is None or key in RESUMABLE_CHANGES:
            continue
        if key == "condition" and parse_conditions(value) == parse_conditions(saved.condition):
            continue  # the same labels in another order: the columns' order is fixed
        if value != getattr(saved, key):
            differences.append(f"{train_setting(key).flag} {getattr(saved, key)} (this run asks for {value})")
    if differences:
        raise CheckpointError(f"{path} was trained with " + ", ".join(differences)
                              + "; resume with the same settings, or train afresh in another --out")
