"""The groove recipe: velocities and offsets learned, generated into the MIDI, drawn at their real time, rendered
at a normal loudness, and measured against the drummers (hit NLL per step the same way as the drums recipe's)."""
import shutil
import wave

import numpy
import pytest

from deeprnn import backend
from deeprnn.cli import main
from deeprnn.music import DrumGridTokenizer, ExpressiveDrumGridTokenizer, NoteEvent, read_events
from deeprnn.pipeline.audio import normalize_peak
from deeprnn.pipeline.expressive_statistics import (MIN_HITS, ClassHits, HitBaselines, compare_distributions,
                                                    format_distributions, hit_classes, hit_scores)
from deeprnn.pipeline.generation import Sampling, TokenPicker
from deeprnn.pipeline.plotting import drum_grid_legend, drum_grid_points
from deeprnn.pipeline.recipes import TrainConfig, get_recipe
from deeprnn.pipeline.scoring import piece_nll
from deeprnn.pipeline.stepping import stateful_twin

TINY = ["--max-files", "3", "--units", "8", "--layers", "1", "--seq-len", "32", "--batch-size", "8",
        "--embedding-dim", "4", "--quiet"]
START, END, HIT = 512, 513, 514
K, S, HH = 1, 2, 4


def tiny_model(recipe_name, tokenizer, seed=0):
    backend.set_seed(seed)
    config = TrainConfig(recipe=recipe_name, units=8, embedding_dim=4, layers=1).resolved()
    recipe = get_recipe(recipe_name)
    return recipe, config, recipe.build_model(config, tokenizer.vocab_size)


def hit(tokenizer, velocity_bin, offset_bin):
    return int(tokenizer.hit_token(velocity_bin, offset_bin))


def test_hit_classes_follow_the_struck_classes_of_each_step():
    tokenizer = ExpressiveDrumGridTokenizer(velocity_bins=2, offset_bins=2)
    piece = [START, K | HH, HIT, HIT + 1, 0, S, HIT + 3, END]
    assert hit_classes(piece, tokenizer).tolist() == [-1, -1, 0, 2, -1, -1, 1, -1]
    assert (hit_classes(piece[:2] + [0, END], DrumGridTokenizer()) == -1).all()


def test_hit_nll_per_step_is_the_step_tokens_share_of_the_drums_piece_nll():
    tokenizer = DrumGridTokenizer()
    recipe, config, model = tiny_model("drums", tokenizer)
    pieces = [numpy.array([START, K | HH, 0, HH, 0, S | HH, END]), numpy.array([START, K, 0, 0, K, S, 0, S, END])]
    encoding, steps_of = recipe.input_encoding(config, tokenizer.vocab_size), recipe.steps_of(config, tokenizer)
    total, count = piece_nll(model, pieces, encoding, steps_of)
    scores = hit_scores(model, pieces, encoding, steps_of, tokenizer)
    assert scores.steps == count - len(pieces) == 5 + 7  # every target but each piece's END
    # the two END tokens are what the piece NLL holds beyond the step tokens
    twin = stateful_twin(model)  # probabilities out, whether the model was trained on logits or not
    probs = []
    for piece in pieces:
        twin.reset_states()
        x = encoding.encode(piece[None, :-1], steps_of(piece)[None, :-1])
        probs.append(backend.to_numpy(twin(x))[0, -1, END])
    assert scores.step_nll == pytest.approx(total + float(numpy.log(probs).sum()), rel=1e-5)


def test_groove_scores_split_the_joint_hit_token_into_velocity_and_offset_beside_class_baselines():
    tokenizer = ExpressiveDrumGridTokenizer(velocity_bins=4, offset_bins=3)
    recipe, config, model = tiny_model("groove", tokenizer)
    loud_early, soft_late = hit(tokenizer, 3, 0), hit(tokenizer, 0, 2)
    pieces = [numpy.array([START, K, loud_early, 0, S | HH, soft_late, soft_late, K, loud_early, END])]
    baselines = HitBaselines.fit(pieces, tokenizer)
    assert baselines.mean_velocity[0] == tokenizer.bin_velocity(3)  # kicks: all in the loudest bin
    assert baselines.velocity_probs[0].tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 3 / 6])  # 2 kicks, add one
    scores = hit_scores(model, pieces, recipe.input_encoding(config, tokenizer.vocab_size),
                        recipe.steps_of(config, tokenizer), tokenizer, baselines)
    report = scores.to_dict()
    assert scores.steps == 4 and scores.hits == 4
    # a marginal is at least as likely as the joint event it sums over
    assert report["velocity_nll"] <= report["hit_token_nll"] and report["offset_nll"] <= report["hit_token_nll"]
    # zero offset misses each hit by the middle of its bin: 1/3 of a step for bins 0 and 2 of 3
    assert report["baseline_offset_error"] == pytest.approx(1 / 3)
    # an untrained model spreads over 610 tokens; the class histograms are far sharper
    assert report["baseline_velocity_nll"] < report["velocity_nll"]


