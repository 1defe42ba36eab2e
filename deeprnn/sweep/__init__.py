"""``deeprnn sweep``: searches over train settings on Optuna, one machine (a journal file) or many (PostgreSQL).

    from deeprnn.sweep.space import read_space
    from deeprnn.sweep.storage import StorageSpec
    from deeprnn.sweep.study import SweepPlan
    from deeprnn.sweep.runner import run_sweep

    plan = SweepPlan(out="sweeps/lr", space=read_space("space.toml"), trials=20, time_budget=15,
                     storage=StorageSpec(url=None, folder="sweeps/lr"), seeds=3)
    run_sweep(plan, workers=2)

Modules: ``settings`` (the command's flags, declared like the other commands'), ``space`` (the TOML space, checked
against the train settings), ``storage`` (the journal with a flock and a heartbeat, or a database URL),
``pruning`` (the Keras-shaped callback that reports each epoch, the pruners), ``study`` (the search and seeds
studies, one trial = one ``deeprnn train`` run folder, the worker loop), ``runner`` (the command's process: workers,
progress, the seeds phase), ``report`` (``sweep show``'s table and pictures), ``command`` (what the command line
calls). Every module but ``settings`` needs the ``sweep`` extra (``pip install -e '.[sweep]'``: optuna, and
psycopg for PostgreSQL), so this package imports none of them itself: the command line reads the flags without it.
"""
