"""The end-to-end music job: train a recipe on Groove (or any MIDI folder), generate from it, evaluate it.

    from deeprnn.pipeline import TrainConfig, train, generate_from_checkpoint, evaluate_checkpoint
    result = train(TrainConfig(recipe="drums", max_files=20, epochs=2), "runs/try")
    generate_from_checkpoint("runs/try/best.npz", "runs/try/generated.mid", plot=True)
    evaluate_checkpoint("runs/try/best.npz", split="validation")

Modules: ``recipes`` (the seed and drums recipes: defaults, models, the validated ``TrainConfig``), ``arguments``
(numeric settings checked at the boundary), ``datasets`` (files and tokens of each split), ``windows`` (training
windows as views, and ``TrainingWindows``, the data source ``fit`` trains on), ``features`` (model inputs),
``trainer`` (``Sequential.fit`` with its callbacks: the run's checkpoints, log and time budget), ``checkpoints``
(one file with model, tokenizer and config), ``stepping`` (a stateful twin of a model, to carry state between
calls), ``scoring`` (the model's NLL), ``ngram`` (baselines), ``sequence_statistics`` (how varied generated tokens
are), ``generation``, ``evaluation`` (the evaluate command), ``plotting``, ``audio``. The command line over them
is ``deeprnn.cli``. The bar-position layer is ``deeprnn.layers.StepCounterEmbedding``.
"""
from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .evaluation import evaluate_checkpoint
from .generation import (Sampling, generate_carrying_state, generate_from_checkpoint, generate_window_rerun,
                         greedy_versus_sampled)
from .ngram import NGramModel
from .recipes import RECIPES, TrainConfig, get_recipe
from .sequence_statistics import token_statistics
from .stepping import stateful_twin
from .trainer import RunExistsError, TrainingResult, train

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint", "NGramModel",
           "evaluate_checkpoint", "token_statistics", "Sampling", "generate_carrying_state",
           "generate_from_checkpoint", "generate_window_rerun", "greedy_versus_sampled", "RECIPES", "TrainConfig",
           "get_recipe", "stateful_twin", "RunExistsError", "TrainingResult", "train"]
