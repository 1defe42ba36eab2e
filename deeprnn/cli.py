"""The command line: ``deeprnn train | generate | evaluate`` (also ``python -m deeprnn`` and examples/*.py).

Argument parsing only; the work is in ``deeprnn.pipeline``. Expected failures (no GPU, no data, a checkpoint
that does not fit) end with one line on stderr and a non-zero status, not a traceback (set DEEPRNN_TRACEBACK=1
to see one).
"""
import argparse
import json
import os
import secrets
import signal
import sys

PROG = "deeprnn"


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description="Deep RNNs on MIDI drums: train, generate, evaluate.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,generate,evaluate}")
    add_train_arguments(commands.add_parser(
        "train", help="train a recipe on the Groove MIDI Dataset (or any MIDI folder)",
        description="Train a recipe; checkpoints, history.csv and loss.png go to --out. Unset flags take the "
                    "recipe's defaults (shown in brackets as drums / seed)."))
    add_generate_arguments(commands.add_parser(
        "generate", help="generate a MIDI file from a checkpoint",
        description="Continue a primer with a trained model and write a MIDI file."))
    add_evaluate_arguments(commands.add_parser(
        "evaluate", help="NLL per token and perplexity of a checkpoint, next to n-gram baselines"))
    return parser


def add_device_argument(parser):
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="cpu (NumPy) or gpu (CuPy with a CUDA GPU) [cpu]")


def add_train_arguments(parser):
    parser.add_argument("--data", help="Groove folder or zip, a folder of MIDI files, or music21:COMPOSER "
                                       "[$DEEPRNN_GROOVE, else the cached or downloaded Groove dataset]")
    parser.add_argument("--recipe", choices=("drums", "seed"),
                        help="drums: drum grid + embedding + deep LSTM; seed: the tutorial as written [drums]")
    add_device_argument(parser)
    parser.add_argument("--cell", choices=("lstm", "gru", "rnn"), help="recurrent cell [lstm]")
    parser.add_argument("--layers", type=int, help="recurrent layers [2]")
    parser.add_argument("--units", type=int, help="units per recurrent layer [256]")
    parser.add_argument("--embedding-dim", type=int, help="token embedding width, drums only [64]")
    parser.add_argument("--seq-len", type=int, help="training window length in tokens [64 / 100]")
    parser.add_argument("--batch-size", type=int, help="windows per batch [32 / 32]")
    parser.add_argument("--epochs", type=int, help="epochs [30]")
    parser.add_argument("--lr", type=float, help="Adam learning rate [2e-3 / 1e-3]")
    parser.add_argument("--dropout", type=float, help="dropout after each recurrent layer [0.3 / 0.3]")
    parser.add_argument("--recurrent-dropout", type=float, help="Keras recurrent_dropout of each cell [0 / 0.3]")
    parser.add_argument("--clipnorm", type=float, help="clip each gradient to this L2 norm, 0 for none [1 / none]")
    parser.add_argument("--max-files", type=int, help="at most N files per split, sampled with --seed "
                                                      "[all / 200]")
    parser.add_argument("--bar-position", action=argparse.BooleanOptionalAction, default=None,
                        help="drums: feed the step in the bar as binary counters (Magenta) [on]")
    parser.add_argument("--time-budget", type=float, metavar="MINUTES",
                        help="stop before an epoch that would end past this many minutes of training")
    parser.add_argument("--seed", type=int, help="seed of weights, dropout, shuffles and file sampling [0]")
    parser.add_argument("--out", help="output folder [runs/<recipe>]")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --out/last.npz (weights, optimizer, RNG, epoch); --epochs may grow")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_generate_arguments(parser):
    parser.add_argument("--checkpoint", required=True, help="a best.npz or last.npz written by train")
    parser.add_argument("--out", help="MIDI file to write [generated.mid beside the checkpoint]")
    parser.add_argument("--num-steps", type=int, default=500, help="tokens to generate [500]")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--greedy", action="store_true", help="always take the most likely token (seed default)")
    mode.add_argument("--sample", action="store_true", help="sample from the distribution (drums default)")
    parser.add_argument("--temperature", type=float, help="sampling temperature [1.0]; implies --sample")
    parser.add_argument("--top-k", type=int, help="sample among the k most likely tokens; implies --sample")
    parser.add_argument("--primer", metavar="FILE.mid", help="continue this MIDI file "
                                                             "[a random window of the validation split]")
    parser.add_argument("--primer-steps", type=int, help="primer length in tokens [the training --seq-len; "
                                                         "a --primer file is used whole]")
    parser.add_argument("--include-primer", action="store_true", help="write the primer before the continuation")
    parser.add_argument("--seed", type=int, help="seed of the primer choice and the sampling [random, printed]")
    parser.add_argument("--window-rerun", action="store_true",
                        help="the tutorial's method: re-run the last --seq-len tokens for every new token")
    parser.add_argument("--plot", action="store_true", help="also write a PNG drum grid / piano roll")
    parser.add_argument("--wav", action="store_true", help="also render a WAV with fluidsynth (if installed)")
    parser.add_argument("--data", help="where the validation split is, if not where the checkpoint was trained")
    add_device_argument(parser)


