"""Issue 22, class 1: what is not a regular file, or is one too large to read, where data is read.

A named pipe called `x.mid` blocks whoever opens it for reading until a writer comes (never); a symlink to
`/dev/zero` never ends; a sparse 5 GB `.mid` costs nothing on disk and 5 GB to read whole; a folder named `x.mid` is
not a MIDI file. Each must be refused before any byte is read, with one line naming it, at every place data comes in:
the reader (`read_events`, which a primer goes through too), the corpus and its cache (which hashes a file before
reading it), a plain data folder, the rows of an `info.csv`, and `info.csv` itself.

A broken guard would hang or allocate gigabytes, so every case runs in a child process with a timeout and a 2 GiB
address-space limit: a regression fails here as a timeout or a MemoryError, never as a stuck or swapping test run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from deeprnn.music.limits import MAX_TOKENIZER_BYTES

from hostile_midi import END_OF_TRACK, midi_file, note

HERE = Path(__file__).resolve().parent
GOOD = midi_file(note(0, 36) + note(480, 38) + END_OF_TRACK)
INFO_HEADER = "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\n"
# what each special entry is, and the words the refusal must use for it
KINDS = {
    "fifo.mid": "is a named pipe",
    "zero.mid": "is a character device",  # a symlink to /dev/zero: judged as what it names
    "link_to_fifo.mid": "is a named pipe",
    "sparse.mid": "5368709120 bytes, more than the 4194304 bytes a MIDI file may have",
    "folder.mid": "is a folder",
}

# info.csv rows may only name files inside the dataset folder: the link to /dev/zero is refused as outside it
ROW_KINDS = [name for name in KINDS if name != "zero.mid"]


def make_special(folder: Path) -> dict[str, Path]:
    """The special entries of KINDS in `folder`, made cheaply: no byte of the sparse file is written."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "fifo.mid")
    (folder / "zero.mid").symlink_to("/dev/zero")
    (folder / "link_to_fifo.mid").symlink_to(folder / "fifo.mid")
    with open(folder / "sparse.mid", "wb") as handle:
        handle.truncate(5 << 30)
    (folder / "folder.mid").mkdir()
    return {name: folder / name for name in KINDS}


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def probe(root: str) -> dict:
    """Every way data comes in, on every special entry; runs in the child process. Returns what each said."""
    from deeprnn.errors import DataError
    from deeprnn.music import DrumGridTokenizer, groove, load_splits, load_tokenizer, read_events, tokenize_corpus

    limit_memory()
    root = Path(root)
    outcome: dict = {"read_events": {}, "encode_file": {}, "load_tokenizer": {}}
    special = make_special(root / "plain")
    for name, path in special.items():
        for entry, read in (("read_events", read_events), ("encode_file", DrumGridTokenizer().encode_file),
                            ("load_tokenizer", load_tokenizer)):
            try:
                read(path)
                outcome[entry][name] = "read"
            except DataError as error:
                outcome[entry][name] = f"{type(error).__name__}: {error}"

    # the corpus with its cache, the good file beside the special ones
    good = root / "good.mid"
    good.write_bytes(GOOD)
    lines: list[str] = []
    corpus = tokenize_corpus([*special.values(), good], DrumGridTokenizer(), cache_dir=root / "cache", workers=1,
                             report=lines.append)
    outcome["corpus"] = {"kept": [str(path) for path in corpus.paths], "lines": lines}

    # a plain data folder: three good files beside the special ones (folder.mid holds the third)
    for index in range(2):
        (root / "plain" / f"good{index}.mid").write_bytes(GOOD)
    (root / "plain" / "folder.mid" / "inside.mid").write_bytes(GOOD)
    lines = []
    splits = load_splits(root / "plain", DrumGridTokenizer(), report=lines.append)
    for name in groove.SPLITS:
        try:
            splits.split(name)
        except DataError as error:  # a split left with only special files: one line too
            lines.append(f"error: {error}")
    outcome["plain"] = lines

    # info.csv rows naming the special entries, beside one good file per split
    dataset = root / "dataset"
    make_special(dataset)
    rows = [f"d,s,i,rock,100,beat,4-4,{name},x.wav,1.0,train\n" for name in ROW_KINDS]
    for split in groove.SPLITS:
        (dataset / f"{split}.mid").write_bytes(GOOD)
        rows.append(f"d,s,i,rock,100,beat,4-4,{split}.mid,x.wav,1.0,{split}\n")
    (dataset / "info.csv").write_text(INFO_HEADER + "".join(rows))
    lines = []
    splits = load_splits(dataset, DrumGridTokenizer(), report=lines.append)
    outcome["rows"] = {"lines": lines, "kept": [str(path) for path in splits.split("train").paths]}
    # a row naming the link to /dev/zero names a file outside the dataset: the whole csv is refused, in one line
    (dataset / "info.csv").write_text(INFO_HEADER + "".join(rows) + "d,s,i,rock,100,beat,4-4,zero.mid,x.wav,1,test\n")
    try:
        load_splits(dataset, DrumGridTokenizer(), report=lines.append)
        outcome["rows"]["outside"] = "read"
    except groove.GrooveDataError as error:
        outcome["rows"]["outside"] = str(error)

    # info.csv itself a pipe, a device, a folder, or too large
    outcome["info.csv"] = {}
    for name in KINDS:
        folder = root / f"csv-{name}"
        folder.mkdir()
        (folder / "info.csv").symlink_to(special[name])
        try:
            groove.load(folder)
            outcome["info.csv"][name] = "read"
        except groove.GrooveDataError as error:
            outcome["info.csv"][name] = str(error)
    return outcome


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    root = tmp_path_factory.mktemp("special")
    code = f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import test_special_files as t; " \
           f"print(json.dumps(t.probe(sys.argv[1])))"
    env = {**os.environ, "DEEPRNN_DATA": str(root / "data-cache")}
    try:
        child = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120,
                               env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("reading the special files did not finish in 120 s: something opened a pipe or a device")
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.splitlines()[-1]), root


