"""An independent judge of style: a many-to-one RNN classifier of drum-grid windows, trained on Groove's training split.

Does a piece generated "in funk" sound like funk? A model that never saw the generator decides: the judge reads a
piece as ``DrumGridTokenizer`` tokens (the hits on a 16th grid, no velocity), cuts it into windows of ``length``
tokens, and a many-to-one RNN gives each window a distribution over the styles

    StepCounterEmbedding(V, 16) -> GRU(units) (its last state only) -> Dropout -> Dense(S) logits

A piece's style is the argmax of the mean log-probability over its windows. It is trained on the official training
split's files of ``JUDGE_STYLES``, the six most common styles (rock, funk, jazz, latin, hiphop, soul), with every
epoch drawing the same number of windows from each style (rock has 275 training files, soul 36: without balancing
the judge would learn to say rock). The weights kept are those of the epoch with the best balanced accuracy on the
validation split's pieces (a GRU this size learns the training windows by heart within 15 epochs); the test split
is only scored.

Scored by **balanced accuracy**: the mean over styles of the share of that style's pieces recognized, so a judge
that always says rock scores 1/6, as does one labelling at random. Three numbers side by side (``judge``):

- the real test pieces of the six styles, labelled by info.csv;
- generated pieces, labelled by the style they were asked for: a folder of MIDI files named ``<style>_...mid``;
- the floor: an unconditioned model's pieces, each given a style at random (the judge's answer then agrees with
  the label by chance only).

``generate_requests`` and ``generate_floor`` write those two folders from checkpoints (``generate --style`` from
silence, and an unconditioned model after validation primers), so one command measures everything.
"""
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from .. import backend, layers, optimizers
from ..errors import DataError
from ..files import atomic_write_bytes
from ..losses import SparseCategoricalCrossentropy
from ..model import Sequential
from ..music import DrumGridTokenizer, groove, tokenize_corpus
from ..music.labels import style_word
from ..music.midi_io import MIDI_SUFFIXES
from .features import grid_steps
from .generation import generate_from_checkpoint

JUDGE_STYLES = ("rock", "funk", "jazz", "latin", "hiphop", "soul")
REQUEST_SEEDS = (1, 2, 3, 4)  # the "at least 4 x 512 steps per style, different seeds"
REQUEST_STEPS = 512


@dataclass
class JudgeSettings:
    length: int = 64  # tokens per window: 4 bars of 16ths
    hop: int = 32
    units: int = 64
    embedding_dim: int = 16
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    dropout: float = 0.3
    seed: int = 0


def windows_of(piece, tokenizer, length, hop):
    """(W, length, 2) int [token, grid step] windows of one piece, every ``hop`` tokens; a piece shorter than
    ``length`` is one window padded with empty steps (token 0, the mask with no hit) after its end."""
    piece = numpy.asarray(piece, dtype=numpy.int64)
    steps = grid_steps(piece, tokenizer.start_token).astype(numpy.int64)
    if len(piece) < length:
        pad = length - len(piece)
        piece = numpy.concatenate([piece, numpy.zeros(pad, numpy.int64)])
        steps = numpy.concatenate([steps, steps[-1] + 1 + numpy.arange(pad)])
    starts = numpy.arange(0, len(piece) - length + 1, hop)
    index = starts[:, None] + numpy.arange(length)
    return numpy.stack([piece[index], steps[index]], axis=-1)


def balanced_accuracy(true, predicted, num_classes):
    """Mean over the classes present in ``true`` of the share of their items predicted right; and each recall."""
    true, predicted = numpy.asarray(true), numpy.asarray(predicted)
    recalls = {c: float(numpy.mean(predicted[true == c] == c)) for c in range(num_classes) if numpy.any(true == c)}
    if not recalls:
        raise DataError("balanced accuracy of nothing: no labelled pieces")
    return float(numpy.mean(list(recalls.values()))), recalls


