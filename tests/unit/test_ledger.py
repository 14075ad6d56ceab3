"""The 台账 workbook: attachment 2's layout, the round trip, and hand-made sheets."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest
from openpyxl.workbook import Workbook

from gateway.register.idnumber import check_digit
from gateway.register.ledger import (
    LedgerImportError,
    LedgerRow,
    LedgerSheet,
    RowError,
    build_workbook,
    read_workbook,
    write_workbook,
)
from gateway.register.vocabulary import Category

HEADERS = [
    "序号",
    "姓名",
    "性别",
    "身份证号码",
    "人员类别",
    "帮扶责任人（职务）",
    "帮扶措施",
    "联系电话",
    "备注",
]
FOOTNOTE = "注：此表由各村（居）逐一入户核实后填写，经驻村领导签字审核后报送。"


def make_id(birth: str, sequence: int, *, male: bool) -> str:
    """A valid GB 11643 number for a person born on ``birth`` (YYYYMMDD) in 秀山 (500241)."""
    first17 = f"500241{birth}{sequence * 2 + (1 if male else 0):03d}"
    return first17 + check_digit(first17)


ZHANG = LedgerRow(
    name="张三",
    gender="男",
    id_number=make_id("19490505", 1, male=True),
    categories=(Category.DISPERSED_DESTITUTE,),
    helper_name="李四",
    helper_title="村支书",
    measures="每周上门一次，代购生活用品",
    phone="+8613600000001",
    notes="",
)
WANG = LedgerRow(
    name="王秀英",
    gender="女",
    id_number=make_id("19380212", 2, male=False),
    categories=(Category.SEVERE_DISABILITY, Category.MINIMUM_LIVING_ALLOWANCE),
    helper_name="彭建国",
    helper_title="驻村第一书记",
    measures="安装智慧看家系统（SOS按钮、跌倒监测），每周上门两次，协助办理残疾人两项补贴",
    phone="+862376000000",
    notes="独居，行动不便",
)
YANG = LedgerRow(
    name="杨小明",
    gender="男",
    id_number=make_id("20150830", 3, male=True),
    categories=(Category.CHILDREN_IN_DIFFICULTY, Category.LEFT_BEHIND),
    helper_name="吴芳",
    helper_title="",
    measures="联系学校老师每月了解学习情况\n开展亲情陪伴",
    phone="",
    notes="父母在浙江务工",
)
BAMANG = LedgerSheet("隘口镇", "坝芒村", (ZHANG, WANG, YANG), "2026-11")


def saved(workbook: Workbook) -> Workbook:
    """Save and load again: the test checks what ships, not openpyxl's memory."""
    buffer = io.BytesIO()
    workbook.save(buffer)
    return openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))