def test_the_sampler_keeps_one_hit_token_per_struck_class():
    tokenizer = ExpressiveDrumGridTokenizer()
    recipe = get_recipe("groove")
    rng = numpy.random.default_rng(0)
    primer = [START, K | S, hit(tokenizer, 2, 2)]  # the snare's hit token is still owed
    picker = TokenPicker(recipe, tokenizer, Sampling(temperature=1.0), rng, primer)
    tokens = list(primer)
    for _ in range(400):
        tokens.append(picker.pick(numpy.full(tokenizer.vocab_size, 1.0 / tokenizer.vocab_size)))
    owed = 0
    for token in tokens[1:]:
        if token < START:
            assert owed == 0, "a step token before the previous step's hits"
            owed = bin(token).count("1")
        else:
            assert tokenizer.is_hit_token(token) and owed > 0
            owed -= 1
    assert START not in tokens[1:] and END not in tokens


def test_distributions_match_themselves_and_robotic_output_scores_one():
    rng = numpy.random.default_rng(0)
    reference = ClassHits([rng.normal(60, 20, 300) if k < 3 else numpy.zeros(0) for k in range(9)],
                          [rng.normal(-0.1, 0.15, 300) if k < 3 else numpy.zeros(0) for k in range(9)])
    reference.velocities[3], reference.offsets[3] = numpy.full(MIN_HITS - 1, 50.0), numpy.full(MIN_HITS - 1, 0.2)
    same = compare_distributions(reference, reference)
    assert same["velocity"]["mean_ratio"] == 0 and same["offset"]["mean_ratio"] == 0
    assert same["velocity"]["classes_in_ratio"] == 3  # the open hat has too few hits to count
    assert same["velocity"]["classes"]["kick"]["w1_robotic"] == pytest.approx(
        numpy.abs(reference.velocities[0] - 90).mean())
    robotic = compare_distributions(reference, reference.robotic())
    assert robotic["velocity"]["mean_ratio"] == pytest.approx(1) and robotic["offset"]["mean_ratio"] == 1


def test_a_class_with_too_few_hits_says_so_instead_of_a_ratio_of_nan():
    rng = numpy.random.default_rng(0)
    reference = ClassHits([rng.normal(60, 20, 300) if k < 2 else numpy.zeros(0) for k in range(9)],
                          [rng.normal(-0.1, 0.15, 300) if k < 2 else numpy.zeros(0) for k in range(9)])
    generated = ClassHits([rng.normal(60, 20, 300) if k == 0 else numpy.full(2, 70.0) for k in range(9)],
                          [rng.normal(0, 0.1, 300) if k == 0 else numpy.zeros(2) for k in range(9)])
    table = format_distributions(compare_distributions(reference, generated))
    assert "nan" not in table
    snare = [line for line in table.splitlines() if line.strip().startswith("snare")]
    assert len(snare) == 2 and all(line.endswith(f"too few hits (< {MIN_HITS})") for line in snare)
    closed_hat = next(line for line in table.splitlines() if line.strip().startswith("closed_hat"))
    assert closed_hat.split("|")[0].split()[-3:] == ["0", "-", "-"]  # no split hits: no mean, no spread
    nothing = format_distributions(compare_distributions(generated, generated, min_hits=10_000))
    assert "nan" not in nothing and nothing.count("none (too few hits in every class)") == 2
    assert nothing.count("too few hits (< 10000)") == 2 * 9


