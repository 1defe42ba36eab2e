"""Generating music from a checkpoint: a primer, then one token at a time, sampled or greedy.

Two ways to get the next token's distribution, the same model either way:

- carrying state (default): a stateful twin of the model (``stepping.stateful_twin``, Keras's ``stateful=True``)
  runs the primer once, then each new token is one step of every layer, continuing from the state the previous
  step left. A token costs the same at step 10 and at step 10,000, and the context is everything generated so far.
  The step is the fused one (``stepping.fused_step``, ``kernels/cpu_step.py``: the whole stack and the sampler in a
  few NumPy calls, on the logits) where it computes the model's layers, else one call of the twin per token, which
  is also the reference the fused step is tested against (``step="twin"``, ``deeprnn generate --reference-step``).
- ``window_rerun``: the tutorial's loop: run the model on the last ``seq_len`` tokens, from zero state, for every
  new token; ``seq_len`` steps per token and a context cut at the window.

Where the contexts agree (the primer plus what was generated is no longer than the window) both give the same
probabilities; tests/test_pipeline_generation.py holds them to that.

Choosing: greedy (argmax, the tutorial's; temperature 0 means greedy), or sampling from p^(1/temperature),
optionally among the top k.
Tokens that must not appear mid-piece (the drum grid's START and END, the seed vocabulary's UNK) are never chosen,
and where the recipe has a grammar (the groove recipe: after a step token, one hit token per struck class) the
sampler keeps it, so every struck class gets the velocity and offset the model chose for it.
"""
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy

from .. import backend
from ..errors import DataError, SettingError
from ..kernels import cpu_step
from ..layers import RNN
from ..music import read_events, write_midi
from ..music.limits import MAX_PIECE_QUARTERS
from .checkpoints import load_checkpoint
from .datasets import open_data
from .features import describe_labels, label_ids, requested_labels
from .run_folder import shown
from .sequence_statistics import format_statistics, token_statistics
from .settings import evaluate_setting, generate_setting
from .stepping import StepUnavailable, fused_step, serving_model, stateful_twin

# how generate_carrying_state computes a token: the fused step where it can (else the twin, saying why), the fused
# step or an error, the stateful twin (the reference)
STEPS = ("auto", "fused", "twin")


@dataclass
class Sampling:
    greedy: bool = False
    temperature: float = generate_setting("temperature").default
    top_k: int | None = None

    def __post_init__(self):
        if not isinstance(self.greedy, bool):
            raise SettingError(f"--greedy must be True or False, got {self.greedy!r}")
        self.temperature = generate_setting("temperature").check(self.temperature)  # 0 means greedy
        self.top_k = generate_setting("top_k").check(self.top_k)
        if self.greedy and self.temperature not in (0, generate_setting("temperature").default):
            raise SettingError(f"--greedy takes the most likely token, --temperature {self.temperature:g} "
                               "samples: give one of them (--temperature 0 is greedy)")
        if (self.greedy or self.temperature == 0) and self.top_k is not None:
            chosen = "--greedy" if self.greedy else "--temperature 0"
            raise SettingError(f"{chosen} takes the most likely token, so --top-k {self.top_k} would do nothing: "
                               "give one of them")
        if self.temperature == 0:
            self.greedy = True  # the limit of p^(1/T) as T -> 0 is the argmax

    def describe(self):
        if self.greedy:
            return "greedy"
        return f"sampling, temperature {self.temperature:g}" + (f", top-{self.top_k}" if self.top_k else "")


def choose_token(probs, sampling, rng, forbidden=()):
    """The next token from the model's distribution probs (V,), never one of ``forbidden``.

    Sampling draws one uniform u and takes the first token whose cumulative weight exceeds u times the total: what
    ``rng.choice(V, p=weights / weights.sum())`` does with the same draw, without its checks of p (a tenth of a
    generated token's time).
    """
    p = numpy.array(probs, numpy.float64)
    p[list(forbidden)] = 0.0
    if sampling.greedy:
        return int(numpy.argmax(p))
    weights = p
    if sampling.temperature != 1 or sampling.top_k is not None:
        with numpy.errstate(divide="ignore"):
            logits = numpy.log(p) / sampling.temperature
        if sampling.top_k is not None and sampling.top_k < len(p):
            cutoff = numpy.partition(logits, -sampling.top_k)[-sampling.top_k]
            logits = numpy.where(logits >= cutoff, logits, -numpy.inf)
        weights = numpy.exp(logits - logits.max())
    cumulative = numpy.cumsum(weights)
    return int(numpy.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))


