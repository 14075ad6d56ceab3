"""Replay (SPEC §12): what the rules would have raised over a recorded event log.

The gateway's own adapters (:func:`gateway.devices.parse`), its judge of what counts as a
sign of life (door changes, :class:`~gateway.rules.sensors.SensorHealth`), its emergency rule
and its quiet-home decisions (:mod:`gateway.rules.quiet`, learned routines) run over the log
with a simulated clock; nothing is sent. The register comes from a provisioning file loaded
into a scratch SQLite database, or from a running gateway's database (``--from-db``).

Storage is left out of the per-message path on purpose: the live gateway commits each batch
and re-reads its facts every tick, which is right for a crash-proof service and far too slow
for a million messages. Here the same facts (last sign of life, door positions, device
state, open alerts) are kept in memory and the same pure decisions are asked of them:

* messages are handled in order, the clock set to each one's ``received_at``;
* the time-based rules tick at every whole simulated minute, between messages too, and
  only look at the persons whose facts changed or whose deadline came (a heap of
  deadlines), which is what makes 28 days × 100 homes take a minute rather than hours.

Nobody answers a replayed alert. By default an emergency or wellbeing alert still open
``resolve_after`` after it was raised is taken as resolved by its helper (one hour: the
visit), so that later silences and presses count as new alarms as they would in a village;
technical alerts close by themselves as in the gateway.
"""

from __future__ import annotations

import heapq
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from alerts.templates import DEVICE_LABELS
from alerts.types import AlertGroup, AlertStatus, AlertTrigger, AlertType
from gateway.config import RulesConfig, Settings
from gateway.devices import DeviceSpec, TopicRole, device_topics, parse
from gateway.events import EventKind, PayloadError, SensorEvent
from gateway.register.provisioning import merge_rules
from gateway.register.vocabulary import DeviceKind
from gateway.registry import spec_of
from gateway.rules import EmergencyRule
from gateway.rules.quiet import (
    InactivityDue,
    QuietFacts,
    door_open_deadline,
    inactivity_detail,
    inactivity_due,
    offline_since,
)
from gateway.rules.routine import RoutineModel
from gateway.rules.sensors import SensorHealth
from gateway.storage.db import Database, migrate
from gateway.storage.models import AwayPeriod, Device, Event, Person, Village

__all__ = [
    "ReplayAlert",
    "ReplayError",
    "ReplayMessage",
    "ReplayRegister",
    "ReplayRequest",
    "Replayer",
    "load_register",
    "parse_messages",
    "read_messages",
    "register_from_provisioning",
    "replay_events",
    "replay_messages",
    "run_replay",
    "stored_events",
]

_TICK = timedelta(minutes=1)
_ACTIVITY_KINDS = frozenset({DeviceKind.MOTION, DeviceKind.DOOR, DeviceKind.MULTI})
_NEEDS_A_PERSON = (AlertGroup.EMERGENCY, AlertGroup.WELLBEING)


class ReplayError(ValueError):
    """Input a replay cannot use; the message names the line and the field."""


# -- inputs -------------------------------------------------------------------------------


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


# -- outputs ------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayAlert:
    """An alert the rules would have raised."""

    type: AlertType
    person_id: int
    raised_at: datetime
    status: AlertStatus = AlertStatus.OPEN
    closed_at: datetime | None = None
    last_trigger_at: datetime | None = None
    device_uid: str | None = None
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)

    def close(self, status: AlertStatus, at: datetime) -> None:
        self.status = status
        self.closed_at = at

    def to_json(self, register: ReplayRegister) -> dict[str, Any]:
        person = register.persons[self.person_id]
        return {
            "type": self.type.value,
            "person": person.name,
            "village": person.village,
            "raised_at": self.raised_at.isoformat(),
            "closed_at": None if self.closed_at is None else self.closed_at.isoformat(),
            "status": self.status.value,
            "detail": self.detail,
        }


# -- the engine ---------------------------------------------------------------------------


@dataclass(slots=True)
class _DeviceState:
    device: ReplayDevice
    online: bool | None = None
    last_seen_at: datetime | None = None
    battery: int | None = None
    door_open: bool | None = None
    door_changed_at: datetime | None = None
    timer_armed: bool = False


@dataclass(slots=True)
class _PersonState:
    person: ReplayPerson
    rules: RulesConfig
    created_at: datetime
    devices: list[_DeviceState] = field(default_factory=list)
    last_activity: datetime | None = None
    last_closed: datetime | None = None
    routine: RoutineModel | None = None
    #: Version of the person's inactivity deadline in the heap (older entries are stale).
    version: int = 0
    due: InactivityDue | None = None
    open: dict[AlertType, ReplayAlert] = field(default_factory=dict)
    last_emergency: dict[AlertType, ReplayAlert] = field(default_factory=dict)
    last_door_closed: datetime | None = None


