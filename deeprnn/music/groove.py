"""The Groove MIDI Dataset (Gillick et al., 2019): 1,150 drum performances by 10 drummers on a Roland TD-11.

`load(root, split)` reads `info.csv` into `GrooveRecord`s with absolute paths. The root is a folder holding
`info.csv` (or a `groove/` folder that does), or the official zip, extracted once into the data cache. The
official split is 897 train / 124 validation / 129 test; use it rather than a random split, so that numbers
compare with the Groove paper's and GrooVAE's, which report on it.

Where the data comes from when no root is given (`default_root`): `$DEEPRNN_GROOVE` (a folder or the zip), else
the copy `download()` extracted into the data cache (`$DEEPRNN_DATA` or `~/.cache/deeprnn`).

`download()` fetches the MIDI-only zip (3.2 MB), checks its size and SHA-256 before anything reads it, and
extracts it atomically: members go into a temporary folder that is renamed into place only when all are written,
so an interrupted run never leaves a half dataset that looks whole. Before anything is written, members with
absolute paths, `..` or symlinks are refused (a zip can otherwise write outside the cache), and so is a zip that
would unpack to more than `MAX_ARCHIVE_MEMBERS` files or `MAX_ARCHIVE_BYTES` bytes (a zip bomb); a zip without an
`info.csv` is refused before extraction too, so nothing is left in the cache by a wrong file.

`info.csv` is checked row by row: a row may only name a file inside the dataset folder, and a malformed row is a
`GrooveDataError` naming the csv file and its line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from deeprnn.errors import DataError
from deeprnn.files import atomic_write, check_regular_file, read_regular_file
from deeprnn.music.data_cache import data_cache_dir
from deeprnn.music.limits import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS, MAX_INFO_CSV_BYTES, check_number

GROOVE_URL = "https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip"
GROOVE_SIZE = 3_260_318
GROOVE_SHA256 = "651cbc524ffb891be1a3e46d89dc82a1cecb09a57c748c7b45b844c4841dcc1e"
GROOVE_ENV = "DEEPRNN_GROOVE"
SPLITS = ("train", "validation", "test")
OFFICIAL_SPLIT_SIZES = {"train": 897, "validation": 124, "test": 129}


@dataclass(frozen=True)
class GrooveRecord:
    """One row of info.csv. `path` is the MIDI file, absolute; bpm is the metronome tempo; duration in seconds."""

    path: Path
    split: str
    drummer: str
    style: str
    bpm: int
    beat_type: str  # "beat" or "fill"
    time_signature: str  # as in the csv, e.g. "4-4"
    duration: float


class GrooveDataError(DataError):
    """The dataset is missing, corrupt or unsafe; the message says what to do."""


class UnsafeArchiveError(GrooveDataError):
    """A zip member would land outside the extraction folder (absolute path, '..', or a symlink), or the zip would
    unpack to more files or bytes than the limits allow."""


# --- finding and reading the dataset -----------------------------------------------------------------------
def load(root: str | Path | None = None, split: str | None = None) -> list[GrooveRecord]:
    """Records of info.csv, in its order; `split` in {"train", "validation", "test"} keeps one split.

    root: folder with info.csv (or with groove/info.csv), or the zip; None uses `default_root()`.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    root = _dataset_folder(default_root() if root is None else Path(root))
    records = read_info_csv(root / "info.csv")
    return [record for record in records if split is None or record.split == split]


INFO_COLUMNS = ("midi_filename", "split", "drummer", "style", "bpm", "beat_type", "time_signature", "duration")