@dataclass
class Primer:
    """Tokens the generation continues from; steps: their grid steps when the model's input needs them;
    start: where in its piece the primer begins, in quarter notes (so the output keeps its place in the bar);
    labels: (K,) the label ids a conditioned model is told (its piece's, or what was asked for), else None."""

    tokens: numpy.ndarray
    steps: numpy.ndarray | None
    source: Path | None
    qpm: float = 120.0
    time_signature: tuple = (4, 4)
    start: float = 0.0
    labels: numpy.ndarray | None = None

    def bar_phase(self, recipe, tokenizer, include_primer):
        """Quarter notes into its bar at which the written output begins: the primer's start, or, when only the
        continuation is written, the end of the primer."""
        numerator, denominator = self.time_signature
        bar = numerator * 4.0 / denominator
        begins = self.start if include_primer else self.start + recipe.duration_of(self.tokens, tokenizer)
        return begins % bar


@dataclass
class Generated:
    """tokens: (N,) the new tokens; probabilities: (N, V) the model's distribution each was chosen from."""

    tokens: numpy.ndarray
    probabilities: numpy.ndarray
    seconds: float
    method: str

    @property
    def ms_per_token(self):
        return 1000.0 * self.seconds / max(len(self.tokens), 1)


class TokenPicker:
    """Chooses tokens, keeps the recipe's grammar and tracks grid steps: what both generation methods share."""

    def __init__(self, recipe, tokenizer, sampling, rng, primer_tokens=()):
        self.recipe, self.tokenizer, self.sampling, self.rng = recipe, tokenizer, sampling, rng
        self.forbidden = recipe.forbidden_tokens(tokenizer)
        self.grammar = recipe.grammar(tokenizer)
        # hit tokens the primer's last step still waits for (a primer window may end between a step and its hits)
        self.owed = self.grammar.hits_owed(primer_tokens) if self.grammar is not None else 0
        self.masks = {}  # the logits' forbidding masks (cpu_step.forbidding_mask), one per forbidden set
        self.work = None

    def pick(self, probs):
        if self.grammar is None:
            return choose_token(probs, self.sampling, self.rng, self.forbidden)
        forbidden = [*self.forbidden, *self.grammar.forbidden_while(self.owed)]
        token = choose_token(probs, self.sampling, self.rng, forbidden)
        self.owed = self.grammar.owed_after(self.owed, token)
        return token

    def pick_from_logits(self, logits):
        """``pick`` from the logits (V,) of the distribution: the same rule and the same one draw from ``rng``
        (``cpu_step.draw``), so a seed chooses the same tokens either way."""
        # the grammar's forbidden set is what it returns for self.owed (a range, hashable: one mask per range)
        key = None if self.grammar is None else self.grammar.forbidden_while(self.owed)
        if not isinstance(key, (range, tuple, type(None))):
            key = tuple(key)
        mask = self.masks.get(key)
        if mask is None:
            forbidden = [*self.forbidden, *(() if key is None else key)]
            mask = self.masks[key] = cpu_step.forbidding_mask(forbidden, len(logits))
            self.work = (numpy.empty(len(logits)), numpy.empty(len(logits)))
        sampling = self.sampling
        u = None if sampling.greedy else self.rng.random()
        token = cpu_step.draw(logits, mask, u, 1.0 / sampling.temperature if u is not None else 1.0,
                              sampling.top_k, self.work)
        if self.grammar is not None:
            self.owed = self.grammar.owed_after(self.owed, token)
        return token

    def step_of(self, previous_step, token):
        return None if previous_step is None else self.recipe.next_step(previous_step, token, self.tokenizer)


