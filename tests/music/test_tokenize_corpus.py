"""tokenize_corpus: aligned sequences, bad files skipped by name, a content-keyed cache, and the full Groove set."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from deeprnn.music import (DrumGridTokenizer, SeedTokenizer, groove, music21_corpus_paths,
                           read_corpus_events, read_events, resolve_data, tokenize_corpus)
from deeprnn.music import corpus as corpus_module

from midi_builders import CLOSED_HAT, KICK, SNARE


@pytest.fixture
def small_corpus(make_midi, tmp_path):
    """Two good drum files and three bad ones (not MIDI, truncated, empty), interleaved."""
    good_a = make_midi("a.mid", [(0, 60, KICK, 100, 10), (240, 60, CLOSED_HAT, 60, 10)])
    good_b = make_midi("b.mid", [(0, 60, SNARE, 100, 10)])
    not_midi = tmp_path / "notes.mid"
    not_midi.write_text("this is a text file")
    truncated = tmp_path / "truncated.mid"
    truncated.write_bytes(good_a.read_bytes()[:-10])
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    return [good_a, not_midi, truncated, good_b, empty]


def test_bad_files_are_skipped_with_a_warning_naming_each_and_the_rest_load(small_corpus, tmp_path):
    good_a, not_midi, truncated, good_b, empty = small_corpus

    lines = []
    result = tokenize_corpus(small_corpus, DrumGridTokenizer(), cache_dir=tmp_path / "cache", workers=1,
                             report=lines.append)

    assert result.paths == [good_a, good_b]
    assert [tokens.tolist() for tokens in result.sequences] == [[512, 1, 0, 4, 513], [512, 2, 513]]
    assert [path for path, _ in result.skipped] == [not_midi, truncated, empty]
    assert [line.split(": ")[0] for line in lines] == [f"skipping {bad}" for bad in (not_midi, truncated, empty)]
    assert lines[2] == f"skipping {empty}: empty file (0 bytes)"  # the path once, then the reason


def test_an_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="empty corpus"):
        tokenize_corpus([], DrumGridTokenizer(), cache_dir=tmp_path)
    not_midi = tmp_path / "x.mid"
    not_midi.write_text("nope")
    with pytest.raises(ValueError, match="none of the 1 files"):
        tokenize_corpus([not_midi], DrumGridTokenizer(), cache_dir=tmp_path, report=print)


def test_a_midi_file_without_notes_is_skipped_as_such(make_midi, tmp_path):
    silent = make_midi("silent.mid", [])  # tempo and meter, no notes
    drums = make_midi("drums.mid", [(0, 60, KICK, 100, 10)])

    lines = []
    result = tokenize_corpus([silent, drums], DrumGridTokenizer(), cache_dir=tmp_path / "cache", workers=1,
                             report=lines.append)
    assert lines == [f"skipping {silent}: no notes"]

    assert result.paths == [drums] and result.skipped == [(silent, "no notes")]


def test_an_unfitted_seed_tokenizer_is_refused_before_any_work(small_corpus, tmp_path):
    with pytest.raises(RuntimeError, match="fit it on the training files"):
        tokenize_corpus(small_corpus, SeedTokenizer(), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_second_run_reads_the_cache_and_never_parses_midi(small_corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = tokenize_corpus(small_corpus, DrumGridTokenizer(), cache_dir=cache, workers=1, report=print)

    def no_parsing(path):
        raise AssertionError(f"{path} was parsed although its tokens are cached")
    monkeypatch.setattr(corpus_module, "read_events", no_parsing)
    good_files = first.paths
    second = tokenize_corpus(good_files, DrumGridTokenizer(), cache_dir=cache, workers=1)

    assert second.paths == good_files
    assert [t.tolist() for t in second.sequences] == [t.tolist() for t in first.sequences]


def test_cache_is_keyed_by_content_and_config_and_holds_no_pickles(small_corpus, tmp_path):
    good_a = small_corpus[0]
    cache = tmp_path / "cache"
    tokenize_corpus([good_a], DrumGridTokenizer(), cache_dir=cache, workers=1)
    tokenize_corpus([good_a], DrumGridTokenizer(velocity_bins=4), cache_dir=cache, workers=1)

    folders = sorted(p for p in cache.iterdir() if p.is_dir())
    assert len(folders) == 2  # one per tokenizer config
    for folder in folders:
        config = json.loads((folder / "tokenizer.json").read_text())
        assert config["type"] == "drum_grid"
        (entry,) = folder.glob("*.npz")
        assert entry.stem == hashlib.sha256(good_a.read_bytes()).hexdigest()
        with np.load(entry, allow_pickle=False) as archive:
            assert archive["tokens"].ndim == 1

    # A copy under another name is the same content: a cache hit, whatever the path.
    copy = tmp_path / "renamed.mid"
    copy.write_bytes(good_a.read_bytes())
    entries_before = sorted(cache.rglob("*.npz"))
    tokenize_corpus([copy], DrumGridTokenizer(), cache_dir=cache, workers=1)
    assert sorted(cache.rglob("*.npz")) == entries_before


def test_worker_processes_give_the_same_tokens_in_the_same_order(make_midi, tmp_path):
    # 20 files (enough to start the pool): file i has a kick on step i.
    paths = [make_midi(f"f{i:02d}.mid", [(i * 120, 60, KICK, 100, 10)]) for i in range(20)]

    serial = tokenize_corpus(paths, DrumGridTokenizer(), cache_dir=tmp_path / "serial", workers=1)
    parallel = tokenize_corpus(paths, DrumGridTokenizer(), cache_dir=tmp_path / "parallel", workers=2)

    assert [len(t) for t in parallel.sequences] == [i + 3 for i in range(20)]
    assert [t.tolist() for t in parallel.sequences] == [t.tolist() for t in serial.sequences]


def test_seed_tokenizer_fits_on_training_events_then_tokenizes_the_corpus(make_midi, tmp_path):
    train = [make_midi("train.mid", [(0, 480, 64, 80, 1), (480, 480, 60, 80, 1), (480, 480, 67, 80, 1)])]
    test = [make_midi("test.mid", [(0, 480, 64, 80, 1), (480, 480, 62, 80, 1)])]

    tokenizer = SeedTokenizer().fit(read_corpus_events(train).events)
    result = tokenize_corpus(test, tokenizer, cache_dir=tmp_path / "cache", workers=1)

    # C4 + G4 is a chord; its normalOrder is the most compact rotation, G then C: '7.0'.
    assert tokenizer.vocabulary == ["7.0", "E4"]
    assert result.sequences[0].tolist() == [1, tokenizer.unk_id]  # E4 known, D4 never seen in training


def test_music21_bach_is_an_offline_corpus_for_the_seed_tokenizer():
    paths = music21_corpus_paths("bach", limit=2)
    assert resolve_data("music21:bach")[:2] == paths

    events = read_events(paths[0]).events
    tokenizer = SeedTokenizer().fit([events])

    assert tokenizer.drum_mode is False
    assert len(tokenizer.encode(events)) > 10


def test_importing_deeprnn_music_does_not_import_music21():
    code = "import sys, deeprnn.music; assert 'music21' not in sys.modules, 'music21 imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the whole Groove MIDI Dataset ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def groove_tokens(groove_root, tmp_path_factory):
    """All 1,150 files through DrumGridTokenizer twice: cold (empty cache) and warm; about 10 s in all."""
    paths = [record.path for record in groove.load(groove_root)]
    cache = tmp_path_factory.mktemp("groove-token-cache")
    started = time.perf_counter()
    cold = tokenize_corpus(paths, DrumGridTokenizer(), cache_dir=cache)
    cold_seconds = time.perf_counter() - started
    started = time.perf_counter()
    warm = tokenize_corpus(paths, DrumGridTokenizer(), cache_dir=cache)
    warm_seconds = time.perf_counter() - started
    return paths, cold, warm, cold_seconds, warm_seconds


def test_every_groove_file_tokenizes_to_a_non_empty_drum_grid(groove_tokens):
    paths, cold, _, _, _ = groove_tokens

    assert cold.skipped == []
    assert cold.paths == paths
    for tokens in cold.sequences:
        assert tokens[0] == 512 and tokens[-1] == 513
        assert len(tokens) > 2 and tokens[1:-1].any()  # at least one struck step


def test_warm_groove_run_matches_the_cold_one_and_is_much_faster(groove_tokens):
    _, cold, warm, cold_seconds, warm_seconds = groove_tokens

    assert warm.paths == cold.paths
    assert all(np.array_equal(a, b) for a, b in zip(warm.sequences, cold.sequences))
    # Measured here: ~7 s cold, ~0.25 s warm. The bound is loose so a busy machine does not fail it.
    assert warm_seconds < cold_seconds / 4


def test_resolve_data_reads_a_groove_folder_by_split_and_any_folder_by_suffix(groove_root, make_midi, tmp_path):
    assert len(resolve_data(groove_root, split="test")) == 129

    nested = make_midi("a.mid", [(0, 60, KICK, 100, 10)])
    (tmp_path / "deeper").mkdir()
    other = make_midi("deeper/b.midi", [(0, 60, KICK, 100, 10)])
    (tmp_path / "readme.txt").write_text("not music")
    assert resolve_data(tmp_path) == [nested, other]
