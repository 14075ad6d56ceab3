"""The emergency lane against a real Mosquitto: an SOS is stored and handed to the rules
while a routine backlog of thousands of motion reports is still draining."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from alerts.notifiers import ConsoleNotifier
from gateway.app import Gateway
from gateway.config import load_settings
from gateway.events import EventKind
from gateway.ingest import RoutedEvent
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from gateway.storage.models import Alert, Event
from tests.conftest import wait_until
from tests.helpers import NO_DIGEST_DURING_TEST, pinned_clock, register_yaml
from tests.services import mosquitto, publish_qos1

pytestmark = pytest.mark.integration

BACKLOG = 10_000


async def _run_until_subscribed_then_stop(gateway: Gateway) -> None:
    """Create both persistent sessions at the broker, so that they queue while we are down."""
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
    await wait_until(
        lambda: gateway.ingest.connected and gateway.emergency_ingest.connected, within=15
    )
    stop.set()
    await asyncio.wait_for(task, 20)


async def test_an_sos_overtakes_a_routine_backlog_and_is_stored_once(
    database_url: str, mqtt_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    p = mqtt_prefix
    with mosquitto() as port:  # ours: no queued-message limit, unlike a default broker
        settings = load_settings(
            database_url=database_url,
            mqtt_url=f"mqtt://127.0.0.1:{port}",
            mqtt_client_id=f"gw-{p}",
            mqtt_topic_prefix=p,
            secret_key="e" * 32,
            timezone="Asia/Shanghai",
            digest=NO_DIGEST_DURING_TEST,
        )
        await migrate(database_url)
        clock = pinned_clock()
        first = Gateway(settings, "e" * 32, clock=clock, notifier=ConsoleNotifier())
        await apply_provisioning(first.db, parse_provisioning(register_yaml(p)), clock.now())
        await _run_until_subscribed_then_stop(first)

        # While the gateway is down: a flood from one home, then two presses in another.
        pir = f"{p}/homewatch/{p}-p0-pir/event"
        flood = [
            (pir, json.dumps({"type": "motion", "state": n % 2 == 0, "id": f"m{n}"}))
            for n in range(BACKLOG)
        ]
        presses = [
            (f"{p}/homewatch/{p}-p1-sos/event", json.dumps({"type": "sos", "id": "press-1"})),
            # A Zigbee button sends no id: only the lanes' ledger keeps it from being stored
            # by both sessions (the routine one's family wildcard covers it too).
            (f"{p}-z2m/{p}-p1-zsos", json.dumps({"action": "emergency"})),
        ]
        await asyncio.to_thread(publish_qos1, port, flood + presses)

        gateway = Gateway(settings, "e" * 32, clock=clock, notifier=ConsoleNotifier())
        handed: list[str] = []  # "sos" or "routine", in the order the rules got them

        def recording(lane: str) -> object:
            async def on_events(events: Sequence[RoutedEvent]) -> None:
                for routed in events:
                    handed.append("sos" if routed.event.kind is EventKind.SOS else "routine")
                await gateway.runner.on_events(events)

            return on_events

        gateway.ingest.on_events = recording("routine")  # type: ignore[assignment]
        gateway.emergency_ingest.on_events = recording("emergency")  # type: ignore[assignment]
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
        try:
            await wait_until(lambda: handed.count("sos") >= 2, within=30)
            routine_before_sos = handed[: handed.index("sos")].count("routine")
            await wait_until(lambda: handed.count("routine") >= BACKLOG, within=120)
            await asyncio.sleep(0.5)  # a copy stored twice would show up by now
            async with gateway.db.session() as session:
                sos_events = (
                    await session.execute(
                        select(Event.device_uid).where(Event.kind == "sos").order_by(Event.id)
                    )
                ).scalars()
                alerts = (
                    await session.execute(select(func.count(Alert.id)).where(Alert.type == "sos"))
                ).scalar_one()
                sos_uids = sorted(sos_events)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        assert routine_before_sos < BACKLOG // 2, (
            f"the SOS waited behind {routine_before_sos} of {BACKLOG} routine events"
        )
        assert handed.count("routine") == BACKLOG
        assert sos_uids == [f"{p}-p1-sos", f"{p}-p1-zsos"], "each press stored exactly once"
        assert alerts == 1