class Replayer:
    """The rules over a stream of events, a simulated minute at a time. Feed events in
    order with :meth:`feed`, then call :meth:`finish`."""

    def __init__(
        self,
        register: ReplayRegister,
        rules: RulesConfig,
        tz: ZoneInfo,
        *,
        start: datetime,
        resolve_after: timedelta | None = timedelta(hours=1),
    ) -> None:
        self.register = register
        self.tz = tz
        self.resolve_after = resolve_after
        self.now = start
        self._next_tick = _ceil_minute(start)
        self.alerts: list[ReplayAlert] = []
        self.emergency = EmergencyRule()
        merged: dict[str, RulesConfig] = {}
        self.persons: dict[int, _PersonState] = {}
        for pid, person in register.persons.items():
            key = json.dumps(person.rules_override, sort_keys=True, default=str)
            if key not in merged:
                merged[key] = (
                    merge_rules(rules, person.rules_override) if person.rules_override else rules
                )
            created = start if person.created_at is None else max(person.created_at, start)
            state = _PersonState(person, merged[key], created)
            if state.rules.inactivity.learned.enabled:
                state.routine = RoutineModel(tz, state.rules.inactivity.learned)
            self.persons[pid] = state
        self.sensors = SensorHealth(lambda pid: self.persons[pid].rules)
        self.devices: dict[str, _DeviceState] = {}
        for device in register.devices:
            device_state = _DeviceState(device)
            self.devices[device.spec.uid] = device_state
            self.persons[device.person_id].devices.append(device_state)
        self._away: dict[int, list[tuple[datetime, datetime]]] = {}
        for pid, starts, ends in register.away:
            self._away.setdefault(pid, []).append((starts, ends))
            routine = self.persons[pid].routine
            if routine is not None:
                routine.exclude(starts, ends)
        #: (when, sequence, kind, key, version): inactivity, door, device and closing timers.
        self._timers: list[tuple[datetime, int, str, object, int]] = []
        self._sequence = 0
        #: Persons whose facts changed since the last tick, per check.
        self._dirty: set[int] = set(self.persons)
        self._dirty_door: set[int] = set()
        self._dirty_health: set[int] = set()
        self._faulty: set[str] = set()
        for device_state in self.devices.values():
            self._arm_device(device_state)

    # -- feeding ----------------------------------------------------------------------

    def feed(self, event: SensorEvent, device: ReplayDevice) -> None:
        """One stored event, as the gateway's ingest and rules would take it."""
        at = event.received_at
        self.advance(at)
        self.now = max(self.now, at)
        person = self.persons[device.person_id]
        state = self.devices[device.spec.uid]
        if event.retained and event.kind is not EventKind.AVAILABILITY:
            return  # current state replayed by the broker, not news
        pid = person.person.id
        state.last_seen_at = max(at, state.last_seen_at or at)
        online = bool(event.state) if event.kind is EventKind.AVAILABILITY else True
        if online != state.online or AlertType.DEVICE_OFFLINE in person.open:
            self._dirty_health.add(pid)
        state.online = online
        if event.battery is not None and event.battery != state.battery:
            state.battery = event.battery
            self._dirty_health.add(pid)
        door_changed = False
        if event.kind is EventKind.DOOR and event.state is not None:
            # As ingest: zigbee2mqtt repeats `contact` in every report; only a change counts.
            door_changed = event.state != state.door_open
            if door_changed:
                state.door_open = event.state
                state.door_changed_at = min(event.occurred_at, event.received_at)
                self._dirty_door.add(pid)
                if event.state:
                    due = door_open_deadline(
                        state.door_changed_at, person.rules.door_open_night, self.tz
                    )
                    if due is not None:
                        self._push(due, "door", pid)
        if self.sensors.counts_as_activity(event, pid, door_changed=door_changed):
            moment = min(event.occurred_at, event.received_at)
            if person.last_activity is None or moment > person.last_activity:
                person.last_activity = moment
                self._dirty.add(pid)
            if person.routine is not None:
                person.routine.observe(moment, left_home=event.kind is EventKind.DOOR)
        if not state.timer_armed or event.kind is EventKind.AVAILABILITY:
            self._arm_device(state)
        for trigger in self.emergency.evaluate(event, person.person.id):
            self._raise(trigger)
        if event.kind is EventKind.CHECK_IN and not event.retained:
            for alert_type in (AlertType.INACTIVITY, AlertType.DOOR_OPEN_NIGHT):
                alert = person.open.get(alert_type)
                if alert is not None:
                    self._close(person, alert, AlertStatus.CANCELLED)
        self._apply_faults()

    def advance(self, until: datetime) -> None:
        """Tick every whole simulated minute up to ``until``."""
        while self._next_tick <= until:
            self.now = self._next_tick
            self._tick()
            self._next_tick += _TICK

    def finish(self, end: datetime | None = None) -> list[ReplayAlert]:
        """Run the clock to ``end`` (default: a minute past the last event, so that the
        last message's consequences are seen) and return the alerts."""
        self.advance(end or self.now + _TICK)
        return self.alerts

    # -- alerts -------------------------------------------------------------------------

    def _raise(self, trigger: AlertTrigger) -> ReplayAlert | None:
        person = self.persons[trigger.person_id]
        existing = person.open.get(trigger.type)
        if existing is None and trigger.type in (AlertType.SOS, AlertType.FALL):
            last = person.last_emergency.get(trigger.type)
            horizon = trigger.at - person.rules.sos_debounce
            if last is not None and last.last_trigger_at and last.last_trigger_at >= horizon:
                existing = last
        if existing is not None:
            existing.last_trigger_at = max(existing.last_trigger_at or trigger.at, trigger.at)
            return None
        alert = ReplayAlert(
            trigger.type,
            trigger.person_id,
            self.now,
            last_trigger_at=trigger.at,
            device_uid=trigger.device_uid,
            detail=dict(trigger.detail),
        )
        self.alerts.append(alert)
        person.open[trigger.type] = alert
        if trigger.type in (AlertType.SOS, AlertType.FALL):
            person.last_emergency[trigger.type] = alert
            if person.routine is not None:
                person.routine.exclude_day(self.now.astimezone(self.tz).date())
        if self.resolve_after is not None and trigger.type.group in _NEEDS_A_PERSON:
            self._push(self.now + self.resolve_after, "resolve", alert)
        return alert

    def _close(self, person: _PersonState, alert: ReplayAlert, status: AlertStatus) -> None:
        if not alert.active:
            return
        alert.close(status, self.now)
        if person.open.get(alert.type) is alert:
            del person.open[alert.type]
        if alert.type is AlertType.INACTIVITY:
            person.last_closed = self.now
        elif alert.type is AlertType.DOOR_OPEN_NIGHT:
            person.last_door_closed = self.now
        # Closing changes what the person's checks decide (a new baseline, an emergency
        # that no longer suppresses inactivity): look again at the next tick.
        pid = person.person.id
        self._dirty.add(pid)
        self._dirty_door.add(pid)
        self._dirty_health.add(pid)

    def _apply_faults(self) -> None:
        for change in self.sensors.take_changes():
            person = self.persons[change.person_id]
            if change.active:
                self._faulty.add(change.device_uid)
                self._dirty_door.add(change.person_id)
                self._raise(
                    AlertTrigger(
                        type=AlertType.SENSOR_FAULT,
                        person_id=change.person_id,
                        at=change.at,
                        device_uid=change.device_uid,
                        detail={"fault": change.fault.value},
                    )
                )
                continue
            self._faulty.discard(change.device_uid)
            self._dirty_door.add(change.person_id)
            if any(self.sensors.faulty(d.device.spec.uid) for d in person.devices):
                continue
            alert = person.open.get(AlertType.SENSOR_FAULT)
            if alert is not None:
                self._close(person, alert, AlertStatus.RESOLVED)

    # -- timers -------------------------------------------------------------------------

    def _push(self, when: datetime, kind: str, key: object, version: int = 0) -> None:
        self._sequence += 1
        heapq.heappush(self._timers, (when, self._sequence, kind, key, version))

    def _arm_device(self, state: _DeviceState) -> None:
        person = self.persons[state.device.person_id]
        last = state.last_seen_at or person.created_at
        rules = person.rules
        wait = rules.offline_grace if state.online is False else rules.device_silence
        state.timer_armed = True
        self._push(last + wait, "device", state.device.spec.uid)

    # -- the tick -----------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.now
        if self._faulty:
            self.sensors.sweep(now)
            self._apply_faults()
        quiet: set[int] = set()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, key, version = heapq.heappop(self._timers)
            if kind == "resolve":
                assert isinstance(key, ReplayAlert)
                self._close(self.persons[key.person_id], key, AlertStatus.RESOLVED)
            elif kind == "device":
                assert isinstance(key, str)
                state = self.devices[key]
                state.timer_armed = False
                self._dirty_health.add(state.device.person_id)
            elif kind == "door":
                assert isinstance(key, int)
                self._dirty_door.add(key)
            else:
                assert isinstance(key, int)
                if version == self.persons[key].version:
                    quiet.add(key)
        dirty, self._dirty = self._dirty, set()
        for pid in sorted(dirty | quiet):
            self._inactivity(self.persons[pid], recompute=pid in dirty)
        doors, self._dirty_door = self._dirty_door, set()
        for pid in sorted(doors):
            self._door(self.persons[pid])
        health, self._dirty_health = self._dirty_health, set()
        for pid in sorted(health):
            self._health(self.persons[pid])

    def _inactivity(self, person: _PersonState, *, recompute: bool) -> None:
        now = self.now
        pid = person.person.id
        if not any(
            d.device.spec.kind in _ACTIVITY_KINDS
            and d.last_seen_at is not None
            and d.device.spec.uid not in person.rules.inactivity.ignore_devices
            for d in person.devices
        ):
            return  # no sensor installed yet that could show somebody moving
        alert = person.open.get(AlertType.INACTIVITY)
        if alert is not None:
            resumed = person.last_activity is not None and person.last_activity >= alert.raised_at
            # As the gateway: withdrawn while nobody has taken it.
            if resumed and alert.status is AlertStatus.OPEN:
                self._close(person, alert, AlertStatus.CANCELLED)
            return
        away_until = self._away_until(pid, now)
        if away_until is not None:
            person.due = None  # counted again from the return
            self._schedule(person, away_until)
            return
        if AlertType.SOS in person.open or AlertType.FALL in person.open:
            if person.routine is not None:
                person.routine.exclude(now, now)  # as the gateway: not a routine to learn
            return  # re-examined when the emergency closes (the person becomes dirty)
        if recompute or person.due is None:
            facts = QuietFacts(
                person.last_activity,
                person.created_at,
                self._returned(pid, now),
                person.last_closed,
            )
            person.due = inactivity_due(
                facts, person.rules.inactivity, self.tz, routine=person.routine
            )
        due = person.due
        if now >= due.at:
            self._raise(
                AlertTrigger(
                    type=AlertType.INACTIVITY,
                    person_id=pid,
                    at=now,
                    detail=inactivity_detail(due, now, self.tz),
                )
            )
            if person.routine is not None:
                person.routine.censor(now)
        else:
            self._schedule(person, due.at)

    def _schedule(self, person: _PersonState, when: datetime) -> None:
        person.version += 1
        self._push(when, "inactivity", person.person.id, person.version)

    def _away_until(self, pid: int, now: datetime) -> datetime | None:
        for starts, ends in self._away.get(pid, ()):
            if starts <= now < ends:
                return ends
        return None

    def _returned(self, pid: int, now: datetime) -> datetime | None:
        ended = [e for s, e in self._away.get(pid, ()) if s <= now and e <= now and e > s]
        return max(ended) if ended else None

    def _door(self, person: _PersonState) -> None:
        open_door = next(
            (
                d
                for d in person.devices
                if d.door_open
                and d.door_changed_at is not None
                and not self.sensors.faulty(d.device.spec.uid)
            ),
            None,
        )
        alert = person.open.get(AlertType.DOOR_OPEN_NIGHT)
        if alert is not None:
            if open_door is None and alert.status is AlertStatus.OPEN:
                self._close(person, alert, AlertStatus.CANCELLED)
            return
        if open_door is None or open_door.door_changed_at is None:
            return
        if person.last_door_closed is not None and person.last_door_closed >= (
            open_door.door_changed_at
        ):
            return
        due = door_open_deadline(open_door.door_changed_at, person.rules.door_open_night, self.tz)
        if due is not None and self.now >= due:
            self._raise(
                AlertTrigger(
                    type=AlertType.DOOR_OPEN_NIGHT,
                    person_id=person.person.id,
                    at=self.now,
                    device_uid=open_door.device.spec.uid,
                    detail={
                        "time": open_door.door_changed_at.astimezone(self.tz).strftime("%H:%M")
                    },
                )
            )

    def _health(self, person: _PersonState) -> None:
        now = self.now
        rules = person.rules
        offline: tuple[_DeviceState, datetime] | None = None
        low: _DeviceState | None = None
        recovered: bool | None = None
        for device in person.devices:
            since = offline_since(
                now,
                rules,
                online=device.online,
                last_seen_at=device.last_seen_at,
                registered_at=person.created_at,
            )
            if since is not None and offline is None:
                offline = (device, since)
            if device.battery is not None:
                if device.battery < rules.battery_low and low is None:
                    low = device
                if device.battery < rules.battery_low + rules.battery_hysteresis:
                    recovered = False
                elif recovered is None:
                    recovered = True
        open_offline = person.open.get(AlertType.DEVICE_OFFLINE)
        if open_offline is not None and offline is None:
            self._close(person, open_offline, AlertStatus.RESOLVED)
        elif open_offline is None and offline is not None:
            device, since = offline
            self._raise(
                AlertTrigger(
                    type=AlertType.DEVICE_OFFLINE,
                    person_id=person.person.id,
                    at=now,
                    device_uid=device.device.spec.uid,
                    detail={
                        "device_label": DEVICE_LABELS.get(device.device.spec.kind.value, "设备"),
                        "since": since.astimezone(self.tz).strftime("%m月%d日%H:%M"),
                    },
                )
            )
        open_low = person.open.get(AlertType.BATTERY_LOW)
        if open_low is not None and recovered:
            self._close(person, open_low, AlertStatus.RESOLVED)
        elif open_low is None and low is not None:
            self._raise(
                AlertTrigger(
                    type=AlertType.BATTERY_LOW,
                    person_id=person.person.id,
                    at=now,
                    device_uid=low.device.spec.uid,
                    detail={"battery": str(low.battery)},
                )
            )


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + _TICK