def test_the_drum_grid_legend_explains_marker_sizes_only_when_velocities_vary():
    labels = [[handle.get_label() for handle in drum_grid_legend(velocity, primer)]
              for velocity, primer in ((numpy.full(5, 90.0), True), (numpy.array([40.0, 90.0]), False))]
    assert labels == [["generated", "primer (shaded)"],
                      ["generated", "velocity 30", "velocity 80", "velocity 127"]]


def test_the_drum_grid_picture_draws_hits_at_their_real_time():
    events = [NoteEvent(0.05, 0.25, 36, 100, True), NoteEvent(0.45, 0.25, 38, 40, True),
              NoteEvent(0.5, 0.25, 90, 80, True)]  # a key outside both drum maps: not drawn
    position, drum_class, velocity = drum_grid_points(events, steps_per_quarter=4)
    assert position.tolist() == pytest.approx([0.2, 1.8]) and drum_class.tolist() == [0, 1]
    assert velocity.tolist() == [100, 40]


def write_wav(path, samples, width=2, rate=8000):
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples.astype({2: "<i2", 4: "<i4", 1: "u1"}[width]).tobytes())


def read_wav(path):
    with wave.open(str(path), "rb") as reader:
        return numpy.frombuffer(reader.readframes(reader.getnframes()), "<i2").astype(float), reader.getparams()


def test_a_quiet_wav_is_normalized_to_minus_one_dbfs_with_its_shape_kept(tmp_path):
    quiet = numpy.round(3276 * numpy.sin(numpy.arange(2000) / 7.0))  # peaks at 0.1 of full scale, as fluidsynth's
    write_wav(tmp_path / "quiet.wav", quiet)
    gain = normalize_peak(tmp_path / "quiet.wav")
    loud, params = read_wav(tmp_path / "quiet.wav")
    assert numpy.abs(loud).max() / 32767 == pytest.approx(10 ** (-1 / 20), abs=1e-4)
    assert loud == pytest.approx(quiet * gain, abs=0.5) and gain == pytest.approx(8.91, abs=0.01)
    assert (params.nchannels, params.framerate) == (2, 8000)

    write_wav(tmp_path / "silent.wav", numpy.zeros(100))
    assert normalize_peak(tmp_path / "silent.wav") == 1.0 and not read_wav(tmp_path / "silent.wav")[0].any()
    write_wav(tmp_path / "eight.wav", numpy.full(100, 128), width=1)
    with pytest.raises(ValueError, match="eight.wav: 8-bit"):
        normalize_peak(tmp_path / "eight.wav")


def test_groove_recipe_trains_generates_played_notes_and_evaluates_against_the_drummers(groove, tmp_path, capsys):
    out = tmp_path / "groove"
    assert main(["train", "--recipe", "groove", "--data", groove, "--epochs", "1", "--out", str(out), *TINY]) == 0

    midi = tmp_path / "played.mid"
    wav = shutil.which("fluidsynth") is not None
    assert main(["generate", "--checkpoint", str(out / "best.npz"), "--num-steps", "120", "--seed", "1",
                 "--out", str(midi), "--plot", *(["--wav"] if wav else [])]) == 0
    sequence = read_events(midi)
    offsets = numpy.array([event.start * 4 - round(event.start * 4) for event in sequence.events])
    assert numpy.abs(offsets).max() > 0.01  # notes off the 16th grid
    assert len({event.velocity for event in sequence.events}) > 3  # not one velocity for every hit
    assert sequence.qpm != 120.0 and midi.with_suffix(".png").is_file()
    if wav:
        samples, _ = read_wav(midi.with_suffix(".wav"))
        assert numpy.abs(samples).max() / 32767 == pytest.approx(10 ** (-1 / 20), abs=1e-3)

    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "best.npz"), "--split", "test", "--generation-stats", "40",
                 "--primers", "10", "--json", str(tmp_path / "eval.json")]) == 0
    printed = capsys.readouterr().out
    assert "hit NLL per step" in printed and "velocity-bin NLL" in printed and "W1(generated) / W1(robotic)" in printed
    import json
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["hits"]["steps"] > 0 and report["hits"]["hit_tokens"] > 0
    assert report["expressive"]["velocity"]["classes"]["kick"]["generated"]["hits"] > 0
    assert main(["evaluate", "--checkpoint", str(out / "best.npz"), "--primers", "3"]) == 1  # no --generation-stats
