"""Reading a 台账 workbook back: the sheets Homewatch wrote, and those villages made by hand
before it existed (spaced-out titles, ASCII brackets, ID numbers Excel turned into numbers),
with every bad cell reported at once so an officer can fix the file in one go."""

from __future__ import annotations

import io
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from gateway.register import idnumber
from gateway.register.ledger_layout import (
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
    TITLE_SUFFIX,
    VILLAGE_PREFIX,
    LedgerImportError,
    LedgerRow,
    LedgerSheet,
    RowError,
)
from gateway.register.phones import normalize_phone
from gateway.register.vocabulary import CATEGORY_LABELS, Category, Gender

__all__ = ["Source", "read_workbook"]

_HEADER_SCAN_ROWS = 10
# Hand-made sheets name a few columns differently; map their (normalised) titles to ours.
_TITLE_ALIASES: dict[str, str] = {
    "身份证号": COL_ID,
    "身份证": COL_ID,
    "帮扶责任人": COL_HELPER,
    "帮扶人（职务）": COL_HELPER,
    "帮扶人": COL_HELPER,
    "联系方式": COL_PHONE,
    "电话": COL_PHONE,
    "类别": COL_CATEGORIES,
}
_OPTIONAL_COLUMNS = {COL_SEQ, COL_NOTES}

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
        if COL_NAME in found and COL_ID in found:
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
        has_data = any(_text(value) for title, value in raw.items() if title != COL_SEQ)
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

    name = _person_name(_text(raw.get(COL_NAME)))
    if not name:
        fail(COL_NAME, "name is required")

    gender_text = _text(raw.get(COL_GENDER)).removesuffix("性")
    gender: str | None = gender_text if gender_text in (Gender.MALE, Gender.FEMALE) else None
    if gender is None:
        fail(COL_GENDER, f"must be 男 or 女, got {gender_text!r}" if gender_text else "is required")

    id_number = _read_id(raw.get(COL_ID), gender, fail)
    if id_number:
        if id_number in seen_ids:
            other_sheet, other_row = seen_ids[id_number]
            where = f"row {other_row}" if other_sheet == sheet else f"{other_sheet} row {other_row}"
            fail(COL_ID, f"same ID number as {where}")
        else:
            seen_ids[id_number] = (sheet, excel_row)

    categories, unknown = _parse_categories(_text(raw.get(COL_CATEGORIES)))
    if unknown:
        known = "、".join(CATEGORY_LABELS.values())
        fail(
            COL_CATEGORIES, f"unknown 人员类别 {'、'.join(unknown)}; use the notice's six: {known}"
        )
    elif not categories:
        fail(COL_CATEGORIES, "at least one 人员类别 is required")

    helper_name, helper_title = _parse_helper(_text(raw.get(COL_HELPER)))

    phone = ""
    phone_text = _phone_text(raw.get(COL_PHONE))
    if phone_text:
        # The provisioning file's rules: alerts are dialled to whatever is stored here.
        try:
            phone = normalize_phone(phone_text)
        except ValueError as exc:
            fail(COL_PHONE, str(exc))

    if len(errors) > before or gender is None:
        return None
    return LedgerRow(
        name=name,
        gender=gender,
        id_number=id_number,
        categories=categories,
        helper_name=helper_name,
        helper_title=helper_title,
        measures=_text(raw.get(COL_MEASURES)),
        phone=phone,
        notes=_text(raw.get(COL_NOTES)),
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
        fail(COL_ID, "is required")
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Excel stores numbers as doubles (15 significant digits): the last digits of an
        # 18-digit ID typed as a number are already gone, so we cannot trust any of it.
        fail(
            COL_ID,
            f"stored as a number ({value!r}), which loses digits; "
            "format the column as 文本 (text) and type the ID again",
        )
        return ""
    # NFKC: IDs typed with the input method in full-width mode (５００２４１…Ｘ).
    # The leading ' is how a CSV round trip keeps a number as text.
    number = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value))).lstrip("'").upper()
    problem = idnumber.describe_problem(number, gender)
    if problem is not None:
        fail(COL_ID, f"{number}: {problem}")
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
