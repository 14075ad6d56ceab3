"""The what-if page in a real browser: an officer picks learned routines and a period, runs
the replay of the town's stored events, and reads per home what would have been raised next
to what was."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import log_in, publish_event, screenshot
from tests.integration.test_alerts_e2e import Live

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
]


async def test_an_officer_replays_the_last_days_with_learned_routines(
    live_sqlite: Live, desktop: BrowserContext, phone: BrowserContext
) -> None:
    await publish_event(
        live_sqlite.prefix, f"{live_sqlite.prefix}-p0-pir", {"type": "motion", "state": True}
    )
    page = await desktop.new_page()
    await log_in(page, live_sqlite.public_url, "admin", "/whatif")
    await expect(page.locator('[data-testid="whatif-result"]')).to_have_count(0)
    await page.fill('input[name="days"]', "3")
    await page.select_option('select[name="mode"]', "learned")
    # The click waits for the form's navigation, which comes back when the replay child is
    # done: as long as the result itself may take on a loaded machine.
    await page.click('[data-action="whatif"]', timeout=30_000)
    result = page.locator('[data-testid="whatif-result"]')
    await expect(result).to_be_visible(timeout=30_000)
    # Every resident on the register, the threshold alerts side by side.
    await expect(result.locator("tbody tr")).to_have_count(3)
    await expect(result.locator('tbody tr[data-person="王奶奶"]')).to_contain_text("隘口村")
    await expect(result.locator('[data-total-would="inactivity"]')).to_have_text("0")
    await expect(page.locator('select[name="mode"]')).to_have_value("learned")
    await screenshot(page, "whatif")

    small = await phone.new_page()
    await log_in(small, live_sqlite.public_url, "admin", "/whatif?run=true&days=3")
    await expect(small.locator('[data-testid="whatif-result"]')).to_be_visible(timeout=30_000)
    # At 360 px each home is a card: nothing to scroll sideways, in the page or the table,
    # and each figure is labelled with its alert type where it stands.
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360
    wrap = small.locator(".table-wrap")
    assert await wrap.evaluate("e => e.scrollWidth <= e.clientWidth")
    row = small.locator('tbody tr[data-person="王奶奶"]')
    assert await row.evaluate("e => getComputedStyle(e).display") == "grid"
    would = row.locator('[data-would="inactivity"]')
    label = await would.evaluate("e => getComputedStyle(e, '::before').content")
    assert "长时间无活动" in label and "按所选阈值" in label
    # The header rows are left to screen readers (a pixel, clipped).
    assert await small.locator("thead").evaluate("e => e.getBoundingClientRect().height") <= 1
    await screenshot(small, "whatif")
