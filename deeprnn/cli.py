"""The command line: ``deeprnn train | generate | evaluate | show | sweep`` (also ``python -m deeprnn`` and
examples/*.py).

Argument parsing and calls; the work is in ``deeprnn.pipeline``, every flag is declared in
``pipeline/settings.py``. Every user error (the library's ``DeeprnnError`` family, a bad flag as much as a missing
file, and an ``OSError``) ends with one line on stderr and a non-zero status, and comes before any long work: flag
values are checked as they are parsed, output paths and optional dependencies before data is loaded. Any other
exception is a bug in deeprnn: its traceback, then one line asking to report it. DEEPRNN_TRACEBACK=1 shows the
traceback of every error.
"""
import argparse
import importlib.util
import json
import os
import secrets
import signal
import sys
import traceback
from pathlib import Path

from . import __version__, backend
from .errors import DeeprnnError, MissingExtraError, SettingError
from .files import atomic_write_bytes
from .kernels.sharded import get_num_threads, get_shard_workers, set_num_threads, shard_kind
from .memory import keep_freed_memory
from .pipeline import (RunExistsError, Sampling, TrainConfig, evaluate_checkpoint, generate_from_checkpoint,
                       greedy_versus_sampled, train)
from .pipeline.expressive_statistics import generation_distributions
from .pipeline.run_folder import (BEST, check_input_file, checkpoint_metadata, describe_checkpoint, describe_run,
                                  shown)
from .pipeline.settings import (EVALUATE_SETTINGS, GENERATE_SETTINGS, MACHINE_SETTINGS, TRAIN_RUN_SETTINGS,
                                TRAIN_SETTINGS, train_setting)
from .sweep.settings import SWEEP_SETTINGS

COMMAND_SETTINGS = {"train": TRAIN_SETTINGS + TRAIN_RUN_SETTINGS + MACHINE_SETTINGS, "generate": GENERATE_SETTINGS,
                    "evaluate": EVALUATE_SETTINGS, "sweep": SWEEP_SETTINGS}

PROG = "deeprnn"
MIDI_OUTPUT_SUFFIXES = (".mid", ".midi")
# Dependencies a user may lack -> the extra that brings them (setup.cfg [options.extras_require]; None: the core).
EXTRA_OF = {"music21": "music", "tqdm": "music", "matplotlib": "music", "cupy": "gpu", "threadpoolctl": None,
            "numpy": None, "scipy": None, "optuna": "sweep", "psycopg": "sweep"}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``deeprnn train: error: argument --lr: ...``), not usage + error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# --- the parser: every flag read from its declaration in pipeline/settings.py ----------------------------------------
def build_parser():
    parser = Parser(prog=PROG, description="Deep RNNs on MIDI drums: train, generate, evaluate. "
                                           "`deeprnn COMMAND --help` lists each command's flags.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,generate,evaluate,show,sweep}")
    add_settings(commands.add_parser(
        "train", help="train a recipe on the Groove MIDI Dataset (or any MIDI folder)",
        description="Train a recipe; checkpoints (best.npz, last.npz), history.csv, loss.png and config.json go "
                    "to --out. Unset flags take the recipe's defaults (in brackets, per recipe where they differ). "
                    "A folder that holds a run is continued with --resume or replaced with --overwrite, never "
                    "silently."), COMMAND_SETTINGS["train"])
    add_settings(commands.add_parser(
        "generate", help="generate a MIDI file from a checkpoint",
        description="Continue a primer with a trained model and write a MIDI file (and with --plot a PNG drum grid, "
                    "with --wav a WAV beside it). Drums sample at temperature 1, the seed recipe is greedy; "
                    "--temperature 0 is greedy too."), COMMAND_SETTINGS["generate"])
    add_settings(commands.add_parser(
        "evaluate", help="NLL per token and perplexity of a checkpoint, next to n-gram baselines",
        description="Score a checkpoint on a split of its data: mean negative log-likelihood per token (nats) and "
                    "perplexity, beside a unigram and an interpolated trigram fitted on the training split and "
                    "scored on the same tokens."), COMMAND_SETTINGS["evaluate"])
    add_show_arguments(commands.add_parser(
        "show", help="list the files of a run folder and what each holds",
        description="Say what each file of a run folder holds: the epochs in the checkpoints (read from the "
                    "files), the loss history, the generated music and the evaluation reports."))
    add_sweep_arguments(commands.add_parser(
        "sweep", help="search train settings with Optuna: worker processes, one machine or many (PostgreSQL)",
        description="Run a study whose trials are train runs (each a run folder FOLDER/trials/NNNN), or continue "
                    "or join it: the same command again, or on another machine with the same --storage. "
                    "`deeprnn sweep show FOLDER` prints the table and writes the pictures (docs/sweeps.md)."))
    parser.command_parsers = commands.choices  # name -> its parser, for its own error messages
    return parser


