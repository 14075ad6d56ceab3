"""The gateway against the machine's real Mosquitto, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import ColumnElement, func, select

from alerts.notifiers import ConsoleNotifier
from gateway.app import Gateway
from gateway.config import load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from gateway.storage.models import Alert, DeviceState, Event, Person, RejectedMessage, UnknownDevice
from tests.conftest import wait_until
from tests.helpers import gateway_config, pinned_clock, register_yaml

pytestmark = pytest.mark.integration


@dataclass
class Running:
    gateway: Gateway
    prefix: str
    stop: asyncio.Event
    task: asyncio.Task[None]


@pytest.fixture
async def running(
    database_url: str, mqtt_url: str, mqtt_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    settings = load_settings(
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_client_id=f"gw-{mqtt_prefix}",
        mqtt_topic_prefix=mqtt_prefix,
        secret_key="x" * 32,
        **gateway_config(),
    )
    await migrate(database_url)
    clock = pinned_clock()
    gateway = Gateway(settings, "x" * 32, clock=clock, notifier=ConsoleNotifier())
    doc = parse_provisioning(register_yaml(mqtt_prefix, persons=2))
    await apply_provisioning(gateway.db, doc, clock.now())
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
    await wait_until(lambda: gateway.ingest.connected, within=10)
    try:
        yield Running(gateway, mqtt_prefix, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await _clear_persistent_session(mqtt_url, settings.mqtt_client_id)
        await _clear_persistent_session(mqtt_url, f"{settings.mqtt_client_id}-emergency")


async def _clear_persistent_session(mqtt_url: str, client_id: str) -> None:
    """Leave no persistent session behind on the shared broker."""
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=client_id, clean_session=True):
        pass


async def _publish(messages: list[tuple[str, bytes | str, bool]]) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        for topic, payload, retain in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


async def _count(gateway: Gateway, model: type, *where: ColumnElement[bool]) -> int:
    async with gateway.db.session() as session:
        column = next(iter(model.__table__.primary_key.columns))  # type: ignore[attr-defined]
        return int((await session.execute(select(func.count(column)).where(*where))).scalar_one())


async def test_native_and_zigbee_events_are_stored_once_with_device_state(
    running: Running,
) -> None:
    p = running.prefix
    gw = running.gateway
    native = f"{p}/homewatch/{p}-p0-pir/event"
    door = f"{p}-z2m/{p}-p0-door"
    await _publish(
        [
            (
                native,
                json.dumps({"type": "motion", "state": True, "id": "m-1", "battery": 88}),
                False,
            ),
            (
                native,
                json.dumps({"type": "motion", "state": True, "id": "m-1", "battery": 88}),
                False,
            ),
            (door, json.dumps({"contact": False, "battery": 97, "linkquality": 120}), False),
        ]
    )
    await wait_until(
        lambda: _count(gw, Event, Event.device_uid.in_([f"{p}-p0-pir", f"{p}-p0-door"])), 10
    )
    await asyncio.sleep(0.3)
    assert await _count(gw, Event, Event.device_uid == f"{p}-p0-pir") == 1, "same id stored once"
    async with gw.db.session() as session:
        door_event = (
            await session.execute(select(Event).where(Event.device_uid == f"{p}-p0-door"))
        ).scalar_one()
        assert door_event.kind == "door" and door_event.state is True  # contact false = open
        person = (await session.execute(select(Person).where(Person.name == "老人0"))).scalar_one()
        assert person.last_activity_at is not None
    dup = gw.metrics.events.labels(result="duplicate")._value.get()
    assert dup >= 1


async def test_malformed_and_unknown_are_counted_kept_and_never_stop_the_gateway(
    running: Running,
) -> None:
    p = running.prefix
    gw = running.gateway
    native = f"{p}/homewatch/{p}-p1-pir/event"
    await _publish(
        [
            (native, b"\xff\xfenot json", False),
            (native, json.dumps({"type": "teleport", "state": 1}), False),
            (native, b"x" * 20000, False),
            (f"{p}/homewatch/stranger-01/event", json.dumps({"type": "sos"}), False),
            (native, json.dumps({"type": "motion", "state": True, "id": "after-bad"}), False),
        ]
    )
    await wait_until(lambda: _count(gw, Event, Event.event_id == "after-bad"), 10)
    await wait_until(
        lambda: _count(gw, RejectedMessage, RejectedMessage.device_uid == f"{p}-p1-pir"), 10
    )
    async with gw.db.session() as session:
        reasons = sorted(
            (
                await session.execute(
                    select(RejectedMessage.reason).where(
                        RejectedMessage.device_uid == f"{p}-p1-pir"
                    )
                )
            ).scalars()
        )
        unknown = (
            (await session.execute(select(UnknownDevice).where(UnknownDevice.topic.like(f"{p}/%"))))
            .scalars()
            .all()
        )
        alerts = (await session.execute(select(func.count(Alert.id)))).scalar_one()
    assert reasons == ["not_utf8", "too_large", "unknown_value"]
    assert [u.topic for u in unknown] == [f"{p}/homewatch/stranger-01/event"]
    assert alerts == 0, "an unknown device is never acted on"


@pytest.fixture
async def retained_sos(mqtt_prefix: str) -> AsyncIterator[str]:
    """A retained SOS left on the broker *before* the gateway subscribes."""
    topic = f"{mqtt_prefix}-z2m/{mqtt_prefix}-p1-zsos"
    await _publish([(topic, json.dumps({"action": "emergency"}), True)])
    yield topic
    await _publish([(topic, b"", True)])


async def test_sos_raises_one_alert_and_retained_sos_raises_none(
    retained_sos: str, running: Running
) -> None:
    p = running.prefix
    gw = running.gateway
    await wait_until(lambda: _count(gw, Event, Event.device_uid == f"{p}-p1-zsos"), 10)
    await asyncio.sleep(0.5)
    assert await _count(gw, Alert) == 0, "a retained SOS is an old press, never a new alert"
    sos = f"{p}/homewatch/{p}-p0-sos/event"
    await _publish(
        [
            (sos, json.dumps({"type": "sos", "id": "press-1"}), False),
            (sos, json.dumps({"type": "sos", "id": "press-2", "ts": "yesterday-ish"}), False),
        ]
    )
    await wait_until(lambda: _count(gw, Alert), 10)
    await asyncio.sleep(0.5)
    async with gw.db.session() as session:
        alert = (await session.execute(select(Alert))).scalar_one()
        state = (await session.execute(select(DeviceState))).scalars().all()
    assert alert.type == "sos" and alert.trigger_count == 2
    assert any(s.online for s in state)


async def test_messages_outside_the_fast_decoder_are_stored_as_well(running: Running) -> None:
    """MQTT 5 properties (here a user property) and QoS 0 take paho's own path or the
    direct decoder's other branch: both end up stored like any other message."""
    p = running.prefix
    gw = running.gateway
    native = f"{p}/homewatch/{p}-p0-pir/event"
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.UserProperty = [("site", "bench")]
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(
            native,
            json.dumps({"type": "motion", "state": True, "id": "with-props"}),
            qos=1,
            properties=properties,
        )
        await client.publish(
            native, json.dumps({"type": "motion", "state": False, "id": "qos-0"}), qos=0
        )

    async def both_stored() -> bool:
        return await _count(gw, Event, Event.event_id.in_(["with-props", "qos-0"])) == 2

    await wait_until(both_stored, 10)
