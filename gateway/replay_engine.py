"""The replay's engine: what the rules would have raised over a stream of events, with a
simulated clock; nothing is sent.

The live gateway's own rules run here, unchanged: its judge of what counts as a sign of
life (:class:`~gateway.rules.sensors.SensorHealth`), the emergency, check-in and
sensor-fault rules on each event, and the time-based rules (inactivity, night door,
device health) on typed :class:`~gateway.rules.facts.HomeFacts`. Their decisions are
applied to in-memory alerts with the details the gateway would store
(:func:`~gateway.rules_runner.apply.params_of`), so a fix to a rule reaches the replay too.

Storage is left out of the per-message path on purpose: the live gateway commits each batch
and re-reads its facts every tick, which is right for a crash-proof service and far too slow
for a million messages. Here the same facts (last sign of life, door positions, device
state, open alerts) are kept in memory:

* messages are handled in order, the clock set to each one's ``received_at``;
* the time-based rules tick at every whole simulated minute, between messages too, and
  only judge the persons whose facts changed or whose ``next_check`` came (a heap of
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
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from alerts.types import AlertGroup, AlertStatus, AlertType
from gateway.config import RulesConfig
from gateway.events import EventKind, SensorEvent
from gateway.register.provisioning import merge_rules
from gateway.replay_input import ReplayDevice, ReplayPerson, ReplayRegister
from gateway.rules.check_in import CheckInRule
from gateway.rules.decisions import (
    CensorRoutine,
    Decision,
    ExcludeFromRoutine,
    Raise,
    Resolve,
    ResolveAllOpen,
    Verdict,
    Withdraw,
)
from gateway.rules.device_health import DeviceHealthRule
from gateway.rules.emergency import EmergencyRule
from gateway.rules.facts import DeviceFacts, HomeFacts, OpenAlert
from gateway.rules.inactivity import InactivityRule
from gateway.rules.night_door import NightDoorRule
from gateway.rules.routine import RoutineModel
from gateway.rules.sensor_faults import SensorFaultRule
from gateway.rules.sensors import SensorHealth
from gateway.rules_runner.apply import params_of

__all__ = ["ReplayAlert", "Replayer"]

_TICK = timedelta(minutes=1)
_NEEDS_A_PERSON = (AlertGroup.EMERGENCY, AlertGroup.WELLBEING)
_DEBOUNCED = (AlertType.SOS, AlertType.FALL)


class _TimeRule(Protocol):
    def decide(self, home: HomeFacts, now: datetime) -> Verdict: ...


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
    #: Its index in the replay's alerts (what the rules' decisions name it by).
    id: int = -1

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
    #: What the rules were last told of it; dropped when it reports or its fault changes
    #: (its sensor-health verdict changes only then).
    facts: DeviceFacts | None = None

    def told(self, sensors: SensorHealth) -> DeviceFacts:
        if self.facts is None:
            spec = self.device.spec
            self.facts = DeviceFacts(
                spec.uid,
                spec.kind.value,
                self.online,
                self.last_seen_at,
                self.battery,
                self.door_open,
                self.door_changed_at,
                faulty=sensors.faulty(spec.uid),
            )
        return self.facts


@dataclass(slots=True)
class _PersonState:
    person: ReplayPerson
    rules: RulesConfig
    created_at: datetime
    devices: list[_DeviceState] = field(default_factory=list)
    last_activity: datetime | None = None
    routine: RoutineModel | None = None
    #: Version of the person's next check in the heap (older entries are stale).
    version: int = 0
    #: Each time-based rule's last ``next_check`` for the person.
    checks: list[datetime | None] = field(default_factory=lambda: [None, None, None])
    open: dict[AlertType, ReplayAlert] = field(default_factory=dict)
    last_emergency: dict[AlertType, ReplayAlert] = field(default_factory=dict)
    last_closed: dict[AlertType, datetime] = field(default_factory=dict)
    away: list[tuple[datetime, datetime]] = field(default_factory=list)


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
        self.check_in = CheckInRule()
        self.sensor_faults = SensorFaultRule()
        #: The time-based rules, in the order the gateway applies their verdicts.
        self.time_rules: tuple[_TimeRule, ...] = (
            InactivityRule(tz),
            NightDoorRule(tz),
            DeviceHealthRule(),
        )
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
        for pid, starts, ends in register.away:
            self.persons[pid].away.append((starts, ends))
            routine = self.persons[pid].routine
            if routine is not None:
                routine.exclude(starts, ends)
        #: (when, sequence, key, version): persons' next checks and alerts' helper visits.
        self._timers: list[tuple[datetime, int, int | ReplayAlert, int]] = []
        self._sequence = 0
        #: Persons whose facts changed since the last tick: for every rule, and (a sign of
        #: life, a door, a device's health) for the one rule that reads that fact alone.
        self._dirty: set[int] = set(self.persons)
        self._dirty_for: tuple[set[int], set[int], set[int]] = (set(), set(), set())
        self._faulty: set[str] = set()

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
        moved, door, health = self._dirty_for
        state.facts = None
        if state.last_seen_at is None:
            self._dirty.add(pid)  # a sensor installed: the home may now be watched
        state.last_seen_at = max(at, state.last_seen_at or at)
        online = bool(event.state) if event.kind is EventKind.AVAILABILITY else True
        if online != state.online or AlertType.DEVICE_OFFLINE in person.open:
            health.add(pid)
        state.online = online
        if event.battery is not None and event.battery != state.battery:
            state.battery = event.battery
            health.add(pid)
        door_changed = False
        if event.kind is EventKind.DOOR and event.state is not None:
            # As ingest: zigbee2mqtt repeats `contact` in every report; only a change counts.
            door_changed = event.state != state.door_open
            if door_changed:
                state.door_open = event.state
                state.door_changed_at = min(event.occurred_at, event.received_at)
                door.add(pid)
        routine = person.routine
        if routine is not None and event.kind.is_emergency:
            # As the runner's judge: a day with an SOS or a fall teaches nothing.
            routine.exclude_day(at.astimezone(self.tz).date())
        if self.sensors.counts_as_activity(event, pid, door_changed=door_changed):
            moment = min(event.occurred_at, event.received_at)
            if person.last_activity is None or moment > person.last_activity:
                person.last_activity = moment
                moved.add(pid)
            if routine is not None:
                routine.observe(
                    moment, left_home=event.kind is EventKind.DOOR, where=event.device_uid
                )
        self._apply(self.emergency.decide(event, pid))
        if self.check_in.applies(event):
            self._apply(self.check_in.decide(event, self._open_alerts(person).values()))
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

    # -- decisions become in-memory alerts -------------------------------------------------

    def _apply(self, decisions: Any) -> None:
        decision: Decision
        for decision in decisions:
            if isinstance(decision, Raise):
                self._raise(decision)
            elif isinstance(decision, Withdraw):
                self._close(self.alerts[decision.alert_id], AlertStatus.CANCELLED)
            elif isinstance(decision, Resolve):
                self._close(self.alerts[decision.alert_id], AlertStatus.RESOLVED)
            elif isinstance(decision, ResolveAllOpen):
                alert = self.persons[decision.person_id].open.get(decision.type)
                if alert is not None:
                    self._close(alert, AlertStatus.RESOLVED)
            elif isinstance(decision, ExcludeFromRoutine | CensorRoutine):
                routine = self.persons[decision.person_id].routine
                if routine is None:
                    continue
                if isinstance(decision, CensorRoutine):
                    routine.censor(decision.at)
                else:
                    routine.exclude(decision.at, decision.at)

    def _raise(self, decision: Raise) -> None:
        """As the alert store: one open alert per person and type, and repeated presses of
        an SOS or fall within ``sos_debounce`` are the same emergency."""
        person = self.persons[decision.person_id]
        existing = person.open.get(decision.type)
        if existing is None and decision.type in _DEBOUNCED:
            last = person.last_emergency.get(decision.type)
            horizon = decision.at - person.rules.sos_debounce
            if last is not None and last.last_trigger_at and last.last_trigger_at >= horizon:
                existing = last
        if existing is not None:
            existing.last_trigger_at = max(existing.last_trigger_at or decision.at, decision.at)
            return
        alert = ReplayAlert(
            decision.type,
            decision.person_id,
            self.now,
            last_trigger_at=decision.at,
            device_uid=decision.device_uid,
            detail=params_of(decision, self.tz),
            id=len(self.alerts),
        )
        self.alerts.append(alert)
        person.open[decision.type] = alert
        if decision.type in _DEBOUNCED:
            person.last_emergency[decision.type] = alert
        if self.resolve_after is not None and decision.type.group in _NEEDS_A_PERSON:
            self._push(self.now + self.resolve_after, alert)
        # An alert that opened changes what the person's checks decide (an emergency
        # suppresses inactivity): look again at the next tick.
        self._dirty.add(decision.person_id)

    def _close(self, alert: ReplayAlert, status: AlertStatus) -> None:
        if not alert.active:
            return
        alert.close(status, self.now)
        person = self.persons[alert.person_id]
        if person.open.get(alert.type) is alert:
            del person.open[alert.type]
        person.last_closed[alert.type] = self.now
        self._dirty.add(alert.person_id)

    def _apply_faults(self) -> None:
        changes = self.sensors.take_changes()
        for change in changes:
            if change.active:
                self._faulty.add(change.device_uid)
            else:
                self._faulty.discard(change.device_uid)
            self._dirty.add(change.person_id)
            device = self.devices.get(change.device_uid)
            if device is not None:
                device.facts = None
        if changes:
            self._apply(self.sensor_faults.decide(changes, self._has_fault))

    def _has_fault(self, person_id: int) -> bool:
        devices = self.persons[person_id].devices
        return any(self.sensors.faulty(d.device.spec.uid) for d in devices)

    # -- the facts the rules are told ---------------------------------------------------

    def _open_alerts(self, person: _PersonState) -> dict[AlertType, OpenAlert]:
        return {t: OpenAlert(a.id, t, a.status, a.raised_at) for t, a in person.open.items()}

    def _home(self, person: _PersonState, now: datetime) -> HomeFacts:
        away_until = next_away = returned = None
        for starts, ends in person.away:  # as the runner reads a person's absences
            if starts > now:
                next_away = starts if next_away is None else min(next_away, starts)
            elif ends > now:
                away_until = ends if away_until is None else max(away_until, ends)
            elif ends > starts:
                returned = ends if returned is None else max(returned, ends)
        return HomeFacts(
            person_id=person.person.id,
            created_at=person.created_at,
            rules=person.rules,
            last_activity=person.last_activity,
            devices=tuple(d.told(self.sensors) for d in person.devices),
            open_alerts=self._open_alerts(person),
            last_closed=person.last_closed,
            away_until=away_until,
            next_away_start=next_away,
            returned_at=returned,
            routine=person.routine,
        )

    # -- the tick -----------------------------------------------------------------------

    def _push(self, when: datetime, key: int | ReplayAlert, version: int = 0) -> None:
        self._sequence += 1
        heapq.heappush(self._timers, (when, self._sequence, key, version))

    def _tick(self) -> None:
        now = self.now
        if self._faulty:
            self.sensors.sweep(now)
            self._apply_faults()
        due: set[int] = set()
        while self._timers and self._timers[0][0] <= now:
            _, _, key, version = heapq.heappop(self._timers)
            if isinstance(key, ReplayAlert):
                self._close(key, AlertStatus.RESOLVED)  # the helper's visit
            elif version == self.persons[key].version:
                due.add(key)
        every = due | self._dirty
        only = self._dirty_for
        persons = sorted(every.union(*only))
        self._dirty, self._dirty_for = set(), (set(), set(), set())
        homes = [self._home(self.persons[pid], now) for pid in persons]
        # One snapshot per home for all the rules, each rule's verdicts applied in turn,
        # as the gateway's runner does; a rule none of whose facts changed (and whose
        # next check has not come) would decide the same again, and is skipped.
        for index, rule in enumerate(self.time_rules):
            for home in homes:
                pid = home.person_id
                if pid in every or pid in only[index]:
                    verdict = rule.decide(home, now)
                    self._apply(verdict.decisions)
                    self.persons[pid].checks[index] = verdict.next_check
        for pid in persons:
            person = self.persons[pid]
            person.version += 1
            checks = [c for c in person.checks if c is not None]
            if checks:
                self._push(min(checks), pid, person.version)


def _ceil_minute(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + _TICK
