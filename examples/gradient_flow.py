"""Gradients through time: how |dL/dh_t| shrinks with the distance from the loss, for SimpleRNN, GRU and LSTM.

Two tasks whose loss reads only the last of T = 100 steps: the copy task (recall the first token) and a drum
sequence from the Groove MIDI Dataset (predict the next 16th-note step). Each cell is measured at initialization
and after a few epochs of Adam, through the library's own BPTT (deeprnn.gradient_flow). Writes the numbers
(gradient-flow.json) and the figure (gradient-flow.png) that docs/gradients-through-time.md shows; seconds on a CPU.

    python examples/gradient_flow.py                      # into docs/images, Groove from $DEEPRNN_GROOVE or the cache
    python examples/gradient_flow.py --data ../shared/data/groove --out /tmp/flow
"""
import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure   # no pyplot: no display, no global backend

import deeprnn as dr
from deeprnn.errors import DeeprnnError
from deeprnn.gradient_flow import CELLS, copy_task, drum_windows, gradient_flow
from deeprnn.music import groove

STEPS = 100
DISTANCES = [0, 1, 2, 5, *range(10, STEPS + 1, 10)]
STYLE = {"SimpleRNN": "tab:red", "GRU": "tab:green", "LSTM": "tab:blue"}


def tasks(data, rng, train=256, probe=64):
    """{task: (train, probe, vocab)}: the copy task over 8 tokens, and drum windows from 20 Groove training files."""
    copy_train, copy_probe = copy_task(train, STEPS, 8, rng), copy_task(probe, STEPS, 8, rng)
    paths = [record.path for record in groove.load(data, split="train")[:20]]
    tokens, labels, vocab = drum_windows(paths, STEPS, train + probe, rng)
    drums = ((tokens[:train], labels[:train]), (tokens[train:], labels[train:]))
    return {"copy": (copy_train, copy_probe, 8), "drums": (*drums, vocab)}


def run(data, epochs, seed=0):
    """The numbers: {task: {cell: gradient_flow(...)}} with the distances and settings, in float64 (the smallest
    gradients are far below float32's range)."""
    dr.set_floatx("float64")
    try:
        rng = np.random.default_rng(seed)
        results = {"distances": DISTANCES, "steps": STEPS, "epochs": epochs, "seed": seed}
        for task, (train, probe, vocab) in tasks(data, rng).items():
            results[task] = {}
            for cell in CELLS:
                dr.set_seed(seed)   # every cell starts from the same draw of the random streams
                results[task][cell] = gradient_flow(cell, train, probe, vocab, epochs, DISTANCES)
    finally:
        dr.set_floatx("float32")
    return results


def plot(results, path):
    figure = Figure(figsize=(11, 4.4), dpi=100)
    for column, (task, title) in enumerate([("copy", "copy task (recall the first token)"),
                                            ("drums", "Groove drums (predict the next step)")]):
        axes = figure.add_subplot(1, 2, column + 1)
        for cell in CELLS:
            measured = results[task][cell]
            axes.semilogy(DISTANCES, measured["initial"]["h"], "--", color=STYLE[cell], alpha=0.6,
                          label=f"{cell}, at initialization")
            axes.semilogy(DISTANCES, measured["trained"]["h"], "o-", color=STYLE[cell], markersize=3,
                          label=f"{cell}, after {results['epochs']} epochs")
            if "c" in measured["trained"]:
                axes.semilogy(DISTANCES[1:], measured["trained"]["c"][1:], ":", color=STYLE[cell], linewidth=2,
                              label=f"{cell} cell state c, after {results['epochs']} epochs")
        axes.set_title(title)
        axes.set_xlabel("distance k from the loss (steps)")
        axes.set_ylabel(r"mean $\|\partial L / \partial h_{T-k}\|$")
        axes.grid(True, which="major", alpha=0.3)
        if column == 0:
            axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="the Groove MIDI Dataset folder (default: $DEEPRNN_GROOVE or the data cache)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "images"),
                        help="folder for gradient-flow.json and gradient-flow.png (default: docs/images)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of Adam before the second measurement")
    args = parser.parse_args(argv)
    if args.epochs < 0:
        parser.exit(2, f"{parser.prog}: error: --epochs must be 0 or more, got {args.epochs}\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        results = run(args.data, args.epochs)
    except DeeprnnError as error:   # no dataset where --data points, a MIDI file that cannot be read: one line
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    (out / "gradient-flow.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "gradient-flow.png")
    k = DISTANCES.index(50)
    for task in ("copy", "drums"):
        for when in ("initial", "trained"):
            print(f"{task:5s} {when:7s} |dL/dh| at distance 50: " + ", ".join(
                f"{cell} {results[task][cell][when]['h'][k]:.1e} (carry {results[task][cell][when]['carry']:.2f})"
                for cell in CELLS))
    print(f"wrote {out / 'gradient-flow.json'} and {out / 'gradient-flow.png'}")
    return results


if __name__ == "__main__":
    main()
