"""Spreadsheets of send tasks, made as real files: encodings, delimiters, XLSX junk, size."""

from __future__ import annotations

import codecs
import csv
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from herald.domain import phones
from herald.domain import spreadsheets as sheets
from herald.domain.phones import InvalidPhone
from herald.services.tasks.reader import ReaderFailed, SheetReader
from tests.spreadsheet_files import ODS_MANIFEST, write_ods, write_xls

ROWS = [["Phone", "name", "city"], ["+79161234567", "Аня", "Москва"], ["+14155552671", "Bob", ""]]


def write_csv(path: Path, rows: list[list[str]], *, delimiter: str, encoding: str) -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def read_all(path: Path, fmt: str) -> tuple[list[str], list[sheets.Row]]:
    header, rows = sheets.read_rows(path, fmt)
    return header, list(rows)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251"])
def test_csv_in_any_common_delimiter_and_encoding(
    tmp_path: Path, delimiter: str, encoding: str
) -> None:
    path = write_csv(tmp_path / "list.csv", ROWS, delimiter=delimiter, encoding=encoding)
    assert sheets.detect_encoding(path) == encoding
    header, rows = read_all(path, "csv")
    assert header == ["phone", "name", "city"]
    assert [r.number for r in rows] == [2, 3]
    assert rows[0].cells == {"phone": "+79161234567", "name": "Аня", "city": "Москва"}
    assert rows[1].cells["city"] == ""


def test_csv_with_quoted_delimiters_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text('phone;text\n\n+14155552671;"a; b"\n;\n+14155552672;"line\nbreak"\n')
    _, rows = read_all(path, "csv")
    assert [(r.number, r.cells["text"]) for r in rows] == [(3, "a; b"), (5, "line\nbreak")]


