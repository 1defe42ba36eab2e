"""The Groove MIDI Dataset: info.csv records, the official split, and a downloader that verifies before it trusts.

The downloader is tested against an HTTP server on 127.0.0.1 serving zips built here; no test touches the
internet.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from deeprnn.errors import DataError
from deeprnn.music import MidiReadError, groove

INFO_HEADER = "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\n"


# --- the real dataset ---------------------------------------------------------------------------------------
def test_official_split_is_897_train_124_validation_129_test(groove_root):
    records = groove.load(groove_root)

    assert len(records) == 1150
    assert groove.split_counts(records) == {"train": 897, "validation": 124, "test": 129}
    assert len(groove.load(groove_root, split="validation")) == 124


def test_records_carry_info_csv_fields_and_absolute_existing_paths(groove_root):
    first = groove.load(groove_root)[0]

    assert first.path.is_absolute() and first.path.is_file() and first.path.suffix == ".mid"
    assert (first.drummer, first.style, first.bpm, first.beat_type, first.time_signature) == \
        ("drummer1", "funk/groove1", 138, "beat", "4-4")
    assert first.split == "test" and first.duration == pytest.approx(27.872308)


def test_bad_data_is_one_family_the_command_line_reports_in_one_line():
    assert issubclass(groove.GrooveDataError, DataError) and issubclass(groove.UnsafeArchiveError, DataError)
    assert issubclass(MidiReadError, DataError) and issubclass(DataError, ValueError)


def test_unknown_split_name_is_an_error(groove_root):
    with pytest.raises(ValueError, match="split"):
        groove.load(groove_root, split="valid")


def test_default_root_follows_the_environment_variable(tmp_path, monkeypatch):
    fake = make_fake_groove_folder(tmp_path / "my-groove")
    monkeypatch.setenv("DEEPRNN_GROOVE", str(fake))

    assert groove.default_root() == fake
    assert [r.split for r in groove.load()] == ["train", "validation", "test"]


def test_without_env_or_cache_the_error_says_how_to_get_the_data(monkeypatch):
    monkeypatch.delenv("DEEPRNN_GROOVE", raising=False)

    assert groove.downloaded_root() is None
    with pytest.raises(groove.GrooveDataError, match="--data DIR"):
        groove.default_root()


def test_the_copy_download_extracted_into_the_data_cache_is_the_default_root(tmp_path, monkeypatch):
    """What the tests' groove fixture falls back on after $DEEPRNN_GROOVE and ../shared/data/groove."""
    monkeypatch.delenv("DEEPRNN_GROOVE", raising=False)
    monkeypatch.setenv("DEEPRNN_DATA", str(tmp_path / "data"))
    extracted = groove._extraction_folder(tmp_path / "data", groove.GROOVE_URL, groove.GROOVE_SHA256)
    make_fake_groove_folder(extracted / "groove")

    assert groove.downloaded_root() == extracted / "groove" == groove.default_root()


# --- a miniature Groove, as a folder and as a zip ---------------------------------------------------------------
MIDI_STUB = b"MThd\x00\x00\x00\x06\x00\x00\x00\x00\x01\xe0"  # a valid header with no tracks


def make_fake_groove_files() -> dict[str, bytes]:
    rows = [("drummer1", "drummer1/session1/1_rock_100_beat_4-4.mid", "train"),
            ("drummer2", "drummer2/session1/2_jazz_120_fill_4-4.mid", "validation"),
            ("drummer3", "drummer3/eval_session/3_funk_90_beat_4-4.mid", "test")]
    csv = INFO_HEADER + "".join(
        f"{drummer},{drummer}/session1,{drummer}/session1/1,rock,100,beat,4-4,{path},{path[:-4]}.wav,12.5,{split}\n"
        for drummer, path, split in rows)
    return {"groove/info.csv": csv.encode(), **{f"groove/{path}": MIDI_STUB for _, path, _ in rows}}


