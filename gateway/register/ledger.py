"""The 台账: the notice's register of persons in special difficulty, as an xlsx workbook.

Attachment 2 of the town's notice fixes the layout every village hands in: a title
``<town>特殊困难群体关爱帮扶台账``, a ``村（居）：`` line, nine columns (序号, 姓名, 性别,
身份证号码, 人员类别, 帮扶责任人（职务）, 帮扶措施, 联系电话, 备注), one row per person, a
footnote and the resident leader's signature. :func:`build_workbook` lays plain
:class:`LedgerSheet` data out that way, one worksheet per village, ready to print on A4
landscape; :func:`read_workbook` reads it back, and also reads the sheets villages made by
hand before Homewatch existed (spaced-out titles, ASCII brackets, ID numbers Excel turned
into numbers), reporting every bad cell at once so an officer can fix the file in one go.

Everything here is a pure function over plain data: no database, no clock.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Sequence

import phonenumbers
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.workbook import Workbook
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.worksheet import Worksheet

from gateway.register.ledger_layout import (
    CATEGORY_SEPARATOR,
    COL_CATEGORIES,
    COL_GENDER,
    COL_HELPER,
    COL_ID,
    COL_MEASURES,
    COL_NAME,
    COL_NOTES,
    COL_PHONE,
    COL_SEQ,
    COLUMNS,
    FOOTNOTE,
    SIGNATURE_LINE,
    TITLE_SUFFIX,
    VILLAGE_PREFIX,
    LedgerImportError,
    LedgerRow,
    LedgerSheet,
    RowError,
    parse_month,
)
from gateway.register.ledger_read import read_workbook
from gateway.register.vocabulary import CATEGORY_LABELS

__all__ = [
    "COLUMNS",
    "FOOTNOTE",
    "SIGNATURE_LINE",
    "TITLE_SUFFIX",
    "LedgerImportError",
    "LedgerRow",
    "LedgerSheet",
    "RowError",
    "build_workbook",
    "read_workbook",
    "set_up_print",
    "write_workbook",
]

_FONT_NAME = "宋体"  # what county offices' Excel/WPS ship and what printed forms use
_BODY_FONT = Font(name=_FONT_NAME, size=11)
_HEADER_FONT = Font(name=_FONT_NAME, size=11, bold=True)
_TITLE_FONT = Font(name=_FONT_NAME, size=18, bold=True)
_SUBTITLE_FONT = Font(name=_FONT_NAME, size=12)
_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER_FILL = PatternFill("solid", fgColor="F2F2F2")  # light enough to vanish on a B/W printer

# Widths in Excel units (about one Latin digit each; a Chinese character takes about two).
# Chosen so that on A4 landscape the long columns wrap to two or three lines at most.
_WIDTHS: dict[str, float] = {
    COL_SEQ: 5.5,
    COL_NAME: 9,
    COL_GENDER: 5.5,
    COL_ID: 24.5,  # 18 digits on one line even where 宋体 falls back to a wider Latin font
    COL_CATEGORIES: 22,
    COL_HELPER: 19,  # 帮扶责任人（职务） on one line
    COL_MEASURES: 28,
    COL_PHONE: 15.5,
    COL_NOTES: 15,
}
_CENTERED = {COL_SEQ, COL_NAME, COL_GENDER, COL_ID, COL_HELPER, COL_PHONE}
_LINE_HEIGHT_PT = 14.5  # one line of 11 pt 宋体 with Excel's leading
_PAD_PT = 6.0


def build_workbook(sheets: Sequence[LedgerSheet]) -> Workbook:
    """Lay ``sheets`` out as attachment 2, one worksheet per village, print-ready.

    Raises:
        ValueError: if ``sheets`` is empty (an xlsx file needs at least one worksheet).
    """
    if not sheets:
        raise ValueError("a 台账 workbook needs at least one village sheet")
    workbook = Workbook()
    # The default "Sheet" would be an empty first page; replace it.
    workbook.remove(workbook.active)
    used_titles: set[str] = set()
    for sheet in sheets:
        title = _sheet_title(sheet.village, used_titles)
        used_titles.add(title)
        _fill_sheet(workbook.create_sheet(title), sheet)
    return workbook


def write_workbook(sheets: Sequence[LedgerSheet], path: str | os.PathLike[str]) -> None:
    """Build the workbook for ``sheets`` and save it to ``path``."""
    build_workbook(sheets).save(os.fspath(path))


def _fill_sheet(ws: Worksheet, sheet: LedgerSheet) -> None:
    row = 1
    _merged_line(ws, row, f"{sheet.town}{TITLE_SUFFIX}", _TITLE_FONT, "center", height=32)
    if sheet.month is not None:
        row += 1
        year, month = parse_month(sheet.month) or (0, 0)
        _merged_line(ws, row, f"（{year}年{month}月）", _SUBTITLE_FONT, "center", height=20)
    row += 1
    _merged_line(ws, row, f"{VILLAGE_PREFIX}{sheet.village}", _SUBTITLE_FONT, "left", height=22)

    row += 1
    header_row = row
    _write_header(ws, header_row)
    for number, person in enumerate(sheet.rows, start=1):
        row += 1
        _write_person(ws, row, number, person)

    if sheet.rows:
        # A dropdown keeps hand edits importable; the ledger only knows 男 and 女.
        gender_col = get_column_letter(COLUMNS.index(COL_GENDER) + 1)
        validation = DataValidation(type="list", formula1='"男,女"', allow_blank=True)
        validation.add(f"{gender_col}{header_row + 1}:{gender_col}{row}")
        ws.add_data_validation(validation)

    row += 1
    _merged_line(ws, row, FOOTNOTE, _BODY_FONT, "left", height=22)
    row += 2  # a blank line gives room to sign above the signature line
    _merged_line(ws, row, SIGNATURE_LINE, _SUBTITLE_FONT, "left", height=26)
    set_up_print(ws, header_row=header_row, last_row=row, last_col=len(COLUMNS), side_margin=0.4)


def _write_header(ws: Worksheet, row: int) -> None:
    for col, title in enumerate(COLUMNS, start=1):
        cell = ws.cell(row=row, column=col, value=title)
        cell.font = _HEADER_FONT
        cell.border = _BORDER
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(col)].width = _WIDTHS[title]
    ws.row_dimensions[row].height = _row_height({title: title for title in COLUMNS})


def _write_person(ws: Worksheet, row: int, number: int, person: LedgerRow) -> None:
    values = {
        COL_SEQ: str(number),
        COL_NAME: person.name,
        COL_GENDER: person.gender,
        COL_ID: person.id_number,
        COL_CATEGORIES: CATEGORY_SEPARATOR.join(CATEGORY_LABELS[c] for c in person.categories),
        COL_HELPER: _format_helper(person.helper_name, person.helper_title),
        COL_MEASURES: person.measures,
        COL_PHONE: _display_phone(person.phone),
        COL_NOTES: person.notes,
    }
    for col, title in enumerate(COLUMNS, start=1):
        value: str | int = number if title == COL_SEQ else values[title]
        cell = ws.cell(row=row, column=col, value=value)
        cell.font = _BODY_FONT
        cell.border = _BORDER
        cell.alignment = Alignment(
            horizontal="center" if title in _CENTERED else "left",
            vertical="center",
            wrap_text=True,
        )
        if title in (COL_ID, COL_PHONE):
            # Text, never a number: Excel keeps 15 significant digits and would turn an
            # 18-digit ID into 5.00241E+17 (and lose its last three digits) on edit.
            cell.number_format = "@"
    # Neither openpyxl nor WPS auto-fits wrapped rows, so size them ourselves.
    ws.row_dimensions[row].height = _row_height(values)


def set_up_print(
    ws: Worksheet, *, header_row: int, last_row: int, last_col: int, side_margin: float
) -> None:
    """A4 landscape, all columns on the page width, the header row on every page."""
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    # The header row repeats at the top of every printed page.
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.print_area = f"A1:{get_column_letter(last_col)}{last_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    # Fit all columns on the page width; let the rows run onto as many pages as needed.
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.print_options.horizontalCentered = True
    ws.page_margins = PageMargins(
        left=side_margin, right=side_margin, top=0.6, bottom=0.6, header=0.3, footer=0.3
    )
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"


def _merged_line(
    ws: Worksheet, row: int, text: str, font: Font, horizontal: str, *, height: float
) -> None:
    """A line of text spanning the table's width (title, village line, footnote...)."""
    cell = ws.cell(row=row, column=1, value=text)
    cell.font = font
    cell.alignment = Alignment(horizontal=horizontal, vertical="center")
    ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=len(COLUMNS))
    ws.row_dimensions[row].height = height