def test_xlsx_with_title_blank_rows_junk_columns_and_numbers(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Spring campaign"])  # a title above the table
    sheet.merge_cells("A1:D1")
    sheet.append([])
    sheet.append(["phone", "amount", None, "when"])
    sheet.append([79161234567, 1234.5, "a note nobody labelled", datetime(2026, 5, 1, 9, 30)])
    sheet.append([None, None, None, None])
    sheet.append([None, None, "junk only in the unnamed column", None])
    sheet.append(["'+14155552671", 10.0, None, None])
    path = tmp_path / "list.xlsx"
    workbook.save(path)

    header, rows = read_all(path, "xlsx")
    assert header == ["phone", "amount", "", "when"]
    assert [r.number for r in rows] == [4, 7]
    assert rows[0].cells == {
        "phone": "79161234567",
        "amount": "1234.5",
        "when": "2026-05-01T09:30:00",
    }
    assert rows[1].cells["phone"] == "+14155552671"  # our own escaping taken off again
    assert rows[1].cells["amount"] == "10"


def test_format_is_told_by_content_then_name(tmp_path: Path) -> None:
    assert sheets.file_format("a.XLSX", b"") == "xlsx"
    assert sheets.file_format(None, b"PK\x03\x04rest") == "xlsx"
    assert sheets.file_format("list.txt", b"phone\n") == "csv"
    # Systems that "export to Excel" often write CSV or TSV named .xls.
    assert sheets.file_format("export.xls", b"phone\tname\n") == "csv"
    ods = write_ods(tmp_path / "list.ods", [["phone"]])
    assert sheets.file_format(None, ods.read_bytes()[:8192]) == "ods"
    xls = write_xls(tmp_path / "list.xls", [["phone"]])
    assert sheets.file_format("list.bin", xls.read_bytes()[:8192]) == "xls"
    odt = b"PK\x03\x04" + bytes(26) + b"mimetypeapplication/vnd.oasis.opendocument.text"
    for name, head in (
        ("scan.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("photo.jpg", b"\xff\xd8\xff\xe0JFIF"),
        ("x.csv", b"\x00\x01\x02"),
        ("letter.odt", odt),
        ("list.numbers", b"PK\x03\x04rest"),
    ):
        with pytest.raises(sheets.UnsupportedFile) as e:
            sheets.file_format(name, head)
        assert e.value.code == "unsupported_file"
        assert name in e.value.message
        assert "CSV (.csv), Excel (.xlsx or .xls) or OpenDocument (.ods)" in e.value.message


TABLE: list[list[object]] = [
    ["Spring campaign"],  # a title above the table
    [],
    ["PHONE", "Name", None, "amount"],
    [79161234567, "Аня", "a note nobody labelled", 1234.5],
    [None, None, None, None],
    ["+14155552671", "Bob", None, 10],
]


@pytest.mark.parametrize("write", [write_xls, write_ods], ids=["xls", "ods"])
def test_xls_and_ods_are_read_like_xlsx(
    tmp_path: Path, write: Callable[[Path, list[list[object]]], Path]
) -> None:
    fmt = write.__name__.removeprefix("write_")
    path = write(tmp_path / f"upload.{fmt}", TABLE)
    assert sheets.file_format(path.name, path.read_bytes()[:8192]) == fmt
    header, rows = read_all(path, fmt)
    assert header == ["phone", "Name", "", "amount"]
    assert [r.number for r in rows] == [4, 6]
    assert rows[0].cells == {"phone": "79161234567", "Name": "Аня", "amount": "1234.5"}
    assert rows[1].cells == {"phone": "+14155552671", "Name": "Bob", "amount": "10"}


@pytest.mark.parametrize("fmt", ["xls", "ods"])
def test_broken_xls_and_ods_are_a_problem_with_a_code(tmp_path: Path, fmt: str) -> None:
    broken = tmp_path / f"upload.{fmt}"
    broken.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 cut short" if fmt == "xls" else b"PK\x03\x04"
    )
    with pytest.raises(sheets.SpreadsheetProblem) as e:
        sheets.read_rows(broken, fmt)
    assert e.value.code == f"invalid_{fmt}"
    assert f"not a readable {fmt.upper()} workbook" in e.value.message


def test_headers_fill_template_variables_whatever_their_case() -> None:
    header = ["phone", "Name", "CITY", "city_code", "Note"]
    assert sheets.variable_names(header, ["name", "city", "code"]) == {
        "Name": "name",
        "CITY": "city",
    }
    # A column named exactly like the variable wins over one that differs in case.
    assert sheets.variable_names(["Name", "name"], ["name"]) == {}
    assert sheets.missing_columns(header, ["name", "CITY", "code"]) == ["code"]


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(sheets.SpreadsheetProblem) as e:
        sheets.read_rows(broken, "xlsx")
    assert e.value.code == "invalid_xlsx"
    empty = tmp_path / "empty.csv"
    empty.write_bytes(codecs.BOM_UTF8 + b"\n\n")
    with pytest.raises(sheets.SpreadsheetProblem) as e:
        sheets.read_rows(empty, "csv")
    assert e.value.code == "empty_file"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+7 916 123-45-67", None, "+79161234567"),
        ("8 (916) 123-45-67", "RU", "+79161234567"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("79161234567", None, "+79161234567"),  # Excel ate the +
        ("79161234567", "US", "+79161234567"),  # not valid in the US, valid as +7…
        ("14155552671", "RU", "+14155552671"),
        ("4155552671", "US", "+14155552671"),
    ],
)
def test_phone_normalisation(raw: str, region: str | None, expected: str) -> None:
    assert sheets.normalise_phone(raw, region) == expected


@pytest.mark.parametrize(("raw", "region"), [("4155552671", None), ("12", "US"), ("", "US")])
def test_phones_that_stay_invalid(raw: str, region: str | None) -> None:
    with pytest.raises(InvalidPhone):
        sheets.normalise_phone(raw, region)


