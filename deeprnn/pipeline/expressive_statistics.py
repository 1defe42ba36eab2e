"""Measured against the drummers: how well a drum model predicts hits, velocities and offsets, and how its
generated velocities and offsets are distributed beside a split's and beside robotic output.

Two kinds of numbers (docs/expressive-drums.md has the equations):

- **Likelihoods** on a split (``hit_scores``): hit NLL per step, the NLL summed over the step (hit-pattern) tokens
  divided by the number of steps, the same for the drums and groove recipes; for the groove recipe also the NLL of
  each hit's velocity bin and offset bin (marginals of the model's joint hit token) and the mean absolute error of
  the model's expected velocity and offset, beside per-class baselines fitted on the training split (the class's
  bin histogram; the class's mean velocity; zero offset).
- **Distributions** of generated hits (``generation_distributions``): per drum class, the mean, spread and
  Wasserstein-1 distance to the split's hits, for the model's output and for robotic output (velocity 90, on the
  grid), and the ratio W1(generated) / W1(robotic) averaged over the classes with enough hits.
"""
import math
from dataclasses import dataclass, field

import numpy
from scipy.stats import wasserstein_distance

from ..errors import DataError, SettingError
from ..music import read_events
from ..music.drum_grid import DRUM_CLASS_NAMES, NUM_CLASSES, NUM_MASKS
from ..music.midi_io import DEFAULT_VELOCITY
from .checkpoints import load_checkpoint
from .datasets import open_data
from .generation import Sampling, choose_primer, generate_tokens
from .scoring import clipped_nll, piece_distributions
from .settings import evaluate_setting

# A class enters the averaged W1 ratio only with at least this many hits in both the split and the generated
# output: below it, W1 between two samples is mostly sampling noise.
MIN_HITS = 50
ROBOTIC_VELOCITY, ROBOTIC_OFFSET = DEFAULT_VELOCITY, 0.0


# --- likelihoods --------------------------------------------------------------------------------------------------
def hit_classes(piece, tokenizer):
    """(T,) int: the drum class of each hit token of a piece (the k-th hit token after a step token belongs to the
    k-th class struck on it), -1 for step, START and END tokens. A drum grid without hit tokens gives all -1."""
    classes = numpy.full(len(piece), -1, numpy.int64)
    pending = []
    for position, token in enumerate(numpy.asarray(piece).tolist()):
        if token < NUM_MASKS:
            pending = [k for k in range(NUM_CLASSES) if token >> k & 1]
        elif pending and is_hit_token(tokenizer, token):
            classes[position] = pending.pop(0)
    return classes


def is_hit_token(tokenizer, token):
    return getattr(tokenizer, "offset_bins", None) is not None and tokenizer.is_hit_token(token)


@dataclass
class HitBaselines:
    """Per-class statistics of the training split's hit tokens: histograms of velocity and offset bins (add-one
    smoothed), and the mean velocity (of the bins' middles)."""

    velocity_probs: numpy.ndarray  # (classes, V)
    offset_probs: numpy.ndarray  # (classes, O)
    mean_velocity: numpy.ndarray  # (classes,)

    @classmethod
    def fit(cls, sequences, tokenizer):
        V, O = tokenizer.velocity_bins, tokenizer.offset_bins
        velocity_counts = numpy.ones((NUM_CLASSES, V))
        offset_counts = numpy.ones((NUM_CLASSES, O))
        for piece in sequences:
            classes = hit_classes(piece, tokenizer)
            hits = classes >= 0
            velocity_bins, offset_bins = divmod(numpy.asarray(piece)[hits] - tokenizer.first_hit_token, O)
            numpy.add.at(velocity_counts, (classes[hits], velocity_bins), 1)
            numpy.add.at(offset_counts, (classes[hits], offset_bins), 1)
        centres = velocity_centres(tokenizer)
        seen = velocity_counts - 1
        mean = (seen @ centres) / numpy.maximum(seen.sum(axis=1), 1)
        mean[seen.sum(axis=1) == 0] = ROBOTIC_VELOCITY
        return cls(velocity_counts / velocity_counts.sum(axis=1, keepdims=True),
                   offset_counts / offset_counts.sum(axis=1, keepdims=True), mean)


def velocity_centres(tokenizer):
    return numpy.array([tokenizer.bin_velocity(b) for b in range(tokenizer.velocity_bins)], float)


