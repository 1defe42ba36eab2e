"""The ``evaluate`` command: a checkpoint's mean NLL per token (nats) and perplexity on a split, next to n-gram
baselines (``ngram``) computed on exactly the same target tokens (``scoring`` says which tokens each recipe scores).
Drum-grid recipes also get the hit NLL per step, and the groove recipe its velocity and offset scores
(``expressive_statistics``). A checkpoint trained with ``--condition`` is scored with each piece's true labels, and
its hit NLL per step once more with the labels shuffled among the pieces: the difference is what the labels tell
the model.
"""
from dataclasses import dataclass, field

import numpy

from ..music import DrumGridTokenizer
from .checkpoints import load_checkpoint
from .datasets import open_data
from .expressive_statistics import HitBaselines, format_hit_scores, hit_scores
from .features import label_ids
from .ngram import NGramModel
from .scoring import Score
from .settings import evaluate_setting


def format_report(split, scores, lambdas=None):
    """A small table: one line per model, NLL and perplexity."""
    lines = [f"{split}: {next(iter(scores.values())).tokens:,} target tokens",
             f"  {'model':<34} {'NLL (nats/token)':>16} {'perplexity':>11}"]
    for name, score in scores.items():
        lines.append(f"  {name:<34} {score.nll:>16.4f} {score.perplexity:>11.2f}")
    if lambdas is not None:
        lines.append("  trigram weights (unigram, bigram, trigram) by deleted interpolation: "
                     + ", ".join(f"{w:.3f}" for w in lambdas))
    return "\n".join(lines)


@dataclass
class EvaluationReport:
    split: str
    scores: dict  # name -> Score
    lambdas: tuple
    hits: dict = field(default_factory=dict)  # drum grids: HitScores.to_dict()
    labels: dict = field(default_factory=dict)  # --condition: hit NLL per step with true and shuffled labels

    def to_dict(self):
        return {"split": self.split, "trigram_lambdas": list(self.lambdas),
                **{name: {"nll": score.nll, "perplexity": score.perplexity, "tokens": score.tokens}
                   for name, score in self.scores.items()},
                **({"hits": self.hits} if self.hits else {}), **({"labels": self.labels} if self.labels else {})}


def evaluate_checkpoint(checkpoint_path, split=evaluate_setting("split").default, data=None,
                        stride=evaluate_setting("stride").default, log=print):
    """Mean NLL per token and perplexity of a checkpoint on a split, with unigram and trigram baselines fitted on
    the training split and scored on the same target tokens."""
    evaluate_setting("split").check(split)
    evaluate_setting("stride").check(stride)
    checkpoint = load_checkpoint(checkpoint_path)
    recipe, tokenizer, config = checkpoint.recipe, checkpoint.tokenizer, checkpoint.config
    music = open_data(tokenizer, data if data is not None else checkpoint.source, config)
    sequences = music.split(split).sequences
    # --condition: every piece is told its own labels (info.csv's, unknown where it has none)
    labels = None if checkpoint.labels is None else label_ids(checkpoint.labels, music.split(split).paths,
                                                              music.files.source)
    model_score = Score.from_sum(*recipe.score(checkpoint.model, sequences, config, tokenizer, stride=stride,
                                               labels=labels))
    ngram = NGramModel(recipe.training_triples(music.split("train").sequences, config, tokenizer),
                       tokenizer.vocab_size)
    triples = recipe.scored_triples(sequences, config, tokenizer, stride=stride)
    if len(triples.target) != model_score.tokens:
        raise AssertionError(f"baselines score {len(triples.target)} tokens, the model {model_score.tokens}")
    unigram, trigram = ngram.nll(triples)
    name = f"{config.recipe} {config.layers}x{config.cell.upper()}({config.units})"
    epoch = checkpoint.training.get("epoch")
    scores = {name + (f" epoch {epoch}" if epoch else ""): model_score,
              "unigram (add-1)": Score.from_sum(unigram, len(triples.target)),
              "trigram (interpolated)": Score.from_sum(trigram, len(triples.target))}
    report = EvaluationReport(split, scores, ngram.lambdas)
    log(format_report(split, scores, ngram.lambdas))
    if isinstance(tokenizer, DrumGridTokenizer):
        expressive = getattr(tokenizer, "offset_bins", None) is not None
        baselines = HitBaselines.fit(music.split("train").sequences, tokenizer) if expressive else None
        hits = hit_scores(checkpoint.model, sequences, checkpoint.encoding, recipe.steps_of(config, tokenizer),
                          tokenizer, baselines, labels)
        report.hits = hits.to_dict()
        log(format_hit_scores(hits))
        if labels is not None:
            report.labels = label_information(checkpoint, sequences, labels, hits, baselines)
            log(f"hit NLL per step with the true labels {report.labels['true']:.4f}, with the labels shuffled "
                f"among the pieces {report.labels['shuffled']:.4f}: the labels tell the model "
                f"{report.labels['shuffled'] - report.labels['true']:+.4f} nats per step")
    return report


def label_information(checkpoint, sequences, labels, hits, baselines=None, seed=0):
    """{"true", "shuffled"}: the hit NLL per step with each piece's labels (``hits``) and with the rows of label ids
    permuted among the pieces (a seeded permutation: each piece told another's style, tempo and fill)."""
    shuffled = labels[numpy.random.default_rng(seed).permutation(len(labels))]
    recipe, config, tokenizer = checkpoint.recipe, checkpoint.config, checkpoint.tokenizer
    other = hit_scores(checkpoint.model, sequences, checkpoint.encoding, recipe.steps_of(config, tokenizer),
                       tokenizer, baselines, shuffled)
    return {"true": hits.hit_nll_per_step, "shuffled": other.hit_nll_per_step, "seed": seed}