def test_formula_injection_is_escaped_both_ways(tmp_path: Path) -> None:
    values = ["=1+1", "+7916", "-2", "@SUM(A1)", "plain", 5]
    assert [sheets.escape_formula(v) for v in values] == [
        "'=1+1",
        "'+7916",
        "'-2",
        "'@SUM(A1)",
        "plain",
        5,
    ]
    path = tmp_path / "out.csv"
    sheets.write_table(path, "csv", ["phone", "text"], [["+14155552671", "=HYPERLINK(1)"]])
    assert path.read_text("utf-8-sig").splitlines()[1] == "'+14155552671,'=HYPERLINK(1)"
    _, rows = read_all(path, "csv")
    assert rows[0].cells == {"phone": "+14155552671", "text": "=HYPERLINK(1)"}
    # XLSX cells are typed as text, which Excel never runs: no apostrophe to show.
    path = tmp_path / "out.xlsx"
    sheets.write_table(path, "xlsx", ["phone", "text"], [["+14155552671", "=HYPERLINK(1)"]])
    sheet = openpyxl.load_workbook(path).worksheets[0]
    assert [(c.value, c.data_type) for c in sheet[2]] == [
        ("+14155552671", "s"),
        ("=HYPERLINK(1)", "s"),
    ]
    _, rows = read_all(path, "xlsx")
    assert rows[0].cells == {"phone": "+14155552671", "text": "=HYPERLINK(1)"}


def write_big_xlsx(path: Path, rows: int, columns: int) -> None:
    """A plain XLSX written straight as XML (openpyxl's writer would take far longer)."""

    def col(c: int) -> str:
        return chr(ord("A") + c)

    def cells(r: int, values: list[str]) -> str:
        return "".join(
            f'<c r="{col(c)}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
            for c, v in enumerate(values)
        )

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            '.org/package/2006/content-types"><Default Extension="rels" ContentType="applicat'
            'ion/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" Conte'
            'ntType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="appl'
            'ication/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Overrid'
            'e PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformat'
            's-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        )
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openx'
            'mlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://sc'
            'hemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target'
            '="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlfor'
            'mats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/offi'
            'ceDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rI'
            'd1"/></sheets></workbook>',
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openx'
            'mlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://sc'
            'hemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="wor'
            'ksheets/sheet1.xml"/></Relationships>',
        )
        with z.open("xl/worksheets/sheet1.xml", "w") as f:
            f.write(
                b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openx'
                b'mlformats.org/spreadsheetml/2006/main"><sheetData>'
            )
            header = ["phone", *(f"v{c}" for c in range(1, columns))]
            f.write(f'<row r="1">{cells(1, header)}</row>'.encode())
            for i in range(rows):
                values = [f"+14152{i:06d}", *(f"value {i}-{c}" for c in range(1, columns))]
                f.write(f'<row r="{i + 2}">{cells(i + 2, values)}</row>'.encode())
            f.write(b"</sheetData></worksheet>")


READ_AND_MEASURE = """
import sys
from pathlib import Path
from herald.domain import spreadsheets as sheets
header, rows = sheets.read_rows(Path(sys.argv[1]), "xlsx")
count, last = 0, None
for row in rows:
    count, last = count + 1, row.number
# VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the forking parent's peak across exec.
status = Path("/proc/self/status").read_text().splitlines()
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(len(header), count, last, peak)
"""


