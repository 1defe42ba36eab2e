"""The end-to-end music job: train a recipe on Groove (or any MIDI folder), generate from it, evaluate it.

    from deeprnn.pipeline import TrainConfig, train, generate_from_checkpoint, evaluate_checkpoint
    result = train(TrainConfig(recipe="drums", max_files=20, epochs=2), "runs/try")
    generate_from_checkpoint("runs/try/best.npz", "runs/try/generated.mid", plot=True)
    evaluate_checkpoint("runs/try/best.npz", split="validation")

Modules: ``recipes`` (the seed and drums recipes: defaults, models), ``datasets`` (files and tokens of each split),
``windows`` (training windows as views), ``features`` (model inputs, the bar-position layer), ``trainer`` (the
loop and its checkpoints), ``checkpoints`` (one file with model, tokenizer and config), ``stepping`` (state
carrying), ``generation``, ``evaluation`` (NLL, perplexity, n-gram baselines, statistics of generated tokens),
``plotting``, ``audio``. The command line over them is ``deeprnn.cli``.
"""
from .checkpoints import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .evaluation import NGramModel, evaluate_checkpoint, token_statistics
from .features import StepCounterEmbedding
from .generation import (Sampling, generate_carrying_state, generate_from_checkpoint, generate_window_rerun,
                         greedy_versus_sampled)
from .recipes import RECIPES, TrainConfig, get_recipe
from .stepping import StackRunner
from .trainer import TrainingResult, train

__all__ = ["Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint", "NGramModel",
           "evaluate_checkpoint", "token_statistics", "StepCounterEmbedding", "Sampling", "generate_carrying_state",
           "generate_from_checkpoint", "generate_window_rerun", "greedy_versus_sampled", "RECIPES", "TrainConfig",
           "get_recipe", "StackRunner", "TrainingResult", "train"]
