"""Reading and writing the spreadsheets of send tasks: CSV (any common delimiter and encoding),
XLSX, XLS and ODS read row by row; CSV and XLSX written.

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
from typing import IO, Any

import phonenumbers

from herald.domain.phones import InvalidPhone, to_e164

#: What a task's file may be. CSV goes through the csv module, the workbooks through
#: python-calamine (Rust; several times faster than openpyxl at reading).
FORMATS = ("csv", "xlsx", "xls", "ods")
#: What samples, reports and results are written as (openpyxl writes the XLSX).
OUTPUT_FORMATS = ("csv", "xlsx")
ACCEPTED = "CSV (.csv), Excel (.xlsx or .xls) or OpenDocument (.ods)"
DELIMITERS = ",;\t|"
# Columns that address the recipient rather than fill template variables, named as the
# messages API names a destination's fields (Telegram's chat id is ``messengerUserId``).
DESTINATION_COLUMNS = ("phone", "email", "messengerUserId")
_DESTINATION_NAMES = {name.lower(): name for name in DESTINATION_COLUMNS}
# Cells starting with these are formulas to Excel and LibreOffice (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_ZIP_MAGIC = b"PK\x03\x04"
# Excel 97-2003's container (Word's .doc shares it; reading such a file then fails cleanly).
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# An OpenDocument zip starts with its uncompressed ``mimetype`` member, so the head says it.
_ODF_MIMETYPE = b"mimetypeapplication/vnd.oasis.opendocument."
_ODS_MIMETYPE = _ODF_MIMETYPE + b"spreadsheet"
# Files people upload by mistake whose first bytes may hold no NUL.
_NOT_SHEETS = {
    b"%PDF-": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%!PS": "a PostScript document",
    b"{\\rtf": "an RTF document",
}
# A whole XLSX sheet read by calamine costs about 1.3 bytes of memory per byte of its XML;
# past this much XML the file is streamed through openpyxl instead, slower but flat.
CALAMINE_MAX_XML = 32 << 20
_CHUNK = 1 << 20


class SpreadsheetProblem(ValueError):
    """The file cannot be read as a spreadsheet; ``code`` is a stable machine code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class UnsupportedFile(SpreadsheetProblem):
    """The file is no spreadsheet Herald reads (a PDF, an image, an Apple Numbers file)."""

    def __init__(self, filename: str | None, what: str) -> None:
        name = f"{filename!r}" if filename else "The file"
        super().__init__(
            f"{name} is {what}, not a spreadsheet Herald reads; upload it as {ACCEPTED}.",
            "unsupported_file",
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its number as a spreadsheet shows it (the header is row 1) and cells."""

    number: int
    cells: dict[str, str]


def file_format(filename: str | None, head: bytes) -> str:
    """One of :data:`FORMATS`, from the file's first bytes and, where they leave it open, its
    name; raises :class:`UnsupportedFile` for anything else."""
    name = (filename or "").lower()
    if name.endswith(".numbers"):
        raise UnsupportedFile(filename, "an Apple Numbers file")
    if head.startswith(_ZIP_MAGIC):
        if head[30:].startswith(_ODS_MIMETYPE) or name.endswith(".ods"):
            return "ods"
        if head[30:].startswith(_ODF_MIMETYPE):
            raise UnsupportedFile(filename, "an OpenDocument file other than a spreadsheet")
        return "xlsx"
    if head.startswith(_OLE2_MAGIC):
        return "xls"
    if name.endswith((".xlsx", ".xlsm")):
        return "xlsx"  # not a zip: reading it says the workbook is broken
    for magic, what in _NOT_SHEETS.items():
        if head.startswith(magic):
            raise UnsupportedFile(filename, what)
    if b"\x00" in head[:4096]:
        raise UnsupportedFile(filename, "a binary file")
    # Text, whatever its name: systems that export "Excel" often write CSV or TSV as .xls.
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


def variable_names(header: Sequence[str], variables: Iterable[str]) -> dict[str, str]:
    """The template variable each column fills when its name differs only in letter case
    (``Name`` fills ``{{ name }}``), as destination columns match; a column named exactly
    like a variable takes precedence, and then the first column of that name."""
    wanted = {v.lower(): v for v in variables}
    taken = {c for c in header if c in wanted.values()}
    names: dict[str, str] = {}
    for column in header:
        variable = wanted.get(column.lower())
        if variable is not None and variable not in taken and column not in DESTINATION_COLUMNS:
            names[column] = variable
            taken.add(variable)
    return names


def missing_columns(header: Sequence[str], variables: Iterable[str]) -> list[str]:
    """The variables no column of ``header`` fills, letter case aside."""
    present = {c.lower() for c in header}
    return [v for v in variables if v.lower() not in present]


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
    """CSV cell text that Excel would run as a formula gets a leading apostrophe."""
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
        if any("\x00" in text for text in texts):
            # PostgreSQL cannot store a NUL, and no sheet a person made holds one (a CSV's
            # first bytes with one already read as binary).
            raise SpreadsheetProblem(
                f"Row {number} holds a NUL character (\\u0000), which Herald cannot store; "
                "remove it.",
                "invalid_character",
            )
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
    except SyntaxError as e:
        # The sheet's XML is read as rows are: broken XML (such as &#0;, a NUL, which XML
        # has no place for) shows only here. Both XML parsers' errors are SyntaxErrors.
        raise SpreadsheetProblem(
            f"The file is not a readable XLSX workbook: {e}", "invalid_xlsx"
        ) from e
    finally:
        workbook.close()


def _sheet_xml_size(path: Path) -> int:
    """How much XML the workbook's sheets and shared strings unpack to (0 if no zip)."""
    try:
        with zipfile.ZipFile(path) as z:
            return sum(
                i.file_size
                for i in z.infolist()
                if i.filename.startswith("xl/worksheets/") or i.filename == "xl/sharedStrings.xml"
            )
    except (zipfile.BadZipFile, OSError):
        return 0


def _calamine_records(path: Path, fmt: str) -> Iterator[Sequence[Any]]:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        # calamine tells the format by the extension: the stored upload is upload.<fmt>.
        with CalamineWorkbook.from_path(path) as workbook:
            sheet = workbook.get_sheet_by_index(0)
    except (CalamineError, OSError, ValueError) as e:
        raise SpreadsheetProblem(
            f"The file is not a readable {fmt.upper()} workbook: {e}", f"invalid_{fmt}"
        ) from e
    # iter_rows starts at the sheet's first row, blank or not: row numbers stay the ones a
    # spreadsheet shows.
    try:
        yield from sheet.iter_rows()
    except CalamineError as e:
        # The sheet's XML is parsed as its rows are read: broken XML (such as &#0;, a NUL,
        # which XML has no place for) shows only here.
        raise SpreadsheetProblem(
            f"The file is not a readable {fmt.upper()} workbook: {e}", f"invalid_{fmt}"
        ) from e


def _records(path: Path, fmt: str) -> Iterator[Sequence[Any]]:
    if fmt == "csv":
        return _csv_records(path)
    if fmt == "xlsx" and _sheet_xml_size(path) > CALAMINE_MAX_XML:
        return _xlsx_records(path)
    return _calamine_records(path, fmt)


def read_rows(path: Path, fmt: str) -> tuple[list[str], Iterator[Row]]:
    """The header and a stream of data rows of a file in one of :data:`FORMATS`."""
    records = _records(path, fmt)
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


class XlsxWriter:
    """An XLSX sheet appended row by row in openpyxl's write-only mode (flat memory).

    Text is written as text cells, which Excel shows as they are and never runs: no
    apostrophe escape (Excel would show it, in front of every ``+`` phone number).
    """

    def __init__(self, header: Sequence[str]) -> None:
        from openpyxl import Workbook

        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet()
        self._sheet.append(list(header))

    def append(self, row: Iterable[Any]) -> None:
        from openpyxl.cell import WriteOnlyCell

        cells: list[Any] = []
        for value in row:
            if isinstance(value, str) and value.startswith("="):
                # openpyxl takes a string starting with = for a formula; keep it text.
                cell = WriteOnlyCell(self._sheet, value)
                cell.data_type = "s"
                cells.append(cell)
            else:
                cells.append(value)
        self._sheet.append(cells)

    def save(self, target: Path | IO[bytes]) -> None:
        self._book.save(target)


def write_table(path: Path, fmt: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write ``rows`` as CSV (UTF-8 with BOM, so Excel opens it right) or XLSX, streamed.

    No cell can run as a formula: CSV cells are escaped, XLSX ones typed as text.
    """
    if fmt == "xlsx":
        book = XlsxWriter(header)
        for row in rows:
            book.append(row)
        book.save(path)
        return
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([escape_formula(v) for v in row])


def table_bytes(fmt: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A small table (a sample file) as bytes."""
    if fmt == "xlsx":
        book = XlsxWriter(header)
        for row in rows:
            book.append(row)
        buffer = io.BytesIO()
        book.save(buffer)
        return buffer.getvalue()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    for row in rows:
        writer.writerow([escape_formula(v) for v in row])
    return codecs.BOM_UTF8 + text.getvalue().encode()
