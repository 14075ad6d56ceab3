"""Decisions become alert-service calls; typed details become the templates' parameters
(the labels and Chinese text live with the templates, never in the rules)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.service import AlertService
from alerts.templates import DEVICE_LABELS, RESOLUTION_NOTES, SENSOR_FAULT_LABELS, SYSTEM_ACTOR
from alerts.types import AlertTrigger
from gateway.rules.decisions import (
    Actor,
    BatteryDetail,
    CensorRoutine,
    Decision,
    DoorOpenDetail,
    EmergencyDetail,
    ExcludeFromRoutine,
    InactivityDetail,
    LinkChange,
    OfflineDetail,
    Raise,
    Resolve,
    ResolveAllOpen,
    SensorFaultDetail,
    TellDuty,
    Withdraw,
)
from gateway.rules.quiet import InactivityDue, inactivity_detail
from gateway.rules.routine import RoutineModel
from gateway.rules_runner.learning import PendingRoutine

__all__ = ["DecisionApplier", "params_of", "trigger_of"]

log = logging.getLogger(__name__)


def _hhmm(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M")


def params_of(decision: Raise, tz: ZoneInfo) -> dict[str, str]:
    """The alert's detail, as the templates and the console read it."""
    detail = decision.detail
    if isinstance(detail, EmergencyDetail):
        return {}
    if isinstance(detail, InactivityDetail):
        noticed = detail.noticed_at or decision.at
        due = InactivityDue(noticed, detail.baseline, detail.usual_by)
        return inactivity_detail(due, noticed, tz)
    if isinstance(detail, DoorOpenDetail):
        return {
            "time": _hhmm(detail.opened_at, tz),
            "device_label": DEVICE_LABELS.get(detail.device_kind, "门磁"),
        }
    if isinstance(detail, OfflineDetail):
        return {
            "device_label": DEVICE_LABELS.get(detail.device_kind, "设备"),
            "since": detail.since.astimezone(tz).strftime("%m月%d日%H:%M"),
        }
    if isinstance(detail, BatteryDetail):
        return {
            "device_label": DEVICE_LABELS.get(detail.device_kind, "设备"),
            "battery": str(detail.battery),
        }
    assert isinstance(detail, SensorFaultDetail)
    fault_label, device_label = SENSOR_FAULT_LABELS[detail.fault.value]
    return {"fault": detail.fault.value, "fault_label": fault_label, "device_label": device_label}


def trigger_of(decision: Raise, tz: ZoneInfo) -> AlertTrigger:
    return AlertTrigger(
        type=decision.type,
        person_id=decision.person_id,
        at=decision.at,
        device_uid=decision.device_uid,
        detail=params_of(decision, tz),
    )


def _actor(actor: Actor) -> str:
    return SYSTEM_ACTOR if actor is Actor.SYSTEM else actor.value


class DecisionApplier:
    """The one place rule decisions reach the alert service."""

    def __init__(
        self,
        alerts: AlertService,
        tz: ZoneInfo,
        *,
        gateway_name: str,
        routine_of: Callable[[int], RoutineModel | PendingRoutine | None],
    ) -> None:
        self.alerts = alerts
        self.tz = tz
        self.gateway_name = gateway_name
        self.routine_of = routine_of

    async def apply(self, decision: Decision) -> bool:
        """Carry out one decision; for :class:`TellDuty`, whether the duty line was told."""
        if isinstance(decision, Raise):
            await self.alerts.raise_alert(trigger_of(decision, self.tz))
        elif isinstance(decision, Withdraw):
            await self.alerts.cancel(
                decision.alert_id, by=_actor(decision.by), reason=decision.why.value
            )
        elif isinstance(decision, Resolve):
            await self.alerts.resolve(
                decision.alert_id, by=SYSTEM_ACTOR, note=RESOLUTION_NOTES[decision.why.value]
            )
        elif isinstance(decision, ResolveAllOpen):
            for alert in await self.alerts.open_alerts(decision.person_id, [decision.type]):
                await self.alerts.resolve(
                    alert.id, by=SYSTEM_ACTOR, note=RESOLUTION_NOTES[decision.why.value]
                )
        elif isinstance(decision, TellDuty):
            return await self._tell_duty(decision)
        elif isinstance(decision, ExcludeFromRoutine | CensorRoutine):
            routine = self.routine_of(decision.person_id)
            if routine is not None:
                if isinstance(decision, CensorRoutine):
                    routine.censor(decision.at)
                else:
                    routine.exclude(decision.at, decision.at)
        return True

    async def _tell_duty(self, decision: TellDuty) -> bool:
        since = _hhmm(decision.since, self.tz)
        if decision.change is LinkChange.DOWN:
            log.error("broker unreachable since %s: telling the town duty line", since)
            template = "gateway_link"
        else:
            template = "gateway_link_restored"
        return await self.alerts.notify_town_duty(
            template, {"gateway": self.gateway_name, "since": since}
        )
