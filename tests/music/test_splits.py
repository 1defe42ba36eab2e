"""`load_splits`: from a `--data` source to tokens in one call, saying in one line what it found and how it splits it.

A plain MIDI folder is a fair input, but the wrong folder given by mistake (a project with a `.venv`, a folder of
earlier runs) must not quietly train on stray files: virtualenvs, hidden folders and deeprnn's run folders are left
out and named, and every file skipped while reading is one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deeprnn.cli import main
from deeprnn.errors import DataError
from deeprnn.music import DrumGridTokenizer, SeedTokenizer, groove, load_splits, resolve_data
from deeprnn.music.splits import find_midi_files, split_files

from hostile_midi import END_OF_TRACK, midi_file, note

GOOD = midi_file(note(0, 36) + note(480, 38) + note(240, 42) + END_OF_TRACK)
INFO_HEADER = "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\n"


def put(path: Path, data: bytes = GOOD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def project(tmp_path):
    """A project folder given as --data by mistake: ten pieces, and MIDI files that are not data beside them."""
    root = tmp_path / "project"
    pieces = [put(root / "pieces" / f"{index:02d}.mid") for index in range(10)]
    put(root / ".venv" / "lib" / "site-packages" / "mido" / "test.mid")
    put(root / ".venv" / "pyvenv.cfg", b"home = /usr/bin\n")
    put(root / "env" / "pyvenv.cfg", b"home = /usr/bin\n")  # a virtualenv not hidden by its name
    put(root / "env" / "lib" / "stray.mid")
    put(root / "runs" / "groove" / "generated.mid")
    put(root / "runs" / "groove" / "best.npz", b"")
    put(root / "runs" / "sweep" / "generated.mid")
    put(root / "runs" / "sweep" / "config.json", b"{}")
    put(root / "runs" / "sweep" / "history.csv", b"epoch\n")
    put(root / ".git" / "hooks" / "x.mid")
    put(root / "pieces" / ".hidden.mid")
    put(root / "notes.txt", b"not music")
    return root, pieces


def test_a_plain_folder_is_searched_without_virtualenvs_hidden_and_run_folders(project):
    root, pieces = project
    files, left_out = find_midi_files(root)
    assert files == pieces
    assert left_out == [".git (hidden)", ".venv (a virtualenv)", "env (a virtualenv)", "runs/groove (a deeprnn run)",
                        "runs/sweep (a deeprnn run)"]
    assert resolve_data(root) == pieces


def test_one_line_says_what_was_found_where_and_how_it_is_split(project):
    root, pieces = project
    lines = []
    splits = load_splits(root, DrumGridTokenizer(), report=lines.append)
    assert lines == [f"data: 10 MIDI files in {root} (no info.csv; left out .git (hidden), .venv (a virtualenv), "
                     f"env (a virtualenv) and 2 more): split 8/1/1 (80/10/10) by a fixed shuffle"]
    chosen = splits.files.train + splits.files.validation + splits.files.test
    assert sorted(chosen) == pieces and len(splits.split("train").sequences) == 8
    assert lines[1:] == []  # nothing skipped, nothing more said


def test_the_split_is_fixed_and_max_files_samples_it_with_the_seed(project):
    root, _ = project
    first, again, other_seed = (split_files(str(root), seed=seed) for seed in (0, 0, 7))
    assert first.train == again.train == other_seed.train  # the shuffle does not depend on --seed
    sampled = split_files(str(root), max_files=3, seed=1)
    assert len(sampled.train) == 3 and set(sampled.train) <= set(first.train)
    assert sampled.description.endswith("; --max-files 3 keeps 3/1/1 (sampled with seed 1)")
    assert split_files(str(root), max_files=3, seed=1).train == sampled.train


def test_a_groove_folder_says_it_uses_the_official_split(tmp_path):
    rows = "".join(f"d,s,{split},rock,100,beat,4-4,{split}/{index}.mid,x.wav,1.0,{split}\n"
                   for split in groove.SPLITS for index in range(2))
    for split in groove.SPLITS:
        for index in range(2):
            put(tmp_path / "g" / split / f"{index}.mid")
    put(tmp_path / "g" / "info.csv", (INFO_HEADER + rows).encode())
    lines = []
    splits = load_splits(tmp_path / "g", DrumGridTokenizer(), max_files=1, seed=0, report=lines.append)
    assert lines == [f"data: the Groove MIDI Dataset in {tmp_path / 'g'} (6 files in its info.csv): its official "
                     f"split 2/2/2; --max-files 1 keeps 1/1/1 (sampled with seed 0)"]
    assert splits.files.official and len(splits.split("test").sequences) == 1


def test_too_few_files_is_one_error_that_names_what_was_left_out(project):
    root, _ = project
    for piece in (root / "pieces").glob("0[2-9].mid"):
        piece.unlink()
    with pytest.raises(DataError, match=r"2 MIDI file\(s\) found; need at least 3 for train/validation/test; "
                                        r"left out \.git \(hidden\), .* and 2 more$"):
        load_splits(root, DrumGridTokenizer(), report=print)


def test_a_tokenizer_that_learns_its_vocabulary_is_fitted_on_the_training_files_only(project):
    root, _ = project
    tokenizer = SeedTokenizer()
    splits = load_splits(root, tokenizer, report=print)
    assert tokenizer.is_fitted and "train" in splits.loaded
    assert splits.loaded["train"].paths == splits.files.train


def test_train_on_the_wrong_folder_says_so_and_skips_each_bad_file_in_one_line(project, tmp_path, capsys):
    root, pieces = project
    put(root / "pieces" / "broken.mid", b"MThd not really")
    status = main(["train", "--data", str(root), "--out", str(tmp_path / "run"), "--units", "4", "--layers", "1",
                   "--seq-len", "8", "--batch-size", "4", "--embedding-dim", "2", "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert f"data: 11 MIDI files in {root} (no info.csv; left out .git (hidden)" in err
    skipped = [line for line in err.splitlines() if line.startswith("skipping ")]
    # broken.mid falls in the training split (the fixed shuffle), which training reads
    assert skipped == [f"skipping {root / 'pieces' / 'broken.mid'}: corrupt MIDI header (its length field says "
                       f"544108404 bytes)"]
    assert "Warning" not in err and "warnings.warn" not in err
    assert not any(".venv" in line or "runs/" in line for line in err.splitlines() if "MIDI files in" not in line)
