"""The flags of ``deeprnn sweep``, declared as the other commands' are (``pipeline.settings.Setting``).

This module imports no Optuna, so the command line can list and check the flags without the sweep extra; the
space's settings are the train command's own (``TRAIN_SETTINGS``, read by ``space.py``).
"""
import os

from ..pipeline.settings import Setting

PRUNER_NAMES = ("median", "hyperband", "none")

SWEEP_SETTINGS = (
    Setting("out", "the sweep's folder (sweeps/NAME): its journal and each trial's run folder trials/NNNN; NAME "
                   "is the study's name, so the same NAME and --storage on another machine join it",
            metavar="FOLDER", default_text="required"),
    Setting("space", "TOML file: train settings with choices, int or float ranges (log = true), or fixed values",
            metavar="FILE", default_text="required"),
    # a sweep of a million trials of even a second each runs for eleven days
    Setting("trials", "search trials in all (over every process and machine of the study)", int, minimum=1,
            maximum=1_000_000, metavar="N", default_text="required"),
    Setting("time_budget", "minutes of training per trial (the train setting)", float, above=0, maximum=525_600,
            metavar="MINUTES", unset="none: each trial trains its epochs"),
    # each seed is a whole training run of each of --top configurations
    Setting("seeds", "after the search, train the --top best configurations with this many seeds each, so each "
                     "carries a mean and a spread", int, 1, minimum=1, maximum=100, metavar="K"),
    Setting("top", "how many of the best configurations --seeds re-runs", int, 3, minimum=1, maximum=1000,
            metavar="M"),
    # more processes than any machine's cores only wait for each other
    Setting("workers", "local worker processes, one BLAS thread each", int, os.cpu_count() or 1, minimum=1,
            maximum=1024, metavar="N", default_text="the cores"),
    Setting("storage", "a database URL shared by machines, e.g. postgresql+psycopg://USER:PASSWORD@HOST:5432/DB",
            metavar="URL", default_text="the journal file FOLDER/journal.log"),
    # hyperband: in the measured comparison (docs/sweeps.md, "Which pruner") it found the better configuration
    # in less time than the median pruner
    Setting("pruner", "stop hopeless trials: hyperband (successive halving over brackets of epochs), median (below "
                      "the finished trials' median at the same epoch), or none", choices=PRUNER_NAMES,
            default="hyperband"),
    Setting("pruner_warmup", "epochs a trial trains before it may be pruned (median; hyperband's minimum)", int, 2,
            minimum=0, maximum=100_000, metavar="EPOCHS"),
    Setting("pruner_startup", "finished trials before the median pruner compares with them", int, 5, minimum=0,
            maximum=1_000_000, metavar="TRIALS"),
    # a dead trial is failed after 3 intervals without a beat
    Setting("heartbeat", "seconds between a running trial's heartbeats; a trial silent for 3 is failed and retried",
            int, 10, minimum=1, maximum=3600, metavar="SECONDS"),
)
