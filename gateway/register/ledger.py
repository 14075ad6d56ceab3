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

import io
import math
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import openpyxl
import phonenumbers
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook import Workbook
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.worksheet import Worksheet

from gateway.register import idnumber
from gateway.register.phones import normalize_phone
from gateway.register.vocabulary import CATEGORY_LABELS, Category, Gender

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

TITLE_SUFFIX = "特殊困难群体关爱帮扶台账"
VILLAGE_PREFIX = "村（居）："
COLUMNS: tuple[str, ...] = (
    "序号",
    "姓名",
    "性别",
    "身份证号码",
    "人员类别",
    "帮扶责任人（职务）",
    "帮扶措施",
    "联系电话",
    "备注",
)
FOOTNOTE = "注：此表由各村（居）逐一入户核实后填写，经驻村领导签字审核后报送。"
SIGNATURE_LINE = "驻村领导签字：__________    填表人：__________    日期：____年__月__日"

_SEQ, _NAME, _GENDER, _ID, _CATEGORIES, _HELPER, _MEASURES, _PHONE, _NOTES = COLUMNS
_CATEGORY_SEPARATOR = "、"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class LedgerRow:
    """One person's line in the 台账.

    ``phone`` is E.164 (``+8613600000001``) or empty; the sheet shows it the way a Chinese
    reader dials it. ``helper_title`` (职务) may be empty.
    """

    name: str
    gender: str
    id_number: str
    categories: tuple[Category, ...]
    helper_name: str
    helper_title: str
    measures: str
    phone: str
    notes: str


@dataclass(frozen=True)
class LedgerSheet:
    """One village's 台账; ``month`` (``YYYY-MM``) dates the register, None for undated."""

    town: str
    village: str
    rows: tuple[LedgerRow, ...]
    month: str | None = None

    def __post_init__(self) -> None:
        # Validate here rather than when rendering, so a bad month fails where it is made.
        if self.month is not None and _parse_month(self.month) is None:
            raise ValueError(f"month must look like 2026-11, got {self.month!r}")


@dataclass(frozen=True)
class RowError:
    """A problem in one cell: ``row`` is the Excel row number, ``column`` the Chinese title.

    Problems with a whole sheet or file use the row of the line concerned (or 0 for the
    file) and an empty ``column`` when no single column is to blame.
    """

    sheet: str
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"{self.sheet} row {self.row}" if self.sheet else f"row {self.row}"
        return (
            f"{where} {self.column}: {self.message}" if self.column else f"{where}: {self.message}"
        )


