"""The rules runner: the single consumer of stored events and the only place where rule
decisions are applied.

Event-driven rules (emergency, check-in, sensor faults) run on every stored batch the
ingest hands over. Time-based rules (inactivity, night door, device health) run on a tick,
but only for the homes that are due (:class:`DueIndex`) or about which a fact changed since
the last tick: new events (read by primary key, so other gateway processes' events count
too), alerts that opened or closed, absences, the town's emergency mode. An idle tick costs
a handful of indexed reads, whatever the number of quiet homes.

The database is the source of truth: a (re)synchronisation — at start, every
``resync_seconds``, and when an unknown person reports — re-reads the register and judges
every home, so a restart neither forgets a silence nor fires it twice, and a home already
silent when the gateway started is caught on the first tick.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from alerts.service import AlertService
from alerts.types import AlertStatus, AlertType
from gateway.clock import Clock, sleep_unless
from gateway.config import RulesConfig, Settings
from gateway.events import EventKind
from gateway.ingest import RoutedEvent
from gateway.register.provisioning import merge_rules
from gateway.rules.broker_link import BrokerLinkRule
from gateway.rules.check_in import WELLBEING, CheckInRule
from gateway.rules.decisions import Decision
from gateway.rules.device_health import DeviceHealthRule
from gateway.rules.emergency import EmergencyRule
from gateway.rules.facts import DeviceFacts, EmergencyCandidate, HomeFacts, OpenAlert
from gateway.rules.inactivity import InactivityRule
from gateway.rules.night_door import NightDoorRule
from gateway.rules.routine import RoutineModel
from gateway.rules.sensor_faults import SensorFaultRule
from gateway.rules.sensors import SensorHealth
from gateway.rules.sos_sweep import SosSweepRule
from gateway.rules_runner.apply import DecisionApplier
from gateway.rules_runner.due import DueIndex
from gateway.rules_runner.learning import PendingRoutine, learn_history
from gateway.storage import rules_queries as q
from gateway.storage.db import Database

__all__ = ["RulesRunner"]

log = logging.getLogger(__name__)

#: Homes judged between two yields to the event loop (a resync of 30k homes takes seconds).
_JUDGE_BATCH = 250


def _open_alert(row: q.ActiveAlertRow) -> OpenAlert:
    return OpenAlert(row.id, AlertType(row.type), AlertStatus(row.status), row.raised_at)


class RulesRunner:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        alerts: AlertService,
        clock: Clock,
        *,
        link_up: Callable[[], bool] = lambda: True,
        poll_seconds: float = 5.0,
        link_poll_seconds: float = 5.0,
        resync_seconds: float = 300.0,
    ) -> None:
        self.settings = settings
        self.db = db
        self.alerts = alerts
        self.clock = clock
        self.link_up = link_up
        self.poll_seconds = poll_seconds
        self.link_poll_seconds = link_poll_seconds
        self.resync = timedelta(seconds=resync_seconds)
        self.tz = settings.tz
        self.sensors = SensorHealth(self.rules_for)
        #: Learned routines of the persons whose rules enable them, fed by :meth:`judge`.
        self.routines: dict[int, RoutineModel] = {}
        #: Models being rebuilt from the stored history, in the background: until theirs is
        #: ready a home is judged by the fixed windows, and its signs of life wait here.
        self._warming: asyncio.Task[None] | None = None
        self._pending: dict[int, PendingRoutine] = {}
        self.emergency = EmergencyRule()
        self.check_in = CheckInRule()
        self.sensor_faults = SensorFaultRule()
        self.inactivity = InactivityRule(self.tz)
        self.night_door = NightDoorRule(self.tz)
        self.device_health = DeviceHealthRule()
        self.sos_sweep = SosSweepRule()
        self.broker_link = BrokerLinkRule(settings.rules.gateway_link)
        self.applier = DecisionApplier(
            alerts, self.tz, gateway_name=settings.mqtt_client_id, routine_of=self._routine_of
        )
        self.due = DueIndex()
        self._person_rules: dict[int, RulesConfig] = {}
        self._merged: dict[str, RulesConfig] = {}
        self._devices_of: dict[int, list[int]] = {}
        self._seeded = False
        self._synced_at: datetime | None = None
        self._resync_now = False
        self._event_mark = 0
        self._active: dict[int, q.ActiveAlertRow] = {}
        self._open_of: dict[int, dict[AlertType, OpenAlert]] = {}
        #: When each person's last alert of each type was closed.
        self._closed: dict[int, dict[AlertType, datetime]] = {}
        self._away: dict[int, q.AwayRow] = {}
        self._factor = 1.0
        self._dirty: set[int] = set()

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

    # -- synchronising with the database ---------------------------------------------------

    async def refresh(self) -> None:
        """Re-read the register and what the rules know of it; judge every home next tick."""
        now = self.clock.now()
        async with self.db.session() as session:
            overrides, self._devices_of = await q.watched_register(session)
            self._person_rules = {pid: self._effective(o) for pid, o in overrides.items()}
            if not self._seeded:
                # Motion runs cut by a restart go on counting towards "stuck".
                for uid, person_id, since, last_seen in await q.motion_runs(session):
                    self.sensors.seed_motion_run(uid, person_id, since, last_seen)
                self._seeded = True
            self._event_mark = await q.latest_event_id(session)
            self._closed = {}
            for (pid, alert_type), at in (await q.last_closed(session)).items():
                self._closed.setdefault(pid, {})[AlertType(alert_type)] = at
            self._set_active(await q.active_alerts(session))
            self._away = {row.id: row for row in await q.away_changes(session, now)}
            self._factor = await q.inactivity_factor(session, now)
        learning = {pid for pid, r in self._person_rules.items() if r.inactivity.learned.enabled}
        for pid in set(self.routines) - learning:
            del self.routines[pid]
        missing = learning - set(self.routines)
        if missing and self._warming is None:
            # A month of a county's history takes minutes to read: the ingest (an SOS above
            # all) must not wait for it, so the models warm beside it.
            self._pending = {pid: PendingRoutine() for pid in missing}
            self._warming = asyncio.create_task(self._warm(missing, now), name="routine-warmup")
        self.due.clear()
        # (and those taken off the register with alerts still open: theirs close)
        self._dirty = set(self._person_rules) | set(self._open_of)
        self._synced_at = now
        self._resync_now = False

    async def _warm(self, persons: set[int], now: datetime) -> None:
        try:
            models = await learn_history(self.db, self.tz, self.rules_for, persons, now)
        except Exception:
            log.exception("learned routines: warming from the history failed; next refresh retries")
            models = {}
        finally:
            self._warming = None
        for pid, model in models.items():
            pending = self._pending.get(pid)
            if pending is None or not self.rules_for(pid).inactivity.learned.enabled:
                continue
            # What the gateway judged while the history was read.
            self.routines[pid] = pending.hand_to(model)
            self._dirty.add(pid)
        self._pending = {}

    def _routine_of(self, person_id: int) -> RoutineModel | PendingRoutine | None:
        model = self.routines.get(person_id)
        return model if model is not None else self._pending.get(person_id)

    async def warmed(self) -> None:
        """Wait until the learned routines being rebuilt are ready (tests, the demo)."""
        while self._warming is not None:
            await asyncio.shield(self._warming)

    def _set_active(self, rows: list[q.ActiveAlertRow]) -> set[int]:
        """Take the active alerts; the persons whose alerts changed."""
        fresh = {row.id: row for row in rows}
        old = self._active
        changed = {row.person_id for key, row in old.items() if fresh.get(key) != row}
        changed |= {row.person_id for key, row in fresh.items() if old.get(key) != row}
        self._active = fresh
        self._open_of = {}
        for row in rows:
            self._open_of.setdefault(row.person_id, {})[AlertType(row.type)] = _open_alert(row)
        return changed

    async def _catch_up(self, now: datetime) -> None:
        """Mark the homes a fact changed about since the last tick."""
        previous = self._active
        async with self.db.session() as session:
            reported, self._event_mark = await q.persons_with_new_events(session, self._event_mark)
            changed = self._set_active(await q.active_alerts(session))
            left = [alert_id for alert_id in previous if alert_id not in self._active]
            for person_id, alert_type, at in await q.closed_at(session, left):
                closed = self._closed.setdefault(person_id, {})
                key = AlertType(alert_type)
                closed[key] = max(at, closed.get(key, at))
            away = {row.id: row for row in await q.away_changes(session, now)}
            factor = await q.inactivity_factor(session, now)
        if any(pid not in self._person_rules for pid in reported):
            self._resync_now = True  # somebody new on the register
        self._dirty |= reported | changed
        self._dirty |= {
            row.person_id
            for away_id, row in (*self._away.items(), *away.items())
            if self._away.get(away_id) != away.get(away_id)
        }
        self._away = away
        if factor != self._factor:
            self._factor = factor
            self._dirty |= set(self._person_rules)

    # -- event-driven part ------------------------------------------------------------

    def judge(self, routed: RoutedEvent, door_changed: bool) -> bool:
        """The ingest's activity judge: is this stored report a sign of life?"""
        alive = self.sensors.counts_as_activity(
            routed.event, routed.person_id, door_changed=door_changed
        )
        model = self._routine_of(routed.person_id)
        event = routed.event
        if model is not None and event.kind.is_emergency and not event.retained:
            model.exclude_day(event.received_at.astimezone(self.tz).date())
        if alive and model is not None:
            model.observe(
                min(event.occurred_at, event.received_at),
                left_home=event.kind is EventKind.DOOR,
                where=event.device_uid,
            )
        return alive

    async def on_events(self, events: Sequence[RoutedEvent]) -> None:
        """Stored events go to the rules; emergencies first."""
        for routed in sorted(events, key=lambda r: not r.event.kind.is_emergency):
            await self._apply(self.emergency.decide(routed.event, routed.person_id))
            if self.check_in.applies(routed.event):
                open_alerts = await self.alerts.open_alerts(routed.person_id, WELLBEING)
                facts = [
                    OpenAlert(a.id, AlertType(a.type), AlertStatus(a.status), a.raised_at)
                    for a in open_alerts
                ]
                await self._apply(self.check_in.decide(routed.event, facts))
            self._dirty.add(routed.person_id)
        await self._apply_fault_changes()

    async def _apply_fault_changes(self) -> None:
        changes = self.sensors.take_changes()
        self._dirty |= {change.person_id for change in changes}
        await self._apply(self.sensor_faults.decide(changes, self._person_has_fault))

    def _person_has_fault(self, person_id: int) -> bool:
        return any(
            self.sensors.faulty(uid)
            for uid, owner in self.sensors.owners().items()
            if owner == person_id
        )

    async def _apply(self, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            await self.applier.apply(decision)

    # -- the tick ---------------------------------------------------------------------

    async def tick(self) -> None:
        now = self.clock.now()
        if self._synced_at is None or self._resync_now or now - self._synced_at >= self.resync:
            await self.refresh()
        self.sensors.sweep(now)
        await self._apply_fault_changes()
        await self._sweep_emergencies(now)
        await self._catch_up(now)
        persons = self.due.pop_due(now) | self._dirty
        self._dirty = set()
        await self._judge_homes(persons, now)

    async def run(self, stop: asyncio.Event) -> None:
        """The tick and the broker-link check, until ``stop``."""
        try:
            await asyncio.gather(self._tick_loop(stop), self.watch_broker_link(stop))
        finally:
            if self._warming is not None:
                self._warming.cancel()

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("rules tick failed; retrying")
            await sleep_unless(self.clock, self.poll_seconds, stop)

    async def _homes(self, person_ids: set[int], now: datetime) -> list[HomeFacts]:
        # Somebody taken off the register (moved away, passed away) is not watched; their
        # open technical and door alerts close as if their devices had gone.
        watched = {pid for pid in person_ids if pid in self._person_rules or pid in self._open_of}
        if not watched:
            return []
        device_ids = [
            d for pid in watched if pid in self._person_rules for d in self._devices_of.get(pid, ())
        ]
        async with self.db.session() as session:
            persons = await q.persons(session, watched)
            devices = await q.devices_by_id(session, device_ids)
            away = await q.away_for(session, watched)
        for p in persons:
            if p.removed_at is None and p.id in self._person_rules:
                # A changed override counts from the person's next judgement, not the resync.
                self._person_rules[p.id] = self._effective(p.rules_override)
        devices_of: dict[int, list[DeviceFacts]] = {}
        for d in devices:
            devices_of.setdefault(d.person_id, []).append(
                DeviceFacts(
                    d.uid,
                    d.kind,
                    d.online,
                    d.last_seen_at,
                    d.battery,
                    d.door_open,
                    d.door_changed_at,
                    faulty=self.sensors.faulty(d.uid),
                )
            )
        away_until: dict[int, datetime] = {}
        next_away: dict[int, datetime] = {}
        returned: dict[int, datetime] = {}
        for row in away:
            pid = row.person_id
            if row.starts_at > now:
                next_away[pid] = min(row.starts_at, next_away.get(pid, row.starts_at))
            elif row.ends_at > now:
                away_until[pid] = max(row.ends_at, away_until.get(pid, row.ends_at))
            elif row.ends_at > row.starts_at:
                returned[pid] = max(row.ends_at, returned.get(pid, row.ends_at))
        return [
            HomeFacts(
                person_id=p.id,
                created_at=p.created_at,
                rules=self.rules_for(p.id),
                last_activity=p.last_activity_at,
                devices=tuple(devices_of.get(p.id, ())) if p.removed_at is None else (),
                open_alerts=self._open_of.get(p.id, {}),
                last_closed=self._closed.get(p.id, {}),
                away_until=away_until.get(p.id),
                next_away_start=next_away.get(p.id),
                returned_at=returned.get(p.id),
                inactivity_factor=self._factor,
                routine=self.routines.get(p.id),
            )
            for p in persons
        ]

    async def _judge_homes(self, person_ids: set[int], now: datetime) -> None:
        ordered = sorted(person_ids)
        for start in range(0, len(ordered), _JUDGE_BATCH):
            await self._judge_batch(set(ordered[start : start + _JUDGE_BATCH]), now)
            # A resync judges every home: let the ingest in between batches, so that an SOS
            # never waits behind it.
            await asyncio.sleep(0)

    async def _judge_batch(self, person_ids: set[int], now: datetime) -> None:
        for home in await self._homes(person_ids, now):
            verdicts = (
                self.inactivity.decide(home, now),
                self.night_door.decide(home, now),
                self.device_health.decide(home, now),
            )
            try:
                for verdict in verdicts:
                    await self._apply(verdict.decisions)
            except Exception:
                # Try this home again next tick; the others go on.
                log.exception("rules for person %s failed", home.person_id)
                self._dirty.add(home.person_id)
                continue
            checks = [v.next_check for v in verdicts if v.next_check is not None]
            self.due.schedule(home.person_id, min(checks, default=None))

    # -- safety net for emergencies ---------------------------------------------------

    async def _sweep_emergencies(self, now: datetime) -> None:
        """Raise any SOS/fall that was stored but never became an alert."""
        window = self.sos_sweep.window(now)
        if window is None:
            return
        lower, upper = window
        async with self.db.session() as session:
            candidates = [
                EmergencyCandidate(
                    pid,
                    EventKind(kind),
                    at,
                    uid,
                    covered=await q.event_covered(session, pid, kind, at),
                )
                for pid, kind, at, uid in await q.emergency_events(session, lower, upper)
            ]
        await self._apply(self.sos_sweep.decide(candidates, upper))

    # -- the broker link --------------------------------------------------------------

    async def check_broker_link(self) -> None:
        decision = self.broker_link.decide(self.link_up(), self.clock.now())
        if decision is not None:
            delivered = await self.applier.apply(decision)
            self.broker_link.told(decision, delivered=delivered)

    async def watch_broker_link(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check_broker_link()
            except Exception:
                log.exception("broker link check failed")
            await sleep_unless(self.clock, self.link_poll_seconds, stop)
