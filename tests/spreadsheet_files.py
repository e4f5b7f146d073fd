"""Real XLS and ODS files for tests: Herald reads both and writes neither."""

from __future__ import annotations

import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import xlwt


def write_xls(path: Path, rows: list[list[object]]) -> Path:
    """A real Excel 97-2003 (BIFF8) workbook, written by xlwt."""
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("List")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None:
                sheet.write(r, c, value)
    book.save(str(path))
    return path


_ODS_CONTENT = (
    '<?xml version="1.0" encoding="UTF-8"?><office:document-content'
    ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
    ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
    ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
    '<office:body><office:spreadsheet><table:table table:name="List">{rows}</table:table>'
    "</office:spreadsheet></office:body></office:document-content>"
)
ODS_MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest'
    ' xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
    '<manifest:file-entry manifest:full-path="/"'
    ' manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    "</manifest:manifest>"
)


def _ods_cell(value: object) -> str:
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, int | float):
        return (
            f'<table:table-cell office:value-type="float" office:value="{value}">'
            f"<text:p>{value}</text:p></table:table-cell>"
        )
    text = escape(str(value))
    return (
        f'<table:table-cell office:value-type="string"><text:p>{text}</text:p></table:table-cell>'
    )


def write_ods(path: Path, rows: list[list[object]]) -> Path:
    """A minimal OpenDocument spreadsheet as LibreOffice lays one out: an uncompressed
    ``mimetype`` first, then the manifest and the content."""
    cells = "".join(
        "<table:table-row>{}</table:table-row>".format(
            "".join(_ods_cell(v) for v in row) or _ods_cell(None)
        )
        for row in rows
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            zipfile.ZipInfo("mimetype"),
            "application/vnd.oasis.opendocument.spreadsheet",
            compress_type=zipfile.ZIP_STORED,
        )
        z.writestr("META-INF/manifest.xml", ODS_MANIFEST)
        z.writestr("content.xml", _ODS_CONTENT.format(rows=cells))
    return path