def xlsx_bytes(workbook: Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- layout


def test_layout_follows_attachment_2() -> None:
    ws = saved(build_workbook([BAMANG]))["坝芒村"]

    assert ws["A1"].value == "隘口镇特殊困难群体关爱帮扶台账"
    assert ws["A1"].font.b
    assert ws["A1"].font.sz > ws["B5"].font.sz
    assert ws["A1"].alignment.horizontal == "center"
    assert "A1:I1" in {str(r) for r in ws.merged_cells.ranges}
    assert ws["A2"].value == "（2026年11月）"
    assert ws["A3"].value == "村（居）：坝芒村"

    assert [ws.cell(row=4, column=c).value for c in range(1, 10)] == HEADERS
    for col in range(1, 10):
        header = ws.cell(row=4, column=col)
        assert header.font.b
        assert header.border.top.style == "thin"
        assert header.border.bottom.style == "thin"

    assert [ws.cell(row=r, column=1).value for r in (5, 6, 7)] == [1, 2, 3]
    assert [ws.cell(row=r, column=2).value for r in (5, 6, 7)] == ["张三", "王秀英", "杨小明"]
    assert ws["C6"].value == "女"
    assert ws["E5"].value == "分散供养特困人员"
    assert ws["E6"].value == "一、二级残疾人（无义务人或能力不足）、低保对象（无义务人或能力不足）"
    assert ws["E7"].value == "困境儿童、留守老人、留守儿童、留守妇女"
    assert ws["F5"].value == "李四（村支书）"
    assert ws["F7"].value == "吴芳"  # no 职务: no empty brackets
    assert ws["H5"].value == "13600000001"
    assert ws["H6"].value == "023-76000000"
    assert ws["H7"].value is None
    assert ws["I6"].value == "独居，行动不便"

    assert ws["G6"].alignment.wrap_text
    assert ws["I6"].alignment.wrap_text
    for row in (5, 6, 7):
        for col in range(1, 10):
            assert ws.cell(row=row, column=col).border.left.style == "thin"

    assert ws["A8"].value == FOOTNOTE
    signature = [
        ws.cell(row=r, column=1).value
        for r in range(9, ws.max_row + 1)
        if ws.cell(row=r, column=1).value
    ]
    assert len(signature) == 1
    assert signature[0].startswith("驻村领导签字：")
    assert "填表人：" in signature[0]
    assert "日期：" in signature[0]


def test_id_number_is_text_never_a_number() -> None:
    ws = saved(build_workbook([BAMANG]))["坝芒村"]
    for row, person in zip((5, 6, 7), BAMANG.rows, strict=True):
        cell = ws.cell(row=row, column=4)
        assert cell.value == person.id_number
        assert isinstance(cell.value, str)
        assert cell.data_type == "s"
        assert cell.number_format == "@"


def test_print_settings() -> None:
    ws = saved(build_workbook([BAMANG]))["坝芒村"]
    assert ws.page_setup.orientation == "landscape"
    assert int(ws.page_setup.paperSize) == 9  # A4 in the OOXML paper-size table
    assert ws.print_title_rows == "$4:$4"  # the header row repeats on every page
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert ws.page_setup.fitToWidth == 1
    assert ws.page_setup.fitToHeight == 0
    assert ws.print_options.horizontalCentered
    # Columns are sized for Chinese text: the ID fits 18 digits, 帮扶措施 is the widest.
    widths = {col: ws.column_dimensions[col].width for col in "ABCDEFGHI"}
    assert widths["D"] >= 20
    assert widths["G"] == max(widths.values())


def test_without_month_there_is_no_subtitle_line() -> None:
    ws = build_workbook([LedgerSheet("隘口镇", "坝芒村", (ZHANG,))])["坝芒村"]
    assert ws["A2"].value == "村（居）：坝芒村"
    assert [ws.cell(row=3, column=c).value for c in range(1, 10)] == HEADERS
    assert ws.print_title_rows == "$3:$3"


def test_one_sheet_per_village_with_legal_titles() -> None:
    long_name = "一个名字特别特别长的村民委员会" * 3
    workbook = build_workbook(
        [
            BAMANG,
            LedgerSheet("隘口镇", "隘口村", ()),
            LedgerSheet("隘口镇", long_name, ()),
            LedgerSheet("隘口镇", "坝芒村", (), "2026-12"),
        ]
    )
    titles = workbook.sheetnames
    assert titles[:2] == ["坝芒村", "隘口村"]
    assert titles[2] == long_name[:31]
    assert len(set(titles)) == 4
    assert all(len(title) <= 31 for title in titles)


def test_empty_and_invalid_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_workbook([])
    with pytest.raises(ValueError, match="month"):
        LedgerSheet("隘口镇", "坝芒村", (), "2026-13")


# --------------------------------------------------------------------------- round trip


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    sheets = [BAMANG, LedgerSheet("隘口镇", "隘口村", (ZHANG,), None)]
    # The same person in two villages is refused on import, so give 隘口村 someone else.
    other = LedgerRow(
        name="滕永福",
        gender="男",
        id_number=make_id("19470228", 7, male=True),
        categories=(Category.RELAPSE_RISK_HOUSEHOLD, Category.DISPERSED_DESTITUTE),
        helper_name="杨志",
        helper_title="网格员",
        measures="每周上门一次",
        phone="+8613900000002",
        notes="高血压",
    )
    sheets[1] = LedgerSheet("隘口镇", "隘口村", (other,), None)
    path = tmp_path / "台账.xlsx"
    write_workbook(sheets, path)
    assert read_workbook(path) == sheets
    assert read_workbook(str(path)) == sheets


def test_round_trip_through_bytes_and_village_selection() -> None:
    data = xlsx_bytes(build_workbook([BAMANG, LedgerSheet("隘口镇", "隘口村", ())]))
    assert read_workbook(data) == [BAMANG, LedgerSheet("隘口镇", "隘口村", ())]
    assert read_workbook(data, village="坝芒村") == [BAMANG]
    assert read_workbook(io.BytesIO(data), village="隘口村") == [
        LedgerSheet("隘口镇", "隘口村", ())
    ]
    with pytest.raises(LedgerImportError) as caught:
        read_workbook(data, village="富裕村")
    assert caught.value.errors[0].column == "村（居）"
    assert "富裕村" in caught.value.errors[0].message


def test_round_trip_after_officer_edits_in_excel() -> None:
    """Typical hand edits of an export: retyped phone as a number, a row removed."""
    workbook = saved(build_workbook([BAMANG]))
    ws = workbook["坝芒村"]
    ws["H5"].value = 13600000009  # Excel turns a typed mobile number into a number
    ws.delete_rows(7)  # 杨小明 moved away
    (sheet,) = read_workbook(xlsx_bytes(workbook))
    assert [row.name for row in sheet.rows] == ["张三", "王秀英"]
    assert sheet.rows[0].phone == "+8613600000009"


# --------------------------------------------------------------------------- hand-made sheets


def hand_made(rows: list[list[object]], *, village_cell: str = "") -> Workbook:
    """A village's own sheet as typed from the notice's sample (附件2), not by us."""
    workbook = Workbook()
    ws = workbook.active
    ws.title = "Sheet1"
    ws["A1"] = "隘口镇特殊困难群体关爱帮扶台账（样表）"
    ws.merge_cells("A1:I1")
    ws["A2"] = "村（居）："
    ws["C2"] = village_cell
    ws.append(
        [
            "序号",
            "姓  名",
            " 性 别",
            "身份证号码",
            "人员类别",
            "帮扶责任人\n\n（职务）",
            "帮扶措施",
            "联系电话",
            "备 注",
        ]
    )
    for row in rows:
        ws.append(row)
    ws.append([FOOTNOTE])
    return workbook


GOOD_ID = make_id("19530101", 11, male=False)
BAD_CHECK_ID = GOOD_ID[:17] + ("0" if GOOD_ID[17] != "0" else "1")


def test_hand_made_sheet_collects_every_row_error() -> None:
    workbook = hand_made(
        [
            [1, "张 三", "男", ZHANG.id_number, "特困", "李四(村支书)", "上门", 13600000001, ""],
            [2, "王秀英", "女", int(WANG.id_number[:17] + "1"), "低保", "李四", "", "", ""],
            [3, "石桂花", "女", BAD_CHECK_ID, "留守老人", "吴芳(妇联主席)", "", "", ""],
            [4, "白玉兰", "M", GOOD_ID, "孤寡老人", "吴芳", "", "136", ""],
            [5, "", "", "", "", "", "", "", ""],  # blank template row ends the table
        ],
        village_cell="坝芒村",
    )
    with pytest.raises(LedgerImportError) as caught:
        read_workbook(xlsx_bytes(workbook))

    errors = caught.value.errors
    assert all(isinstance(error, RowError) for error in errors)
    assert all(error.sheet == "Sheet1" for error in errors)
    found = {(error.row, error.column) for error in errors}
    assert found == {
        (5, "身份证号码"),  # stored as a number
        (6, "身份证号码"),  # wrong check digit
        (7, "性别"),
        (7, "人员类别"),
        (7, "联系电话"),
    }
    by_place = {(error.row, error.column): error.message for error in errors}
    assert "number" in by_place[(5, "身份证号码")]
    assert "check digit" in by_place[(6, "身份证号码")]
    assert "孤寡老人" in by_place[(7, "人员类别")]
    assert "row 6 身份证号码" in str(caught.value)


def test_hand_made_sheet_reads_tolerantly() -> None:
    left_behind_id = make_id("19391019", 12, male=True)
    workbook = hand_made(
        [
            [
                1,
                "张  三",
                "男",
                ZHANG.id_number,
                "分散供养特困人员",
                "李四(村支书)",
                "上门",
                13600000001,
                None,
            ],
            [
                2,
                "彭大山",
                "男",
                left_behind_id.lower(),
                "一、二级残疾人（无义务人或能力不足）、留守老人、留守儿童、留守妇女",
                "王五（村主任）",
                "每月走访两次",
                "023-76000000",
                "腿脚不便",
            ],
            [
                3,
                "王秀英",
                "女",
                WANG.id_number,
                "dispersed_destitute; 低保,留守老人，易返贫致贫户",
                "李四",
                "",
                "",
                "",
            ],
            [4, "", "", "", "", "", "", "", ""],
            [5, "", "", "", "", "", "", "", ""],
        ]
    )
    (sheet,) = read_workbook(xlsx_bytes(workbook), village="坝芒村")
    assert sheet.town == "隘口镇"
    assert sheet.village == "坝芒村"  # the 村（居） line was blank: taken from the argument
    assert sheet.month is None
    zhang, peng, wang = sheet.rows
    assert zhang == LedgerRow(
        name="张三",
        gender="男",
        id_number=ZHANG.id_number,
        categories=(Category.DISPERSED_DESTITUTE,),
        helper_name="李四",
        helper_title="村支书",
        measures="上门",
        phone="+8613600000001",
        notes="",
    )
    assert peng.id_number == left_behind_id.upper()
    assert peng.categories == (Category.SEVERE_DISABILITY, Category.LEFT_BEHIND)
    assert (peng.helper_name, peng.helper_title) == ("王五", "村主任")
    assert peng.phone == "+862376000000"
    assert wang.categories == (
        Category.DISPERSED_DESTITUTE,
        Category.MINIMUM_LIVING_ALLOWANCE,
        Category.LEFT_BEHIND,
        Category.RELAPSE_RISK_HOUSEHOLD,
    )
    assert (wang.helper_name, wang.helper_title) == ("李四", "")


def test_village_line_with_name_in_a_later_cell() -> None:
    workbook = hand_made(
        [[1, "张三", "男", ZHANG.id_number, "特困", "李四", "", "", ""]], village_cell="坝芒村"
    )
    (sheet,) = read_workbook(xlsx_bytes(workbook))
    assert sheet.village == "坝芒村"


def test_blank_village_without_argument_is_an_error() -> None:
    workbook = hand_made([[1, "张三", "男", ZHANG.id_number, "特困", "李四", "", "", ""]])
    with pytest.raises(LedgerImportError) as caught:
        read_workbook(xlsx_bytes(workbook))
    assert [(e.row, e.column) for e in caught.value.errors] == [(2, "村（居）")]


def test_merged_helper_cell_applies_to_every_person_it_spans() -> None:
    workbook = hand_made(
        [
            [1, "张三", "男", ZHANG.id_number, "特困", "李四（村支书）", "", "", ""],
            [2, "王秀英", "女", WANG.id_number, "低保", None, "", "", ""],
        ],
        village_cell="坝芒村",
    )
    workbook.active.merge_cells("F4:F5")
    (sheet,) = read_workbook(xlsx_bytes(workbook))
    assert [(r.helper_name, r.helper_title) for r in sheet.rows] == [("李四", "村支书")] * 2


def test_rows_below_an_empty_row_are_reported_not_dropped() -> None:
    workbook = hand_made(
        [
            [1, "张三", "男", ZHANG.id_number, "特困", "李四", "", "", ""],
            [None] * 9,
            [3, "王秀英", "女", WANG.id_number, "低保", "李四", "", "", ""],
        ],
        village_cell="坝芒村",
    )
    with pytest.raises(LedgerImportError) as caught:
        read_workbook(xlsx_bytes(workbook))
    (error,) = caught.value.errors
    assert error.row == 6
    assert "empty row 5" in error.message


def test_duplicate_id_and_excel_mangled_float_id() -> None:
    workbook = hand_made(
        [
            [1, "张三", "男", ZHANG.id_number, "特困", "李四", "", "", ""],
            [2, "张三", "男", ZHANG.id_number, "特困", "李四", "", "", ""],
            [3, "王秀英", "女", 5.00241193802120e17, "低保", "李四", "", "", ""],
            [4, "无名", "女", "", "", "", "", "", ""],
        ],
        village_cell="坝芒村",
    )
    with pytest.raises(LedgerImportError) as caught:
        read_workbook(xlsx_bytes(workbook))
    messages = {(e.row, e.column): e.message for e in caught.value.errors}
    assert set(messages) == {
        (5, "身份证号码"),
        (6, "身份证号码"),
        (7, "身份证号码"),
        (7, "人员类别"),
    }
    assert "row 4" in messages[(5, "身份证号码")]
    assert "number" in messages[(6, "身份证号码")]


def test_missing_column_and_not_a_workbook() -> None:
    workbook = Workbook()
    workbook.active.append(["序号", "姓名", "身份证号码", "备注"])
    with pytest.raises(LedgerImportError) as caught:
        read_workbook(xlsx_bytes(workbook), village="坝芒村")
    assert {e.column for e in caught.value.errors} == {
        "性别",
        "人员类别",
        "帮扶责任人（职务）",
        "帮扶措施",
        "联系电话",
    }

    with pytest.raises(LedgerImportError, match="xlsx"):
        read_workbook(b"this is not a spreadsheet")

    other = Workbook()
    other.active.append(["名单"])
    with pytest.raises(LedgerImportError, match="header row"):
        read_workbook(xlsx_bytes(other))


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("低保（无义务人或能力不足）", (Category.MINIMUM_LIVING_ALLOWANCE,)),
        ("一、二级残疾人;困境儿童", (Category.SEVERE_DISABILITY, Category.CHILDREN_IN_DIFFICULTY)),
        ("留守儿童、留守妇女", (Category.LEFT_BEHIND,)),  # one category, written twice
        (
            "relapse_risk_household / 特困人员",
            (Category.RELAPSE_RISK_HOUSEHOLD, Category.DISPERSED_DESTITUTE),
        ),
        ("残疾人（三级）", None),  # not the notice's 一、二级
        ("低保边缘户", None),
        ("三级残疾人", None),
    ],
)
def test_category_spellings(written: str, expected: tuple[Category, ...] | None) -> None:
    workbook = hand_made(
        [[1, "张三", "男", ZHANG.id_number, written, "李四", "", "", ""]], village_cell="坝芒村"
    )
    if expected is None:
        with pytest.raises(LedgerImportError) as caught:
            read_workbook(xlsx_bytes(workbook))
        assert [(e.row, e.column) for e in caught.value.errors] == [(4, "人员类别")]
    else:
        (sheet,) = read_workbook(xlsx_bytes(workbook))
        assert sheet.rows[0].categories == expected


def test_full_width_digits_typed_by_the_input_method() -> None:
    full_width = ZHANG.id_number.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    workbook = hand_made(
        [[1, "张三", "男", full_width, "特困", "李四", "", "１３６００００００01", ""]],
        village_cell="坝芒村",
    )
    (sheet,) = read_workbook(xlsx_bytes(workbook))
    assert sheet.rows[0].id_number == ZHANG.id_number
    assert sheet.rows[0].phone == "+8613600000001"