def encode_context(encoding, tokens, steps, labels=None):
    """One sequence as a batch of one: tokens (T,) (and its labels (K,)) -> the model's input (1, T, ...)."""
    return encoding.encode(numpy.asarray(tokens)[None], None if steps is None else numpy.asarray(steps)[None],
                           None if labels is None else numpy.asarray(labels)[None])


def last_distribution(probs):
    """The model's distribution after the last input token: (1, T, V) or, for the seed model, (1, V) -> (V,)."""
    probs = backend.to_numpy(probs)
    return probs[0, -1] if probs.ndim == 3 else probs[0]


def generate_carrying_state(model, encoding, primer, num_steps, picker, step="auto"):
    """Feed the primer once through a stateful twin of the model, then one step per token: the fused step
    (``stepping.fused_step``) where it computes the model's layers, else a call of the twin.

    step: one of ``STEPS``; ``"twin"`` asks for the reference, ``"fused"`` raises ``StepUnavailable`` where the
    fused step cannot run. ``Generated.method`` says which ran, and why the fused step did not.
    """
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}, got {step!r}")
    twin = stateful_twin(model)
    twin.reset_states()
    probs = twin(encode_context(encoding, primer.tokens, primer.steps, primer.labels))  # checks the input, too
    fused, why = None, None
    if step != "twin":
        try:
            fused = fused_step(model, primer.labels)
        except StepUnavailable as error:
            if step == "fused":
                raise
            why = str(error)
    if fused is None:
        return carried_by_twin(twin, probs, encoding, primer, num_steps, picker, why)
    # the primer ran through the twin's sequence kernels; the fused step continues from the state it left
    fused.set_state([backend.to_numpy(s) for s in layer.states] for layer in twin.layers if isinstance(layer, RNN))
    return carried_by_fused_step(fused, primer, num_steps, picker)


def carried_by_twin(twin, probs, encoding, primer, num_steps, picker, why=None):
    """The reference: one call of the stateful twin per token (every layer's own forward on a (1, 1, ...) input)."""
    step = None if primer.steps is None else int(primer.steps[-1])
    tokens, distributions = [], []
    began = time.perf_counter()
    for _ in range(num_steps):
        p = last_distribution(probs)
        token = picker.pick(p)
        step = picker.step_of(step, token)
        tokens.append(token)
        distributions.append(p)
        if len(tokens) < num_steps:
            probs = twin(encode_context(encoding, [token], None if step is None else [step], primer.labels))
    return Generated(numpy.array(tokens, numpy.int64), numpy.array(distributions), time.perf_counter() - began,
                     "state-carrying, stateful twin" + ("" if why is None else f" (no fused step: {why})"))


def carried_by_fused_step(fused, primer, num_steps, picker):
    """One ``cpu_step.StackStep.step`` per token, the token drawn from its logits; the distributions are the
    softmax of all the logits at the end (one call)."""
    if fused.bits and primer.steps is None:
        raise ValueError("the bar-position input needs the grid step of every token")
    step = None if primer.steps is None else int(primer.steps[-1])
    logits = numpy.empty((num_steps, fused.vocab_size), fused.dtype)
    tokens = numpy.empty(num_steps, numpy.int64)
    began = time.perf_counter()
    fused.logits(out=logits[0])
    for n in range(num_steps):
        token = picker.pick_from_logits(logits[n])
        step = picker.step_of(step, token)
        tokens[n] = token
        if n + 1 < num_steps:
            fused.step(token, step, out=logits[n + 1])
    probabilities = cpu_step.softmax(logits)
    return Generated(tokens, probabilities, time.perf_counter() - began,
                     f"state-carrying, fused step ({cpu_step.NAME})")


