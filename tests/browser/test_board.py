"""The duty officer's path in a real browser: log in, an SOS pressed in a home appears on
the board without a reload, is taken from the board, and its detail shows the timeline."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import log_in, publish_event, screenshot
from tests.fakes.fake_twilio import FakeTwilio
from tests.integration.test_alerts_e2e import Live

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
]


async def test_an_sos_appears_live_is_taken_from_the_board_and_shows_its_timeline(
    live: Live, desktop: BrowserContext, twilio: FakeTwilio
) -> None:
    page = await desktop.new_page()
    await log_in(page, live.public_url, "admin")
    await expect(page.locator(".empty")).to_be_visible()
    await page.click("#start-duty")
    await screenshot(page, "board-empty")
    # A marker that a reload would wipe: the row must arrive over the live stream.
    await page.evaluate("window.__noReload = true")

    await publish_event(live.prefix, f"{live.prefix}-p0-sos", {"type": "sos", "id": "b-1"})

    row = page.locator('.alert-row[data-status="open"]')
    await expect(row).to_have_count(1, timeout=15_000)
    assert await page.evaluate("window.__noReload === true")
    code = await row.get_attribute("data-alert-code")
    assert code
    await expect(page.locator(f'[data-announced-code="{code}"]')).to_contain_text("老人0")
    await expect(page.locator("body")).to_have_attribute("data-ringing", "emergency")
    await expect(page).to_have_title("(1) 告警台 · 智慧看家")
    await twilio.wait_for_async(lambda: len(twilio.messages) >= 1, 10)
    await screenshot(page, "board-sos")

    await row.locator('[data-action="ack"]').click()
    taken = page.locator(f'[data-alert-code="{code}"]')
    await expect(taken).to_have_attribute("data-status", "acknowledged")
    await expect(taken).to_contain_text("admin")
    await expect(page.locator("body")).to_have_attribute("data-ringing", "")
    await screenshot(page, "board-taken")

    await taken.locator("a.type").click()
    await page.wait_for_url("**/alerts/*")
    timeline = page.locator('[data-testid="timeline"]')
    await expect(timeline.locator('[data-moment="raised"]')).to_have_count(1)
    await expect(timeline.locator('[data-moment="notified"]').first).to_be_visible()
    await expect(timeline.locator('[data-moment="taken"]')).to_contain_text("admin")
    await expect(page.locator("text=李四").first).to_be_visible()
    await screenshot(page, "alert-detail")

    await page.select_option("#cause", "false_alarm")
    await page.fill("#note", "老人误按")
    await page.click('form.stack [data-action="resolve"]')
    await expect(page.locator(f'[data-alert-code="{code}"]')).to_have_attribute(
        "data-status", "resolved"
    )
    await expect(page.locator("text=误报")).to_be_visible()
    await screenshot(page, "alert-resolved")
