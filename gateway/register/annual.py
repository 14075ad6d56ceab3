"""The annual summary the villages report to the 民政办 by 31 December, as an xlsx workbook.

The notice (四、（六）) asks each village for a yearly account of the work. This module
turns plain rows (the register's persons, the year's visits and alerts) into three
print-ready tables: 对象统计 (persons by village and category), 走访统计 (visits by village
and kind of service) and 告警统计 (alerts by type, with how fast they were acknowledged).

Pure functions over plain data: the caller queries the database; nothing here reads a
clock, so the same rows always give the same workbook.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from gateway.register.ledger import set_up_print
from gateway.register.vocabulary import (
    CATEGORY_LABELS,
    SERVICE_LABELS,
    CareLevel,
    Category,
    Service,
)

__all__ = [
    "ALERT_TYPE_LABELS",
    "AlertSummaryRow",
    "PersonSummaryRow",
    "VisitSummaryRow",
    "build_annual_summary",
    "percentile",
]

# Chinese names of the alert types of SPEC §6, in the order the table lists them.
ALERT_TYPE_LABELS: dict[str, str] = {
    "sos": "一键呼救（SOS）",
    "fall": "跌倒",
    "inactivity": "长时间无活动",
    "door_open_night": "夜间门未关",
    "device_offline": "设备离线",
    "battery_low": "电池电量低",
    "gateway_link": "网关连接中断",
}

_TOWN_TZ = ZoneInfo("Asia/Shanghai")
_NO_VALUE = "—"  # a median of nothing is not 0 minutes


@dataclass(frozen=True)
class PersonSummaryRow:
    """A person on the register: where, which of the six categories, how much care."""

    village: str
    categories: tuple[Category, ...]
    care_level: CareLevel


@dataclass(frozen=True)
class VisitSummaryRow:
    """One visit by a helper; ``visited_at`` must carry a time zone."""

    village: str
    services: tuple[Service, ...]
    visited_at: datetime


@dataclass(frozen=True)
class AlertSummaryRow:
    """One alert (SPEC §6 ``type``); both times must carry a time zone."""

    village: str
    type: str
    raised_at: datetime
    acknowledged_at: datetime | None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0..1) percentile with linear interpolation between ranks.

    This is Excel's PERCENTILE.INC, so an official can check any figure in the table
    with the spreadsheet at hand; ``percentile(v, 0.5)`` is the usual median.

    Raises:
        ValueError: if ``values`` is empty or ``fraction`` is outside 0..1.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within 0..1, got {fraction}")
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def build_annual_summary(
    year: int,
    town: str,
    persons: Sequence[PersonSummaryRow],
    visits: Sequence[VisitSummaryRow],
    alerts: Sequence[AlertSummaryRow],
    *,
    villages: Sequence[str] = (),
    tz: tzinfo = _TOWN_TZ,
) -> Workbook:
    """The year's summary: sheets 对象统计, 走访统计 and 告警统计.

    ``persons`` is the register as it stands (not filtered by date). Visits and alerts
    count when they happened in ``year`` in the town's time zone ``tz`` (a visit at
    23:30 on 31 December Beijing time is this year's, though it is already next year in
    UTC); others are ignored, so the caller may pass more than the year. ``villages``
    fixes the row order and lists villages with nothing to count (all of the town's
    villages should appear, if only with zeros); villages found in the rows but not named
    there follow in order of first appearance.

    Raises:
        ValueError: if a visit or alert time has no time zone.
    """
    year_visits = [v for v in visits if _local_year(v.visited_at, tz) == year]
    year_alerts = [a for a in alerts if _local_year(a.raised_at, tz) == year]
    village_order = _village_order(
        villages,
        (p.village for p in persons),
        (v.village for v in year_visits),
        (a.village for a in year_alerts),
    )
    workbook = Workbook()
    workbook.remove(workbook.active)
    _persons_sheet(workbook.create_sheet("对象统计"), year, town, persons, village_order)
    _visits_sheet(workbook.create_sheet("走访统计"), year, town, year_visits, village_order)
    _alerts_sheet(workbook.create_sheet("告警统计"), year, town, year_alerts)
    return workbook


def _local_year(moment: datetime, tz: tzinfo) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time could be UTC (storage) or local (a form); guessing shifts 8 hours
        # of New Year's Eve into the wrong year.
        raise ValueError(f"time without a time zone: {moment.isoformat()}")
    return moment.astimezone(tz).year


def _village_order(named: Sequence[str], *seen: Iterable[str]) -> list[str]:
    order = dict.fromkeys(named)
    for villages in seen:
        order.update(dict.fromkeys(v for v in villages if v not in order))
    return list(order)


# --------------------------------------------------------------------------- the three tables

Cell = str | int | float | None


def _persons_sheet(
    ws: Worksheet, year: int, town: str, persons: Sequence[PersonSummaryRow], villages: list[str]
) -> None:
    by_category: Counter[tuple[str, Category]] = Counter()
    people: Counter[str] = Counter()
    special: Counter[str] = Counter()
    for person in persons:
        people[person.village] += 1
        special[person.village] += person.care_level == CareLevel.SPECIAL
        # A person counts once in each of their categories (set: a duplicate is one).
        for category in set(person.categories):
            by_category[(person.village, category)] += 1

    def line(village: str) -> list[Cell]:
        counts = [by_category[(village, category)] for category in Category]
        return [*counts, people[village], special[village]]

    rows = [[index, village, *line(village)] for index, village in enumerate(villages, 1)]
    total: list[Cell] = [
        None,
        "合计",
        *[sum(by_category[(v, c)] for v in villages) for c in Category],
        sum(people.values()),
        sum(special.values()),
    ]
    _table(
        ws,
        title=f"{town}{year}年度特殊困难群体关爱对象统计表",
        unit="单位：人",
        headers=[
            "序号",
            "村（居）",
            *CATEGORY_LABELS.values(),
            "对象人数",
            "其中：特别困难关爱对象",
        ],
        widths=[6, 12, *[17.0] * len(Category), 10, 13],
        rows=[*rows, total],
        note=(
            "注：同一人属于多个类别的，在各类别中分别计数；“对象人数”按人计，"
            "故各类别之和可能大于对象人数。"
        ),
    )


def _visits_sheet(
    ws: Worksheet, year: int, town: str, visits: Sequence[VisitSummaryRow], villages: list[str]
) -> None:
    by_service: Counter[tuple[str, Service]] = Counter()
    count: Counter[str] = Counter()
    for visit in visits:
        count[visit.village] += 1
        for service in set(visit.services):
            by_service[(visit.village, service)] += 1

    rows: list[list[Cell]] = [
        [index, village, count[village], *[by_service[(village, s)] for s in Service]]
        for index, village in enumerate(villages, 1)
    ]
    total: list[Cell] = [
        None,
        "合计",
        sum(count.values()),
        *[sum(by_service[(v, s)] for v in villages) for s in Service],
    ]
    _table(
        ws,
        title=f"{town}{year}年度关爱帮扶走访统计表",
        unit="单位：次",
        headers=["序号", "村（居）", "走访次数", *SERVICE_LABELS.values()],
        widths=[6, 12, 10, *[11.0] * len(Service)],
        rows=[*rows, total],
        note=(
            f"注：统计{year}年1月1日至12月31日（北京时间）的走访；一次走访可开展多项帮扶"
            "服务，各服务项目分别计数。"
        ),
    )


def _alerts_sheet(ws: Worksheet, year: int, town: str, alerts: Sequence[AlertSummaryRow]) -> None:
    minutes: dict[str, list[float]] = {}
    raised: Counter[str] = Counter()
    for alert in alerts:
        raised[alert.type] += 1
        if alert.acknowledged_at is not None:
            waited = (alert.acknowledged_at - alert.raised_at).total_seconds() / 60
            # Clock skew between gateway processes can put an acknowledgement a moment
            # before the raise; it was acknowledged at once, not in negative time.
            minutes.setdefault(alert.type, []).append(max(0.0, waited))

    types = [*ALERT_TYPE_LABELS, *sorted(set(raised) - set(ALERT_TYPE_LABELS))]
    rows: list[list[Cell]] = [
        [
            index,
            ALERT_TYPE_LABELS.get(kind, kind),
            *_alert_figures(raised[kind], minutes.get(kind, [])),
        ]
        for index, kind in enumerate(types, 1)
    ]
    every = [m for values in minutes.values() for m in values]
    rows.append([None, "合计", *_alert_figures(sum(raised.values()), every)])
    _table(
        ws,
        title=f"{town}{year}年度智慧看家告警处置统计表",
        unit="时长单位：分钟",
        headers=[
            "序号",
            "告警类型",
            "告警次数",
            "已确认次数",
            "确认率",
            "确认用时中位数（分钟）",
            "确认用时P90（分钟）",
        ],
        widths=[6, 18, 10, 11, 9, 15, 16],
        rows=rows,
        note=(
            "注：确认用时为告警发出至帮扶责任人、应急救助志愿服务队或值班人员首次确认的时长；"
            "P90表示90%的已确认告警在该时长内得到确认（与Excel PERCENTILE.INC口径一致）。"
        ),
        formats={4: "0.0%", 5: "0.0", 6: "0.0"},
    )


def _alert_figures(raised: int, minutes: list[float]) -> list[Cell]:
    acknowledged = len(minutes)
    if not minutes:
        return [
            raised,
            acknowledged,
            acknowledged / raised if raised else _NO_VALUE,
            _NO_VALUE,
            _NO_VALUE,
        ]
    return [
        raised,
        acknowledged,
        acknowledged / raised,
        round(percentile(minutes, 0.5), 1),
        round(percentile(minutes, 0.9), 1),
    ]


# --------------------------------------------------------------------------- layout

_FONT_NAME = "宋体"
_THIN = Side(style="thin", color="000000")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER_FILL = PatternFill("solid", fgColor="F2F2F2")
_TITLE_ROW, _UNIT_ROW, _HEADER_ROW = 1, 2, 3


def _table(
    ws: Worksheet,
    *,
    title: str,
    unit: str,
    headers: list[str],
    widths: list[float],
    rows: list[list[Cell]],
    note: str,
    formats: dict[int, str] | None = None,
) -> None:
    """Title, unit line, bordered table whose last row is 合计 (bold), note; A4 landscape.

    ``formats`` maps a 0-based column index to an Excel number format.
    """
    last_col = len(headers)
    _line(
        ws,
        _TITLE_ROW,
        last_col,
        title,
        font=Font(name=_FONT_NAME, size=16, bold=True),
        horizontal="center",
        height=30,
    )
    _line(
        ws,
        _UNIT_ROW,
        last_col,
        unit,
        font=Font(name=_FONT_NAME, size=10),
        horizontal="right",
        height=18,
    )

    for col, (header, width) in enumerate(zip(headers, widths, strict=True), start=1):
        cell = ws.cell(row=_HEADER_ROW, column=col, value=header)
        cell.font = Font(name=_FONT_NAME, size=10, bold=True)
        cell.fill = _HEADER_FILL
        cell.border = _BORDER
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(col)].width = width
    # Long category names wrap; give the header room for three lines.
    ws.row_dimensions[_HEADER_ROW].height = 48

    for offset, values in enumerate(rows, start=1):
        row = _HEADER_ROW + offset
        is_total = offset == len(rows)
        for col, value in enumerate(values, start=1):
            cell = ws.cell(row=row, column=col, value=value)
            cell.font = Font(name=_FONT_NAME, size=11, bold=is_total)
            cell.border = _BORDER
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
            if formats and (col - 1) in formats and isinstance(value, int | float):
                cell.number_format = formats[col - 1]
        ws.row_dimensions[row].height = 20
    last_row = _HEADER_ROW + len(rows)

    note_row = last_row + 1
    _line(
        ws,
        note_row,
        last_col,
        note,
        font=Font(name=_FONT_NAME, size=10),
        horizontal="left",
        height=30,
        wrap=True,
    )

    set_up_print(ws, header_row=_HEADER_ROW, last_row=note_row, last_col=last_col, side_margin=0.5)


def _line(
    ws: Worksheet,
    row: int,
    last_col: int,
    text: str,
    *,
    font: Font,
    horizontal: str,
    height: float,
    wrap: bool = False,
) -> None:
    """A line of text merged across the table's width."""
    cell = ws.cell(row=row, column=1, value=text)
    cell.font = font
    cell.alignment = Alignment(horizontal=horizontal, vertical="center", wrap_text=wrap)
    ws.row_dimensions[row].height = height
    ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=last_col)