def offset_centres(tokenizer):
    return numpy.asarray(tokenizer.bin_offset(numpy.arange(tokenizer.offset_bins)), float)


@dataclass
class HitScores:
    """Sums over a split; the properties are the means the report shows."""

    steps: int = 0
    step_nll: float = 0.0
    hits: int = 0
    hit_nll: float = 0.0
    sums: dict = field(default_factory=lambda: dict.fromkeys(
        ("velocity_nll", "offset_nll", "velocity_error", "offset_error", "baseline_velocity_nll",
         "baseline_offset_nll", "baseline_velocity_error", "baseline_offset_error"), 0.0))

    @property
    def hit_nll_per_step(self):
        return self.step_nll / self.steps

    def mean(self, key):
        return self.sums[key] / self.hits if self.hits else float("nan")

    def to_dict(self):
        result = {"steps": self.steps, "hit_nll_per_step": self.hit_nll_per_step}
        if self.hits:
            result.update({"hit_tokens": self.hits, "hit_token_nll": self.hit_nll / self.hits,
                           **{key: self.mean(key) for key in self.sums}})
        return result


def hit_scores(model, sequences, encoding, steps_of, tokenizer, baselines=None, labels=None):
    """HitScores of a drum-grid model on whole pieces (each token given all earlier tokens of its piece, and for a
    conditioned model its piece's label ids ``labels[p]``).

    Step tokens give the hit NLL per step. Hit tokens (when the tokenizer has them; ``baselines`` then needed):
    with q(b_v, b_o) the model's probability of each hit token, the velocity NLL is -log sum_o q(b_v, o) and the
    offset NLL -log sum_v q(v, b_o) at the true bins; the errors are |E[v] - v| and |E[o] - o| with the
    expectations over q renormalized to the hit tokens and v, o the true bins' middles.
    """
    scores = HitScores()
    expressive = getattr(tokenizer, "offset_bins", None) is not None
    if expressive:
        V, O, first = tokenizer.velocity_bins, tokenizer.offset_bins, tokenizer.first_hit_token
        v_centres, o_centres = velocity_centres(tokenizer), offset_centres(tokenizer)
    classes_of = [hit_classes(piece, tokenizer) for piece in sequences]
    for chunk in piece_distributions(model, sequences, encoding, steps_of, labels=labels):
        picked = numpy.take_along_axis(chunk.probs, chunk.targets[..., None].astype(numpy.int64), axis=-1)[..., 0]
        nll = clipped_nll(picked)
        steps = chunk.valid & (chunk.targets < NUM_MASKS)
        scores.steps += int(steps.sum())
        scores.step_nll += float(nll[steps].sum())
        if not expressive:
            continue
        classes = numpy.full(chunk.targets.shape, -1)
        for row, piece in enumerate(chunk.pieces):
            inside = chunk.positions < len(classes_of[piece])
            classes[row, inside] = classes_of[piece][chunk.positions[inside]]
        hits = chunk.valid & (classes >= 0)
        if not hits.any():
            continue
        true_velocity, true_offset = divmod(chunk.targets[hits].astype(numpy.int64) - first, O)
        k = classes[hits]
        q = chunk.probs[hits][:, first:first + V * O].astype(numpy.float64).reshape(-1, V, O)
        q_velocity, q_offset = q.sum(axis=2), q.sum(axis=1)
        rows = numpy.arange(len(k))
        normalized = q.sum(axis=(1, 2))[:, None]
        expected_velocity = (q_velocity @ v_centres) / normalized[:, 0]
        expected_offset = (q_offset @ o_centres) / normalized[:, 0]
        sums = scores.sums
        scores.hits += len(k)
        scores.hit_nll += float(nll[hits].sum())
        sums["velocity_nll"] += float(clipped_nll(q_velocity[rows, true_velocity]).sum())
        sums["offset_nll"] += float(clipped_nll(q_offset[rows, true_offset]).sum())
        sums["velocity_error"] += float(numpy.abs(expected_velocity - v_centres[true_velocity]).sum())
        sums["offset_error"] += float(numpy.abs(expected_offset - o_centres[true_offset]).sum())
        sums["baseline_velocity_nll"] += float(clipped_nll(baselines.velocity_probs[k, true_velocity]).sum())
        sums["baseline_offset_nll"] += float(clipped_nll(baselines.offset_probs[k, true_offset]).sum())
        sums["baseline_velocity_error"] += float(numpy.abs(baselines.mean_velocity[k]
                                                           - v_centres[true_velocity]).sum())
        sums["baseline_offset_error"] += float(numpy.abs(ROBOTIC_OFFSET - o_centres[true_offset]).sum())
    if scores.steps == 0:
        raise DataError("nothing to score: the split has no grid steps")
    return scores


