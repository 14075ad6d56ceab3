"""What one ingest commit writes: events (deduplicated), device state, last activity,
rejected payloads and unknown devices, in one transaction per batch.

Core statements on the tables, executemany, state and activity folded per device and per
person per batch: no per-row ORM work (issue #15).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.events import EventKind, PayloadError, SensorEvent
from gateway.registry import Route
from gateway.rules.sensors import is_sign_of_life
from gateway.storage.db import Database
from gateway.storage.models import DeviceState, Event, Person, RejectedMessage, UnknownDevice

__all__ = [
    "Accepted",
    "ActivityJudge",
    "EventStore",
    "Rejected",
    "RoutedEvent",
    "StoreBatch",
    "Stored",
    "Unknown",
    "dedup_base",
]

#: Largest payload kept for inspection (rejected and unknown-device rows).
_KEEP_PAYLOAD_BYTES = 4096
#: Payload ids up to this length are kept verbatim in the 100-character dedup key.
_MAX_PLAIN_ID = 90
_DEVICE_STATE = cast(Table, DeviceState.__table__)
_PERSONS = cast(Table, Person.__table__)
_EVENTS = cast(Table, Event.__table__)


@dataclass(frozen=True, slots=True)
class RoutedEvent:
    """A stored event with the register context the rules need."""

    event: SensorEvent
    device_id: int
    person_id: int


#: Does this stored report count as a sign of life? (event, did a door change position)
ActivityJudge = Callable[[RoutedEvent, bool], bool]


@dataclass(slots=True)
class Accepted:
    route: Route
    events: list[SensorEvent]
    dedup_base: str


@dataclass(slots=True)
class Rejected:
    topic: str
    device_uid: str | None
    error: PayloadError
    payload: bytes
    received_at: datetime


@dataclass(slots=True)
class Unknown:
    topic: str
    payload: bytes
    received_at: datetime


@dataclass(slots=True)
class StoreBatch:
    """What one commit writes; built by :meth:`MqttIngest.classify`."""

    accepted: list[Accepted] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)
    urgent: bool = False

    def __len__(self) -> int:
        return len(self.accepted) + len(self.rejected) + len(self.unknown)


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of one commit."""

    new_events: list[RoutedEvent]
    duplicates: int


def dedup_base(payload_id: str | None) -> str:
    """The per-message part of an event's dedup key.

    A payload ``id`` makes repeats and QoS 1 redeliveries no-ops. Without one, identical
    payloads are legitimately repeated by real sensors, so the key is unique per receipt:
    such a message redelivered after a crash between commit and ack is stored twice, which
    is harmless (a motion twice; a second SOS press joins the open alert).
    """
    if payload_id is None:
        return "r:" + uuid.uuid4().hex
    if len(payload_id) <= _MAX_PLAIN_ID:
        return "i:" + payload_id
    # The key column is 100 characters; a long id is hashed, never cut (two ids sharing a
    # prefix must stay two events).
    return "h:" + hashlib.blake2b(payload_id.encode(), digest_size=20).hexdigest()


