"""Three thousand routine SMS queued, then an SOS over the real broker: its SMS and call
reach (fake) Twilio through the real twilio client while the backlog is still there."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from alerts.outbox import Priority
from gateway.storage.models import Notification
from tests.conftest import wait_until
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import routine_backlog
from tests.integration.test_alerts_e2e import HELPER, _press_sos, _settings, running_gateway
from tests.services import free_port

pytestmark = pytest.mark.integration

BACKLOG = 3000


async def test_an_sos_goes_out_ahead_of_three_thousand_routine_sms(
    database_url: str, mqtt_prefix: str, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    # Pacing off: the priority order and the emergency lane alone must do it.
    unpaced = {"routine_per_minute": 10**9, "routine_burst": 10**9}
    settings = _settings(database_url, mqtt_prefix, free_port(), twilio, outbox=unpaced)
    async with running_gateway(settings, mqtt_prefix) as live:
        gateway = live.gateway
        now = gateway.clock.now()
        async with gateway.db.session() as session, session.begin():
            session.add_all(routine_backlog(BACKLOG, now))
        gateway.alerts.wake.set()
        await twilio.wait_for_async(lambda: len(twilio.messages) >= 20, 30)

        started = time.perf_counter()
        await _press_sos(live.prefix, "backlog-1")
        await twilio.wait_for_async(
            lambda: (
                any(m["To"] == HELPER for m in twilio.messages)
                and any(c["To"] == HELPER for c in twilio.calls)
            ),
            15,
        )
        latency = time.perf_counter() - started
        messages = twilio.messages
        routine_before_sos = next(i for i, m in enumerate(messages) if m["To"] == HELPER)
        async with gateway.db.session() as session:
            still_pending = await session.scalar(
                select(func.count()).where(
                    Notification.status == "pending", Notification.priority == Priority.ROUTINE
                )
            )
        # And the backlog is not starved: it goes on draining.
        sent_so_far = len(messages)
        await wait_until(lambda: len(twilio.messages) >= sent_so_far + 100, within=60)
    assert "老人0" in messages[routine_before_sos]["Body"]
    assert routine_before_sos < BACKLOG / 3, f"{routine_before_sos} routine SMS went first"
    assert still_pending is not None and still_pending > BACKLOG / 2
    assert latency < 5, f"SOS → SMS request took {latency:.1f}s behind the backlog"