def add_settings(parser, settings):
    """One flag per setting. A flag not given is None (a switch: False): the command fills in the declared default
    after it has checked what was given (``with_defaults``), and ``train`` leaves it to the recipe."""
    groups = {}
    for setting in settings:
        where = parser
        if setting.exclusive is not None:
            if setting.exclusive not in groups:
                groups[setting.exclusive] = parser.add_mutually_exclusive_group()
            where = groups[setting.exclusive]
        options = dict(dest=setting.name, help=setting.help_text().replace("%", "%%"))
        if setting.is_switch:
            where.add_argument(setting.flag, action="store_true", **options)
        elif setting.type is bool:
            where.add_argument(setting.flag, action=argparse.BooleanOptionalAction, default=None, **options)
        elif setting.choices is not None:
            where.add_argument(setting.flag, choices=setting.choices, required=setting.required, **options)
        else:
            if setting.const is not None:
                options.update(nargs="?", const=setting.const)
            where.add_argument(setting.flag, type=flag_type(setting), metavar=setting.metavar,
                               required=setting.required, **options)


def flag_type(setting):
    """An argparse type: the word parsed and checked by the setting; argparse names the flag in the message."""
    def parse(text):
        try:
            return setting.parse(text)
        except SettingError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(setting.flag + " ")) from None
    parse.__name__ = setting.type.__name__  # what argparse calls the type in its own messages
    return parse


def with_defaults(args, settings):
    """``args`` with every setting not given at its declared default."""
    for setting in settings:
        if getattr(args, setting.name, None) is None and setting.default is not None:
            setattr(args, setting.name, setting.default)
    return args


def add_sweep_arguments(parser):
    parser.add_argument("show", nargs="*", metavar="show FOLDER",
                        help="show the sweep in FOLDER: the table by mean validation loss and PNG pictures")
    add_settings(parser, SWEEP_SETTINGS)


def add_show_arguments(parser):
    parser.add_argument("run", metavar="RUN_FOLDER", help="the --out folder of a training run")


# --- checks before any work ---------------------------------------------------------------------------------------
def require_modules(*names):
    """Fail now, in one line, if an optional dependency is missing, rather than after loading data."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise MissingExtraError(missing_module_message(name))


def missing_module_message(name):
    extra = EXTRA_OF.get(name.split(".")[0])
    if extra is None:
        return f"the Python package {name} is missing: reinstall deeprnn (pip install -e .)"
    return f"the Python package {name} is missing: install the {extra} extra (pip install -e '.[{extra}]')"


def check_output_file(flag, path, suffixes=None):
    """An output file must be writable where it is meant to go: not a folder, its folder not a file."""
    path = Path(path)
    if path.is_dir():
        raise SettingError(f"{flag} {path}: is a folder; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise SettingError(f"{flag} {path}: expected a {' or '.join(suffixes)} file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SettingError(f"{flag} {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise SettingError(f"{flag} {path}: cannot write into {parent}")
            break


def check_output_folder(flag, path):
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SettingError(f"{flag} {path}: is a file, not a folder")
    check_output_file(flag, path / "best.npz")


# --- commands -----------------------------------------------------------------------------------------------------
def run_train(args):
    if args.resume and args.overwrite:
        raise SettingError("--resume continues the run in --out, --overwrite replaces it: give one of them")
    out = Path(args.out or os.path.join("runs", args.recipe or train_setting("recipe").default))
    check_output_folder("--out", out)
    require_modules("music21", "tqdm", "matplotlib")
    config = TrainConfig(**{setting.name: getattr(args, setting.name) for setting in TRAIN_SETTINGS})
    if args.device == "cpu":
        print(describe_threads(args.threads, args.blas_threads, args.shard_workers))
    # a kill (SIGTERM) stops like Ctrl-C: the epoch in progress is dropped, last.npz is intact
    previous = signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        result = train(config, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    except RunExistsError as error:
        # under make (the Makefile names itself in DEEPRNN_CALLED_AS), the way on is the make target's
        called_as = os.environ.get("DEEPRNN_CALLED_AS")
        if not called_as:
            raise
        raise RunExistsError(error.folder, error.existing, f"`{called_as} ARGS=--resume`",
                             f"`{called_as} ARGS=--overwrite`") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    best = out / BEST
    if best.is_file():  # read back from the file: what it holds, not what this process believes
        print(f"{shown(best)}: {describe_checkpoint(checkpoint_metadata(best))} (the best epoch by {result.monitor})")
    return 130 if result.stopped == "interrupted" else 0


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def sampling_from_flags(args):
    """The Sampling the flags ask for (contradicting ones are a SettingError, not a guess at what was meant); None
    for the recipe's default (drums sample, seed is greedy)."""
    if not (args.greedy or args.sample or args.temperature is not None or args.top_k is not None):
        return None
    given = {} if args.temperature is None else {"temperature": args.temperature}
    return Sampling(greedy=args.greedy, top_k=args.top_k, **given)


