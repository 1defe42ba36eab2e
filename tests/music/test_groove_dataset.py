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

from deeprnn.music import groove

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

    with pytest.raises(groove.GrooveDataError, match="--data DIR"):
        groove.default_root()


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