def generate_window_rerun(model, encoding, primer, num_steps, picker, window):
    """The tutorial's loop: the model run from zero state on the last ``window`` tokens for every new token."""
    served = serving_model(model)
    context = list(numpy.asarray(primer.tokens).tolist())
    steps = None if primer.steps is None else list(numpy.asarray(primer.steps).tolist())
    tokens, distributions = [], []
    began = time.perf_counter()
    for _ in range(num_steps):
        x = encode_context(encoding, context[-window:], None if steps is None else steps[-window:], primer.labels)
        p = last_distribution(served.predict(x, batch_size=1))  # from zero state: a new call, a new window
        token = picker.pick(p)
        if steps is not None:
            steps.append(picker.step_of(steps[-1], token))
        context.append(token)
        tokens.append(token)
        distributions.append(p)
    return Generated(numpy.array(tokens, numpy.int64), numpy.array(distributions), time.perf_counter() - began,
                     f"window re-run ({window} tokens)")


# --- primers --------------------------------------------------------------------------------------------------------
def trim_unplayable(tokens, forbidden):
    """Drop trailing tokens that must not precede a continuation (a piece's END)."""
    tokens = numpy.asarray(tokens)
    end = len(tokens)
    while end and int(tokens[end - 1]) in forbidden:
        end -= 1
    return tokens[:end]


def tempo_of(path):
    try:
        sequence = read_events(path)
        return float(sequence.qpm), tuple(sequence.time_signature)
    except (OSError, ValueError):
        return 120.0, (4, 4)


def primer_from_split(split, length, rng, recipe, config, tokenizer):
    """A random window of ``length`` tokens inside one piece of the split (the longest piece if none is long
    enough), starting on a downbeat where the recipe knows the bars, with its grid steps and its file's tempo."""
    forbidden = recipe.forbidden_tokens(tokenizer)
    pieces = [trim_unplayable(s, forbidden) for s in split.sequences]
    candidates = [i for i, piece in enumerate(pieces) if len(piece) >= length]
    if candidates:
        index = candidates[int(rng.integers(len(candidates)))]
    else:
        index = max(range(len(pieces)), key=lambda i: len(pieces[i]))
        length = len(pieces[index])
    piece = pieces[index]
    qpm, signature = tempo_of(split.paths[index])
    starts = recipe.window_starts(piece, length, signature, tokenizer)
    if not len(starts):
        starts = numpy.arange(len(piece) - length + 1)
    offset = int(starts[int(rng.integers(len(starts)))])
    steps_of = recipe.steps_of(config, tokenizer)
    steps = None if steps_of is None else steps_of(split.sequences[index])[offset:offset + length]
    return Primer(piece[offset:offset + length], steps, Path(split.paths[index]), qpm, signature,
                  recipe.duration_of(piece[:offset], tokenizer))


def primer_from_file(path, length, recipe, config, tokenizer):
    """The tokens of a MIDI file (its last ``length`` tokens if given: the continuation follows its end)."""
    path = Path(path)
    full = numpy.asarray(tokenizer.encode_file(path))
    tokens = trim_unplayable(full, recipe.forbidden_tokens(tokenizer))
    if not len(tokens):
        raise DataError(f"--primer {path}: no notes this checkpoint's tokenizer encodes")
    steps_of = recipe.steps_of(config, tokenizer)
    steps = None if steps_of is None else steps_of(full)[:len(tokens)]
    offset = 0 if length is None else max(0, len(tokens) - length)
    qpm, signature = tempo_of(path)
    return Primer(tokens[offset:], None if steps is None else steps[offset:], path, qpm, signature,
                  recipe.duration_of(tokens[:offset], tokenizer))


# --- the whole job --------------------------------------------------------------------------------------------------
@dataclass
class GenerationReport:
    midi: Path
    primer: Primer
    generated: Generated
    statistics: dict
    sampling: Sampling
    plot: Path | None = None
    wav: Path | None = None


def choose_primer(checkpoint, rng, primer_path=None, primer_length=None, data=None):
    """The --primer file's tokens, else a random window of the validation split (``primer_length`` tokens,
    default the training --seq-len)."""
    recipe, tokenizer, config = checkpoint.recipe, checkpoint.tokenizer, checkpoint.config
    if primer_path is not None:
        return primer_from_file(primer_path, primer_length, recipe, config, tokenizer)
    music = open_data(tokenizer, data if data is not None else checkpoint.source, config)
    primer = primer_from_split(music.split("validation"), primer_length or config.seq_len, rng, recipe, config,
                               tokenizer)
    if checkpoint.labels is not None:  # a conditioned model continues the piece told the piece's labels
        primer.labels = label_ids(checkpoint.labels, [primer.source], music.files.source)[0]
    return primer


