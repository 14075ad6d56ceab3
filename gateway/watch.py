"""Quiet-home detection: the time-based rules, evaluated on a tick from persisted facts.

Every tick reads what the database knows (last sign of life per person, door positions,
device health, away periods, emergency mode, open alerts) and decides with the pure rules
in :mod:`gateway.rules`. Nothing lives only in memory, so a restart in the middle of a quiet
afternoon neither forgets it nor alerts twice, and a home that was already silent when the
gateway started is still caught. Several gateways may tick at once: the alert store keeps
one open alert per person and type.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from alerts.service import AlertService
from alerts.types import AlertStatus, AlertTrigger, AlertType
from gateway.clock import Clock, sleep_unless
from gateway.config import RulesConfig, Settings
from gateway.events import EventKind, SensorEvent
from gateway.ingest import RoutedEvent
from gateway.register.provisioning import merge_rules
from gateway.rules.quiet import (
    QuietFacts,
    door_open_deadline,
    inactivity_detail,
    inactivity_due,
    offline_since,
)
from gateway.rules.routine import RoutineModel
from gateway.rules.sensors import FaultChange, SensorFault, SensorHealth, is_sign_of_life
from gateway.storage.db import Database
from gateway.storage.models import (
    Alert,
    AwayPeriod,
    Device,
    DeviceState,
    EmergencyMode,
    Event,
    Person,
)

__all__ = ["DEVICE_LABELS", "QuietHomeWatcher"]

log = logging.getLogger(__name__)

DEVICE_LABELS = {
    "sos": "SOS按钮",
    "fall": "跌倒报警器",
    "motion": "人体感应器",
    "door": "门磁",
    "multi": "传感器",
}
_FAULT_LABELS = {SensorFault.FLAPPING: "门磁频繁开合", SensorFault.STUCK: "一直报告有人"}
#: Devices whose reports can show a person moving about (an SOS button alone cannot).
_ACTIVITY_KINDS = ("motion", "door", "multi")
_ACTIVE = (AlertStatus.OPEN.value, AlertStatus.ACKNOWLEDGED.value)
_SYSTEM = "系统"
#: Emergency events stored this recently without an alert are raised by the sweep (the
#: process died between storing a press and raising its alert). Looked back this far at
#: start; afterwards each tick reads only what arrived since the previous one.
_EMERGENCY_SWEEP = timedelta(minutes=30)
#: ...but not before the normal path has had its chance.
_EMERGENCY_GRACE = timedelta(seconds=10)


_ActiveAlerts = dict[AlertType, dict[int, Alert]]


@dataclass(frozen=True, slots=True)
class _DeviceView:
    uid: str
    kind: str
    person_id: int
    person_created_at: datetime
    online: bool | None
    last_seen_at: datetime | None
    battery: int | None
    door_open: bool | None
    door_changed_at: datetime | None


class QuietHomeWatcher:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        alerts: AlertService,
        clock: Clock,
        *,
        poll_seconds: float = 5.0,
    ) -> None:
        self.settings = settings
        self.db = db
        self.alerts = alerts
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.tz = settings.tz
        self.sensors = SensorHealth(self.rules_for)
        self._person_rules: dict[int, RulesConfig] = {}
        self._merged: dict[str, RulesConfig] = {}
        self._seeded = False
        self._swept_until: datetime | None = None
        #: Learned routines of the persons whose rules enable them, fed by :meth:`judge`.
        self.routines: dict[int, RoutineModel] = {}

    # -- per-person rules -------------------------------------------------------------

    def rules_for(self, person_id: int) -> RulesConfig:
        return self._person_rules.get(person_id, self.settings.rules)

    def _effective(self, override: dict[str, Any] | None) -> RulesConfig:
        if not override:
            return self.settings.rules
        key = json.dumps(override, sort_keys=True, default=str)
        merged = self._merged.get(key)
        if merged is None:
            merged = self._merged[key] = merge_rules(self.settings.rules, override)
        return merged

    async def refresh(self) -> None:
        """Reload per-person overrides (and, once, resume motion runs cut by a restart)."""
        async with self.db.session() as session:
            rows = (await session.execute(select(Person.id, Person.rules_override))).all()
            self._person_rules = {pid: self._effective(override) for pid, override in rows}
            if not self._seeded:
                runs = await session.execute(
                    select(
                        Device.uid,
                        Device.person_id,
                        DeviceState.motion_since,
                        DeviceState.last_seen_at,
                    )
                    .join(DeviceState, DeviceState.device_id == Device.id)
                    .where(DeviceState.motion_since.is_not(None))
                )
                for uid, person_id, since, last_seen in runs:
                    if since is not None:
                        self.sensors.seed_motion_run(uid, person_id, since, last_seen or since)
                self._seeded = True
        learning = {
            pid for pid, rules in self._person_rules.items() if rules.inactivity.learned.enabled
        }
        for pid in set(self.routines) - learning:
            del self.routines[pid]
        if learning - set(self.routines):
            await self._learn_history(learning - set(self.routines))

    async def _learn_history(self, person_ids: set[int]) -> None:
        """A home newly under learned routines (or a restart) starts from its stored
        history, judged like ingest judges it: door changes, ignored devices."""
        now = self.clock.now()
        models = {
            pid: RoutineModel(self.tz, self.rules_for(pid).inactivity.learned) for pid in person_ids
        }
        since = now - max(m.rule.history for m in models.values())
        async with self.db.session() as session:
            events = (
                await session.execute(
                    select(
                        Event.person_id,
                        Event.device_uid,
                        Event.kind,
                        Event.state,
                        Event.occurred_at,
                        Event.received_at,
                    )
                    .where(
                        Event.person_id.in_(person_ids),
                        Event.kind.in_(
                            [EventKind.MOTION.value, EventKind.DOOR.value, EventKind.CHECK_IN.value]
                        ),
                        Event.retained.is_(False),
                        Event.received_at >= since,
                    )
                    .order_by(Event.received_at, Event.id)
                )
            ).all()
            away = (
                await session.execute(
                    select(AwayPeriod.person_id, AwayPeriod.starts_at, AwayPeriod.ends_at).where(
                        AwayPeriod.person_id.in_(person_ids), AwayPeriod.ends_at >= since
                    )
                )
            ).all()
            alerts = (
                await session.execute(
                    select(Alert.person_id, Alert.type, Alert.raised_at)
                    .where(Alert.person_id.in_(person_ids), Alert.raised_at >= since)
                    .order_by(Alert.raised_at)
                )
            ).all()
        for person_id, starts_at, ends_at in away:
            models[person_id].exclude(starts_at, ends_at)
        censors: dict[int, list[datetime]] = {}
        for person_id, alert_type, raised_at in alerts:
            if alert_type in (AlertType.SOS.value, AlertType.FALL.value):
                models[person_id].exclude_day(raised_at.astimezone(self.tz).date())
            elif alert_type == AlertType.INACTIVITY.value:
                censors.setdefault(person_id, []).append(raised_at)
        doors: dict[str, bool | None] = {}
        for owner, uid, kind, state, occurred_at, received_at in events:
            if owner is None:
                continue
            person_id = owner
            event = SensorEvent(EventKind(kind), uid, occurred_at, received_at, state)
            changed = False
            if event.kind is EventKind.DOOR and state is not None:
                changed = doors.get(uid) != state
                doors[uid] = state
            ignored = self.rules_for(person_id).inactivity.ignore_devices
            if uid in ignored or not is_sign_of_life(event, door_changed=changed):
                continue
            model = models[person_id]
            at = min(occurred_at, received_at)
            pending = censors.get(person_id)
            while pending and pending[0] <= at:
                model.censor(pending.pop(0))
            model.observe(at, left_home=event.kind is EventKind.DOOR)
        self.routines.update(models)

    # -- event-driven part ------------------------------------------------------------

    def judge(self, routed: RoutedEvent, door_changed: bool) -> bool:
        """The ingest's activity judge: is this stored report a sign of life?"""
        alive = self.sensors.counts_as_activity(
            routed.event, routed.person_id, door_changed=door_changed
        )
        model = self.routines.get(routed.person_id)
        event = routed.event
        if model is not None and event.kind.is_emergency and not event.retained:
            model.exclude_day(event.received_at.astimezone(self.tz).date())
        if alive and model is not None:
            model.observe(
                min(event.occurred_at, event.received_at),
                left_home=event.kind is EventKind.DOOR,
            )
        return alive

    async def after_events(self, events: Sequence[RoutedEvent]) -> None:
        del events  # the judge has already seen them; act on what it concluded
        await self._apply_fault_changes(self.sensors.take_changes())

    # -- the tick ---------------------------------------------------------------------

    async def tick(self) -> None:
        now = self.clock.now()
        await self.refresh()
        self.sensors.sweep(now)
        await self._apply_fault_changes(self.sensors.take_changes())
        await self._sweep_emergencies(now)
        devices = await self._devices()
        # One read of the active alerts serves every check: each check raises or closes
        # only its own types, so none needs to see another's changes within the tick.
        active = await self._active_alerts()
        await self._check_inactivity(now, devices, active)
        await self._check_doors(now, devices, active)
        await self._check_device_health(now, devices, active)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("quiet-home pass failed; retrying")
            await sleep_unless(self.clock, self.poll_seconds, stop)

    # -- reading the facts ------------------------------------------------------------

    async def _devices(self) -> list[_DeviceView]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    Device.uid,
                    Device.kind,
                    Device.person_id,
                    Person.created_at,
                    DeviceState.online,
                    DeviceState.last_seen_at,
                    DeviceState.battery,
                    DeviceState.door_open,
                    DeviceState.door_changed_at,
                )
                .join(Person, Person.id == Device.person_id)
                .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                # Somebody taken off the register (moved away, passed away) is not watched.
                .where(Person.removed_at.is_(None))
                .order_by(Device.id)
            )
            return [_DeviceView(*row) for row in rows]

    async def _active_alerts(self) -> _ActiveAlerts:
        """Open and acknowledged alerts by type, then person (one per person and type)."""
        active: _ActiveAlerts = {alert_type: {} for alert_type in AlertType}
        async with self.db.session() as session:
            rows = await session.execute(select(Alert).where(Alert.status.in_(_ACTIVE)))
            for alert in rows.scalars():
                active[AlertType(alert.type)][alert.person_id] = alert
        return active

    async def _last_closed(self, alert_type: AlertType) -> dict[int, datetime]:
        """When each person's last alert of this type was closed (no re-alert for the same
        silence or the same open door once somebody has dealt with it)."""
        closed_at = func.coalesce(Alert.resolved_at, Alert.cancelled_at)
        async with self.db.session() as session:
            rows = await session.execute(
                select(Alert.person_id, func.max(closed_at))
                .where(Alert.type == alert_type.value, Alert.status.not_in(_ACTIVE))
                .group_by(Alert.person_id)
            )
            return {pid: at for pid, at in rows if at is not None}

    async def _inactivity_factor(self, now: datetime) -> float:
        async with self.db.session() as session:
            mode = (
                await session.execute(
                    select(EmergencyMode)
                    .where(EmergencyMode.started_at <= now, EmergencyMode.ended_at.is_(None))
                    .order_by(EmergencyMode.id.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        return mode.inactivity_factor if mode is not None else 1.0

    async def _away(self, now: datetime) -> tuple[set[int], dict[int, datetime]]:
        """Who is away now, and when each person's last absence ended."""
        ended = func.coalesce(AwayPeriod.cancelled_at, AwayPeriod.ends_at)
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(AwayPeriod.person_id, AwayPeriod.starts_at, ended).where(
                        AwayPeriod.starts_at <= now
                    )
                )
            ).all()
        away_now: set[int] = set()
        returned: dict[int, datetime] = {}
        for person_id, starts_at, ends_at in rows:
            if ends_at > now:
                away_now.add(person_id)
            elif ends_at > starts_at:
                returned[person_id] = max(ends_at, returned.get(person_id, ends_at))
        return away_now, returned

    # -- inactivity -------------------------------------------------------------------

    async def _check_inactivity(
        self, now: datetime, devices: list[_DeviceView], active: _ActiveAlerts
    ) -> None:
        watched: set[int] = {
            d.person_id
            for d in devices
            if d.kind in _ACTIVITY_KINDS
            # A sensor that never reported is not installed yet: nothing to judge by.
            and d.last_seen_at is not None
            and d.uid not in self.rules_for(d.person_id).inactivity.ignore_devices
        }
        if not watched:
            return
        async with self.db.session() as session:
            persons = (
                await session.execute(
                    select(Person.id, Person.last_activity_at, Person.created_at).where(
                        Person.id.in_(watched)
                    )
                )
            ).all()
        open_alerts = active[AlertType.INACTIVITY]
        closed = await self._last_closed(AlertType.INACTIVITY)
        away_now, returned = await self._away(now)
        factor = await self._inactivity_factor(now)
        # An SOS or fall being handled already has people on the way: a second alarm about
        # the same silence would only call them again.
        in_emergency = {*active[AlertType.SOS], *active[AlertType.FALL]}
        for person_id, last_activity, created_at in persons:
            alert = open_alerts.get(person_id)
            if alert is not None:
                if last_activity is not None and last_activity >= alert.raised_at:
                    await self._activity_resumed(alert)
                continue
            if person_id in away_now or person_id in in_emergency:
                routine = self.routines.get(person_id)
                if routine is not None:
                    # Neither an absence nor an emergency is a routine to learn.
                    routine.exclude(now, now)
                continue
            facts = QuietFacts(
                last_activity, created_at, returned.get(person_id), closed.get(person_id)
            )
            rules = self.rules_for(person_id)
            routine = self.routines.get(person_id)
            due = inactivity_due(facts, rules.inactivity, self.tz, factor=factor, routine=routine)
            if now >= due.at:
                await self.alerts.raise_alert(
                    AlertTrigger(
                        type=AlertType.INACTIVITY,
                        person_id=person_id,
                        at=now,
                        detail=inactivity_detail(due, now, self.tz),
                    )
                )
                if routine is not None:
                    routine.censor(now)

    async def _activity_resumed(self, alert: Alert) -> None:
        # Somebody is moving again. While nobody has taken the alert it is withdrawn; once a
        # helper has taken it, closing it is theirs to do (they may already be on the way).
        if alert.status == AlertStatus.OPEN.value:
            await self.alerts.cancel(alert.id, by=_SYSTEM, reason="activity resumed")

    # -- door left open at night --------------------------------------------------------

    async def _check_doors(
        self, now: datetime, devices: list[_DeviceView], active: _ActiveAlerts
    ) -> None:
        open_alerts = active[AlertType.DOOR_OPEN_NIGHT]
        closed = await self._last_closed(AlertType.DOOR_OPEN_NIGHT)
        open_doors: dict[int, _DeviceView] = {}
        for device in devices:
            opened = device.door_open and device.door_changed_at is not None
            if opened and not self.sensors.faulty(device.uid):
                open_doors.setdefault(device.person_id, device)
        for person_id, alert in open_alerts.items():
            if person_id not in open_doors and alert.status == AlertStatus.OPEN.value:
                await self.alerts.cancel(alert.id, by=_SYSTEM, reason="door closed")
        for person_id, door in open_doors.items():
            assert door.door_changed_at is not None
            if person_id in open_alerts:
                continue
            last = closed.get(person_id)
            if last is not None and last >= door.door_changed_at:
                continue  # this opening was already dealt with
            rule = self.rules_for(person_id).door_open_night
            due = door_open_deadline(door.door_changed_at, rule, self.tz)
            if due is not None and now >= due:
                await self.alerts.raise_alert(
                    AlertTrigger(
                        type=AlertType.DOOR_OPEN_NIGHT,
                        person_id=person_id,
                        at=now,
                        device_uid=door.uid,
                        detail={
                            "time": door.door_changed_at.astimezone(self.tz).strftime("%H:%M"),
                            "device_label": DEVICE_LABELS.get(door.kind, "门磁"),
                        },
                    )
                )

    # -- device health ----------------------------------------------------------------

    def _offline_since(self, now: datetime, device: _DeviceView) -> datetime | None:
        return offline_since(
            now,
            self.rules_for(device.person_id),
            online=device.online,
            last_seen_at=device.last_seen_at,
            registered_at=device.person_created_at,
        )

    async def _check_device_health(
        self, now: datetime, devices: list[_DeviceView], active: _ActiveAlerts
    ) -> None:
        offline: dict[int, tuple[_DeviceView, datetime]] = {}
        low: dict[int, _DeviceView] = {}
        recovered_battery: dict[int, bool] = {}
        for device in devices:
            since = self._offline_since(now, device)
            if since is not None:
                offline.setdefault(device.person_id, (device, since))
            rules = self.rules_for(device.person_id)
            if device.battery is not None:
                if device.battery < rules.battery_low:
                    low.setdefault(device.person_id, device)
                if device.battery < rules.battery_low + rules.battery_hysteresis:
                    recovered_battery[device.person_id] = False
                else:
                    recovered_battery.setdefault(device.person_id, True)
        open_offline = active[AlertType.DEVICE_OFFLINE]
        for person_id, alert in open_offline.items():
            if person_id not in offline:
                await self.alerts.resolve(alert.id, by=_SYSTEM, note="设备恢复在线")
        for person_id, (device, since) in offline.items():
            if person_id not in open_offline:
                await self.alerts.raise_alert(
                    AlertTrigger(
                        type=AlertType.DEVICE_OFFLINE,
                        person_id=person_id,
                        at=now,
                        device_uid=device.uid,
                        detail={
                            "device_label": DEVICE_LABELS.get(device.kind, "设备"),
                            "since": self._local(since, with_date=True),
                        },
                    )
                )
        open_low = active[AlertType.BATTERY_LOW]
        for person_id, alert in open_low.items():
            if recovered_battery.get(person_id, False):
                await self.alerts.resolve(alert.id, by=_SYSTEM, note="电池已更换")
        for person_id, device in low.items():
            if person_id not in open_low:
                await self.alerts.raise_alert(
                    AlertTrigger(
                        type=AlertType.BATTERY_LOW,
                        person_id=person_id,
                        at=now,
                        device_uid=device.uid,
                        detail={
                            "device_label": DEVICE_LABELS.get(device.kind, "设备"),
                            "battery": str(device.battery),
                        },
                    )
                )

    async def _apply_fault_changes(self, changes: list[FaultChange]) -> None:
        for change in changes:
            if change.active:
                log.warning(
                    "%s is %s: its reports no longer count", change.device_uid, change.fault
                )
                await self.alerts.raise_alert(
                    AlertTrigger(
                        type=AlertType.SENSOR_FAULT,
                        person_id=change.person_id,
                        at=change.at,
                        device_uid=change.device_uid,
                        detail={
                            "fault": change.fault.value,
                            "fault_label": _FAULT_LABELS[change.fault],
                            "device_label": (
                                "门磁" if change.fault is SensorFault.FLAPPING else "人体感应器"
                            ),
                        },
                    )
                )
                continue
            if self._person_has_fault(change.person_id):
                continue  # another of the person's sensors still misbehaves
            for alert in await self.alerts.open_alerts(change.person_id, [AlertType.SENSOR_FAULT]):
                await self.alerts.resolve(alert.id, by=_SYSTEM, note="设备恢复正常")

    def _person_has_fault(self, person_id: int) -> bool:
        return any(
            self.sensors.faulty(uid)
            for uid, owner in self.sensors.owners().items()
            if owner == person_id
        )

    # -- safety net for emergencies ---------------------------------------------------

    async def _sweep_emergencies(self, now: datetime) -> None:
        """Raise any SOS/fall that was stored but never became an alert."""
        upper = now - _EMERGENCY_GRACE
        lower = self._swept_until or now - _EMERGENCY_SWEEP
        if upper <= lower:
            return
        async with self.db.session() as session:
            events = (
                await session.execute(
                    select(
                        Event.person_id, Event.kind, func.max(Event.received_at), Event.device_uid
                    )
                    .where(
                        Event.kind.in_([EventKind.SOS.value, EventKind.FALL.value]),
                        Event.retained.is_(False),
                        Event.person_id.is_not(None),
                        Event.received_at > lower,
                        Event.received_at <= upper,
                    )
                    .group_by(Event.person_id, Event.kind, Event.device_uid)
                )
            ).all()
            for person_id, kind, received_at, device_uid in events:
                if person_id is None:
                    continue
                covered = (
                    await session.execute(
                        select(Alert.id)
                        .where(
                            Alert.person_id == person_id,
                            Alert.type == kind,
                            or_(
                                Alert.last_trigger_at >= received_at,
                                Alert.raised_at >= received_at,
                            ),
                        )
                        .limit(1)
                    )
                ).first()
                if covered is not None:
                    continue
                log.error("recovering a %s from %s that never raised an alert", kind, device_uid)
                await self.alerts.raise_alert(
                    AlertTrigger(
                        type=AlertType(kind),
                        person_id=person_id,
                        at=received_at,
                        device_uid=device_uid,
                    )
                )
        self._swept_until = upper

    def _local(self, moment: datetime, *, with_date: bool = False) -> str:
        local = moment.astimezone(self.tz)
        return local.strftime("%m月%d日%H:%M" if with_date else "%H:%M")
