"""The 台账 round trip in a real browser: export, change a cell, the import preview shows
the change as a table and changes nothing, 确认导入 applies it; compliance and reports."""

from __future__ import annotations

import io

import openpyxl
import pytest
from playwright.async_api import BrowserContext, FilePayload, expect
from sqlalchemy import select

from gateway.storage.models import Person
from tests.browser.conftest import log_in, publish_event, screenshot
from tests.integration.test_alerts_e2e import Live

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
]


def _change_measures(workbook: bytes, name: str, measures: str) -> bytes:
    book = openpyxl.load_workbook(io.BytesIO(workbook))
    sheet = book.worksheets[0]
    header = next(cell for row in sheet.iter_rows() for cell in row if cell.value == "帮扶措施")
    person = next(cell for row in sheet.iter_rows() for cell in row if cell.value == name)
    sheet.cell(row=person.row, column=header.column, value=measures)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _measures(live: Live, name: str) -> str:
    async with live.gateway.db.session() as session:
        person = (await session.execute(select(Person).where(Person.name == name))).scalar_one()
        return person.measures


async def test_register_export_then_import_preview_and_apply(
    live_sqlite: Live, desktop: BrowserContext, phone: BrowserContext
) -> None:
    page = await desktop.new_page()
    await log_in(page, live_sqlite.public_url, "admin", "/register")
    await page.select_option("#export-village", "坝芒村")
    async with page.expect_download() as download_info:
        await page.click('[data-action="export"]')
    download = await download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    exported = (await download.path()).read_bytes()
    changed = _change_measures(exported, "老人0", "每周两次上门，代购药品")

    await page.select_option("#import-village", "坝芒村")
    await page.set_input_files(
        "#file",
        files=[FilePayload(name="台账.xlsx", mimeType="application/octet-stream", buffer=changed)],
    )
    await page.click('[data-action="preview"]')
    report = page.locator('[data-testid="import-report"]')
    await expect(report).to_have_attribute("data-dry-run", "true")
    row = page.locator('[data-testid="changes"] tr[data-change="updated"]')
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("老人0")
    await expect(row).to_contain_text("帮扶措施")
    await expect(row).to_contain_text("每周两次上门，代购药品")
    await screenshot(page, "register-preview")
    assert await _measures(live_sqlite, "老人0") == "每周上门一次", "a preview must change nothing"

    await page.click('[data-action="apply"]')
    await expect(report).to_have_attribute("data-dry-run", "false")
    assert await _measures(live_sqlite, "老人0") == "每周两次上门，代购药品"
    await screenshot(page, "register-applied")

    await page.goto(live_sqlite.public_url + "/compliance")
    await expect(page.locator('[data-testid="compliance"] tbody tr')).to_have_count(3)
    await screenshot(page, "compliance")
    # A false alarm, taken and closed from the board, for the reports.
    await publish_event(
        live_sqlite.prefix, f"{live_sqlite.prefix}-p1-sos", {"type": "sos", "id": "f-1"}
    )
    await page.goto(live_sqlite.public_url + "/")
    row = page.locator('.alert-row[data-status="open"]')
    await expect(row).to_have_count(1, timeout=15_000)
    await row.locator('[data-action="ack"]').click()
    taken = page.locator('.alert-row[data-status="acknowledged"]')
    await expect(taken).to_have_count(1)
    await taken.locator('select[name="cause"]').select_option("false_alarm")
    await taken.locator('[data-action="resolve"]').click()
    await expect(page.locator(".empty")).to_be_visible()

    await page.goto(live_sqlite.public_url + "/reports")
    await expect(page.locator('[data-testid="false-share"]')).to_contain_text("100.0%")
    await expect(page.locator('[data-testid="ack-times"] tbody tr')).to_have_count(1)
    await screenshot(page, "reports")

    small = await phone.new_page()
    await small.goto(live_sqlite.public_url + "/login")
    await screenshot(small, "login")
    await log_in(small, live_sqlite.public_url, "admin", "/compliance")
    for path, name in (
        ("/compliance", "compliance"),
        ("/register", "register"),
        ("/reports", "reports"),
    ):
        await small.goto(live_sqlite.public_url + path)
        await screenshot(small, name)
        width = await small.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} overflows a 360 px screen ({width} px)"