def run_generate(args):
    sampling = sampling_from_flags(args)
    args = with_defaults(args, GENERATE_SETTINGS)
    metadata = checkpoint_metadata(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).resolve().parent / "generated.mid"
    check_output_file("--out", out, MIDI_OUTPUT_SUFFIXES)
    if args.primer is not None:
        check_input_file("--primer", args.primer, "MIDI file")
    require_modules("music21", *(["matplotlib"] if args.plot else []))
    print(f"checkpoint {shown(args.checkpoint)}: {describe_checkpoint(metadata)}")
    seed = args.seed if args.seed is not None else secrets.randbits(31)
    if args.seed is None:
        print(f"seed {seed} (pass --seed {seed} to repeat this)")
    generate_from_checkpoint(args.checkpoint, out, num_steps=args.num_steps, sampling=sampling,
                             primer_path=args.primer, primer_length=args.primer_steps, seed=seed,
                             window_rerun=args.window_rerun, include_primer=args.include_primer, data=args.data,
                             plot=args.plot, wav=args.wav, style=args.style, bpm=args.bpm, fill=args.fill,
                             reference_step=args.reference_step)
    return 0


def run_evaluate(args):
    metadata = checkpoint_metadata(args.checkpoint)
    recipe = metadata["config"].get("recipe")
    if args.stride not in (None, 1) and recipe != "seed":
        raise SettingError(f"--stride {args.stride}: only the seed recipe scores windows; {args.checkpoint} is a "
                        f"{recipe} checkpoint, scored on whole pieces")
    if args.primers is not None and (recipe != "groove" or not args.generation_stats):
        raise SettingError(f"--primers {args.primers}: only the groove recipe's --generation-stats generates from "
                        f"several primers; {args.checkpoint} is a {recipe} checkpoint"
                        + ("" if recipe != "groove" else " and --generation-stats was not given"))
    args = with_defaults(args, EVALUATE_SETTINGS)
    if args.json:
        check_output_file("--json", args.json, (".json",))
    require_modules("music21")
    print(f"checkpoint {shown(args.checkpoint)}: {describe_checkpoint(metadata)}")
    report = evaluate_checkpoint(args.checkpoint, split=args.split, data=args.data,
                                 stride=args.stride).to_dict()
    if args.generation_stats:
        print(f"{args.generation_stats} generated tokens after one validation primer (seed {args.seed}):")
        report["generation"] = greedy_versus_sampled(args.checkpoint, num_steps=args.generation_stats,
                                                     seed=args.seed, data=args.data)
        if recipe == "groove":
            report["expressive"] = generation_distributions(args.checkpoint, split=args.split,
                                                            num_steps=args.generation_stats,
                                                            primers=args.primers,
                                                            seed=args.seed, data=args.data)
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
        print(f"wrote {shown(args.json)}")
    return 0


def run_show(args):
    for line in describe_run(args.run):
        print(line)
    return 0


def run_sweep(args):
    if args.show and (args.show[0] != "show" or len(args.show) != 2):
        raise SettingError(f"{' '.join(args.show)}: expected `deeprnn sweep show FOLDER` (or flags only, to run one)")
    require_modules("optuna", "music21", "tqdm", "matplotlib", *(["psycopg"] if args.storage else []))
    from .sweep import command  # here, not at the top: it needs the sweep extra, which the other commands do not

    if args.show:
        return command.show(args.show[1], args.storage)
    args = with_defaults(args, SWEEP_SETTINGS)
    return command.sweep({setting.name: getattr(args, setting.name) for setting in SWEEP_SETTINGS})


