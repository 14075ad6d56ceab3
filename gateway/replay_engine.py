"""The replay's engine: what the rules would have raised over a stream of events, with a
simulated clock; nothing is sent.

The gateway's own judge of what counts as a sign of life (door changes,
:class:`~gateway.rules.sensors.SensorHealth`), its emergency rule and its quiet-home
decisions (:mod:`gateway.rules.quiet`, learned routines) run here.

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alerts.templates import DEVICE_LABELS
from alerts.types import AlertGroup, AlertStatus, AlertTrigger, AlertType
from gateway.config import RulesConfig
from gateway.events import EventKind, SensorEvent
from gateway.register.provisioning import merge_rules
from gateway.register.vocabulary import DeviceKind
from gateway.replay_input import ReplayDevice, ReplayPerson, ReplayRegister
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

__all__ = ["ReplayAlert", "Replayer"]

_TICK = timedelta(minutes=1)
_ACTIVITY_KINDS = frozenset({DeviceKind.MOTION, DeviceKind.DOOR, DeviceKind.MULTI})
_NEEDS_A_PERSON = (AlertGroup.EMERGENCY, AlertGroup.WELLBEING)


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
