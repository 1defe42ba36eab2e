"""Generate MIDI from a checkpoint: ``python examples/generate.py --checkpoint runs/groove/best.npz``
(= ``deeprnn generate``).

    python examples/generate.py --checkpoint runs/groove/best.npz --out drums.mid --plot
    python examples/generate.py --checkpoint runs/groove/best.npz --temperature 0.9 --top-k 20 --wav
    python examples/generate.py --checkpoint runs/seed/best.npz --greedy --num-steps 500
    python examples/generate.py --checkpoint runs/groove/best.npz --temperature 0      # greedy, as --greedy

Every flag: ``python examples/generate.py --help``.
"""
import sys

from deeprnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
