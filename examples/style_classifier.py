"""A many-to-one RNN built with deeprnn that tells drum styles apart, and the judge of `generate --style`.

    python examples/style_classifier.py --data /path/to/groove                        # real test pieces only
    python examples/style_classifier.py --data /path/to/groove --generated out/styles --floor out/unconditioned
    python examples/style_classifier.py --data /path/to/groove --checkpoint runs/styled/best.npz \
        --unconditioned runs/drums/best.npz --generated out/styles --floor out/unconditioned   # generates them first

Trains ``StepCounterEmbedding -> GRU(64) -> Dropout -> Dense(6)`` on the official training split's files of the six
most common styles (rock, funk, jazz, latin, hiphop, soul), every epoch balanced over the styles, keeps the epoch
best on the validation split, and prints its balanced accuracy on the real test pieces; on ``--generated``, a
folder of MIDI files named ``<style>_...mid`` (labelled by the style they were asked for); and on ``--floor``, an
unconditioned model's files labelled at random. The model and the scoring are ``deeprnn.pipeline.style_judge``;
this script only reads the flags. With ``--checkpoint`` (a ``--condition style`` run) it first writes 4 x 512 tokens
per style into ``--generated`` (``generate --style S --seed 1..4``), and with ``--unconditioned`` 24 x 512 tokens
into ``--floor``.
"""
import argparse
import sys

from deeprnn.errors import DeeprnnError
from deeprnn.pipeline.style_judge import (JUDGE_STYLES, REQUEST_SEEDS, JudgeSettings, generate_floor, generate_requests,
                                          judge)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the Groove MIDI Dataset folder (info.csv) or zip")
    parser.add_argument("--generated", help="folder of generated MIDI files named <style>_...mid")
    parser.add_argument("--floor", help="folder of an unconditioned model's MIDI files (labelled at random)")
    parser.add_argument("--styles", default=",".join(JUDGE_STYLES), help="comma-separated styles to tell apart")
    parser.add_argument("--checkpoint", help="a --condition style checkpoint: first generate into --generated")
    parser.add_argument("--unconditioned", help="an unconditioned checkpoint: first generate into --floor")
    parser.add_argument("--num-steps", type=int, default=512, help="tokens per generated piece (default 512)")
    defaults = JudgeSettings()
    for name in ("length", "hop", "units", "embedding_dim", "epochs", "batch_size", "seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name),
                            help=f"default {getattr(defaults, name)}")
    parser.add_argument("--lr", type=float, default=defaults.lr, help=f"default {defaults.lr:g}")
    parser.add_argument("--dropout", type=float, default=defaults.dropout, help=f"default {defaults.dropout:g}")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    settings = JudgeSettings(length=args.length, hop=args.hop, units=args.units, embedding_dim=args.embedding_dim,
                             epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, dropout=args.dropout,
                             seed=args.seed)
    styles = tuple(s.strip() for s in args.styles.split(","))
    if (args.checkpoint and not args.generated) or (args.unconditioned and not args.floor):
        parser.error("--checkpoint writes into --generated, --unconditioned into --floor: give the folder")
    try:
        if args.checkpoint:
            generate_requests(args.checkpoint, args.generated, styles, num_steps=args.num_steps)
        if args.unconditioned:
            generate_floor(args.unconditioned, args.floor, len(styles) * len(REQUEST_SEEDS), args.num_steps)
        judge(args.data, args.generated, args.floor, styles, settings, args.json)
    except DeeprnnError as error:
        print(f"style_classifier: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
