"""The alert page of an inactivity alert decided by a learned routine, in a real browser: the
"告警原因" line says by when the home usually stirs and how late it is now, readable on a
phone as on a desk."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect

from alerts.types import AlertTrigger, AlertType
from tests.browser.conftest import log_in, screenshot
from tests.integration.test_alerts_e2e import Live

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
]


async def test_the_alert_page_says_why_a_learned_routine_raised_the_alert(
    live_sqlite: Live, desktop: BrowserContext, phone: BrowserContext
) -> None:
    gateway = live_sqlite.gateway
    # What the learned inactivity rule puts in an alert's detail (gateway.rules.routine).
    alert, _ = await gateway.alerts.raise_alert(
        AlertTrigger(
            type=AlertType.INACTIVITY,
            person_id=1,
            at=gateway.clock.now(),
            detail={
                "since": "06:10",
                "usual_by": "07:40",
                "now": "09:10",
                "explanation": "通常 07:40 前有活动，现在 09:10 仍无活动",
            },
        )
    )
    for context in (desktop, phone):
        page = await context.new_page()
        await log_in(page, live_sqlite.public_url, "admin", f"/alerts/{alert.id}")
        why = page.locator('[data-testid="why"]')
        await expect(why).to_have_text("通常 07:40 前有活动，现在 09:10 仍无活动")
        # Its label beside it, and the whole line on screen, not cut off at 360 px.
        await expect(page.locator("dt", has=page.locator("text=告警原因"))).to_be_visible()
        box = await why.bounding_box()
        width = page.viewport_size["width"] if page.viewport_size else 0
        assert box is not None and box["x"] + box["width"] <= width
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        await screenshot(page, "alert-why")
