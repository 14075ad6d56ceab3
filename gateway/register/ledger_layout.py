"""The 台账's layout (SPEC §5: title, village line, the nine columns, footnote) and the plain
rows and errors that its writer (gateway.register.ledger) and reader
(gateway.register.ledger_read) share. Pure data."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.register.vocabulary import Category

__all__ = [
    "CATEGORY_SEPARATOR",
    "COLUMNS",
    "COL_CATEGORIES",
    "COL_GENDER",
    "COL_HELPER",
    "COL_ID",
    "COL_MEASURES",
    "COL_NAME",
    "COL_NOTES",
    "COL_PHONE",
    "COL_SEQ",
    "FOOTNOTE",
    "SIGNATURE_LINE",
    "TITLE_SUFFIX",
    "VILLAGE_PREFIX",
    "LedgerImportError",
    "LedgerRow",
    "LedgerSheet",
    "RowError",
    "parse_month",
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

(
    COL_SEQ,
    COL_NAME,
    COL_GENDER,
    COL_ID,
    COL_CATEGORIES,
    COL_HELPER,
    COL_MEASURES,
    COL_PHONE,
    COL_NOTES,
) = COLUMNS
CATEGORY_SEPARATOR = "、"


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
        if self.month is not None and parse_month(self.month) is None:
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


def parse_month(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    return int(match.group(1)), int(match.group(2))