class StyleJudge:
    """The classifier and the styles it tells apart (``styles[i]`` is class i)."""

    def __init__(self, styles=JUDGE_STYLES, settings=None):
        self.styles = tuple(styles)
        self.settings = settings or JudgeSettings()
        self.tokenizer = DrumGridTokenizer()
        s = self.settings
        backend.set_seed(s.seed)
        self.model = Sequential([layers.StepCounterEmbedding(self.tokenizer.vocab_size, s.embedding_dim),
                                 layers.GRU(s.units), layers.Dropout(s.dropout), layers.Dense(len(self.styles))],
                                name="style_judge")
        self.model.build((None, s.length, 2))
        self.model.compile(optimizer=optimizers.Adam(learning_rate=s.lr, clipnorm=1.0),
                           loss=SparseCategoricalCrossentropy(from_logits=True))

    def fit(self, pieces, labels, validation=None, log=print):
        """Train on pieces (token arrays) with class ids ``labels``; each epoch draws as many windows of every
        class as the classes hold on average (with replacement for the small ones). ``validation``: (pieces,
        labels) whose balanced accuracy after each epoch chooses the weights kept (else the last epoch's)."""
        s = self.settings
        by_class = {}
        for piece, label in zip(pieces, labels):
            by_class.setdefault(int(label), []).append(windows_of(piece, self.tokenizer, s.length, s.hop))
        by_class = {c: numpy.concatenate(w) for c, w in by_class.items()}
        per_class = int(numpy.mean([len(w) for w in by_class.values()]))
        log(f"judge: {len(pieces)} pieces, windows per style "
            + ", ".join(f"{self.styles[c]} {len(w)}" for c, w in sorted(by_class.items()))
            + f"; {per_class} drawn per style per epoch")
        rng = numpy.random.default_rng(s.seed)
        best = (-1.0, None, 0)  # validation balanced accuracy, weights, epoch
        for epoch in range(s.epochs):
            x = numpy.concatenate([w[rng.integers(len(w), size=per_class)] for w in by_class.values()])
            y = numpy.concatenate([numpy.full(per_class, c) for c in by_class])
            history = self.model.fit(x, y, epochs=1, batch_size=s.batch_size, shuffle=True, verbose=0)
            line = f"judge epoch {epoch + 1}/{s.epochs}: loss {history.history['loss'][-1]:.4f}"
            if validation is not None:
                accuracy = self.score(*validation)[0]
                line += f", validation balanced accuracy {accuracy:.3f}"
                if accuracy > best[0]:
                    best = (accuracy, self.model.get_weights(), epoch + 1)
            log(line)
        if best[1] is not None:
            self.model.set_weights(best[1])
            log(f"judge: the weights of epoch {best[2]} (validation balanced accuracy {best[0]:.3f})")
        return self

    def predict(self, pieces):
        """The class id of each piece: argmax of the mean log-probability over its windows."""
        answers = []
        for piece in pieces:
            logits = backend.to_numpy(self.model.predict(windows_of(piece, self.tokenizer, self.settings.length,
                                                                    self.settings.hop)))
            log_p = logits - logits.max(-1, keepdims=True)
            log_p -= numpy.log(numpy.exp(log_p).sum(-1, keepdims=True))
            answers.append(int(numpy.argmax(log_p.mean(axis=0))))
        return numpy.array(answers, dtype=numpy.int64)

    def score(self, pieces, labels):
        """(balanced accuracy, {style: recall}) of the judge on labelled pieces."""
        accuracy, recalls = balanced_accuracy(labels, self.predict(pieces), len(self.styles))
        return accuracy, {self.styles[c]: r for c, r in recalls.items()}


def groove_split(root, split, styles, tokenizer):
    """(token arrays, class ids) of a Groove split's files whose style's first word is one of ``styles``."""
    records = [r for r in groove.load(root, split=split) if style_word(r.style) in styles]
    if not records:
        raise DataError(f"--data {root}: no {split} files of the styles {', '.join(styles)}")
    style_of = {r.path: styles.index(style_word(r.style)) for r in records}
    corpus = tokenize_corpus([r.path for r in records], tokenizer)
    return corpus.sequences, numpy.array([style_of[path] for path in corpus.paths], dtype=numpy.int64)


def midi_files(folder, flag):
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{flag} {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in MIDI_SUFFIXES)
    if not files:
        raise DataError(f"{flag} {folder}: no MIDI files in it")
    return files


def generated_split(folder, styles, tokenizer, flag="--generated"):
    """(token arrays, class ids) of a folder of generated files named ``<style>_...mid``, labelled by that style."""
    files = midi_files(folder, flag)
    named = [(path, path.name.split("_")[0].lower()) for path in files]
    strangers = [path.name for path, style in named if style not in styles]
    if strangers:
        raise DataError(f"{flag} {folder}: {strangers[0]} is not named <style>_... with a style of "
                         f"{', '.join(styles)}")
    corpus = tokenize_corpus([path for path, _ in named], tokenizer)
    style_of = {path: styles.index(style) for path, style in named}
    return corpus.sequences, numpy.array([style_of[path] for path in corpus.paths], dtype=numpy.int64)


