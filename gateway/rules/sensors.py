"""Which reports are a person, and which are a broken sensor?

A door whose magnet has come loose toggles dozens of times a minute; a motion sensor facing
a curtain in the wind, or with a failed PIR, reports "occupied" for a whole day. Counted as
activity, either would hide a resident lying on the floor for ever. This rule judges every
stored report in arrival order, says whether it counts as a sign of life, and records
faults (and their end) for the gateway to turn into ``sensor_fault`` alerts.

State is kept in memory: after a restart a flapping door is re-detected within a minute and
a stuck motion sensor within ``stuck_motion`` of its run start (seeded from the database).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gateway.config import RulesConfig
from gateway.events import EventKind, SensorEvent

__all__ = ["FaultChange", "SensorFault", "SensorHealth", "is_sign_of_life"]


def is_sign_of_life(event: SensorEvent, *, door_changed: bool) -> bool:
    """Somebody moving about, judged on the report alone: motion detected, a door changing
    position, a check-in press. "No motion" is a sensor clearing its state, not a person."""
    if event.kind is EventKind.DOOR:
        return door_changed
    if event.kind is EventKind.MOTION:
        return event.state is not False
    return event.kind is EventKind.CHECK_IN


class SensorFault(StrEnum):
    FLAPPING = "flapping"
    STUCK = "stuck"


@dataclass(frozen=True, slots=True)
class FaultChange:
    """A device started (``active``) or stopped misbehaving."""

    device_uid: str
    person_id: int
    fault: SensorFault
    active: bool
    at: datetime


@dataclass(slots=True)
class _DoorTrack:
    changes: deque[datetime] = field(default_factory=deque)
    flapping: bool = False
    last_change: datetime | None = None


@dataclass(slots=True)
class _MotionTrack:
    run_start: datetime | None = None
    last_true: datetime | None = None
    stuck: bool = False


class SensorHealth:
    def __init__(self, rules_for: Callable[[int], RulesConfig]) -> None:
        self._rules_for = rules_for
        self._doors: dict[str, _DoorTrack] = {}
        self._motion: dict[str, _MotionTrack] = {}
        self._owner: dict[str, int] = {}
        self._changes: list[FaultChange] = []
        #: Devices currently faulty: the sweep looks at these only, not at every device.
        self._faulty: set[str] = set()

    def seed_motion_run(
        self, device_uid: str, person_id: int, run_start: datetime, last_seen: datetime
    ) -> None:
        """Resume a motion run that was going on before a restart."""
        self._owner[device_uid] = person_id
        self._motion[device_uid] = _MotionTrack(run_start=run_start, last_true=last_seen)

    def counts_as_activity(self, event: SensorEvent, person_id: int, *, door_changed: bool) -> bool:
        """Judge one stored, non-retained report. Call in arrival order."""
        rules = self._rules_for(person_id)
        self._owner[event.device_uid] = person_id
        healthy = True
        if event.kind is EventKind.DOOR:
            healthy = self._door(event, person_id, rules, changed=door_changed)
        elif event.kind is EventKind.MOTION:
            healthy = self._moving(event, person_id, rules)
        if (
            event.device_uid in rules.inactivity.ignore_devices
            and event.kind is not EventKind.CHECK_IN
        ):
            return False
        return is_sign_of_life(event, door_changed=door_changed) and healthy

    def _door(
        self, event: SensorEvent, person_id: int, rules: RulesConfig, *, changed: bool
    ) -> bool:
        track = self._doors.setdefault(event.device_uid, _DoorTrack())
        if not changed:
            return not track.flapping
        at = event.received_at
        track.last_change = at
        track.changes.append(at)
        horizon = at - rules.flapping.within
        while track.changes and track.changes[0] < horizon:
            track.changes.popleft()
        if not track.flapping and len(track.changes) >= rules.flapping.changes:
            track.flapping = True
            self._faulty.add(event.device_uid)
            self._changes.append(
                FaultChange(event.device_uid, person_id, SensorFault.FLAPPING, True, at)
            )
        return not track.flapping

    def _moving(self, event: SensorEvent, person_id: int, rules: RulesConfig) -> bool:
        track = self._motion.setdefault(event.device_uid, _MotionTrack())
        at = event.received_at
        if event.state is False:
            was_stuck = track.stuck
            self._motion[event.device_uid] = _MotionTrack()
            if was_stuck:
                self._changes.append(
                    FaultChange(event.device_uid, person_id, SensorFault.STUCK, False, at)
                )
            return True
        if (
            track.run_start is None
            or track.last_true is None
            or at - track.last_true > rules.motion_gap
        ):
            if track.stuck:
                self._changes.append(
                    FaultChange(event.device_uid, person_id, SensorFault.STUCK, False, at)
                )
            track.run_start, track.stuck = at, False
        track.last_true = at
        if not track.stuck and at - track.run_start >= rules.stuck_motion:
            track.stuck = True
            self._faulty.add(event.device_uid)
            self._changes.append(
                FaultChange(event.device_uid, person_id, SensorFault.STUCK, True, at)
            )
        return not track.stuck

    def sweep(self, now: datetime) -> None:
        """End faults whose device has calmed down (called on every tick)."""
        for uid in sorted(self._faulty):
            if not self.faulty(uid):
                self._faulty.discard(uid)
        for uid in sorted(self._faulty):
            door = self._doors.get(uid)
            if door is None:
                continue
            person_id = self._owner[uid]
            calm = self._rules_for(person_id).flapping.calm
            if door.flapping and door.last_change is not None and now - door.last_change >= calm:
                door.flapping = False
                door.changes.clear()
                self._changes.append(FaultChange(uid, person_id, SensorFault.FLAPPING, False, now))
        for uid in sorted(self._faulty):
            motion = self._motion.get(uid)
            if motion is None:
                continue
            person_id = self._owner[uid]
            gap = self._rules_for(person_id).motion_gap
            if motion.stuck and motion.last_true is not None and now - motion.last_true > gap:
                self._motion[uid] = _MotionTrack()
                self._changes.append(FaultChange(uid, person_id, SensorFault.STUCK, False, now))

    def faulty(self, device_uid: str) -> bool:
        door = self._doors.get(device_uid)
        motion = self._motion.get(device_uid)
        return bool((door and door.flapping) or (motion and motion.stuck))

    def owners(self) -> dict[str, int]:
        return dict(self._owner)

    def take_changes(self) -> list[FaultChange]:
        changes, self._changes = self._changes, []
        return changes
