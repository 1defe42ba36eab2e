"""The end-to-end music job: train a recipe on Groove (or any MIDI folder), generate from it, evaluate it.

    from deeprnn.pipeline import TrainConfig, train, generate_from_checkpoint, evaluate_checkpoint
    result = train(TrainConfig(recipe="drums", max_files=20, epochs=2), "runs/try")
    generate_from_checkpoint("runs/try/best.npz", "runs/try/generated.mid", plot=True)
    evaluate_checkpoint("runs/try/best.npz", split="validation")

Modules: ``settings`` (every setting of train, generate and evaluate, declared once: type, range, per-recipe
default, help), ``recipes`` (the drums, groove and seed recipes behind one ``Recipe`` interface, and
``TrainConfig``, one field per train setting), ``datasets`` (files and tokens of each split), ``windows`` (training
windows as views, and ``TrainingWindows``, the data source ``fit`` trains on), ``features`` (model inputs),
``trainer`` (``Sequential.fit`` with its callbacks: the run's checkpoints, log and time budget), ``run_log``
(history.csv, loss.png, the epoch lines), ``lr_schedule``, ``run_folder`` (the files of a run folder and what each
holds), ``checkpoints`` (one file with model, tokenizer and config), ``stepping`` (a stateful twin of a model, to
carry state between calls), ``scoring`` (the model's NLL), ``ngram`` (baselines), ``sequence_statistics`` and
``expressive_statistics`` (how generated music compares), ``generation``, ``evaluation`` (the evaluate command),
``style_judge``, ``plotting``, ``audio``. The command line over them is ``deeprnn.cli``. The bar-position layer is
``deeprnn.layers.StepCounterEmbedding``.
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
