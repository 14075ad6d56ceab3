"""The other console pages in a real browser: a visit logged on a 360 × 740 phone is
stored with its photo, a helper sees only his persons, the wall screen shows no names, a
form post without the CSRF token is refused; every page is photographed at both widths."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, expect
from sqlalchemy import select

from gateway.storage.models import Visit
from tests.browser.conftest import (
    log_in,
    page_weight,
    publish_event,
    screenshot,
    small_targets,
)
from tests.integration.test_alerts_e2e import Live

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.asyncio(loop_scope="session"),
]

# The smallest valid JPEG-signature file the photo check accepts (1 × 1 white pixel).
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////"
    "////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/a"
    "AAgBAQABPxA="
)


async def test_a_visit_logged_on_a_phone_is_stored_with_its_photo(
    live_sqlite: Live, phone: BrowserContext, tmp_path: Path
) -> None:
    page = await phone.new_page()
    await log_in(page, live_sqlite.public_url, "lisi", "/visits/new")
    await screenshot(page, "visit-new")
    assert await small_targets(page) == []
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the visit form overflows a 360 px screen ({width} px)"
    await page.select_option("#person_id", label="老人1 · 坝芒村")
    await page.check('input[name="services"][value="daily_care"]')
    await page.check('input[name="services"][value="companionship"]')
    await page.fill("#notes", "帮忙买米，老人精神好")
    photo = tmp_path / "visit.jpg"
    photo.write_bytes(JPEG)
    await page.set_input_files("#photo", str(photo))
    await page.click(".visit-form button[type=submit]")
    await expect(page.locator("[data-saved-visit]")).to_be_visible()
    await screenshot(page, "visit-saved")

    async with live_sqlite.gateway.db.session() as session:
        visits = (await session.execute(select(Visit))).scalars().all()
    assert len(visits) == 1
    (visit,) = visits
    assert visit.services == ["daily_care", "companionship"]
    assert visit.notes == "帮忙买米，老人精神好" and visit.created_by == "lisi"
    assert visit.photo_path is not None
    assert (Path(live_sqlite.gateway.settings.data_dir) / visit.photo_path).read_bytes() == JPEG


async def test_a_helper_sees_only_his_persons(live_sqlite: Live, phone: BrowserContext) -> None:
    await publish_event(
        live_sqlite.prefix, f"{live_sqlite.prefix}-w-sos", {"type": "sos", "id": "w-1"}
    )
    page = await phone.new_page()
    await log_in(page, live_sqlite.public_url, "lisi", "/homes")
    cards = page.locator(".home-card")
    await expect(cards).to_have_count(2)
    await expect(page.locator("main")).not_to_contain_text("王奶奶")
    await screenshot(page, "homes-helper")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the homes page overflows a 360 px screen ({width} px)"
    await page.goto(live_sqlite.public_url + "/")
    await expect(page.locator(".empty")).to_be_visible()
    await screenshot(page, "board-helper")

    await cards.count()
    await page.goto(live_sqlite.public_url + "/homes")
    await page.locator(".home-card a.who").first.click()
    await page.wait_for_url("**/persons/*")
    id_number = await page.locator('[data-field="id_number"]').inner_text()
    assert "*" in id_number, "a helper must see ID numbers masked"
    await screenshot(page, "person-helper")


async def test_admin_pages_and_the_wall_screen(
    live_sqlite: Live, desktop: BrowserContext, phone: BrowserContext
) -> None:
    await publish_event(
        live_sqlite.prefix, f"{live_sqlite.prefix}-p1-sos", {"type": "sos", "id": "a-1"}
    )
    await publish_event(
        live_sqlite.prefix, f"{live_sqlite.prefix}-p0-pir", {"type": "motion", "state": True}
    )
    admin = await desktop.new_page()
    await log_in(admin, live_sqlite.public_url, "admin")
    await expect(admin.locator('.alert-row[data-status="open"]')).to_have_count(1)
    # A cheap phone on a slow link: every page with its scripts stays under ~150 KB.
    assert await page_weight(admin) < 150_000
    for path, name in (("/homes", "homes"), ("/visits/new", "visit"), ("/persons/1", "person")):
        await admin.goto(live_sqlite.public_url + path)
        await screenshot(admin, f"{name}-admin")
        assert await page_weight(admin) < 150_000, path
    # The town sees the full ID number.
    await expect(admin.locator('[data-field="id_number"]')).to_have_text(
        re.compile(r"^\d{17}[\dX]$")
    )

    small = await phone.new_page()
    await log_in(small, live_sqlite.public_url, "admin")
    await expect(small.locator('.alert-row[data-status="open"]')).to_have_count(1)
    await screenshot(small, "board-sos")
    assert await small_targets(small) == []
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360
    code = await small.locator(".alert-row").first.get_attribute("data-alert-id")
    await small.goto(f"{live_sqlite.public_url}/alerts/{code}")
    await screenshot(small, "alert-detail")
    assert await small.evaluate("document.documentElement.scrollWidth") <= 360

    # The wall screen: no login, counts only.
    wall_page = await desktop.new_page()
    await wall_page.goto(live_sqlite.public_url + "/wall")
    await expect(wall_page.locator('[data-count="open"]')).to_have_text("1")
    text = await wall_page.locator("body").inner_text()
    for private in ("老人", "王奶奶", "组", "+86", "坝芒村"):
        assert private not in text, f"the wall screen shows {private!r}"
    await screenshot(wall_page, "wall")
    wall_small = await phone.new_page()
    await wall_small.goto(live_sqlite.public_url + "/wall")
    await screenshot(wall_small, "wall")


async def test_login_is_required_and_a_post_without_csrf_is_refused(
    live_sqlite: Live, desktop: BrowserContext
) -> None:
    page = await desktop.new_page()
    await page.goto(live_sqlite.public_url + "/homes")
    await page.wait_for_url("**/login?next=/homes")
    await screenshot(page, "login")
    await page.fill("#username", "admin")
    await page.fill("#password", "wrong-password")
    await page.click("button[type=submit]")
    await expect(page.locator(".error")).to_contain_text("用户名或密码错误")
    await log_in(page, live_sqlite.public_url, "admin", "/homes")
    cookies = {c["name"]: c for c in await desktop.cookies()}
    session = cookies["homewatch_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    refused = await page.request.post(live_sqlite.public_url + "/alerts/1/ack", form={"x": "1"})
    assert refused.status == 403
