"""The duty officer's path in a real browser: log in, an SOS pressed in a home appears on
the board without a reload, is taken from the board, and its detail shows the timeline."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import BrowserContext, Route, expect
from sqlalchemy import func, select

from gateway.storage.models import Alert
from tests.browser.conftest import PASSWORD, log_in, publish_event, screenshot
from tests.conftest import wait_until
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

    await page.fill("#note-text", "已电话联系李四，正在上门")
    await page.click('[data-action="note"]')
    await expect(timeline.locator('[data-moment="note"]')).to_contain_text("正在上门")

    await page.select_option("#cause", "false_alarm")
    await page.fill("#note", "老人误按")
    await page.click('form.stack [data-action="resolve"]')
    await expect(page.locator(f'[data-alert-code="{code}"]')).to_have_attribute(
        "data-status", "resolved"
    )
    await expect(page.locator("text=误报")).to_be_visible()
    await screenshot(page, "alert-resolved")


async def _sse_until(response: httpx.Response, event: str) -> list[str]:
    """The stream's lines up to and including the first ``event: <event>`` message."""
    lines: list[str] = []
    seen = False
    async for line in response.aiter_lines():
        lines.append(line)
        if line == f"event: {event}":
            seen = True
        elif seen and line == "":
            return lines
    raise AssertionError(f"the stream ended before an {event!r} event")


async def test_a_reconnecting_board_is_replayed_the_alerts_it_missed(live_sqlite: Live) -> None:
    await publish_event(
        live_sqlite.prefix, f"{live_sqlite.prefix}-p1-sos", {"type": "sos", "id": "r-1"}
    )

    async def raised() -> int | None:
        async with live_sqlite.gateway.db.session() as session:
            return (await session.execute(select(func.max(Alert.id)))).scalar_one()

    await wait_until(raised, within=10)
    alert_id = await raised()
    assert alert_id is not None
    async with httpx.AsyncClient(base_url=live_sqlite.public_url, timeout=10) as client:
        form = await client.get("/login")
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text)
        assert token
        await client.post(
            "/login",
            data={"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        # Missed while away: replayed with its database id.
        headers = {"Last-Event-ID": str(alert_id - 1)}
        async with client.stream("GET", "/live/board", headers=headers) as response:
            lines = await _sse_until(response, "alert")
        assert f"id: {alert_id}" in lines
        assert any("老人1" in line for line in lines if line.startswith("data:"))
        # Already seen: not replayed; the board comes straight away.
        headers = {"Last-Event-ID": str(alert_id)}
        async with client.stream("GET", "/live/board", headers=headers) as response:
            lines = await _sse_until(response, "board")
        assert "event: alert" not in lines
        assert any(f'data-alert-id="{alert_id}"' in line for line in lines)


async def test_the_board_shows_how_long_the_live_connection_has_been_down(
    live_sqlite: Live, desktop: BrowserContext
) -> None:
    page = await desktop.new_page()
    streams = 0

    async def cut_after_first(route: Route) -> None:
        # The first stream ends at once (the gateway went away); every reconnect fails.
        nonlocal streams
        streams += 1
        if streams == 1:
            await route.fulfill(
                status=200,
                headers={"Content-Type": "text/event-stream"},
                body="retry: 500\n\nevent: ping\ndata: 0\n\n",
            )
        else:
            await route.abort("connectionrefused")

    await page.route("**/live/board**", cut_after_first)
    await log_in(page, live_sqlite.public_url, "admin")
    banner = page.locator("#live-banner")
    await expect(banner).to_be_visible()
    await expect(page.locator("#lost-seconds")).not_to_have_text("0", timeout=5_000)
    await screenshot(page, "board-connection-lost")
    # The gateway is back: the board reconnects and the banner goes.
    await page.unroute("**/live/board**")
    await expect(banner).to_be_hidden(timeout=20_000)