@pytest.mark.parametrize("name", KINDS)
def test_the_reader_a_primer_and_a_saved_tokenizer_refuse_it_in_one_line_naming_it(outcome, name):
    said, root = outcome
    for entry, error, limit in (("read_events", "MidiReadError", "a MIDI file"),
                                ("encode_file", "MidiReadError", "a MIDI file"),
                                ("load_tokenizer", "DataError", "a tokenizer file")):
        expected = KINDS[name].replace("4194304", str(MAX_TOKENIZER_BYTES) if error == "DataError" else "4194304")
        expected = expected.replace("a MIDI file", limit)
        message = said[entry][name]
        assert message.startswith(f"{error}: {root / 'plain' / name}: ") and expected in message, message
        assert "\n" not in message


def test_the_corpus_and_its_cache_skip_each_in_one_line_and_keep_the_good_file(outcome):
    said, root = outcome
    assert said["corpus"]["kept"] == [str(root / "good.mid")]
    assert len(said["corpus"]["lines"]) == len(KINDS)
    for line, name in zip(said["corpus"]["lines"], KINDS):
        assert line.startswith(f"skipping {root / 'plain' / name}: ") and KINDS[name] in line


def test_a_plain_data_folder_says_what_it_found_and_skips_each_special_file(outcome):
    said, root = outcome
    summary, *rest = said["plain"]
    skips = [line for line in rest if line.startswith("skipping ")]
    assert all(line.startswith("error: empty corpus") and "\n" not in line for line in rest if line not in skips)
    # fifo.mid, zero.mid, link_to_fifo.mid, sparse.mid, good0.mid, good1.mid, folder.mid/inside.mid: a folder named
    # folder.mid is searched like any folder, never read as a file
    assert summary.startswith(f"data: 7 MIDI files in {root / 'plain'} (no info.csv): split ")
    assert sorted(line.split(": ")[0] for line in skips) == sorted(
        f"skipping {root / 'plain' / name}" for name in KINDS if name != "folder.mid")


def test_info_csv_rows_naming_special_files_are_skipped_in_one_line_each(outcome):
    said, root = outcome
    dataset = (root / "dataset").resolve()
    assert said["rows"]["kept"] == [str(dataset / "train.mid")]
    skips = [line for line in said["rows"]["lines"] if line.startswith("skipping")]
    # a record's path is resolved (link_to_fifo.mid is read as the fifo.mid it names)
    assert [line.split(": ")[0] for line in skips] == [f"skipping {(dataset / name).resolve()}" for name in ROW_KINDS]
    assert all(KINDS[name] in line for line, name in zip(skips, ROW_KINDS))
    assert said["rows"]["outside"] == (f"{dataset / 'info.csv'}:{len(ROW_KINDS) + 5}: midi_filename 'zero.mid' is "
                                       f"outside the dataset folder {dataset}")


@pytest.mark.parametrize("name", KINDS)
def test_an_info_csv_that_is_not_a_regular_file_is_refused_in_one_line(outcome, name):
    said, root = outcome
    message = said["info.csv"][name]
    expected = KINDS[name].replace("4194304", str(64 << 20)).replace("a MIDI file", "a Groove info.csv")
    assert message.startswith(str((root / f"csv-{name}").resolve() / "info.csv")) and expected in message