def make_fake_groove_folder(root: Path) -> Path:
    for name, data in make_fake_groove_files().items():
        target = root / name.removeprefix("groove/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def zip_bytes(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how Info-ZIP marks a symlink
            archive.writestr(info, target)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_load_reads_the_zip_by_extracting_it_into_the_cache(tmp_path):
    zip_path = tmp_path / "groove-v1.0.0-midionly.zip"
    zip_path.write_bytes(zip_bytes(make_fake_groove_files()))

    records = groove.load(zip_path)

    assert [r.drummer for r in records] == ["drummer1", "drummer2", "drummer3"]
    assert all(r.path.is_file() and r.path.is_absolute() for r in records)
    assert str(tmp_path / "deeprnn-data") in str(records[0].path)  # the sandboxed $DEEPRNN_DATA


# --- the downloader against a loopback server -------------------------------------------------------------------
@pytest.fixture
def server():
    """A local HTTP server; put bytes in `server.files[name]`, fetch `server.url(name)`; counts GET requests."""
    files: dict[str, bytes] = {}
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            data = files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep pytest output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.files, httpd.requests = files, requests
    httpd.url = lambda name: f"http://127.0.0.1:{httpd.server_address[1]}/{name}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_then_extracts_and_the_second_call_is_free(server, tmp_path):
    data = zip_bytes(make_fake_groove_files())
    server.files["groove.zip"] = data

    root = groove.download(tmp_path / "cache", url=server.url("groove.zip"), size=len(data), sha256=sha256(data))
    again = groove.download(tmp_path / "cache", url=server.url("groove.zip"), size=len(data), sha256=sha256(data))

    assert root == again and (root / "info.csv").is_file()
    assert len(groove.load(root)) == 3
    assert server.requests == ["/groove.zip"]  # the second call found the verified extraction


def test_corrupted_download_is_refused_and_leaves_nothing_behind(server, tmp_path):
    data = zip_bytes(make_fake_groove_files())
    corrupted = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]  # same size, one byte flipped
    server.files["groove.zip"] = corrupted
    cache = tmp_path / "cache"

    with pytest.raises(groove.GrooveDataError, match="corrupt"):
        groove.download(cache, url=server.url("groove.zip"), size=len(data), sha256=sha256(data))

    assert list(cache.iterdir()) == []  # no zip, no temp file, no extraction


def test_a_download_of_the_wrong_size_is_refused(server, tmp_path):
    data = zip_bytes(make_fake_groove_files())
    server.files["groove.zip"] = data + b"trailing junk"

    with pytest.raises(groove.GrooveDataError, match=f"expected {len(data)} bytes"):
        groove.download(tmp_path / "cache", url=server.url("groove.zip"), size=len(data), sha256=sha256(data))


@pytest.mark.parametrize("members, symlinks, reason", [
    ({"groove/info.csv": b"x", "../escaped.txt": b"gotcha"}, None, "'..'"),
    ({"groove/info.csv": b"x", "/tmp/absolute.txt": b"gotcha"}, None, "absolute path"),
    ({"groove/info.csv": b"x"}, {"groove/link": "/etc/passwd"}, "symbolic link"),
])
def test_unsafe_archive_members_are_refused_before_anything_is_extracted(server, tmp_path, members, symlinks,
                                                                          reason):
    data = zip_bytes(members, symlinks)
    server.files["evil.zip"] = data
    cache = tmp_path / "cache"

    with pytest.raises(groove.UnsafeArchiveError, match=reason):
        groove.download(cache, url=server.url("evil.zip"), size=len(data), sha256=sha256(data))

    assert [p.name for p in cache.iterdir()] == ["evil.zip"]  # verified and kept, but nothing extracted
    assert not (tmp_path / "escaped.txt").exists()


def test_no_network_gives_an_error_that_mentions_data_dir(tmp_path):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(groove.GrooveDataError, match="--data DIR"):
        groove.download(tmp_path / "cache", url=f"http://127.0.0.1:{port}/groove.zip", size=1, sha256="0" * 64,
                        timeout=5)


