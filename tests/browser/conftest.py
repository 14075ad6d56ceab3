"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (one browser for
the whole session), a real gateway on the real broker and databases, screenshots kept
under test-artifacts/screenshots/ for a person to look at."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import register_yaml
from tests.integration.conftest import twilio
from tests.integration.test_alerts_e2e import Live, _settings, running_gateway
from tests.services import free_port

#: ``twilio`` is the end-to-end suites' fake-Twilio fixture, shared by importing it here.
__all__ = [
    "PHONE",
    "browser",
    "desktop",
    "live",
    "live_sqlite",
    "log_in",
    "page_weight",
    "phone",
    "screenshot",
    "small_targets",
    "twilio",
]
CHROMIUM = os.environ.get("HOMEWATCH_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct-horse-battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}
OTHER_HELPER = "+8613700000003"


def browser_register(prefix: str) -> str:
    """Two residents of helper 李四 in 坝芒村, and 王奶奶 of helper 周强 in 隘口村."""
    other = f"""  - name: 王奶奶
    gender: 女
    id_number: "500241194001010222"
    village: 隘口村
    categories: [left_behind]
    care_level: general
    helper: "{OTHER_HELPER}"
    phone: "+8613600009999"
    address: 隘口村5组8号
    devices:
      - {{uid: {prefix}-w-sos, kind: sos, protocol: native,
          topic: {prefix}/homewatch/{prefix}-w-sos}}
"""
    return register_yaml(prefix, persons=2, extra_person_yaml=other).replace(
        "helpers:\n",
        "  - name: 隘口村\n    emergency_team: []\nhelpers:\n"
        f'  - {{name: 周强, phone: "{OTHER_HELPER}", title: 驻村干部, village: 隘口村}}\n',
        1,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium fonts-wqy-microhei")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            await launched.close()


@contextlib.asynccontextmanager
async def _gateway(
    database_url: str,
    prefix: str,
    twilio: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
    data_dir: Path,
) -> AsyncIterator[Live]:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", PASSWORD)
    # Visit photos go to the test's own directory, never into the working tree.
    settings = _settings(database_url, prefix, free_port(), twilio, data_dir=str(data_dir))
    async with running_gateway(settings, prefix, register=browser_register(prefix)) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def live(
    database_url: str,
    mqtt_prefix: str,
    twilio: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[Live]:
    """The gateway on each database: for the duty path, which must work on both."""
    async with _gateway(
        database_url, mqtt_prefix, twilio, monkeypatch, tmp_path / "data"
    ) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def live_sqlite(
    sqlite_url: str,
    mqtt_prefix: str,
    twilio: FakeTwilio,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[Live]:
    """The gateway on SQLite only: for pages whose rendering no database changes."""
    async with _gateway(sqlite_url, mqtt_prefix, twilio, monkeypatch, tmp_path / "data") as running:
        yield running


@contextlib.asynccontextmanager
async def _context(browser: Browser, **options: Any) -> AsyncIterator[BrowserContext]:
    """A fresh profile (cookies, storage) in the town's language and time zone."""
    context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **options)
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def desktop(browser: Browser) -> AsyncIterator[BrowserContext]:
    async with _context(browser, viewport=DESKTOP) as context:
        yield context


@pytest_asyncio.fixture(loop_scope="session")
async def phone(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A cheap Android phone: 360 × 740, touch, twice the pixels."""
    async with _context(
        browser, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    ) as context:
        yield context


async def log_in(page: Page, base_url: str, username: str, path: str = "/") -> None:
    await page.goto(base_url + path)
    await page.wait_for_url("**/login**")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(base_url + path)


async def screenshot(page: Page, name: str) -> Path:
    """Full-page PNG named after the page and the viewport width. It appears whole under
    that name: parallel workers take the same page at once (one per database), and a person
    must never open a half-written picture."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    path = SCREENSHOTS / f"{name}-{width}.png"
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(await page.screenshot(full_page=True))
    partial.replace(path)
    return path


async def page_weight(page: Page) -> int:
    """Bytes the page and everything it loaded came to (as transferred, before caching)."""
    weight: int = await page.evaluate(
        """() => performance.getEntries()
            .filter(e => e.entryType === "navigation" || e.entryType === "resource")
            .reduce((sum, e) => sum + (e.decodedBodySize || 0), 0)"""
    )
    return weight


async def small_targets(page: Page) -> list[str]:
    """Controls a thumb must hit that are under 44 px tall (a label counts for its box)."""
    small: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll(
                'button, select, input:not([type=hidden]):not([type=checkbox]), '
                + '.services label, nav a, .btn')]
            .filter(e => e.offsetParent !== null && e.getBoundingClientRect().height < 44)
            .map(e => e.outerHTML.slice(0, 80))"""
    )
    return small


async def publish_event(prefix: str, uid: str, payload: dict[str, object]) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.publish(f"{prefix}/homewatch/{uid}/event", json.dumps(payload), qos=1)