class LedgerImportError(ValueError):
    """The workbook cannot be imported; ``errors`` lists every problem found, in sheet order."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {error}" for error in errors)
        super().__init__(f"{len(errors)} problem(s) in the 台账:\n{lines}")


# --------------------------------------------------------------------------- writing

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
    _SEQ: 5.5,
    _NAME: 9,
    _GENDER: 5.5,
    _ID: 24.5,  # 18 digits on one line even where 宋体 falls back to a wider Latin font
    _CATEGORIES: 22,
    _HELPER: 19,  # 帮扶责任人（职务） on one line
    _MEASURES: 28,
    _PHONE: 15.5,
    _NOTES: 15,
}
_CENTERED = {_SEQ, _NAME, _GENDER, _ID, _HELPER, _PHONE}
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
        year, month = _parse_month(sheet.month) or (0, 0)
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
        gender_col = get_column_letter(COLUMNS.index(_GENDER) + 1)
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
        _SEQ: str(number),
        _NAME: person.name,
        _GENDER: person.gender,
        _ID: person.id_number,
        _CATEGORIES: _CATEGORY_SEPARATOR.join(CATEGORY_LABELS[c] for c in person.categories),
        _HELPER: _format_helper(person.helper_name, person.helper_title),
        _MEASURES: person.measures,
        _PHONE: _display_phone(person.phone),
        _NOTES: person.notes,
    }
    for col, title in enumerate(COLUMNS, start=1):
        value: str | int = number if title == _SEQ else values[title]
        cell = ws.cell(row=row, column=col, value=value)
        cell.font = _BODY_FONT
        cell.border = _BORDER
        cell.alignment = Alignment(
            horizontal="center" if title in _CENTERED else "left",
            vertical="center",
            wrap_text=True,
        )
        if title in (_ID, _PHONE):
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
    if _display_units(text) > _WIDTHS[_HELPER] - 1:
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


def _parse_month(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    return int(match.group(1)), int(match.group(2))


# --------------------------------------------------------------------------- reading

_HEADER_SCAN_ROWS = 10
# Hand-made sheets name a few columns differently; map their (normalised) titles to ours.
_TITLE_ALIASES: dict[str, str] = {
    "身份证号": _ID,
    "身份证": _ID,
    "帮扶责任人": _HELPER,
    "帮扶人（职务）": _HELPER,
    "帮扶人": _HELPER,
    "联系方式": _PHONE,
    "电话": _PHONE,
    "类别": _CATEGORIES,
}
_OPTIONAL_COLUMNS = {_SEQ, _NOTES}

# Short names people write for the six categories. Matched longest first against the
# cell text, so that labels which themselves contain 、 (一、二级残疾人, 留守老人、留守儿童)
# are recognised before the text is split on separators.
_CATEGORY_ALIASES: dict[str, Category] = {
    **{label: category for category, label in CATEGORY_LABELS.items()},
    **{category.value: category for category in Category},
    "分散供养特困人员": Category.DISPERSED_DESTITUTE,
    "分散供养特困": Category.DISPERSED_DESTITUTE,
    "特困人员": Category.DISPERSED_DESTITUTE,
    "特困供养": Category.DISPERSED_DESTITUTE,
    "特困": Category.DISPERSED_DESTITUTE,
    "五保户": Category.DISPERSED_DESTITUTE,
    "一、二级残疾人": Category.SEVERE_DISABILITY,
    "一二级残疾人": Category.SEVERE_DISABILITY,
    "一级残疾人": Category.SEVERE_DISABILITY,
    "二级残疾人": Category.SEVERE_DISABILITY,
    "一级残疾": Category.SEVERE_DISABILITY,
    "二级残疾": Category.SEVERE_DISABILITY,
    "重度残疾人": Category.SEVERE_DISABILITY,
    "重度残疾": Category.SEVERE_DISABILITY,
    "残疾人": Category.SEVERE_DISABILITY,
    "困境儿童": Category.CHILDREN_IN_DIFFICULTY,
    "孤儿": Category.CHILDREN_IN_DIFFICULTY,
    "事实无人抚养儿童": Category.CHILDREN_IN_DIFFICULTY,
    "低保对象": Category.MINIMUM_LIVING_ALLOWANCE,
    "低保户": Category.MINIMUM_LIVING_ALLOWANCE,
    "低保": Category.MINIMUM_LIVING_ALLOWANCE,
    "易返贫致贫户": Category.RELAPSE_RISK_HOUSEHOLD,
    "防返贫监测对象": Category.RELAPSE_RISK_HOUSEHOLD,
    "监测对象": Category.RELAPSE_RISK_HOUSEHOLD,
    "监测户": Category.RELAPSE_RISK_HOUSEHOLD,
    "留守老人、留守儿童、留守妇女": Category.LEFT_BEHIND,
    "留守老人": Category.LEFT_BEHIND,
    "留守儿童": Category.LEFT_BEHIND,
    "留守妇女": Category.LEFT_BEHIND,
    "留守人员": Category.LEFT_BEHIND,
}
_TABLE_END_MARKERS = ("注：", "说明：", "填表说明", "填表人", "驻村领导", "制表人", "审核人")
_CATEGORY_KEYS = sorted(_CATEGORY_ALIASES, key=len, reverse=True)
_CATEGORY_SEPARATORS = "、，,;；/／ \n\t"

Source = str | os.PathLike[str] | bytes | IO[bytes]


@dataclass(frozen=True)
class _SheetLayout:
    """Where things are on one worksheet that has a 台账 header row."""

    ws: Worksheet
    header_row: int
    columns: dict[str, int]  # canonical title -> 1-based column index
    town: str
    village: str  # as written on the 村（居） line, "" when blank or absent
    village_row: int
    month: str | None


def read_workbook(path_or_bytes: Source, *, village: str | None = None) -> list[LedgerSheet]:
    """Read 台账 sheets back: ours, or a village's hand-made sheet with the same columns.

    Worksheets without the header row (序号, 姓名, ... in the first ten rows) are skipped.
    With ``village``, only that village's sheet is read; a sheet whose 村（居） line is
    blank is taken to be that village's.

    Raises:
        LedgerImportError: listing every invalid cell of every sheet read.
    """
    try:
        workbook = _load(path_or_bytes)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError) as exc:
        # How openpyxl says "not an xlsx file" (an old .xls, a renamed PDF, a broken zip).
        # A missing file stays an OSError: that is the caller's mistake, not the sheet's.
        message = f"not a readable .xlsx workbook ({exc}); save it as .xlsx (Excel 2007+)"
        raise LedgerImportError([RowError("", 0, "", message)]) from exc

    layouts = [layout for ws in workbook.worksheets if (layout := _find_layout(ws)) is not None]
    if not layouts:
        message = "no sheet has the 台账 header row (序号, 姓名, 性别, 身份证号码, ...)"
        raise LedgerImportError([RowError("", 0, "", message)])

    errors: list[RowError] = []
    selected = _select(layouts, village, errors)
    result: list[LedgerSheet] = []
    seen_ids: dict[str, tuple[str, int]] = {}
    for layout in selected:
        missing = [
            title
            for title in COLUMNS
            if title not in layout.columns and title not in _OPTIONAL_COLUMNS
        ]
        if missing:
            for title in missing:
                errors.append(
                    RowError(layout.ws.title, layout.header_row, title, "column is missing")
                )
            continue
        village_name = layout.village or village or ""
        if not village_name:
            errors.append(
                RowError(
                    layout.ws.title,
                    layout.village_row,
                    "村（居）",
                    "village name is blank: fill in the 村（居） line or name the village",
                )
            )
        rows = _read_rows(layout, errors, seen_ids)
        result.append(LedgerSheet(layout.town, village_name, tuple(rows), layout.month))
    if errors:
        raise LedgerImportError(errors)
    return result


def _load(source: Source) -> Workbook:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    # data_only: a hand-made 序号 may be a formula; we want its value, not "=ROW()-3".
    return openpyxl.load_workbook(source, data_only=True)


def _select(
    layouts: list[_SheetLayout], village: str | None, errors: list[RowError]
) -> list[_SheetLayout]:
    if village is None:
        return layouts
    named = [layout for layout in layouts if layout.village == village]
    if named:
        return named
    blank = [layout for layout in layouts if not layout.village]
    if blank:
        return blank
    found = "、".join(layout.village for layout in layouts)
    first = layouts[0]
    errors.append(
        RowError(
            first.ws.title,
            first.village_row,
            "村（居）",
            f"no sheet for {village}; the workbook has {found}",
        )
    )
    return []


def _find_layout(ws: Worksheet) -> _SheetLayout | None:
    header_row = 0
    columns: dict[str, int] = {}
    for row in ws.iter_rows(min_row=1, max_row=min(ws.max_row, _HEADER_SCAN_ROWS)):
        found: dict[str, int] = {}
        for cell in row:
            title = _canonical_title(cell.value)
            if title is not None and title not in found:
                found[title] = cell.column
        if _NAME in found and _ID in found:
            header_row, columns = row[0].row, found
            break
    if not header_row:
        return None

    town, village, village_row, month = "", "", header_row, None
    for row in ws.iter_rows(min_row=1, max_row=header_row - 1):
        texts = [(cell.column, _normalise(cell.value)) for cell in row]
        for index, (_col, text) in enumerate(texts):
            if not text:
                continue
            if TITLE_SUFFIX in text and not town:
                town = text.split(TITLE_SUFFIX, 1)[0]
            if (found_month := _find_month(text)) is not None:
                month = found_month
            if text.startswith(VILLAGE_PREFIX):
                village_row = row[0].row
                village = text.removeprefix(VILLAGE_PREFIX)
                if not village:
                    # "村（居）：" in one cell and the name in a cell further right.
                    village = next((t for _c, t in texts[index + 1 :] if t), "")
    return _SheetLayout(ws, header_row, columns, town, village, village_row, month)


def _normalise(value: object) -> str:
    """Cell text without whitespace, ASCII brackets and colons made full-width."""
    if value is None:
        return ""
    text = re.sub(r"\s+", "", str(value))
    return text.replace("(", "（").replace(")", "）").replace(":", "：")


def _canonical_title(value: object) -> str | None:
    text = _normalise(value)
    if text in COLUMNS:
        return text
    return _TITLE_ALIASES.get(text)


def _find_month(text: str) -> str | None:
    match = re.search(r"（(\d{4})年(\d{1,2})月）", text)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    return f"{match.group(1)}-{int(match.group(2)):02d}"


def _merged_values(ws: Worksheet) -> dict[tuple[int, int], Any]:
    """Cell -> value for every cell inside a merged range.

    Villages often merge one helper's cell down over the several persons he looks after
    (一帮多); each of those persons has that helper.
    """
    values: dict[tuple[int, int], Any] = {}
    for merged in ws.merged_cells.ranges:
        value = ws.cell(row=merged.min_row, column=merged.min_col).value
        for row in range(merged.min_row, merged.max_row + 1):
            for col in range(merged.min_col, merged.max_col + 1):
                values[(row, col)] = value
    return values


def _read_rows(
    layout: _SheetLayout,
    errors: list[RowError],
    seen_ids: dict[str, tuple[str, int]],
) -> list[LedgerRow]:
    ws = layout.ws
    merged = _merged_values(ws)
    rows: list[LedgerRow] = []
    blank_row = 0
    for excel_row in range(layout.header_row + 1, ws.max_row + 1):
        raw = {
            title: merged.get((excel_row, col), ws.cell(row=excel_row, column=col).value)
            for title, col in layout.columns.items()
        }
        first_text = next(
            (
                text
                for col in range(1, ws.max_column + 1)
                if (text := _normalise(merged.get((excel_row, col), ws.cell(excel_row, col).value)))
            ),
            "",
        )
        # The footnote (or, in hand-made sheets, the signature or 填表说明) ends the table.
        if first_text.startswith(_TABLE_END_MARKERS):
            break
        has_data = any(_text(value) for title, value in raw.items() if title != _SEQ)
        if not has_data:
            # Blank template rows (only a 序号) and the gap before the footnote end the table.
            blank_row = blank_row or excel_row
            continue
        if blank_row:
            # Silently dropping people typed below a gap would lose them from the register.
            errors.append(
                RowError(
                    ws.title,
                    excel_row,
                    "",
                    f"row is below the empty row {blank_row} and would be ignored; "
                    "delete the empty row",
                )
            )
            continue
        person = _read_person(ws.title, excel_row, raw, errors, seen_ids)
        if person is not None:
            rows.append(person)
    return rows


def _read_person(
    sheet: str,
    excel_row: int,
    raw: dict[str, Any],
    errors: list[RowError],
    seen_ids: dict[str, tuple[str, int]],
) -> LedgerRow | None:
    before = len(errors)

    def fail(column: str, message: str) -> None:
        errors.append(RowError(sheet, excel_row, column, message))

    name = _person_name(_text(raw.get(_NAME)))
    if not name:
        fail(_NAME, "name is required")

    gender_text = _text(raw.get(_GENDER)).removesuffix("性")
    gender: str | None = gender_text if gender_text in (Gender.MALE, Gender.FEMALE) else None
    if gender is None:
        fail(_GENDER, f"must be 男 or 女, got {gender_text!r}" if gender_text else "is required")

    id_number = _read_id(raw.get(_ID), gender, fail)
    if id_number:
        if id_number in seen_ids:
            other_sheet, other_row = seen_ids[id_number]
            where = f"row {other_row}" if other_sheet == sheet else f"{other_sheet} row {other_row}"
            fail(_ID, f"same ID number as {where}")
        else:
            seen_ids[id_number] = (sheet, excel_row)

    categories, unknown = _parse_categories(_text(raw.get(_CATEGORIES)))
    if unknown:
        known = "、".join(CATEGORY_LABELS.values())
        fail(_CATEGORIES, f"unknown 人员类别 {'、'.join(unknown)}; use the notice's six: {known}")
    elif not categories:
        fail(_CATEGORIES, "at least one 人员类别 is required")

    helper_name, helper_title = _parse_helper(_text(raw.get(_HELPER)))

    phone = ""
    phone_text = _phone_text(raw.get(_PHONE))
    if phone_text:
        # The provisioning file's rules: alerts are dialled to whatever is stored here.
        try:
            phone = normalize_phone(phone_text)
        except ValueError as exc:
            fail(_PHONE, str(exc))

    if len(errors) > before or gender is None:
        return None
    return LedgerRow(
        name=name,
        gender=gender,
        id_number=id_number,
        categories=categories,
        helper_name=helper_name,
        helper_title=helper_title,
        measures=_text(raw.get(_MEASURES)),
        phone=phone,
        notes=_text(raw.get(_NOTES)),
    )


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _person_name(text: str) -> str:
    # Forms pad two-character names to line up with three-character ones (张  三); a Chinese
    # name has no spaces, so drop them. Latin names keep theirs.
    if any(unicodedata.east_asian_width(ch) in "WF" for ch in text):
        return re.sub(r"\s+", "", text)
    return text


def _read_id(value: object, gender: str | None, fail: Callable[[str, str], None]) -> str:
    if value is None or value == "":
        fail(_ID, "is required")
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Excel stores numbers as doubles (15 significant digits): the last digits of an
        # 18-digit ID typed as a number are already gone, so we cannot trust any of it.
        fail(
            _ID,
            f"stored as a number ({value!r}), which loses digits; "
            "format the column as 文本 (text) and type the ID again",
        )
        return ""
    # NFKC: IDs typed with the input method in full-width mode (５００２４１…Ｘ).
    # The leading ' is how a CSV round trip keeps a number as text.
    number = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value))).lstrip("'").upper()
    problem = idnumber.describe_problem(number, gender)
    if problem is not None:
        fail(_ID, f"{number}: {problem}")
        return ""
    return number


def _parse_categories(text: str) -> tuple[tuple[Category, ...], list[str]]:
    """Categories in order of appearance (deduplicated), and the tokens not recognised."""
    normalised = _normalise(text)
    found: list[Category] = []
    unknown: list[str] = []
    position = 0
    while position < len(normalised):
        if normalised[position] in _CATEGORY_SEPARATORS:
            position += 1
            continue
        key = next((k for k in _CATEGORY_KEYS if normalised.startswith(k, position)), None)
        if key is None:
            end = position
            while end < len(normalised) and normalised[end] not in _CATEGORY_SEPARATORS:
                end += 1
            unknown.append(normalised[position:end])
            position = end
            continue
        position += len(key)
        # A short name followed by the notice's qualifier, e.g. 低保（无义务人或能力不足）.
        # Only that qualifier: 残疾人（三级） must not pass as 一、二级.
        qualifier = re.match(r"（[^）]*(?:义务人|能力不足)[^）]*）", normalised[position:])
        if qualifier is not None:
            position += qualifier.end()
        category = _CATEGORY_ALIASES[key]
        if category not in found:
            found.append(category)
    return tuple(found), unknown


def _parse_helper(text: str) -> tuple[str, str]:
    """``李四（村支书）``, ``李四(村支书)`` or ``李四`` -> (name, title)."""
    match = re.fullmatch(r"(.*?)\s*[（(](.*)[）)]", text, flags=re.DOTALL)
    if match is None:
        return _person_name(text), ""
    return _person_name(match.group(1)), match.group(2).strip()


def _phone_text(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        # An 11-digit mobile typed as a number survives as a double; show it as digits.
        return str(int(value)) if float(value).is_integer() else str(value)
    return unicodedata.normalize("NFKC", _text(value))