def add_evaluate_arguments(parser):
    parser.add_argument("--checkpoint", required=True, help="a best.npz or last.npz written by train")
    parser.add_argument("--split", choices=("validation", "test"), default="validation", help="[validation]")
    parser.add_argument("--data", help="where the data is, if not where the checkpoint was trained")
    parser.add_argument("--stride", type=int, default=1, help="seed recipe: score every stride-th window [1]")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--generation-stats", type=int, metavar="N", nargs="?", const=500,
                        help="also generate N tokens (500) greedy and sampled from one validation primer and "
                             "report distinct tokens, longest run and longest loop of each")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --generation-stats primer and sampling [0]")
    add_device_argument(parser)


# --- commands -----------------------------------------------------------------------------------------------------
def run_train(args):
    from .pipeline import TrainConfig, train

    config = TrainConfig(recipe=args.recipe, data=args.data, cell=args.cell, layers=args.layers, units=args.units,
                         embedding_dim=args.embedding_dim, seq_len=args.seq_len, batch_size=args.batch_size,
                         epochs=args.epochs, lr=args.lr, dropout=args.dropout,
                         recurrent_dropout=args.recurrent_dropout, clipnorm=args.clipnorm,
                         max_files=args.max_files, seed=args.seed, bar_position=args.bar_position,
                         time_budget=args.time_budget)
    out = args.out or os.path.join("runs", args.recipe or "drums")
    # a kill (SIGTERM) stops like Ctrl-C: the epoch in progress is dropped, last.npz is intact
    previous = signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        result = train(config, out, resume=args.resume, progress=not args.quiet)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if result.best_epoch is not None:
        print(f"best epoch {result.best_epoch} by {result.monitor}: {result.best:.4f}; "
              f"checkpoint {os.path.join(out, 'best.npz')}")
    return 130 if result.stopped == "interrupted" else 0


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_generate(args):
    from .pipeline import Sampling, generate_from_checkpoint

    sample = args.sample or args.temperature is not None or args.top_k is not None
    sampling = None  # the recipe's default: greedy for seed, sampling for drums
    if args.greedy:
        sampling = Sampling(greedy=True)
    elif sample:
        sampling = Sampling(greedy=False, temperature=args.temperature or 1.0, top_k=args.top_k)
    seed = args.seed if args.seed is not None else secrets.randbits(31)
    if args.seed is None:
        print(f"seed {seed} (pass --seed {seed} to repeat this)")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "generated.mid")
    if args.num_steps < 1:
        raise ValueError(f"--num-steps must be at least 1, got {args.num_steps}")
    generate_from_checkpoint(args.checkpoint, out, num_steps=args.num_steps, sampling=sampling,
                             primer_path=args.primer, primer_length=args.primer_steps, seed=seed,
                             window_rerun=args.window_rerun, include_primer=args.include_primer, data=args.data,
                             plot=args.plot, wav=args.wav)
    return 0


def run_evaluate(args):
    from .pipeline import evaluate_checkpoint, greedy_versus_sampled

    report = evaluate_checkpoint(args.checkpoint, split=args.split, data=args.data, stride=args.stride).to_dict()
    if args.generation_stats:
        print(f"{args.generation_stats} generated tokens after one validation primer (seed {args.seed}):")
        report["generation"] = greedy_versus_sampled(args.checkpoint, num_steps=args.generation_stats,
                                                     seed=args.seed, data=args.data)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


COMMANDS = {"train": run_train, "generate": run_generate, "evaluate": run_evaluate}


def use_device(name):
    """Select the device; None when it is usable, else the one-line reason it is not."""
    from . import backend

    if name == "gpu" and backend.cupy_or_none() is None:
        return ("--device gpu needs CuPy and a CUDA GPU, and none was found (install deeprnn[gpu] on a machine "
                "with an NVIDIA GPU), or use --device cpu")
    backend.set_device(name)
    return None


def expected_errors():
    """Failures that are the user's situation, not a bug: reported in one line."""
    from .model import NonFiniteLossError
    from .music.groove import GrooveDataError
    from .pipeline import CheckpointError

    return (CheckpointError, GrooveDataError, FileNotFoundError, NonFiniteLossError, ValueError)


def main(argv=None):
    args = build_parser().parse_args(argv)
    problem = use_device(args.device)
    if problem:
        print(f"{PROG} {args.command}: error: {problem}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args)
    except expected_errors() as error:
        if os.environ.get("DEEPRNN_TRACEBACK"):
            raise
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