def silence(checkpoint, qpm):
    """The primer of a request (--style, --fill): the START token alone, a piece beginning at a downbeat."""
    tokens = numpy.array([checkpoint.tokenizer.start_token])
    steps_of = checkpoint.recipe.steps_of(checkpoint.config, checkpoint.tokenizer)
    return Primer(tokens, None if steps_of is None else steps_of(tokens), None, qpm)


def generate_tokens(checkpoint, primer, num_steps, sampling, rng, window_rerun=False, step="auto"):
    """Generated tokens after ``primer`` from a loaded checkpoint, by either method (``step``: see
    ``generate_carrying_state``)."""
    picker = TokenPicker(checkpoint.recipe, checkpoint.tokenizer, sampling, rng, primer.tokens)
    if window_rerun:
        return generate_window_rerun(checkpoint.model, checkpoint.encoding, primer, num_steps, picker,
                                     checkpoint.config.seq_len)
    return generate_carrying_state(checkpoint.model, checkpoint.encoding, primer, num_steps, picker, step)


def greedy_versus_sampled(checkpoint_path, num_steps=evaluate_setting("generation_stats").const,
                          seed=evaluate_setting("seed").default, temperature=Sampling.temperature, data=None,
                          log=print):
    """Statistics (``token_statistics``) of ``num_steps`` greedy and sampled tokens after the same primer: the
    tutorial's greedy output tends to collapse to one note or one short loop. Returns {"greedy": ..., "sampled":
    ...}."""
    evaluate_setting("generation_stats").check(num_steps)
    evaluate_setting("seed").check(seed)
    Sampling(temperature=temperature)
    checkpoint = load_checkpoint(checkpoint_path)
    primer = choose_primer(checkpoint, numpy.random.default_rng(seed), data=data)
    results = {}
    for name, sampling in (("greedy", Sampling(greedy=True)), ("sampled", Sampling(temperature=temperature))):
        generated = generate_tokens(checkpoint, primer, num_steps, sampling, numpy.random.default_rng(seed))
        results[name] = token_statistics(generated.tokens)
        log(f"{name + ':':<9}{format_statistics(results[name])}")
    return results


def check_midi_length(recipe, tokenizer, num_steps, primer_tokens, phase):
    """Refuse, before generating, a --num-steps whose music could outlast what a MIDI file holds here
    (``MAX_PIECE_QUARTERS``), rather than fail when writing it; one quarter is kept for the last note's length."""
    per_token = recipe.quarters_per_token(tokenizer)
    room = int((MAX_PIECE_QUARTERS - 1 - phase) / per_token) - primer_tokens
    if num_steps > room:
        raise SettingError(f"--num-steps {num_steps}: {recipe.name} tokens can last up to {per_token:g} quarter "
                           f"notes each and a MIDI file holds {MAX_PIECE_QUARTERS}: give at most {room}"
                           + (" (the primer is included)" if primer_tokens else ""))