def format_hit_scores(scores):
    lines = [f"  hit NLL per step (step tokens only, {scores.steps:,} steps): {scores.hit_nll_per_step:.4f} nats"]
    if scores.hits:
        m = scores.mean
        lines += [f"  {scores.hits:,} hit tokens: joint NLL {scores.hit_nll / scores.hits:.4f} nats per hit",
                  f"  {'per hit':<22} {'model':>9} {'baseline':>9}   baseline",
                  f"  {'velocity-bin NLL':<22} {m('velocity_nll'):>9.4f} {m('baseline_velocity_nll'):>9.4f}   "
                  "class histogram (train)",
                  f"  {'offset-bin NLL':<22} {m('offset_nll'):>9.4f} {m('baseline_offset_nll'):>9.4f}   "
                  "class histogram (train)",
                  f"  {'velocity error':<22} {m('velocity_error'):>9.2f} {m('baseline_velocity_error'):>9.2f}   "
                  "class mean velocity (train)",
                  f"  {'offset error (steps)':<22} {m('offset_error'):>9.4f} {m('baseline_offset_error'):>9.4f}   "
                  "zero offset"]
    return "\n".join(lines)


# --- distributions ------------------------------------------------------------------------------------------------
@dataclass
class ClassHits:
    """Velocities and offsets (in steps) of the hits, per drum class: lists of (N_k,) arrays."""

    velocities: list
    offsets: list

    @classmethod
    def gather(cls, performances, tokenizer):
        """Hits of event lists, one per (step, class) as the tokenizer keeps them (the loudest of a flam)."""
        velocities, offsets = [[] for _ in range(NUM_CLASSES)], [[] for _ in range(NUM_CLASSES)]
        for events in performances:
            _, classes, hit_velocities, hit_offsets = tokenizer.played_hits(events)
            for k in range(NUM_CLASSES):
                velocities[k].append(hit_velocities[classes == k].astype(float))
                offsets[k].append(hit_offsets[classes == k])
        return cls([numpy.concatenate(v) if v else numpy.zeros(0) for v in velocities],
                   [numpy.concatenate(o) if o else numpy.zeros(0) for o in offsets])

    def robotic(self):
        """The same hits played by a drum machine: velocity 90, on the grid."""
        return ClassHits([numpy.full(len(v), float(ROBOTIC_VELOCITY)) for v in self.velocities],
                         [numpy.full(len(o), ROBOTIC_OFFSET) for o in self.offsets])


def describe(values):
    return {"hits": int(len(values)), "mean": float(values.mean()) if len(values) else float("nan"),
            "spread": float(values.std()) if len(values) else float("nan")}


def compare_distributions(reference, generated, min_hits=MIN_HITS):
    """Per class and quantity (velocity, offset): mean and spread of the reference, generated and robotic hits,
    W1 of generated and of robotic to the reference, and the W1 ratio averaged over the classes with at least
    ``min_hits`` hits in both. Returns {"velocity": {...}, "offset": {...}}."""
    robotic = generated.robotic()
    result = {}
    for quantity, name_of_quantity in (("velocities", "velocity"), ("offsets", "offset")):
        rows, ratios = {}, []
        for k, name in enumerate(DRUM_CLASS_NAMES):
            ref, gen, rob = (getattr(hits, quantity)[k] for hits in (reference, generated, robotic))
            row = {"reference": describe(ref), "generated": describe(gen), "robotic": describe(rob)}
            if len(ref) and len(gen):
                row["w1_generated"] = float(wasserstein_distance(gen, ref))
                row["w1_robotic"] = float(wasserstein_distance(rob, ref))
                if min(len(ref), len(gen)) >= min_hits and row["w1_robotic"] > 0:
                    row["ratio"] = row["w1_generated"] / row["w1_robotic"]
                    ratios.append(row["ratio"])
            rows[name] = row
        result[name_of_quantity] = {
            "classes": rows, "mean_ratio": float(numpy.mean(ratios)) if ratios else float("nan"),
            "classes_in_ratio": len(ratios), "min_hits": min_hits}
    return result