def random_split(folder, styles, tokenizer, seed=0, flag="--floor"):
    """(token arrays, class ids) of a folder of unconditioned output, each piece given a style at random."""
    corpus = tokenize_corpus(midi_files(folder, flag), tokenizer)
    labels = numpy.random.default_rng(seed).integers(len(styles), size=len(corpus.sequences))
    return corpus.sequences, labels


def generate_requests(checkpoint, folder, styles=JUDGE_STYLES, seeds=REQUEST_SEEDS, num_steps=REQUEST_STEPS,
                      log=print):
    """``<style>_<seed>.mid`` in ``folder`` for every style and seed: a conditioned checkpoint asked for the style,
    from silence (``generate --style STYLE --seed SEED``)."""
    folder = Path(folder)
    for style in styles:
        for seed in seeds:
            generate_from_checkpoint(checkpoint, folder / f"{style}_{seed}.mid", num_steps=num_steps, seed=seed,
                                     style=style, log=lambda line: None)
        log(f"generated {len(seeds)} x {num_steps} tokens in {style} into {folder}")
    return folder


def generate_floor(checkpoint, folder, count=len(JUDGE_STYLES) * len(REQUEST_SEEDS), num_steps=REQUEST_STEPS,
                   log=print):
    """``piece_<seed>.mid`` in ``folder``, seeds 1..count: an unconditioned checkpoint after validation primers."""
    folder = Path(folder)
    for seed in range(1, count + 1):
        generate_from_checkpoint(checkpoint, folder / f"piece_{seed}.mid", num_steps=num_steps, seed=seed,
                                 log=lambda line: None)
    log(f"generated {count} x {num_steps} tokens without a style into {folder}")
    return folder


@dataclass
class JudgeReport:
    real: tuple  # (balanced accuracy, recalls, pieces)
    generated: tuple | None = None
    floor: tuple | None = None
    styles: tuple = JUDGE_STYLES
    lines: list = field(default_factory=list)

    def to_dict(self):
        def entry(result):
            return None if result is None else {"balanced_accuracy": result[0], "recall": result[1],
                                                "pieces": result[2]}
        ratio = self.generated[0] / self.real[0] if self.generated and self.real[0] else None
        return {"styles": list(self.styles), "real_test": entry(self.real), "generated": entry(self.generated),
                "floor": entry(self.floor), "generated_over_real": ratio}


def judge(data, generated=None, floor=None, styles=JUDGE_STYLES, settings=None, json_path=None, log=print):
    """Train the judge on ``data``'s training split; report balanced accuracy on its test split, on the
    ``generated`` folder (labelled by file name) and on the ``floor`` folder (labelled at random)."""
    styles = tuple(styles)
    settings = settings or JudgeSettings()
    style_judge = StyleJudge(styles, settings)
    pieces, labels = groove_split(data, "train", styles, style_judge.tokenizer)
    validation = groove_split(data, "validation", styles, style_judge.tokenizer)
    style_judge.fit(pieces, labels, validation, log=log)
    test_pieces, test_labels = groove_split(data, "test", styles, style_judge.tokenizer)
    report = JudgeReport(real=(*style_judge.score(test_pieces, test_labels), len(test_pieces)), styles=styles)
    if generated is not None:
        pieces, labels = generated_split(generated, styles, style_judge.tokenizer)
        report.generated = (*style_judge.score(pieces, labels), len(pieces))
    if floor is not None:
        pieces, labels = random_split(floor, styles, style_judge.tokenizer, settings.seed)
        report.floor = (*style_judge.score(pieces, labels), len(pieces))
    for name, result in (("real test pieces", report.real), (f"generated ({generated})", report.generated),
                         (f"floor: unconditioned, labelled at random ({floor})", report.floor)):
        if result is not None:
            recalls = ", ".join(f"{style} {recall:.2f}" for style, recall in result[1].items())
            line = f"{name}: balanced accuracy {result[0]:.3f} over {result[2]} pieces ({recalls})"
            report.lines.append(line)
            log(line)
    if report.generated is not None:
        ratio = report.to_dict()["generated_over_real"]
        line = f"generated / real: {ratio:.2f} (goal >= 0.8)" if ratio is not None else "generated / real: -"
        report.lines.append(line)
        log(line)
    if json_path is not None:
        atomic_write_bytes(Path(json_path), (json.dumps(report.to_dict(), indent=2) + "\n").encode("utf-8"))
        print(f"wrote {json_path}", file=sys.stderr)
    return report
