"""Reading and writing the spreadsheets of send tasks: CSV (any common delimiter and encoding)
and XLSX, streamed row by row so memory does not grow with the file.

Reading a file is the only I/O here; everything else (encoding and delimiter detection,
column names, phone clean-up, formula escaping) is pure.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import phonenumbers

from herald.domain.phones import InvalidPhone, to_e164

FORMATS = ("csv", "xlsx")
DELIMITERS = ",;\t|"
# Columns that address the recipient rather than fill template variables, named as the
# messages API names a destination's fields (Telegram's chat id is ``messengerUserId``).
DESTINATION_COLUMNS = ("phone", "email", "messengerUserId")
_DESTINATION_NAMES = {name.lower(): name for name in DESTINATION_COLUMNS}
# Cells starting with these are formulas to Excel and LibreOffice (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_XLSX_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20


class SpreadsheetProblem(ValueError):
    """The file cannot be read as a spreadsheet; ``code`` is a stable machine code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its number as a spreadsheet shows it (the header is row 1) and cells."""

    number: int
    cells: dict[str, str]


def file_format(filename: str | None, head: bytes) -> str:
    """``csv`` or ``xlsx``, from the file name's extension or, failing that, its first bytes."""
    name = (filename or "").lower()
    if name.endswith((".xls", ".ods", ".numbers")):
        raise SpreadsheetProblem(
            f"{filename!r} is not a CSV or XLSX file; save it as .xlsx or .csv first.",
            "unsupported_format",
        )
    if name.endswith(".xlsx") or head.startswith(_XLSX_MAGIC):
        return "xlsx"
    if b"\x00" in head[:4096]:
        raise SpreadsheetProblem(
            "The file looks binary and is not XLSX; upload a .csv or .xlsx file.",
            "unsupported_format",
        )
    return "csv"


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` with a BOM; else ``utf-8`` when the whole file decodes; else ``cp1251``.

    Russian Excel saves "CSV" in cp1251, which almost never decodes as UTF-8 by accident.
    The check streams the file in chunks, so it costs no memory.
    """
    with path.open("rb") as f:
        head = f.read(3)
        if head == codecs.BOM_UTF8:
            return "utf-8-sig"
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := f.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1251"
    return "utf-8"


def sniff_delimiter(sample: str) -> str:
    """The delimiter among ``, ; TAB |`` that the first KB of the file uses (``,`` if unsure)."""
    sample = sample[:1024]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample.splitlines() else ""
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def column_name(raw: Any) -> str:
    """A header cell as a column name: trimmed; destination columns case-insensitive."""
    text = cell_text(raw).strip().lstrip("\ufeff").strip()
    return _DESTINATION_NAMES.get(text.lower(), text)


def cell_text(value: Any) -> str:
    """A cell value as text; whole floats lose their ``.0`` (Excel stores numbers as floats)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    text = str(value).strip()
    # Our own files escape formulas with an apostrophe; take it off when they come back.
    if text.startswith("'") and text[1:].startswith(FORMULA_PREFIXES):
        return text[1:]
    return text


def normalise_phone(raw: str, default_region: str | None) -> str:
    """E.164 from what people type into spreadsheets.

    Numbers without ``+`` are read in ``default_region``. Excel drops a leading ``+`` from a
    number it takes for a number, so 11–15 digits that are not valid in the default region
    are tried once more as ``+digits``.
    """
    text = raw.strip()
    if not text:
        raise InvalidPhone("the phone number is empty")
    if text.startswith("+"):
        return to_e164(text)
    digits = "".join(ch for ch in text if ch.isdigit())
    looks_international = 11 <= len(digits) <= 15 and len(digits) == len(
        "".join(ch for ch in text if ch.isalnum())
    )
    if default_region:
        try:
            return to_e164(text, default_region)
        except InvalidPhone:
            if not looks_international:
                raise
    if looks_international:
        try:
            return to_e164("+" + digits)
        except InvalidPhone:
            pass
    if default_region:
        raise InvalidPhone(f"{raw!r} is not a valid phone number in {default_region} or abroad")
    raise InvalidPhone(
        f"{raw!r} has no country code; write it like +14155550123 or set the task's defaultRegion"
    )


def valid_region(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def escape_formula(value: Any) -> Any:
    """Cell text that Excel would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


HEADER_SEARCH_ROWS = 20


def _rows(records: Iterable[Sequence[Any]]) -> Iterator[Row | list[str]]:
    """The header (as a list of names) first, then data rows; blank rows are skipped.

    The header is the first row naming a destination column (``phone``, ``email``, ...) within
    the first rows, so a title or notes above the table are skipped; without one, the
    first non-blank row.
    """
    header: list[str] | None = None
    before: list[tuple[int, list[str]]] = []
    for number, record in enumerate(records, start=1):
        texts = [cell_text(v) for v in record]
        if not any(texts):
            continue
        if header is None:
            names = [column_name(v) for v in texts]
            if any(n in DESTINATION_COLUMNS for n in names):
                header = names
                yield header
                continue
            before.append((number, texts))
            if len(before) < HEADER_SEARCH_ROWS:
                continue
            # No destination column anywhere near the top: the first row is the header.
            (_, first), *rest = before
            header = [column_name(v) for v in first]
            yield header
            yield from _data(header, rest)
            continue
        yield from _data(header, [(number, texts)])
    if header is None and before:
        (_, first), *rest = before
        header = [column_name(v) for v in first]
        yield header
        yield from _data(header, rest)


def _data(header: list[str], records: list[tuple[int, list[str]]]) -> Iterator[Row]:
    for number, texts in records:
        cells = {
            name: texts[i] if i < len(texts) else ""
            for i, name in enumerate(header)
            if name  # columns without a header are junk (notes, merged titles)
        }
        if any(cells.values()):
            yield Row(number, cells)


def _csv_records(path: Path) -> Iterator[list[str]]:
    encoding = detect_encoding(path)
    with path.open(encoding=encoding, newline="") as f:
        sample = f.read(1024)
        f.seek(0)
        delimiter = sniff_delimiter(sample)
        yield from csv.reader(f, delimiter=delimiter)


def _xlsx_records(path: Path) -> Iterator[Sequence[Any]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise SpreadsheetProblem(
            f"The file is not a readable XLSX workbook: {e}", "invalid_xlsx"
        ) from e
    try:
        sheet = workbook.worksheets[0]
        yield from sheet.iter_rows(values_only=True)
    finally:
        workbook.close()


def read_rows(path: Path, fmt: str) -> tuple[list[str], Iterator[Row]]:
    """The header and a stream of data rows of a CSV or XLSX file."""
    records = _xlsx_records(path) if fmt == "xlsx" else _csv_records(path)
    stream = _rows(records)
    try:
        header = next(stream)
    except StopIteration:
        raise SpreadsheetProblem("The file has no rows at all.", "empty_file") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise SpreadsheetProblem(f"The file is not valid CSV: {e}", "invalid_csv") from e
    assert isinstance(header, list)

    def data() -> Iterator[Row]:
        try:
            for row in stream:
                assert isinstance(row, Row)
                yield row
        except csv.Error as e:
            raise SpreadsheetProblem(f"The file is not valid CSV: {e}", "invalid_csv") from e

    return header, data()


def write_table(path: Path, fmt: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write ``rows`` as CSV (UTF-8 with BOM, so Excel opens it right) or XLSX, streamed.

    Every cell is escaped against formula injection.
    """
    if fmt == "xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet()
        sheet.append(list(header))
        for row in rows:
            sheet.append([escape_formula(v) for v in row])
        workbook.save(path)
        return
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([escape_formula(v) for v in row])


def table_bytes(fmt: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A small table (a sample file) as bytes."""
    if fmt == "xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet()
        sheet.append(list(header))
        for row in rows:
            sheet.append([escape_formula(v) for v in row])
        buffer = io.BytesIO()
        workbook.save(buffer)
        return buffer.getvalue()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    for row in rows:
        writer.writerow([escape_formula(v) for v in row])
    return codecs.BOM_UTF8 + text.getvalue().encode()
