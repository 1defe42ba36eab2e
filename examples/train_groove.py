"""Train on the Groove MIDI Dataset: ``python examples/train_groove.py --device gpu`` (= ``deeprnn train``).

    python examples/train_groove.py --out runs/groove                  # the drums recipe, defaults
    python examples/train_groove.py --recipe seed --out runs/seed      # the tutorial as written
    python examples/train_groove.py --out runs/groove --resume         # continue after Ctrl-C
    python examples/train_groove.py --out runs/groove --overwrite      # start that folder's run over

Every flag: ``python examples/train_groove.py --help``.
"""
import sys

from deeprnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