def test_million_cell_sheet_streams_in_bounded_memory(tmp_path: Path) -> None:
    rows, columns = 100_000, 10
    path = tmp_path / "big.xlsx"
    write_big_xlsx(path, rows, columns)
    # A process of its own, so its peak RSS is the reader's alone.
    out = subprocess.run(
        [sys.executable, "-c", READ_AND_MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    width, count, last, peak_kb = (int(v) for v in out)
    assert (width, count, last) == (columns, rows, rows + 1)
    # The sheet held whole as Python objects would take several hundred MB.
    assert peak_kb < 80 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"


async def test_reader_process_streams_checked_rows_in_batches(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "list.csv",
        [["phone", "name"]]
        + [[f"+1415555{i:04d}", f"n{i}"] for i in range(5)]
        + [["not a phone", "x"], ["", "y"], ["8 (916) 123-45-67", "z"]],
        delimiter=";",
        encoding="utf-8",
    )
    header, reader = await SheetReader.open(
        path, "csv", skip_through=2, region="RU", columns=["phone"], batch_size=3
    )
    try:
        batches = []
        while batch := await reader.next():
            batches.append(batch)
    finally:
        await reader.aclose()
    assert header == ["phone", "name"]
    # Row 2 was stored by an earlier run; batches of three after it.
    assert [[r.number for r in b] for b in batches] == [[3, 4, 5], [6, 7, 8], [9]]
    rows = [r for b in batches for r in b]
    assert rows[0].addresses == {"phone": "+14155550001"}
    assert rows[0].variables == {"name": "n1"}
    assert (rows[4].error_code, rows[4].error_column) == ("invalid_phone", "phone")
    assert rows[5].error_code == "missing_phone"
    assert rows[6].addresses == {"phone": "+79161234567"}
    # The reader parsed the numbers; this process takes its answers instead of parsing again.
    assert phones._known[("+14155550001", None)].phone is not None


async def test_reader_process_reports_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(sheets.SpreadsheetProblem) as caught:
        await SheetReader.open(
            path, "xlsx", skip_through=0, region=None, columns=["phone"], batch_size=10
        )
    assert caught.value.code == "invalid_xlsx"


async def test_a_killed_reader_process_is_an_error_not_the_end_of_the_file(
    tmp_path: Path,
) -> None:
    path = write_csv(
        tmp_path / "list.csv",
        [["phone"]] + [[f"+1415555{i:04d}"] for i in range(5000)],
        delimiter=",",
        encoding="utf-8",
    )
    _, reader = await SheetReader.open(
        path, "csv", skip_through=0, region=None, columns=["phone"], batch_size=10
    )
    try:
        assert len(await reader.next()) == 10
        os.kill(reader._process.pid, signal.SIGKILL)
        with pytest.raises(ReaderFailed, match="exited with code -9"):
            for _ in range(1000):  # what the pipe already holds, then the end of it
                await reader.next()
    finally:
        await reader.aclose()


def write_ods_asking_for_gigabytes(path: Path) -> Path:
    """About 1 KB: one row repeated 99,000 times, 1,000 cells wide (99 million cells, just
    under calamine's own limit), which calamine would hold as about 3 GB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            zipfile.ZipInfo("mimetype"),
            "application/vnd.oasis.opendocument.spreadsheet",
            compress_type=zipfile.ZIP_STORED,
        )
        z.writestr("META-INF/manifest.xml", ODS_MANIFEST)
        z.writestr(
            "content.xml",
            '<?xml version="1.0" encoding="UTF-8"?><office:document-content'
            ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
            ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
            ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
            '<office:spreadsheet><table:table table:name="List"><table:table-row>'
            '<table:table-cell office:value-type="string"><text:p>phone</text:p>'
            "</table:table-cell></table:table-row><table:table-row table:number-rows-repeated="
            '"99000"><table:table-cell table:number-columns-repeated="1000" office:value-type='
            '"string"><text:p>x</text:p></table:table-cell></table:table-row></table:table>'
            "</office:spreadsheet></office:body></office:document-content>",
        )
    return path


async def test_a_file_asking_the_reader_for_gigabytes_ends_only_the_reader(
    tmp_path: Path,
) -> None:
    path = write_ods_asking_for_gigabytes(tmp_path / "upload.ods")
    assert path.stat().st_size < 2048
    with pytest.raises(ReaderFailed) as e:
        await SheetReader.open(
            path, "ods", skip_through=0, region=None, columns=["phone"], batch_size=10
        )
    assert not e.value.stopped  # the file's doing: the task fails rather than retrying it