# -- whole runs ----------------------------------------------------------------------------


def replay_events(
    register: ReplayRegister,
    events: Iterable[tuple[SensorEvent, ReplayDevice]],
    rules: RulesConfig,
    tz: ZoneInfo,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    resolve_after: timedelta | None = timedelta(hours=1),
) -> list[ReplayAlert]:
    """The rules over already-parsed events (a database's stored events, or the adapters'
    output kept to replay it under several configurations)."""
    iterator = iter(events)
    first = next(iterator, None)
    if first is None:
        return []
    replayer = Replayer(
        register, rules, tz, start=start or first[0].received_at, resolve_after=resolve_after
    )
    replayer.feed(*first)
    for event, device in iterator:
        replayer.feed(event, device)
    return replayer.finish(end)


def replay_messages(
    register: ReplayRegister,
    messages: Iterable[ReplayMessage],
    rules: RulesConfig,
    tz: ZoneInfo,
    *,
    resolve_after: timedelta | None = timedelta(hours=1),
) -> list[ReplayAlert]:
    """SPEC §12: recorded MQTT messages through the adapters and the rules."""
    return replay_events(
        register, parse_messages(register, messages), rules, tz, resolve_after=resolve_after
    )


def local_day_start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight of ``day`` as UTC (``--since`` is a date in the town's time)."""
    return datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)


