"""Fuzzing `info.csv` (issue 22, class 7): the Groove table as people export it, and as nobody should.

Exported: any column order, extra columns, any text in the free-text fields (commas, quotes, line breaks, non-ASCII),
every field quoted or only where needed, LF, CRLF or CR line ends, with or without the UTF-8 byte-order mark a
spreadsheet writes. Each must read back as exactly the records written.

Damaged: arbitrary bytes, or an exported table with bytes cut or overwritten. `read_info_csv` returns records or
raises GrooveDataError naming the file; nothing else.
"""

from __future__ import annotations

import csv
import io
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deeprnn.music import groove

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EXTRA_COLUMNS = ("session", "id", "audio_filename")
# Any text but what cannot be in a UTF-8 file (lone surrogates) and NUL (no spreadsheet writes it).
free_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
rows = st.fixed_dictionaries({
    "split": st.sampled_from(groove.SPLITS), "drummer": free_text, "style": free_text,
    "bpm": st.integers(1, 400), "beat_type": free_text, "time_signature": free_text,
    "duration": st.floats(0, 1e6, allow_nan=False), "session": free_text, "id": free_text,
    "audio_filename": free_text})


@st.composite
def exported_tables(draw):
    """(bytes of an info.csv, the rows written): the choices a spreadsheet or a script makes when saving one."""
    written = draw(st.lists(rows, max_size=6))
    columns = draw(st.permutations(groove.INFO_COLUMNS + EXTRA_COLUMNS))
    text = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    if any("\n" in str(value) or "\r" in str(value) for row in written for value in row.values()):
        # Python's writer leaves a "\n" unquoted when the line end is "\r" (it quotes only the line end's own
        # characters): a table no reader can split, and not one a spreadsheet writes. Spreadsheets quote it.
        quoting = csv.QUOTE_ALL
    writer = csv.writer(text, lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])), quoting=quoting)
    writer.writerow(columns)
    for index, row in enumerate(written):
        row = {**row, "midi_filename": f"drummer{index}/session1/{index}_beat.mid"}
        writer.writerow([row[column] for column in columns])
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text.getvalue()).encode("utf-8"), written


@FUZZ
@given(table=exported_tables())
def test_an_exported_info_csv_reads_back_as_the_rows_written(tmp_path, table):
    data, written = table
    (tmp_path / "info.csv").write_bytes(data)
    records = groove.read_info_csv(tmp_path / "info.csv")
    assert len(records) == len(written)
    for index, (record, row) in enumerate(zip(records, written)):
        assert record.path == (tmp_path / f"drummer{index}/session1/{index}_beat.mid").resolve()
        assert (record.split, record.drummer, record.style, record.bpm, record.beat_type, record.time_signature) == \
            (row["split"], row["drummer"], row["style"], row["bpm"], row["beat_type"], row["time_signature"])
        assert math.isclose(record.duration, row["duration"], rel_tol=1e-12, abs_tol=1e-12)


def test_a_spreadsheets_info_csv_with_bom_and_crlf_is_read(tmp_path):
    """The example of issue 22: it was refused as "the header lacks the column(s) drummer"."""
    table = ("drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\r\n"
             "drummer1,s1,1,funk/groove1,138,beat,4-4,drummer1/1.mid,drummer1/1.wav,27.87,test\r\n")
    (tmp_path / "info.csv").write_bytes(b"\xef\xbb\xbf" + table.encode())
    [record] = groove.read_info_csv(tmp_path / "info.csv")
    assert (record.drummer, record.split, record.bpm) == ("drummer1", "test", 138)


@st.composite
def damaged_tables(draw):
    data = bytearray(draw(exported_tables())[0])
    if data and draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), damaged_tables()))
def test_any_bytes_as_info_csv_give_records_or_one_error_naming_the_file(tmp_path, data):
    path = tmp_path / "info.csv"
    path.write_bytes(data)
    try:
        records = groove.read_info_csv(path)
    except groove.GrooveDataError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error).strip()
    else:
        assert all(record.bpm > 0 and math.isfinite(record.duration) and record.split in groove.SPLITS
                   and record.path.is_relative_to(tmp_path.resolve()) for record in records)