# --- hostile datasets: info.csv rows and zip bombs ---------------------------------------------------------------
@pytest.mark.parametrize("row, reason", [
    ("d,s,1,rock,100,beat,4-4,../../outside.mid,x.wav,12.5,train", "'../../outside.mid' is outside the dataset"),
    ("d,s,1,rock,100,beat,4-4,/etc/passwd,x.wav,12.5,train", "'/etc/passwd' is outside the dataset"),
    ("d,s,1,rock,fast,beat,4-4,a.mid,x.wav,12.5,train", "bpm 'fast' must be an integer"),
    ("d,s,1,rock,0,beat,4-4,a.mid,x.wav,12.5,train", "bpm 0 must be > 0"),
    ("d,s,1,rock,100,beat,4-4,a.mid,x.wav,nan,train", "duration nan finite"),
    ("d,s,1,rock,100,beat,4-4,a.mid,x.wav,12.5,holdout", "split 'holdout' is not one of"),
    ("d,s,1,rock,100", "fields do not match the header"),
])
def test_a_bad_info_csv_row_is_one_error_naming_the_file_and_line(tmp_path, row, reason):
    root = make_fake_groove_folder(tmp_path / "groove")
    with open(root / "info.csv", "a", encoding="utf-8") as handle:
        handle.write(row + "\n")
    with pytest.raises(groove.GrooveDataError, match=reason) as caught:
        groove.load(root)
    assert str(caught.value).startswith(f"{root / 'info.csv'}:5:")  # header, three good rows, then this one


def test_a_row_may_not_reach_outside_through_a_symlink(tmp_path):
    root = make_fake_groove_folder(tmp_path / "groove")
    (tmp_path / "secret.mid").write_bytes(MIDI_STUB)
    (root / "link.mid").symlink_to(tmp_path / "secret.mid")
    with open(root / "info.csv", "a", encoding="utf-8") as handle:
        handle.write("d,s,1,rock,100,beat,4-4,link.mid,x.wav,12.5,train\n")
    with pytest.raises(groove.GrooveDataError, match="'link.mid' is outside the dataset folder"):
        groove.load(root)


def zeros_zip(size: int) -> bytes:
    """A zip bomb: an info.csv and `size` zero bytes, deflated about 1000:1."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("groove/info.csv", INFO_HEADER)
        with archive.open("groove/zeros.mid", "w", force_zip64=True) as member:
            block = bytes(1 << 24)
            for _ in range(size >> 24):
                member.write(block)
    return buffer.getvalue()


def test_a_zip_over_the_size_limit_is_refused_before_anything_is_written(tmp_path):
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zeros_zip(64 << 20))
    assert bomb.stat().st_size < 100_000
    # 64 MiB of zeros and the few bytes of info.csv
    with pytest.raises(groove.UnsafeArchiveError, match=rf"extract 6710\d{{4}} bytes, more than the limit of {32 << 20}"):
        groove.extract_zip(bomb, tmp_path / "cache" / "out", max_bytes=32 << 20)
    assert not (tmp_path / "cache").exists()


def test_a_zip_with_too_many_members_is_refused(tmp_path):
    many = tmp_path / "many.zip"
    many.write_bytes(zip_bytes({f"groove/{index}.mid": b"" for index in range(30)}))
    with pytest.raises(groove.UnsafeArchiveError, match="30 members, more than the limit of 20"):
        groove.extract_zip(many, tmp_path / "out", max_members=20)
    assert not (tmp_path / "out").exists()


def test_a_zip_that_is_not_the_dataset_leaves_nothing_in_the_cache(tmp_path):
    other = tmp_path / "photos.zip"
    other.write_bytes(zip_bytes({"photo.jpg": b"\xff\xd8"}))
    with pytest.raises(groove.GrooveDataError, match="no info.csv"):
        groove.load(other)
    assert not (tmp_path / "deeprnn-data").exists() or not any((tmp_path / "deeprnn-data").iterdir())


@pytest.mark.slow
def test_a_1_mb_zip_of_1_gib_of_zeros_is_refused_with_the_default_limit(tmp_path):
    bomb = tmp_path / "groove.zip"
    bomb.write_bytes(zeros_zip(1 << 30))
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(groove.UnsafeArchiveError, match="more than the limit"):
        groove.load(bomb)
    assert not (tmp_path / "deeprnn-data").exists() or not any((tmp_path / "deeprnn-data").rglob("*"))
