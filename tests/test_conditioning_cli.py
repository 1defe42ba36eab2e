"""Conditioning from the command line on the shared Groove copy (tiny model, 3 files per split, 1 epoch): train with
--condition, generate on request from silence, the unknown-style error, show's styles, evaluate's two NLLs."""
import json

import numpy

from deeprnn.cli import main
from deeprnn.layers import ConditionedEmbedding
from deeprnn.music import read_events
from deeprnn.pipeline.checkpoints import load_checkpoint

TINY = ["--max-files", "3", "--units", "8", "--layers", "1", "--seq-len", "16", "--batch-size", "8", "--quiet",
        "--embedding-dim", "4", "--epochs", "1"]


def test_a_conditioned_drums_run_trains_generates_on_request_shows_its_styles_and_evaluates(groove, tmp_path,
                                                                                             capsys):
    out = tmp_path / "styled"
    assert main(["train", "--data", groove, "--condition", "tempo,style,fill", "--out", str(out), *TINY]) == 0
    assert "conditioned on style (" in capsys.readouterr().out
    checkpoint = load_checkpoint(out / "best.npz")
    assert checkpoint.labels.names == ("style", "tempo", "fill")  # the columns' order, whatever the flag's
    assert isinstance(checkpoint.model.layers[0], ConditionedEmbedding)
    assert checkpoint.model.layers[0].conditions[0][:2] == ("style", len(checkpoint.labels.vocabularies["style"]))
    style = checkpoint.labels.vocabularies["style"][0]

    midi = tmp_path / f"{style}.mid"
    assert main(["generate", "--checkpoint", str(out / "best.npz"), "--style", style, "--bpm", "96", "--fill",
                 "--num-steps", "48", "--seed", "1", "--out", str(midi)]) == 0
    printed = capsys.readouterr().out
    assert f"from silence: style {style}, tempo 80-100, fill fill" in printed
    assert read_events(midi).qpm == 96.0

    assert main(["generate", "--checkpoint", str(out / "best.npz"), "--style", "polka", "--num-steps", "8",
                 "--out", str(tmp_path / "polka.mid")]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--style 'polka' is not one this model knows; known: " + style in error[0]
    assert not (tmp_path / "polka.mid").exists()

    assert main(["show", str(out)]) == 0
    assert "styles: " + ", ".join(checkpoint.labels.vocabularies["style"]) in capsys.readouterr().out

    assert main(["evaluate", "--checkpoint", str(out / "best.npz"), "--split", "test",
                 "--json", str(tmp_path / "eval.json")]) == 0
    report = capsys.readouterr().out
    assert "hit NLL per step with the true labels" in report and "with the labels shuffled" in report
    numbers = json.loads((tmp_path / "eval.json").read_text())["labels"]
    assert numbers["true"] > 0 and numbers["shuffled"] > 0


def test_labels_reach_generation_two_styles_from_the_same_seed_differ(groove, tmp_path, capsys):
    """The request's labels are what the model is told: on the same seed, every style but one gives the same first
    distribution only if the label tables were ignored."""
    from deeprnn.pipeline.generation import generate_from_checkpoint
    out = tmp_path / "styled"
    assert main(["train", "--data", groove, "--condition", "style", "--out", str(out), *TINY]) == 0
    styles = load_checkpoint(out / "best.npz").labels.vocabularies["style"]
    first = [generate_from_checkpoint(out / "best.npz", tmp_path / f"{style}.mid", num_steps=4, seed=0, style=style,
                                      log=lambda line: None).generated.probabilities[0] for style in styles[:2]]
    assert not numpy.allclose(first[0], first[1])


def test_condition_is_refused_by_the_seed_recipe_in_one_line(groove, tmp_path, capsys):
    assert main(["train", "--recipe", "seed", "--data", groove, "--condition", "style", "--out",
                 str(tmp_path / "seed"), *TINY[:-4]]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--condition belongs to the drums and groove recipes" in error[0]
    assert main(["train", "--data", groove, "--condition", "mood", "--out", str(tmp_path / "x"), *TINY]) != 0
    assert "--condition takes a comma-separated list of style, tempo, fill" in capsys.readouterr().err


def test_the_groove_recipe_conditions_too_and_generates_from_silence_keeping_its_hit_grammar(groove, tmp_path,
                                                                                              capsys):
    out = tmp_path / "groove"
    assert main(["train", "--recipe", "groove", "--data", groove, "--condition", "style,fill", "--out", str(out),
                 *TINY]) == 0
    style = load_checkpoint(out / "best.npz").labels.vocabularies["style"][-2]  # other
    midi = tmp_path / "other.mid"
    assert main(["generate", "--checkpoint", str(out / "best.npz"), "--style", style, "--num-steps", "60",
                 "--seed", "2", "--out", str(midi)]) == 0
    assert f"from silence: style {style}, fill beat (120 qpm)" in capsys.readouterr().out
    assert read_events(midi).qpm == 120.0


def test_a_conditioned_run_resumes_with_its_label_vocabularies(groove, tmp_path, capsys):
    common = ["train", "--data", groove, "--out", str(tmp_path / "run"), *TINY[:-2]]
    assert main([*common, "--condition", "style", "--epochs", "1"]) == 0
    before = load_checkpoint(tmp_path / "run" / "last.npz").labels
    assert main([*common, "--condition", "style,style", "--epochs", "2", "--resume"]) != 0  # checked on resume
    assert main([*common, "--condition", " style", "--epochs", "2", "--resume"]) == 0  # the same labels
    after = load_checkpoint(tmp_path / "run" / "last.npz")
    assert after.training["epoch"] == 2 and after.labels == before
    assert main([*common, "--condition", "tempo", "--epochs", "3", "--resume"]) != 0
    assert "--condition style (this run asks for tempo)" in capsys.readouterr().err
