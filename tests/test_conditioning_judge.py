"""The style judge (examples/style_classifier.py): a many-to-one GRU that tells drum styles apart, scored by
balanced accuracy on real, generated and randomly labelled pieces. Tiny data made in code: a rock beat (kick on 1
and 3, snare on 2 and 4, eighth hats) and a funk beat (syncopated kicks, sixteenth hats)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from deeprnn.music import DrumGridTokenizer, write_midi
from deeprnn.pipeline.style_judge import JudgeSettings, balanced_accuracy, judge, windows_of
from test_conditioning_labels import write_info

KICK, SNARE, HAT = 1 << 0, 1 << 1, 1 << 2
ROCK = [KICK | HAT, 0, HAT, 0, SNARE | HAT, 0, HAT, 0, KICK | HAT, 0, HAT, 0, SNARE | HAT, 0, HAT, 0]
FUNK = [KICK | HAT, HAT, HAT, KICK | HAT, SNARE | HAT, HAT, HAT, SNARE | HAT, HAT, HAT, KICK | HAT, HAT,
        SNARE | HAT, HAT, KICK | HAT, HAT]


def write_beat(path, bar, bars, rng):
    """``bars`` bars of ``bar`` (16 step masks), a hat dropped here and there so no two files are the same."""
    tokenizer = DrumGridTokenizer()
    masks = numpy.array(bar * bars)
    masks[rng.random(len(masks)) < 0.1] &= ~HAT
    tokens = [tokenizer.start_token, *masks.tolist(), tokenizer.end_token]
    write_midi(tokenizer.decode(tokens), path, qpm=100)


@pytest.fixture
def two_styles(tmp_path, monkeypatch):
    """A Groove-like folder (4 train, 1 validation and 2 test files per style), 2 generated files per style, 4
    floor files."""
    monkeypatch.setenv("DEEPRNN_DATA", str(tmp_path / "cache"))
    rng = numpy.random.default_rng(0)
    data, generated, floor = tmp_path / "data", tmp_path / "generated", tmp_path / "floor"
    for folder in (data, generated, floor):
        folder.mkdir()
    rows = []
    for style, bar in (("rock", ROCK), ("funk", FUNK)):
        for i, split in enumerate(["train"] * 4 + ["validation"] + ["test"] * 2):
            name = f"{style}{i}.mid"
            write_beat(data / name, bar, 8, rng)
            rows.append((name, f"{style}/groove{i}", 100, "beat", split))
        for i in range(2):
            write_beat(generated / f"{style}_{i}.mid", bar, 6, rng)
    for i in range(4):
        write_beat(floor / f"piece_{i}.mid", ROCK if i % 2 else FUNK, 6, rng)
    write_info(data, rows)
    return data, generated, floor


TINY = JudgeSettings(length=32, hop=16, units=8, embedding_dim=4, epochs=12, batch_size=16, lr=1e-2)


def test_the_judge_recognizes_both_styles_on_test_and_generated_pieces(two_styles, tmp_path):
    data, generated, floor = two_styles
    lines = []
    report = judge(str(data), generated, floor, styles=("rock", "funk"), settings=TINY,
                   json_path=tmp_path / "judge.json", log=lines.append)
    assert report.real[0] == 1.0 and report.real[2] == 4
    assert report.generated[0] == 1.0 and report.generated[2] == 4
    assert report.floor[2] == 4 and 0 <= report.floor[0] <= 1
    numbers = json.loads((tmp_path / "judge.json").read_text())
    assert numbers["generated_over_real"] == 1.0 and numbers["real_test"]["recall"] == {"rock": 1.0, "funk": 1.0}
    assert any(line.startswith("real test pieces: balanced accuracy 1.000 over 4 pieces") for line in lines)
    assert any(line.startswith("judge: the weights of epoch ") for line in lines)
    assert "generated / real: 1.00 (goal >= 0.8)" in lines


def test_balanced_accuracy_is_the_mean_of_each_class_recall():
    """A judge that always says class 0 gets 1/3 on three classes, however many pieces class 0 has."""
    true = [0, 0, 0, 0, 0, 0, 1, 2]
    assert balanced_accuracy(true, [0] * 8, 3) == (pytest.approx(1 / 3), {0: 1.0, 1: 0.0, 2: 0.0})
    assert balanced_accuracy([0, 0, 1, 1], [0, 1, 1, 1], 2)[0] == pytest.approx(0.75)


def test_windows_carry_grid_steps_and_a_short_piece_is_padded_with_empty_steps():
    tokenizer = DrumGridTokenizer()
    piece = [tokenizer.start_token, 5, 0, 3, tokenizer.end_token]
    short = windows_of(piece, tokenizer, 8, 4)
    assert short.shape == (1, 8, 2)
    assert short[0, :, 0].tolist() == [tokenizer.start_token, 5, 0, 3, tokenizer.end_token, 0, 0, 0]
    assert short[0, :, 1].tolist() == [-1, 0, 1, 2, 2, 3, 4, 5]
    long = windows_of([tokenizer.start_token] + [1] * 20, tokenizer, 8, 4)
    assert long.shape == (4, 8, 2) and long[1, 0, 1] == 3


def test_a_generated_file_not_named_by_a_style_is_one_line_naming_it(two_styles):
    data, generated, _ = two_styles
    (generated / "polka_0.mid").write_bytes((generated / "rock_0.mid").read_bytes())
    done = subprocess.run([sys.executable, "examples/style_classifier.py", "--data", str(data), "--generated",
                           str(generated), "--styles", "rock,funk", "--epochs", "1", "--units", "4", "--length",
                           "32"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                          timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("style_classifier: --generated ")
    assert "polka_0.mid is not named <style>_... with a style of rock, funk" in done.stderr


def test_the_whole_measurement_from_two_checkpoints_on_tiny_data(two_styles, tmp_path):
    """Train a conditioned and an unconditioned drums model on the two-style folder, then one command generates 4
    pieces per style (by request, from silence) and as many unconditioned ones, and judges all of them."""
    from deeprnn.cli import main
    data, _, _ = two_styles
    tiny = ["--data", str(data), "--units", "8", "--layers", "1", "--seq-len", "16", "--batch-size", "8",
            "--epochs", "1", "--quiet"]
    assert main(["train", *tiny, "--condition", "style", "--out", str(tmp_path / "styled")]) == 0
    assert main(["train", *tiny, "--out", str(tmp_path / "plain")]) == 0
    styles, floor = tmp_path / "judge" / "styles", tmp_path / "judge" / "floor"
    done = subprocess.run([sys.executable, "examples/style_classifier.py", "--data", str(data), "--styles",
                           "rock,funk", "--checkpoint", str(tmp_path / "styled" / "best.npz"), "--unconditioned",
                           str(tmp_path / "plain" / "best.npz"), "--generated", str(styles), "--floor", str(floor),
                           "--num-steps", "32", "--epochs", "2", "--units", "8", "--length", "32",
                           "--json", str(tmp_path / "judge.json")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in styles.iterdir()) == [f"{s}_{seed}.mid" for s in ("funk", "rock")
                                                        for seed in (1, 2, 3, 4)]
    assert len(list(floor.iterdir())) == 8
    numbers = json.loads((tmp_path / "judge.json").read_text())
    assert numbers["generated"]["pieces"] == 8 and numbers["floor"]["pieces"] == 8
    assert "generated in rock" not in done.stdout and "generated 4 x 32 tokens in rock" in done.stdout
