"""Replay's inputs (SPEC §12): the recorded log, the register, and the events they make.

A log is JSON lines of MQTT messages (:func:`read_messages`), turned into events of
registered devices by the gateway's own adapters (:func:`parse_messages`). The register
comes from a provisioning file loaded into a scratch SQLite database, exactly as
``provision`` would load it (:func:`register_from_provisioning`), or from a running
gateway's database together with its stored events (:func:`load_register`,
:func:`stored_events`, ``--from-db``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.devices import DeviceSpec, TopicRole, device_topics, parse
from gateway.events import EventKind, PayloadError, SensorEvent
from gateway.registry import spec_of
from gateway.storage.db import Database, migrate
from gateway.storage.models import AwayPeriod, Device, Event, Person, Village

__all__ = [
    "ReplayDevice",
    "ReplayError",
    "ReplayMessage",
    "ReplayPerson",
    "ReplayRegister",
    "load_register",
    "parse_messages",
    "read_messages",
    "register_from_provisioning",
    "stored_events",
]


class ReplayError(ValueError):
    """Input a replay cannot use; the message names the line and the field."""


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    """One recorded MQTT message."""

    topic: str
    payload: bytes
    received_at: datetime
    retain: bool = False


@dataclass(frozen=True, slots=True)
class ReplayPerson:
    id: int
    name: str
    village: str
    #: None: watched from the start of the replay (a register loaded for the replay).
    created_at: datetime | None
    rules_override: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class ReplayDevice:
    spec: DeviceSpec
    id: int
    person_id: int


@dataclass(frozen=True, slots=True)
class ReplayRegister:
    persons: dict[int, ReplayPerson]
    devices: tuple[ReplayDevice, ...]
    #: Marked absences: (person id, starts, ends).
    away: tuple[tuple[int, datetime, datetime], ...] = ()

    def routes(self) -> dict[str, tuple[ReplayDevice, TopicRole]]:
        routes: dict[str, tuple[ReplayDevice, TopicRole]] = {}
        for device in self.devices:
            for topic, role in device_topics(device.spec).items():
                routes[topic] = (device, role)
        return routes


def read_messages(lines: Iterable[str], *, source: str = "events") -> Iterator[ReplayMessage]:
    """Parse the JSON-lines log; a bad line is an error naming the line and the field."""
    previous: datetime | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReplayError(f"{where}: not a JSON object ({error.msg})") from None
        if not isinstance(record, dict):
            raise ReplayError(f"{where}: not a JSON object")
        topic = record.get("topic")
        if not isinstance(topic, str) or not topic:
            raise ReplayError(f"{where}: topic: missing or not a string")
        if "payload" not in record:
            raise ReplayError(f"{where}: payload: missing")
        payload = record["payload"]
        if isinstance(payload, str):
            body = payload.encode()
        else:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        at = _timestamp(record.get("received_at"), where)
        if previous is not None and at < previous:
            raise ReplayError(
                f"{where}: received_at: {at.isoformat()} is before the line above "
                f"({previous.isoformat()}); the log must be in time order"
            )
        previous = at
        retain = record.get("retain", False)
        if not isinstance(retain, bool):
            raise ReplayError(f"{where}: retain: must be true or false")
        yield ReplayMessage(topic, body, at, retain)


def _timestamp(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise ReplayError(f"{where}: received_at: missing or not a string")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayError(f"{where}: received_at: not ISO 8601: {value!r}") from None
    if at.tzinfo is None:
        raise ReplayError(f"{where}: received_at: needs a UTC offset: {value!r}")
    return at.astimezone(UTC)


async def register_from_provisioning(text: str, *, source: str) -> ReplayRegister:
    """Load a provisioning file into a scratch SQLite database, as ``provision`` would, and
    read the register back (so the replay sees exactly what the gateway would)."""
    from gateway.register.apply import apply_provisioning
    from gateway.register.provisioning import parse_provisioning

    # Logins are not part of a replay: their password variables need not be set here.
    doc = replace(parse_provisioning(text, source=source, env=_AnyPassword()), users=())
    with tempfile.TemporaryDirectory(prefix="homewatch-replay-") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'register.db'}"
        await migrate(url)
        db = Database(url)
        try:
            await apply_provisioning(db, doc, datetime.now(UTC), actor="replay")
            register = await load_register(db)
        finally:
            await db.dispose()
    persons = {pid: _from_start(person) for pid, person in register.persons.items()}
    return ReplayRegister(persons, register.devices, register.away)


class _AnyPassword(Mapping[str, str]):
    """Every ``password_env`` variable, set (to a value no account is created with)."""

    def __getitem__(self, key: str) -> str:
        return "replay-has-no-logins"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __contains__(self, key: object) -> bool:
        return True


def _from_start(person: ReplayPerson) -> ReplayPerson:
    return ReplayPerson(person.id, person.name, person.village, None, person.rules_override)


async def load_register(db: Database) -> ReplayRegister:
    """Persons on the register, their devices and marked absences."""
    async with db.session() as session:
        persons = {
            pid: ReplayPerson(pid, name, village, created_at, override or {})
            for pid, name, village, created_at, override in await session.execute(
                select(
                    Person.id, Person.name, Village.name, Person.created_at, Person.rules_override
                )
                .join(Village, Village.id == Person.village_id)
                .where(Person.removed_at.is_(None))
                .order_by(Person.id)
            )
        }
        devices = tuple(
            ReplayDevice(spec_of(d), d.id, d.person_id)
            for d in (await session.execute(select(Device).order_by(Device.id))).scalars()
            if d.person_id in persons
        )
        away = tuple(
            (pid, starts, cancelled or ends)
            for pid, starts, ends, cancelled in await session.execute(
                select(
                    AwayPeriod.person_id,
                    AwayPeriod.starts_at,
                    AwayPeriod.ends_at,
                    AwayPeriod.cancelled_at,
                ).order_by(AwayPeriod.id)
            )
            if pid in persons
        )
    return ReplayRegister(persons, devices, away)


async def stored_events(
    db: Database, register: ReplayRegister, since: datetime
) -> list[tuple[SensorEvent, ReplayDevice]]:
    """A running gateway's stored events since ``since``, in the order it received them."""
    by_uid = {d.spec.uid: d for d in register.devices}
    result: list[tuple[SensorEvent, ReplayDevice]] = []
    async with db.session() as session:
        rows = await session.stream(
            select(Event).where(Event.received_at >= since).order_by(Event.received_at, Event.id)
        )
        async for (row,) in rows:
            device = by_uid.get(row.device_uid)
            if device is None:
                continue
            event = SensorEvent(
                kind=EventKind(row.kind),
                device_uid=row.device_uid,
                occurred_at=row.occurred_at,
                received_at=row.received_at,
                state=row.state,
                battery=row.battery,
                link_quality=row.link_quality,
                event_id=row.event_id,
                retained=row.retained,
                timestamp_fallback=row.timestamp_fallback,
            )
            result.append((event, device))
    return result


def parse_messages(
    register: ReplayRegister, messages: Iterable[ReplayMessage]
) -> Iterator[tuple[SensorEvent, ReplayDevice]]:
    """The adapters' half of the gateway: messages to events of registered devices.

    Unknown topics and malformed payloads are skipped (the gateway counts and keeps them);
    a repeated payload ``id`` is processed once, as the gateway's dedup key does.
    """
    routes = register.routes()
    seen: set[tuple[str, str]] = set()
    for message in messages:
        route = routes.get(message.topic)
        if route is None:
            continue
        device, role = route
        try:
            events = parse(
                device.spec,
                role,
                message.payload,
                retained=message.retain,
                received_at=message.received_at,
            )
        except PayloadError:
            continue
        payload_id = next((e.event_id for e in events if e.event_id), None)
        if payload_id is not None:
            key = (device.spec.uid, payload_id)
            if key in seen:
                continue
            seen.add(key)
        for event in events:
            yield event, device
