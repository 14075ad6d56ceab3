"""The annual summary workbook: the counts, the acknowledgement times, the layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl.worksheet.worksheet import Worksheet

from gateway.register.annual import (
    AlertSummaryRow,
    PersonSummaryRow,
    VisitSummaryRow,
    build_annual_summary,
    percentile,
)
from gateway.register.vocabulary import CareLevel, Category, Service

SHANGHAI = ZoneInfo("Asia/Shanghai")
C = Category
S = Service

PERSONS = [
    PersonSummaryRow("坝芒村", (C.DISPERSED_DESTITUTE,), CareLevel.SPECIAL),
    PersonSummaryRow(
        "坝芒村", (C.SEVERE_DISABILITY, C.MINIMUM_LIVING_ALLOWANCE), CareLevel.GENERAL
    ),
    PersonSummaryRow("坝芒村", (C.LEFT_BEHIND,), CareLevel.GENERAL),
    PersonSummaryRow("隘口村", (C.LEFT_BEHIND, C.CHILDREN_IN_DIFFICULTY), CareLevel.SPECIAL),
]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def rows_of(ws: Worksheet) -> list[list[object]]:
    """Table rows below the header (row 3) down to and including 合计."""
    found = []
    for row in ws.iter_rows(min_row=4, values_only=True):
        found.append(list(row))
        if row[1] == "合计":
            break
    return found


def summary(**overrides: object) -> dict[str, Worksheet]:
    arguments: dict[str, object] = {
        "year": 2026,
        "town": "隘口镇",
        "persons": PERSONS,
        "visits": [],
        "alerts": [],
    }
    arguments.update(overrides)
    workbook = build_annual_summary(**arguments)  # type: ignore[arg-type]
    return {ws.title: ws for ws in workbook.worksheets}


def test_percentile_matches_excel_percentile_inc() -> None:
    minutes = [float(m) for m in range(1, 11)]  # 1..10
    assert percentile(minutes, 0.5) == 5.5
    assert percentile(minutes, 0.9) == pytest.approx(9.1)
    assert percentile([7.0, 1.0, 3.0], 0.5) == 3.0  # unsorted input, odd count
    assert percentile([4.0], 0.9) == 4.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_sheets_titles_and_print_layout() -> None:
    sheets = summary()
    assert list(sheets) == ["对象统计", "走访统计", "告警统计"]
    assert sheets["对象统计"]["A1"].value == "隘口镇2026年度特殊困难群体关爱对象统计表"
    assert sheets["走访统计"]["A1"].value == "隘口镇2026年度关爱帮扶走访统计表"
    assert sheets["告警统计"]["A1"].value == "隘口镇2026年度智慧看家告警处置统计表"
    for ws in sheets.values():
        assert ws["A1"].font.b
        assert ws.page_setup.orientation == "landscape"
        assert int(ws.page_setup.paperSize) == 9
        assert ws.page_setup.fitToWidth == 1


def test_persons_by_village_and_category() -> None:
    ws = summary(villages=["隘口村", "坝芒村", "富裕村"])["对象统计"]
    header = [cell.value for cell in ws[3]]
    assert header == [
        "序号",
        "村（居）",
        "分散供养特困人员",
        "一、二级残疾人（无义务人或能力不足）",
        "困境儿童",
        "低保对象（无义务人或能力不足）",
        "易返贫致贫户",
        "留守老人、留守儿童、留守妇女",
        "对象人数",
        "其中：特别困难关爱对象",
    ]
    assert rows_of(ws) == [
        [1, "隘口村", 0, 0, 1, 0, 0, 1, 1, 1],
        [2, "坝芒村", 1, 1, 0, 1, 0, 1, 3, 1],
        [3, "富裕村", 0, 0, 0, 0, 0, 0, 0, 0],  # named: listed with zeros
        [None, "合计", 1, 1, 1, 1, 0, 2, 4, 2],
    ]


def test_visits_by_village_and_service_in_the_towns_year() -> None:
    visits = [
        VisitSummaryRow("坝芒村", (S.DAILY_CARE, S.COMPANIONSHIP), at("2026-03-01T10:00")),
        VisitSummaryRow("坝芒村", (S.HEALTH,), at("2026-06-01T10:00")),
        # 16:30 UTC on New Year's Eve is 00:30 on 1 January in the town: counts for 2026.
        VisitSummaryRow("隘口村", (S.LEGAL_AID,), datetime(2025, 12, 31, 16, 30, tzinfo=UTC)),
        # 23:30 on 31 December 2026 in the town is still 2026, though 2027 nowhere else.
        VisitSummaryRow("隘口村", (S.RECREATION, S.RECREATION), at("2026-12-31T23:30")),
        # Outside the year: ignored.
        VisitSummaryRow("坝芒村", (S.DAILY_CARE,), at("2025-12-31T23:59")),
        VisitSummaryRow("坝芒村", (S.DAILY_CARE,), at("2027-01-01T00:00")),
    ]
    ws = summary(visits=visits)["走访统计"]
    assert [cell.value for cell in ws[3]] == [
        "序号",
        "村（居）",
        "走访次数",
        "生活照料",
        "精神陪伴",
        "就业创业指导",
        "应急救助",
        "健康保健",
        "法律援助",
        "文体活动",
    ]
    assert rows_of(ws) == [
        [1, "坝芒村", 2, 1, 1, 0, 0, 1, 0, 0],
        [2, "隘口村", 2, 0, 0, 0, 0, 0, 1, 1],
        [None, "合计", 4, 1, 1, 0, 0, 1, 1, 1],
    ]


def test_alerts_by_type_with_median_and_p90() -> None:
    raised = at("2026-05-01T08:00")
    sos = [
        AlertSummaryRow("坝芒村", "sos", raised, raised + timedelta(minutes=m))
        for m in range(1, 11)
    ]
    alerts = [
        *sos,
        AlertSummaryRow("坝芒村", "sos", raised, None),  # never acknowledged
        AlertSummaryRow("隘口村", "fall", raised, None),
        AlertSummaryRow("隘口村", "inactivity", raised, raised + timedelta(minutes=30)),
        AlertSummaryRow("隘口村", "inactivity", raised, raised - timedelta(seconds=5)),  # skew
        AlertSummaryRow("隘口村", "sos", at("2025-05-01T08:00"), None),  # last year
    ]
    ws = summary(alerts=alerts)["告警统计"]
    assert [cell.value for cell in ws[3]] == [
        "序号",
        "告警类型",
        "告警次数",
        "已确认次数",
        "确认率",
        "确认用时中位数（分钟）",
        "确认用时P90（分钟）",
    ]
    table = {row[1]: row[2:] for row in rows_of(ws)}
    assert table["一键呼救（SOS）"] == [11, 10, pytest.approx(10 / 11), 5.5, 9.1]
    assert table["跌倒"] == [1, 0, 0.0, "—", "—"]
    assert table["长时间无活动"] == [2, 2, 1.0, 15.0, 27.0]
    assert table["网关连接中断"] == [0, 0, "—", "—", "—"]
    # 合计 over all 12 acknowledgements: 0,1..10,30 -> median 5.5, p90 at rank 9.9 -> 9.9
    assert table["合计"] == [14, 12, pytest.approx(12 / 14), 5.5, 9.9]
    assert ws["E4"].number_format == "0.0%"


def test_unknown_alert_type_is_listed_by_its_code() -> None:
    raised = at("2026-05-01T08:00")
    ws = summary(alerts=[AlertSummaryRow("坝芒村", "smoke", raised, None)])["告警统计"]
    table = {row[1]: row[2:4] for row in rows_of(ws)}
    assert table["smoke"] == [1, 0]


def test_naive_times_are_refused() -> None:
    naive = VisitSummaryRow("坝芒村", (S.HEALTH,), datetime(2026, 5, 1, 8, 0))
    with pytest.raises(ValueError, match="time zone"):
        summary(visits=[naive])