COMMANDS = {"train": run_train, "generate": run_generate, "evaluate": run_evaluate, "show": run_show,
            "sweep": run_sweep}


def use_machine(args):
    """Select the device and the CPU's BLAS threads; None when usable, else the one-line reason it is not."""
    if args.device == "gpu" and backend.cupy_or_none() is None:
        return ("--device gpu needs CuPy and a CUDA GPU, and none was found (install deeprnn[gpu] on a machine "
                "with an NVIDIA GPU), or use --device cpu")
    backend.set_device(args.device)
    return None


def limit_blas_threads(threads):
    """Limit NumPy's BLAS pool in this process (0: leave it).

    In-process with threadpoolctl rather than OPENBLAS_NUM_THREADS: that variable is read only when NumPy loads
    OpenBLAS, which happens when ``deeprnn`` itself is imported, before this module runs, so setting it here would
    do nothing. threadpoolctl calls openblas_set_num_threads on the loaded library.
    """
    if not threads:
        return None
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def describe_threads(threads, blas_threads, shard_workers):
    """What --threads, --blas-threads and --shard-workers do, in the line ``train`` starts with."""
    blas = "the library's default" if not blas_threads else f"{blas_threads}"
    if threads == 1:
        return f"threads: 1 (the recurrent layers in one thread; BLAS threads: {blas})"
    where = "worker processes" if shard_kind(shard_workers, threads) == "processes" else "threads"
    return (f"threads: {threads} (the recurrent layers in {threads} batch shards in {where}, one BLAS thread each; "
            f"BLAS threads outside them: {blas})")


# What to lower when a command runs out of memory: only flags that command has.
MEMORY_ADVICE = {"train": "try a smaller --batch-size, --units or --max-files",
                 "generate": "try a smaller --num-steps, or a machine with more memory for this checkpoint's model",
                 "evaluate": "try a smaller --generation-stats or --primers, or a machine with more memory",
                 "show": "a file of the run folder is larger than this machine can read",
                 "sweep": "try a smaller --workers, or train settings that need less memory"}
REPORT_BUG = ("this is a bug in deeprnn, not in what you asked for: please report it with the command and the "
              "traceback above (DEEPRNN_TRACEBACK=1 shows every error's traceback)")


def parse_arguments(argv):
    """The parsed flags; a flag one subcommand does not know is that subcommand's one-line error."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.command_parsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv=None):
    for stream in (sys.stdout, sys.stderr):  # a path that is not valid UTF-8 is printed escaped, never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = with_defaults(parse_arguments(argv), MACHINE_SETTINGS)
    where = f"{PROG} {args.command}"
    # put back after the command: main also runs inside a program (the tests)
    threads_before, workers_before = get_num_threads(), get_shard_workers()
    try:
        if getattr(args, "device", None) is not None:
            problem = use_machine(args)
            if problem:
                print(f"{where}: error: {problem}", file=sys.stderr)
                return 2
            limit_blas_threads(args.blas_threads)
            set_num_threads(args.threads, args.shard_workers)
            # freed arrays stay in the heap for the next step's (deeprnn/memory.py: ~14% of the drums LSTM step's
            # CPU time was page faults); not glibc: nothing to do, the C library keeps its own policy
            keep_freed_memory()
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`deeprnn show runs/x | head -2`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ModuleNotFoundError as error:
        if os.environ.get("DEEPRNN_TRACEBACK") or (error.name or "").split(".")[0] not in EXTRA_OF:
            raise  # not a dependency the user can install: a bug
        print(f"{where}: error: {missing_module_message(error.name)}", file=sys.stderr)
        return 1
    except MemoryError:
        if os.environ.get("DEEPRNN_TRACEBACK"):
            raise
        print(f"{where}: error: out of memory ({MEMORY_ADVICE[args.command]})", file=sys.stderr)
        return 1
    except (DeeprnnError, OSError) as error:
        # the user's situation (a setting, a file, data, a missing extra, the disk): one line
        if os.environ.get("DEEPRNN_TRACEBACK"):
            raise
        message = " ".join(str(error).split())  # one line, whatever the error's text holds
        print(f"{where}: error: {message}", file=sys.stderr)
        return 1
    except Exception:
        if os.environ.get("DEEPRNN_TRACEBACK"):
            raise
        traceback.print_exc()
        print(f"{where}: {REPORT_BUG}", file=sys.stderr)
        return 1
    finally:
        set_num_threads(threads_before, workers_before)