def generate_from_checkpoint(checkpoint_path, out, num_steps=generate_setting("num_steps").default, sampling=None,
                             primer_path=None, primer_length=None, seed=None, window_rerun=False, include_primer=False,
                             data=None, plot=False, wav=False, style=None, bpm=None, fill=False, reference_step=False,
                             log=print):
    """Load a checkpoint, pick a primer, generate ``num_steps`` tokens, write the MIDI file (and PNG, WAV).

    A request (``style``, ``fill``; ``bpm`` too for a checkpoint conditioned on tempo) starts from silence unless a
    ``primer_path`` is given, and tells a conditioned model those labels (``features.requested_labels``); ``bpm``
    is always the tempo written. ``reference_step``: carry the state through the stateful twin rather than the
    fused step (``generate_carrying_state``'s ``step="twin"``).
    """
    generate_setting("num_steps").check(num_steps)
    generate_setting("primer_steps").check(primer_length)
    generate_setting("seed").check(seed)
    generate_setting("style").check(style)
    generate_setting("bpm").check(bpm)
    generate_setting("fill").check(fill)
    generate_setting("reference_step").check(reference_step)
    if reference_step and window_rerun:
        raise SettingError("--reference-step carries the state from token to token, --window-rerun re-runs the "
                           "window for every token: give one of them")
    checkpoint = load_checkpoint(checkpoint_path)
    tokenizer, config = checkpoint.tokenizer, checkpoint.config
    if sampling is None:
        sampling = Sampling(greedy=checkpoint.recipe.greedy_by_default)
    rng = numpy.random.default_rng(seed)
    tempo_asked = bpm is not None and "tempo" in (checkpoint.labels.names if checkpoint.labels else ())
    from_silence = primer_path is None and (style is not None or fill or tempo_asked)
    if from_silence:
        primer = silence(checkpoint, bpm or Primer.qpm)
        primer.labels = requested_labels(checkpoint.labels, style, primer.qpm, fill)
    else:
        requested_labels(checkpoint.labels, style, bpm, fill or None)  # a label the model lacks: before any work
        primer = choose_primer(checkpoint, rng, primer_path, primer_length, data)
        if checkpoint.labels is not None:
            primer.labels = requested_labels(checkpoint.labels, style, bpm, fill or None, base=primer.labels)
        primer.qpm = bpm or primer.qpm
    # rests before the first note keep the output's place in the bar: a downbeat lands on a downbeat
    phase = primer.bar_phase(checkpoint.recipe, tokenizer, include_primer)
    check_midi_length(checkpoint.recipe, tokenizer, num_steps, len(primer.tokens) if include_primer else 0, phase)
    generated = generate_tokens(checkpoint, primer, num_steps, sampling, rng, window_rerun,
                                "twin" if reference_step else "auto")

    tokens = numpy.concatenate([primer.tokens, generated.tokens]) if include_primer else generated.tokens
    # the groove recipe draws each hit's velocity and offset inside its sampled bins: a seeded draw, from rng
    decoded = checkpoint.recipe.decode_generated(tokens, tokenizer, rng)
    events = [event._replace(start=event.start + phase) for event in decoded]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_midi(events, out, qpm=primer.qpm, time_signature=primer.time_signature)
    statistics = token_statistics(generated.tokens)
    report = GenerationReport(out, primer, generated, statistics, sampling)
    if from_silence:
        log(f"from silence: {describe_labels(checkpoint.labels, primer.labels)} ({primer.qpm:g} qpm)")
    else:
        log(f"primer: {len(primer.tokens)} tokens from {shown(primer.source)} ({primer.qpm:g} qpm)"
            + ("" if primer.labels is None else f"; {describe_labels(checkpoint.labels, primer.labels)}"))
    log(f"generated {len(generated.tokens)} tokens ({sampling.describe()}, {generated.method}) in "
        f"{generated.seconds:.2f} s: {generated.ms_per_token:.2f} ms/token")
    log(f"tokens: {format_statistics(statistics)}")
    log(f"wrote {shown(out)} ({len(events)} notes{', primer included' if include_primer else ''})")
    if plot:
        from .plotting import plot_events
        primer_end = phase + checkpoint.recipe.duration_of(primer.tokens, tokenizer) if include_primer else None
        report.plot = plot_events(events, out.with_suffix(".png"),
                                  title=f"{out.name}: {config.recipe}, {sampling.describe()}",
                                  steps_per_quarter=getattr(tokenizer, "steps_per_quarter", 4),
                                  primer_end=primer_end)
        log(f"wrote {shown(report.plot)}")
    if wav:
        from .audio import AudioUnavailable, render_wav
        try:
            report.wav = render_wav(out)
            log(f"wrote {shown(report.wav)}")
        except AudioUnavailable as error:
            print(f"--wav: {error}", file=sys.stderr)
    return report