class EventStore:
    """Writes a batch in one transaction; dialect-aware upserts for SQLite and PostgreSQL."""

    def __init__(
        self, db: Database, *, rejected_keep: int, activity_judge: ActivityJudge | None = None
    ) -> None:
        self.db = db
        self.rejected_keep = rejected_keep
        self._activity_judge = activity_judge
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        self._commits = 0

    async def store(self, batch: StoreBatch) -> Stored:
        async with self.db.session() as session, session.begin():
            stored = await self._store_events(session, batch.accepted)
            await self._store_rejected(session, batch.rejected)
            await self._store_unknown(session, batch.unknown)
        self._commits += 1
        if batch.rejected and self._commits % 100 == 0:
            await self.trim_rejected()
        return stored

    async def _store_events(self, session: AsyncSession, accepted: list[Accepted]) -> Stored:
        rows: list[dict[str, Any]] = []
        context: dict[tuple[str, str], RoutedEvent] = {}
        repeated_in_batch = 0
        for item in accepted:
            for index, ev in enumerate(item.events):
                key = f"{item.dedup_base}#{index}"
                if (ev.device_uid, key) in context:
                    repeated_in_batch += 1
                    continue
                context[(ev.device_uid, key)] = RoutedEvent(
                    ev, item.route.device_id, item.route.person_id
                )
                rows.append(
                    {
                        "device_uid": ev.device_uid,
                        "person_id": item.route.person_id,
                        "kind": ev.kind.value,
                        "state": ev.state,
                        "occurred_at": ev.occurred_at,
                        "received_at": ev.received_at,
                        "event_id": ev.event_id,
                        "dedup_key": key,
                        "battery": ev.battery,
                        "link_quality": ev.link_quality,
                        "retained": ev.retained,
                        "timestamp_fallback": ev.timestamp_fallback,
                    }
                )
        if not rows:
            return Stored([], repeated_in_batch)
        # Core on the table, not the ORM entity: the ORM's bulk path costs per row.
        statement = (
            self._insert(_EVENTS)
            .on_conflict_do_nothing(index_elements=["device_uid", "dedup_key"])
            .returning(_EVENTS.c.device_uid, _EVENTS.c.dedup_key)
        )
        inserted = (await session.execute(statement, rows)).all()
        new = [context[(uid, key)] for uid, key in inserted]
        new.sort(key=lambda r: r.event.received_at)
        await self._update_state(session, new)
        return Stored(new, len(rows) - len(new) + repeated_in_batch)

    async def _previous_sensor_state(
        self, session: AsyncSession, new: list[RoutedEvent]
    ) -> dict[int, tuple[bool | None, datetime | None]]:
        """Door position and motion-run start before this batch, for devices that report them."""
        wanted = {r.device_id for r in new if r.event.kind in (EventKind.DOOR, EventKind.MOTION)}
        if not wanted:
            return {}
        rows = await session.execute(
            select(
                _DEVICE_STATE.c.device_id, _DEVICE_STATE.c.door_open, _DEVICE_STATE.c.motion_since
            ).where(_DEVICE_STATE.c.device_id.in_(wanted))
        )
        return {device_id: (door, since) for device_id, door, since in rows}

    async def _update_state(self, session: AsyncSession, new: list[RoutedEvent]) -> None:
        previous = await self._previous_sensor_state(session, new)
        seen: dict[int, dict[str, Any]] = {}
        activity: dict[int, datetime] = {}
        for routed in new:
            ev = routed.event
            state = seen.setdefault(routed.device_id, {"device_id": routed.device_id})
            if ev.retained and ev.kind is not EventKind.AVAILABILITY:
                # A retained message was published long ago: current state, not a sign of life.
                continue
            state["last_seen_at"] = max(ev.received_at, state.get("last_seen_at", ev.received_at))
            if ev.kind is EventKind.AVAILABILITY:
                state["online"] = bool(ev.state)
            else:
                state["online"] = True
            if ev.battery is not None:
                state["battery"] = ev.battery
            if ev.link_quality is not None:
                state["link_quality"] = ev.link_quality
            door_before, motion_since = previous.get(routed.device_id, (None, None))
            door_changed = False
            if ev.kind is EventKind.DOOR and ev.state is not None:
                # Zigbee2MQTT repeats `contact` in every battery and link report: only a
                # change of position is somebody using the door.
                door_changed = ev.state != state.get("door_open", door_before)
                if door_changed:
                    state["door_open"] = ev.state
                    state["door_changed_at"] = min(ev.occurred_at, ev.received_at)
            if ev.kind is EventKind.MOTION and ev.state is not None:
                since = state.get("motion_since", motion_since)
                state["motion_since"] = (since or ev.received_at) if ev.state else None
            if self._counts_as_activity(routed, door_changed):
                # A device clock running fast must not push "last seen alive" into the future
                # and so silence the inactivity rule.
                at = min(ev.occurred_at, ev.received_at)
                previous_at = activity.get(routed.person_id)
                if previous_at is None or at > previous_at:
                    activity[routed.person_id] = at
        # Group by key set: executemany needs identical parameter shapes.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for params in seen.values():
            if "last_seen_at" not in params and "online" not in params:
                continue
            groups.setdefault(tuple(sorted(params)), []).append(params)
        for keys, params_list in groups.items():
            values: dict[str, Any] = {k: bindparam(f"p_{k}") for k in keys if k != "device_id"}
            # Core (not ORM) executemany: one UPDATE statement for the whole batch.
            statement = (
                update(_DEVICE_STATE)
                .where(_DEVICE_STATE.c.device_id == bindparam("p_device_id"))
                .values(**values)
            )
            await session.execute(
                statement, [{f"p_{k}": v for k, v in p.items()} for p in params_list]
            )
        if activity:
            persons = _PERSONS
            statement = (
                update(persons)
                .where(
                    and_(
                        persons.c.id == bindparam("p_id"),
                        or_(
                            persons.c.last_activity_at.is_(None),
                            persons.c.last_activity_at < bindparam("p_at"),
                        ),
                    )
                )
                .values(last_activity_at=bindparam("p_at"))
            )
            await session.execute(
                statement, [{"p_id": pid, "p_at": at} for pid, at in activity.items()]
            )

    def _counts_as_activity(self, routed: RoutedEvent, door_changed: bool) -> bool:
        if self._activity_judge is not None:
            return self._activity_judge(routed, door_changed)
        return is_sign_of_life(routed.event, door_changed=door_changed)

    async def _store_rejected(self, session: AsyncSession, rejected: list[Rejected]) -> None:
        if not rejected or self.rejected_keep == 0:
            return
        await session.execute(
            insert(RejectedMessage),
            [
                {
                    "topic": r.topic[:255],
                    "device_uid": r.device_uid,
                    "reason": r.error.reason,
                    "detail": r.error.detail[:1000],
                    "payload": r.payload[:_KEEP_PAYLOAD_BYTES],
                    "payload_size": len(r.payload),
                    "received_at": r.received_at,
                }
                for r in rejected
            ],
        )

    async def _store_unknown(self, session: AsyncSession, unknown: list[Unknown]) -> None:
        merged: dict[str, dict[str, Any]] = {}
        for u in unknown:
            row = merged.get(u.topic)
            if row is None:
                merged[u.topic] = {
                    "topic": u.topic[:255],
                    "first_seen_at": u.received_at,
                    "last_seen_at": u.received_at,
                    "message_count": 1,
                    "last_payload": u.payload[:_KEEP_PAYLOAD_BYTES],
                }
            else:
                row["last_seen_at"] = u.received_at
                row["message_count"] += 1
                row["last_payload"] = u.payload[:_KEEP_PAYLOAD_BYTES]
        for row in merged.values():
            statement = self._insert(UnknownDevice).values(**row)
            statement = statement.on_conflict_do_update(
                index_elements=["topic"],
                set_={
                    "last_seen_at": statement.excluded.last_seen_at,
                    "last_payload": statement.excluded.last_payload,
                    "message_count": UnknownDevice.message_count + statement.excluded.message_count,
                },
            )
            await session.execute(statement)

    async def trim_rejected(self) -> None:
        """Keep the newest ``rejected_keep`` rejected payloads; older ones are dropped."""
        async with self.db.session() as session, session.begin():
            threshold = (
                await session.execute(
                    select(RejectedMessage.id)
                    .order_by(RejectedMessage.id.desc())
                    .offset(self.rejected_keep)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if threshold is not None:
                await session.execute(
                    delete(RejectedMessage).where(RejectedMessage.id <= threshold)
                )