def read_info_csv(csv_path: Path) -> list[GrooveRecord]:
    """Every row of a Groove `info.csv` as a record; GrooveDataError naming the file and line of a bad row.

    A row must have every column, a split of SPLITS, a positive integer bpm, a finite non-negative duration, and a
    `midi_filename` that stays inside the csv's folder once resolved (no absolute path, no `..` out, no symlink
    out): a dataset cannot point the loader at files elsewhere on the machine.

    The file must be a regular file of at most `MAX_INFO_CSV_BYTES` (checked before it is read). It is read as a
    spreadsheet saves it too: a UTF-8 byte-order mark is dropped, and line ends may be LF, CRLF or CR.
    """
    root = Path(csv_path).parent.resolve()
    data = read_regular_file(csv_path, MAX_INFO_CSV_BYTES, "Groove info.csv", GrooveDataError)
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        missing = [column for column in INFO_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise GrooveDataError(f"{csv_path}:1: the header lacks the column(s) {', '.join(missing)}")
        return [_record(root, row, f"{csv_path}:{reader.line_num}") for row in reader]
    except UnicodeDecodeError as error:
        raise GrooveDataError(f"{csv_path}: not UTF-8 text ({error})") from None
    except csv.Error as error:
        raise GrooveDataError(f"{csv_path}: malformed csv ({error})") from None


def _record(root: Path, row: dict, where: str) -> GrooveRecord:
    if None in row or any(row.get(column) is None for column in INFO_COLUMNS):
        raise GrooveDataError(f"{where}: the row's fields do not match the header's columns (too many or too few)")
    name = row["midi_filename"]
    path = (root / name).resolve()
    if not name or os.path.isabs(name) or not path.is_relative_to(root):
        raise GrooveDataError(f"{where}: midi_filename {name!r} is outside the dataset folder {root}")
    if row["split"] not in SPLITS:
        raise GrooveDataError(f"{where}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
    try:
        bpm, duration = int(row["bpm"]), float(row["duration"])
    except ValueError:
        raise GrooveDataError(f"{where}: bpm {row['bpm']!r} must be an integer and duration {row['duration']!r} "
                              f"a number") from None
    if bpm <= 0 or not math.isfinite(duration) or duration < 0:
        raise GrooveDataError(f"{where}: bpm {bpm} must be > 0 and duration {duration} finite and >= 0")
    return GrooveRecord(path=path, split=row["split"], drummer=row["drummer"], style=row["style"], bpm=bpm,
                        beat_type=row["beat_type"], time_signature=row["time_signature"], duration=duration)


def default_root() -> Path:
    """`$DEEPRNN_GROOVE` if set, else the extracted official zip in the data cache; raises if neither exists."""
    configured = os.environ.get(GROOVE_ENV)
    if configured:
        return Path(configured).expanduser()
    downloaded = downloaded_root()
    if downloaded is not None:
        return downloaded
    cached = _extraction_folder(data_cache_dir(), GROOVE_URL, GROOVE_SHA256)
    raise GrooveDataError(
        f"Groove MIDI Dataset not found: ${GROOVE_ENV} is unset and {cached} does not exist. "
        f"Run deeprnn.music.groove.download() (3.2 MB), or pass --data DIR (a folder with info.csv, or the zip), "
        f"or set ${GROOVE_ENV}.")


def downloaded_root() -> Path | None:
    """The folder `download()` extracted the official zip into (in the data cache), or None if it has not."""
    folder = _extraction_folder(data_cache_dir(), GROOVE_URL, GROOVE_SHA256) / "groove"
    return folder if (folder / "info.csv").is_file() else None


def _dataset_folder(root: Path) -> Path:
    """Resolve what the user gave (folder, folder above groove/, zip) to the folder holding info.csv."""
    if root.is_file() and zipfile.is_zipfile(root):
        check_regular_file(root, MAX_ARCHIVE_BYTES, "dataset zip", GrooveDataError)  # hashed whole next
        sha256 = _file_sha256(root)
        target = _extraction_folder(data_cache_dir(), root.name, sha256)
        if not target.is_dir():
            _require_info_csv(root)
        root = extract_zip(root, target)
    for candidate in (root, root / "groove"):
        if (candidate / "info.csv").exists():  # a pipe or a folder named info.csv is refused when it is read
            return candidate.resolve()
    raise GrooveDataError(f"{root}: no info.csv there (expected the Groove MIDI Dataset folder or its zip)")


# --- downloading -------------------------------------------------------------------------------------------
def download(cache_dir: str | Path | None = None, url: str = GROOVE_URL, size: int = GROOVE_SIZE,
             sha256: str = GROOVE_SHA256, timeout: float = 60.0) -> Path:
    """Fetch, verify and extract the dataset zip; returns the folder holding info.csv. Idempotent.

    cache_dir: default the data cache. url/size/sha256 default to the official v1.0.0 MIDI-only release; tests
    point them at a local server. A size or hash mismatch deletes the download and raises GrooveDataError.
    """
    check_number("size", size, integer=True, minimum=1)
    check_number("timeout", timeout, minimum=0, exclusive_minimum=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else data_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = _extraction_folder(cache_dir, url, sha256)
    if not target.is_dir():
        zip_path = cache_dir / _archive_name(url)
        if not (zip_path.is_file() and _matches(zip_path, size, sha256)):
            _fetch_verified(url, zip_path, size, sha256, timeout)
        extract_zip(zip_path, target)
    return _dataset_folder(target)


def _require_info_csv(zip_path: Path) -> None:
    """Refuse a zip that is not the dataset before extracting it, so a wrong file leaves nothing in the cache."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise GrooveDataError(f"{zip_path}: not a readable zip ({error})") from None
    if not names & {"info.csv", "groove/info.csv"}:
        raise GrooveDataError(f"{zip_path}: no info.csv or groove/info.csv in the zip (expected the Groove MIDI "
                              f"Dataset zip)")


def _fetch_verified(url: str, zip_path: Path, size: int, sha256: str, timeout: float) -> None:
    """Stream url into zip_path through the atomic writer, hashing as it goes; a size or hash mismatch raises
    inside the write, so the temporary file is removed and zip_path never holds a wrong download."""
    def stream_verified(temp_file) -> None:
        digest = hashlib.sha256()
        received = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 16):
                    received += len(chunk)
                    if received > size:  # a wrong file; stop before it fills the disk
                        break
                    digest.update(chunk)
                    temp_file.write(chunk)
        except (urllib.error.URLError, OSError) as error:
            raise GrooveDataError(
                f"could not download {url}: {error}. Without network access, fetch the zip on another "
                f"machine and pass --data DIR (the unzipped folder or the zip itself), or set ${GROOVE_ENV}."
            ) from error
        if received != size or digest.hexdigest() != sha256:
            got = f"more than {size} bytes" if received > size else f"{received} bytes, sha256 {digest.hexdigest()}"
            raise GrooveDataError(f"download of {url} is corrupt: expected {size} bytes, sha256 {sha256}; got {got}")

    atomic_write(zip_path, stream_verified)


def extract_zip(zip_path: str | Path, target: str | Path, max_members: int = MAX_ARCHIVE_MEMBERS,
                max_bytes: int = MAX_ARCHIVE_BYTES) -> Path:
    """Extract zip_path to target atomically after refusing unsafe members; an existing target is kept as is.

    Refused before anything is written (UnsafeArchiveError): members with an absolute path, a `..` component or a
    symlink, more than `max_members` members, or more than `max_bytes` bytes unpacked in total (the sizes the zip
    declares; Python's zipfile never inflates a member past its declared size). A failed extraction removes all it
    wrote. GrooveDataError for a file that is not a readable zip.
    """
    check_number("max_members", max_members, integer=True, minimum=1)
    check_number("max_bytes", max_bytes, integer=True, minimum=1)
    zip_path, target = Path(zip_path), Path(target)
    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            _check_archive_size(zip_path, members, max_members, max_bytes)
            for member in members:
                _check_member(zip_path, member)
            target.parent.mkdir(parents=True, exist_ok=True)
            temp_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
            try:
                archive.extractall(temp_dir)
                try:
                    os.rename(temp_dir, target)
                except OSError:
                    if not target.is_dir():  # not a lost race with another process: a real error
                        raise
            finally:
                if temp_dir.exists():
                    shutil.rmtree(temp_dir)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise GrooveDataError(f"{zip_path}: not a readable zip ({type(error).__name__}: {error})") from None
    return target


def _check_archive_size(zip_path: Path, members: list[zipfile.ZipInfo], max_members: int, max_bytes: int) -> None:
    if len(members) > max_members:
        raise UnsafeArchiveError(f"{zip_path}: refusing to extract {len(members)} members, more than the limit of "
                                 f"{max_members}")
    total = sum(member.file_size for member in members)
    if total > max_bytes:
        raise UnsafeArchiveError(f"{zip_path}: refusing to extract {total} bytes, more than the limit of {max_bytes} "
                                 f"(a zip bomb, or not the dataset)")


def _check_member(zip_path: Path, member: zipfile.ZipInfo) -> None:
    name = member.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    mode = member.external_attr >> 16
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        reason = "an absolute path"
    elif ".." in parts:
        reason = "a '..' component"
    elif stat.S_ISLNK(mode):
        reason = "a symbolic link"
    else:
        return
    raise UnsafeArchiveError(f"{zip_path}: refusing to extract member {name!r}: it has {reason}")


def _matches(path: Path, size: int, sha256: str) -> bool:
    return path.stat().st_size == size and _file_sha256(path) == sha256


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _archive_name(url_or_name: str) -> str:
    return url_or_name.rstrip("/").rsplit("/", 1)[-1] or "archive.zip"


def _extraction_folder(cache_dir: Path, url_or_name: str, sha256: str) -> Path:
    """Folder name carries the hash, so a different zip never reuses another one's extraction."""
    return cache_dir / f"{Path(_archive_name(url_or_name)).stem}-{sha256[:12]}"


def split_counts(records: list[GrooveRecord]) -> dict[str, int]:
    """{"train": n, "validation": n, "test": n} for these records."""
    counts = dict.fromkeys(SPLITS, 0)
    for record in records:
        counts[record.split] = counts.get(record.split, 0) + 1
    return counts