def _sheet_title(village: str, used: set[str]) -> str:
    """The village name made into a legal, unique worksheet title (31 chars, no []:*?/\\)."""
    base = re.sub(r"[\[\]:*?/\\]", "_", village).strip("'") or "台账"
    title = base[:31]
    counter = 2
    while title in used:
        suffix = f"({counter})"
        title = base[: 31 - len(suffix)] + suffix
        counter += 1
    return title


def _format_helper(name: str, title: str) -> str:
    if not title:
        return name
    text = f"{name}（{title}）"
    if _display_units(text) > _WIDTHS[COL_HELPER] - 1:
        # Break before the bracket rather than letting Excel split 驻村第一书记 mid-word.
        return f"{name}\n（{title}）"
    return text


def _display_phone(e164: str) -> str:
    """How a Chinese reader writes the number: 13600000001, 023-76000000; else as stored."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, "CN")
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code != 86 or not phonenumbers.is_valid_number(number):
        return e164
    national = phonenumbers.national_significant_number(number)
    area_length = phonenumbers.length_of_geographical_area_code(number)
    if area_length:
        # Landline: trunk prefix 0, area code, hyphen, local number (023-76000000).
        return f"0{national[:area_length]}-{national[area_length:]}"
    return national


def _display_units(text: str) -> float:
    """Approximate width in Excel column units: CJK characters are about twice a digit."""
    # Latin at 1.2 rather than 1.0: erring wide gives a little white space, erring narrow
    # hides the last line of a wrapped cell.
    return sum(2.1 if unicodedata.east_asian_width(ch) in "WF" else 1.2 for ch in text)


def _row_height(values: dict[str, str]) -> float:
    lines = 1
    for title, text in values.items():
        usable = _WIDTHS[title] - 1.0  # cell padding
        count = sum(max(1, math.ceil(_display_units(part) / usable)) for part in text.split("\n"))
        lines = max(lines, count)
    return round(lines * _LINE_HEIGHT_PT + _PAD_PT, 1)