def format_distributions(comparison):
    lines = []
    for quantity in ("velocity", "offset"):
        table = comparison[quantity]
        lines.append(f"  {quantity + (' (steps)' if quantity == 'offset' else ''):<16} {'split':>21} | "
                     f"{'generated':>29} | {'robotic':>7} |")
        lines.append(f"  {'class':<16} {'hits':>6} {'mean':>7} {'spread':>6} | {'hits':>6} {'mean':>7} "
                     f"{'spread':>6} {'W1':>6} | {'W1':>7} | ratio")
        for name, row in table["classes"].items():
            ref, gen = row["reference"], row["generated"]
            if not ref["hits"] and not gen["hits"]:
                continue
            lines.append(f"  {name:<16} {ref['hits']:>6} {_shown(ref['mean'], 7, 3)} {_shown(ref['spread'], 6, 3)} | "
                         f"{gen['hits']:>6} {_shown(gen['mean'], 7, 3)} {_shown(gen['spread'], 6, 3)} "
                         f"{_shown(row.get('w1_generated'), 6, 3)} | {_shown(row.get('w1_robotic'), 7, 3)} | "
                         f"{_ratio_shown(row, ref['hits'], gen['hits'], table['min_hits'])}")
        average = (f"{table['mean_ratio']:.3f}" if table["classes_in_ratio"]
                   else "none (too few hits in every class)")
        lines.append(f"  mean W1(generated) / W1(robotic), {table['classes_in_ratio']} classes with >= "
                     f"{table['min_hits']} hits: {average}")
    return "\n".join(lines)


def _shown(value, width, digits):
    """A number of the table, or "-" where there is none (no hits to take a mean or a W1 of)."""
    if value is None or math.isnan(value):
        return f"{'-':>{width}}"
    return f"{value:>{width}.{digits}f}"


def _ratio_shown(row, reference_hits, generated_hits, min_hits):
    if "ratio" in row:
        return f"{row['ratio']:.2f}"
    if min(reference_hits, generated_hits) < min_hits:
        return f"too few hits (< {min_hits})"
    return "- (robotic W1 is 0)"


def generation_distributions(checkpoint_path, split="test", num_steps=evaluate_setting("generation_stats").const,
                             primers=evaluate_setting("primers").default, seed=evaluate_setting("seed").default,
                             data=None, log=print):
    """Generate ``num_steps`` tokens (sampling at temperature 1) after each of ``primers`` validation primers and
    compare the generated hits' velocities and offsets with the ``split``'s, beside robotic output
    (``compare_distributions``)."""
    evaluate_setting("generation_stats").check(num_steps)
    evaluate_setting("primers").check(primers)
    checkpoint = load_checkpoint(checkpoint_path)
    recipe, tokenizer, config = checkpoint.recipe, checkpoint.tokenizer, checkpoint.config
    if getattr(tokenizer, "offset_bins", None) is None:
        raise SettingError(f"{checkpoint_path}: a {config.recipe} checkpoint generates no velocities or offsets "
                           "(the groove recipe does)")
    rng = numpy.random.default_rng(seed)
    performances = []
    for _ in range(primers):
        primer = choose_primer(checkpoint, rng, data=data)
        generated = generate_tokens(checkpoint, primer, num_steps, Sampling(temperature=1.0), rng)
        performances.append(recipe.decode_generated(generated.tokens, tokenizer, rng))
    music = open_data(tokenizer, data if data is not None else checkpoint.source, config)
    comparison = compare_distributions(split_hits(music.split(split).paths, tokenizer),
                                       ClassHits.gather(performances, tokenizer))
    log(f"velocities and offsets of {primers} x {num_steps} generated tokens (validation primers, seed {seed}, "
        f"sampled) against the {split} split's hits:")
    log(format_distributions(comparison))
    return comparison


def split_hits(paths, tokenizer):
    """ClassHits of a split's MIDI files, read as played (not through the bins)."""
    return ClassHits.gather([read_events(path).events for path in paths], tokenizer)
