"""Both recipes train, generate and evaluate from the command line on the shared Groove copy (tiny models,
3 files per split, 1-2 epochs); --resume continues to the very weights of an uninterrupted run."""

import os
import shutil

import numpy

from deeprnn.cli import main

TINY = ["--max-files", "3", "--units", "8", "--layers", "2", "--seq-len", "16", "--batch-size", "8", "--quiet"]


def weights(path):
    with numpy.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files if key.startswith(("weight_", "optimizer_"))}


def test_drums_recipe_trains_generates_and_evaluates(groove, tmp_path, capsys):
    out = tmp_path / "drums"
    assert main(["train", "--data", groove, "--epochs", "1", "--embedding-dim", "4", "--out", str(out), *TINY]) == 0
    for name in ("best.npz", "last.npz", "history.csv", "loss.png", "config.json"):
        assert (out / name).is_file(), name
    assert "val_loss" in capsys.readouterr().out

    midi = tmp_path / "drums.mid"
    assert main(["generate", "--checkpoint", str(out / "best.npz"), "--num-steps", "40", "--seed", "3",
                 "--out", str(midi), "--plot", "--temperature", "0.9", "--top-k", "50"]) == 0
    from deeprnn.music import read_events
    sequence = read_events(midi)
    assert sequence.events and all(event.is_drum for event in sequence.events)  # channel 10
    assert sequence.qpm != 120.0  # the primer's tempo, not a default
    assert midi.with_suffix(".png").is_file()

    # a primer whose name is not UTF-8 and holds a newline: the lines after the MIDI is written print it escaped
    odd = os.path.join(os.fsencode(tmp_path), b"pr\xffimer\n.mid")
    shutil.copyfile(midi, odd)
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(out / "best.npz"), "--num-steps", "8", "--seed", "3",
                 "--primer", os.fsdecode(odd), "--out", str(tmp_path / "continued.mid")]) == 0
    primer_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("primer: "))
    assert "pr\\udcffimer\\n.mid (" in primer_line, primer_line

    assert main(["evaluate", "--checkpoint", str(out / "best.npz"), "--split", "test",
                 "--json", str(tmp_path / "eval.json")]) == 0
    report = capsys.readouterr().out
    assert "trigram (interpolated)" in report and "unigram (add-1)" in report


def test_seed_recipe_trains_and_generates_greedily(groove, tmp_path, capsys):
    out = tmp_path / "seed"
    assert main(["train", "--recipe", "seed", "--data", groove, "--epochs", "1", "--out", str(out), *TINY]) == 0
    midi = tmp_path / "seed.mid"
    assert main(["generate", "--checkpoint", str(out / "best.npz"), "--num-steps", "30", "--seed", "0",
                 "--out", str(midi), "--window-rerun"]) == 0
    assert "greedy" in capsys.readouterr().out
    from deeprnn.music import read_events
    assert read_events(midi).events


def test_resume_reaches_the_weights_of_an_uninterrupted_run(groove, tmp_path):
    common = ["train", "--data", groove, "--embedding-dim", "4", "--dropout", "0.2", "--seed", "5", *TINY]
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "resumed")]) == 0
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "resumed"), "--resume"]) == 0
    straight, resumed = weights(tmp_path / "straight" / "last.npz"), weights(tmp_path / "resumed" / "last.npz")
    assert straight.keys() == resumed.keys() and len(straight) > 10
    for key in straight:
        assert numpy.array_equal(straight[key], resumed[key]), key
    history = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2"]


def test_resume_with_other_settings_is_a_clear_error(groove, tmp_path, capsys):
    common = ["train", "--data", groove, "--embedding-dim", "4", *TINY]
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    changed = [arg if arg != "8" else "12" for arg in common]  # --units 12, --batch-size 12
    assert main([*changed, "--epochs", "2", "--out", str(tmp_path / "run"), "--resume"]) == 1
    error = capsys.readouterr().err
    assert "--units 8 (this run asks for 12)" in error and "Traceback" not in error


def test_train_into_a_run_refuses_in_one_line_unless_overwrite(groove, tmp_path, capsys):
    common = ["train", "--data", groove, "--embedding-dim", "4", "--epochs", "1", "--out", str(tmp_path / "run"), *TINY]
    assert main(common) == 0
    before = (tmp_path / "run" / "last.npz").read_bytes()
    capsys.readouterr()
    assert main(common) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "holds a training run" in errors[0] and "--overwrite" in errors[0]
    assert (tmp_path / "run" / "last.npz").read_bytes() == before  # the run is untouched
    assert main([*common, "--overwrite", "--seed", "4"]) == 0
    assert (tmp_path / "run" / "last.npz").read_bytes() != before