# -- the command --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """``homewatch replay``'s arguments."""

    output: Path
    register_file: Path | None = None
    events_file: Path | None = None
    from_db: bool = False
    since: date | None = None
    resolve_after: timedelta | None = timedelta(hours=1)


async def run_replay(request: ReplayRequest, settings: Settings) -> list[dict[str, Any]]:
    """Run one replay and write its alerts as JSON lines; returns what was written."""
    tz = settings.tz
    if request.from_db:
        if request.since is None:
            raise ReplayError("--from-db needs --since YYYY-MM-DD")
        db = Database(settings.database_url)
        try:
            register = await load_register(db)
            start = local_day_start(request.since, tz)
            events = await stored_events(db, register, start)
        finally:
            await db.dispose()
        alerts = replay_events(
            register,
            events,
            settings.rules,
            tz,
            start=start,
            resolve_after=request.resolve_after,
        )
    else:
        if request.register_file is None or request.events_file is None:
            raise ReplayError("give --register FILE.yaml and --events FILE.jsonl (or --from-db)")
        try:
            text = request.register_file.read_text(encoding="utf-8")
        except OSError as error:
            raise ReplayError(f"--register: cannot read {request.register_file}: {error}") from None
        register = await register_from_provisioning(text, source=str(request.register_file))
        try:
            with request.events_file.open(encoding="utf-8") as lines:
                alerts = replay_messages(
                    register,
                    read_messages(lines, source=str(request.events_file)),
                    settings.rules,
                    tz,
                    resolve_after=request.resolve_after,
                )
        except OSError as error:
            raise ReplayError(f"--events: cannot read {request.events_file}: {error}") from None
    rows = [alert.to_json(register) for alert in alerts]
    with request.output.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows
