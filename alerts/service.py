"""Alert lifecycle and escalation, persisted so that restarts lose and repeat nothing.

Everything is written before anything is sent:

1. A trigger inserts an alert (``open``, ``next_step_at`` = now) and commits.
2. :meth:`AlertService.run_due` claims each due step with a compare-and-set on the
   alert's ``version`` and, in the same transaction, inserts one ``pending`` notification
   per recipient and channel. Two gateway processes racing for a step: one wins.
3. The outbox (:mod:`alerts.outbox`) claims pending notifications by priority
   (``pending`` → ``sending``, again compare-and-set) and hands each to :meth:`_deliver`,
   which records the provider's SID. A failure schedules a retry with backoff; after the
   last retry the step's other channel is tried. A crash while ``sending`` leaves the row
   to be re-sent after a grace period: for an alarm, a rare duplicate beats a lost message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from alerts.channels import ROBOT_CHANNEL, ChannelDispatcher
from alerts.channels.consolidate import outgoing_of
from alerts.channels.team_robot import ROBOT_ROLE, village_has_robot
from alerts.notifiers.base import DeliveryError, Notifier
from alerts.outbox import (
    SENDING_GRACE,
    Outbox,
    Priority,
    Recipient,
    Wake,
    new_notification,
    priority_for,
)
from alerts.templates import ALERT_TEMPLATES
from alerts.types import ALERT_LABELS, AlertGroup, AlertStatus, AlertTrigger, AlertType
from gateway import audit
from gateway.clock import Clock, sleep_unless
from gateway.config import EscalationConfig, EscalationStep, OutboxConfig, RulesConfig
from gateway.privacy import mask_phone, redact
from gateway.storage.db import Database
from gateway.storage.models import (
    Alert,
    AlertNote,
    Helper,
    Notification,
    Person,
    TeamMember,
    Town,
    Village,
)

__all__ = [
    "SENDING_GRACE",
    "AckResult",
    "AlertConflictError",
    "AlertService",
    "AlertStateError",
    "Recipient",
]

log = logging.getLogger(__name__)

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud over a phone
#: Delays before attempt 2, 3, ... of one delivery.
RETRY_DELAYS = (timedelta(seconds=20), timedelta(seconds=60))
#: Still being handled: one such alert per person and type (the partial unique index).
_ACTIVE_STATUSES = (AlertStatus.OPEN.value, AlertStatus.ACKNOWLEDGED.value)
FAILED_STATUSES = frozenset({"failed", "undelivered", "no-answer", "busy", "canceled"})


class AlertStateError(ValueError):
    """The alert is not in a status that allows the action (the API answers 409)."""


class AlertConflictError(AlertStateError):
    """Re-opening would make a second active alert of one person and type."""

    def __init__(self, alert_code: str, other_code: str) -> None:
        super().__init__(
            f"alert {alert_code} cannot be re-opened: alert {other_code} of the same person "
            "and type is still open"
        )
        self.other_code = other_code


@dataclass(frozen=True, slots=True)
class AckResult:
    alert_id: int
    code: str
    acknowledged_by: str
    already: bool


def national_phone(e164: str | None) -> str:
    """What a Chinese reader dials: +8613700000001 -> 13700000001."""
    if not e164:
        return "无"
    if e164.startswith("+86"):
        rest = e164[3:]
        return rest if rest.startswith("1") else "0" + rest
    return e164


class AlertService:
    """Raises, escalates, acknowledges and resolves alerts."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        notifier: Notifier,
        *,
        escalation: EscalationConfig,
        rules: RulesConfig,
        public_url: str,
        timezone: ZoneInfo,
        worker_id: str,
        on_alert_raised: Any = None,
        on_notification: Any = None,
        outbox: OutboxConfig | None = None,
        channels: ChannelDispatcher | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.notifier = notifier
        #: The provider per recipient (SPEC §11); without it, ``notifier`` carries everything.
        self.channels = channels or ChannelDispatcher.single(notifier, public_url)
        self.escalation = escalation
        self.rules = rules
        self.public_url = public_url.rstrip("/")
        self.tz = timezone
        self.worker_id = worker_id
        self._on_alert_raised = on_alert_raised
        self._on_notification = on_notification
        #: Set whenever a step may be due or a message was queued; heard by the escalation
        #: loop and both outbox lanes.
        self.wake = Wake()
        self.outbox = Outbox(
            db,
            clock,
            deliver=self._deliver,
            provider_of=self._provider_of,
            worker_id=worker_id,
            config=outbox or OutboxConfig(),
            wake=self.wake,
        )

    # -- raising ----------------------------------------------------------------------

    def steps(self, group: AlertGroup | str) -> tuple[EscalationStep, ...]:
        steps: tuple[EscalationStep, ...] = getattr(self.escalation, str(group))
        return steps

    async def raise_alert(self, trigger: AlertTrigger) -> tuple[Alert, bool]:
        """Open an alert, or join the open one of that person and type. True when new."""
        for _attempt in range(3):
            async with self.db.session() as session, session.begin():
                existing = await self._open_alert(session, trigger.person_id, trigger.type)
                if existing is None and trigger.type in (AlertType.SOS, AlertType.FALL):
                    existing = await self._recent_closed(session, trigger)
                if existing is not None:
                    existing.trigger_count += 1
                    existing.last_trigger_at = max(existing.last_trigger_at, trigger.at)
                    return existing, False
                now = self.clock.now()
                alert = Alert(
                    code=_new_code(),
                    type=trigger.type.value,
                    group=trigger.type.group.value,
                    status=AlertStatus.OPEN.value,
                    person_id=trigger.person_id,
                    device_uid=trigger.device_uid,
                    raised_at=now,
                    last_trigger_at=trigger.at,
                    trigger_count=1,
                    detail=dict(trigger.detail),
                    step_index=-1,
                    step_round=0,
                    next_step_at=now,
                    version=0,
                )
                session.add(alert)
                try:
                    await session.flush()
                except IntegrityError:
                    # Another process opened it a moment ago (or the code collided): join it.
                    await session.rollback()
                    continue
            # INFO: raising an alert is the gateway doing its job, not something going wrong.
            log.info("alert %s raised: %s for person %s", alert.code, alert.type, alert.person_id)
            if self._on_alert_raised is not None:
                self._on_alert_raised(alert)
            self.wake.set()
            return alert, True
        raise RuntimeError("could not raise or join an alert after 3 attempts")

    async def _open_alert(
        self, session: AsyncSession, person_id: int, alert_type: AlertType
    ) -> Alert | None:
        result = await session.execute(
            select(Alert).where(
                Alert.person_id == person_id,
                Alert.type == alert_type.value,
                Alert.status.in_(_ACTIVE_STATUSES),
            )
        )
        return result.scalar_one_or_none()

    async def _recent_closed(self, session: AsyncSession, trigger: AlertTrigger) -> Alert | None:
        """A press within ``sos_debounce`` of the last one belongs to that alert, even if
        somebody closed it in between (a stuck or double-reporting button)."""
        horizon = trigger.at - self.rules.sos_debounce
        result = await session.execute(
            select(Alert)
            .where(
                Alert.person_id == trigger.person_id,
                Alert.type == trigger.type.value,
                Alert.last_trigger_at >= horizon,
            )
            .order_by(Alert.id.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    # -- escalation -------------------------------------------------------------------

    async def run_due(self) -> int:
        """Claim and queue every escalation step that is due. Returns steps claimed."""
        now = self.clock.now()
        async with self.db.session() as session:
            due = (
                await session.execute(
                    select(Alert.id, Alert.version)
                    .where(Alert.status == AlertStatus.OPEN.value, Alert.next_step_at <= now)
                    .order_by(Alert.next_step_at)
                    .limit(200)
                )
            ).all()
        claimed = 0
        for alert_id, version in due:
            if await self._claim_step(alert_id, version, now):
                claimed += 1
        return claimed

    async def _claim_step(self, alert_id: int, version: int, now: datetime) -> bool:
        async with self.db.session() as session, session.begin():
            alert = await session.get(Alert, alert_id, options=[selectinload(Alert.person)])
            if alert is None or alert.version != version:
                return False
            steps = self.steps(alert.group)
            index = alert.step_index + 1
            step_round = alert.step_round
            if index >= len(steps):
                if not steps[-1].repeat:
                    alert.next_step_at = None
                    return False
                index = len(steps) - 1
                step_round += 1
            step = steps[index]
            is_last = index == len(steps) - 1
            # After a final step that does not repeat there is nobody further to call; the
            # alert stays open (and listed) until somebody acknowledges it.
            next_at = now + step.wait if (not is_last or step.repeat) else None
            result = await session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.version == version)
                .values(
                    step_index=index,
                    step_round=step_round,
                    next_step_at=next_at,
                    version=version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            recipients = await self._recipients(session, alert.person, step.notify)
            if not recipients and not is_last:
                log.error(
                    "alert %s step %d (%s): nobody to notify; escalating on",
                    alert.code,
                    index,
                    step.notify,
                )
                await session.execute(
                    update(Alert)
                    .where(Alert.id == alert_id)
                    .values(next_step_at=now)
                    .execution_options(synchronize_session=False)
                )
            elif not recipients:
                # Nobody further to escalate to: wait the step's time as if it had been sent,
                # rather than re-claiming it on every pass.
                log.error("alert %s last step (%s): nobody to notify", alert.code, step.notify)
            params = await self._alert_params(session, alert)
            template = self._alert_template(alert, step)
            for recipient in recipients:
                for channel in step.channels:
                    session.add(
                        self._notification(
                            alert_id=alert.id,
                            purpose="alert",
                            template=template,
                            recipient=recipient,
                            channel=channel,
                            params=params,
                            step_index=index,
                            step_round=step_round,
                            now=now,
                            priority=priority_for("alert", alert.group),
                        )
                    )
            robot_village = await self._team_robot(session, alert, step)
            if robot_village is not None:
                session.add(
                    self._notification(
                        alert_id=alert.id,
                        purpose="alert",
                        template=template,
                        recipient=Recipient(ROBOT_ROLE, robot_village, ""),
                        channel=ROBOT_CHANNEL,
                        params=params,
                        step_index=index,
                        step_round=step_round,
                        now=now,
                        priority=priority_for("alert", alert.group),
                    )
                )
        self.wake.set()
        return True

    async def _team_robot(
        self, session: AsyncSession, alert: Alert, step: EscalationStep
    ) -> str | None:
        """An emergency step for the village team also goes to its group robot (SPEC §11)."""
        if self.channels.robots is None or step.notify != "village_team":
            return None
        if alert.group != AlertGroup.EMERGENCY.value:
            return None
        return await village_has_robot(session, alert.person.village_id)

    def _alert_template(self, alert: Alert, step: EscalationStep) -> str:
        if step.notify == "resident" and alert.group == AlertGroup.WELLBEING.value:
            return "inactivity_check"
        return ALERT_TEMPLATES[alert.type]

    async def _recipients(
        self, session: AsyncSession, person: Person, notify: str
    ) -> list[Recipient]:
        if notify == "resident":
            return [Recipient("resident", person.name, person.phone)] if person.phone else []
        if notify == "helper":
            if person.helper_id is None:
                return []
            helper = await session.get(Helper, person.helper_id)
            return [Recipient("helper", helper.name, helper.phone)] if helper else []
        if notify == "village_team":
            members = (
                await session.execute(
                    select(TeamMember)
                    .where(TeamMember.village_id == person.village_id)
                    .order_by(TeamMember.id)
                )
            ).scalars()
            return [Recipient("village_team", m.name, m.phone) for m in members]
        if notify == "town_duty":
            town = (await session.execute(select(Town).limit(1))).scalar_one_or_none()
            return [Recipient("town_duty", town.duty_name, town.duty_phone)] if town else []
        raise ValueError(f"unknown recipient kind {notify!r}")

    async def _alert_params(self, session: AsyncSession, alert: Alert) -> dict[str, str]:
        person = alert.person
        village = await session.get(Village, person.village_id)
        village_name = village.name if village else ""
        local = alert.raised_at.astimezone(self.tz)
        return {
            "name": person.name,
            "village": village_name,
            "address": person.address or village_name,
            "time": alert.detail.get("time", local.strftime("%H:%M")),
            "date": local.strftime("%m月%d日"),
            "phone": national_phone(person.phone),
            "code": alert.code,
            "what": ALERT_LABELS[AlertType(alert.type)],
            "person": f"{village_name}{person.name}",
            "since": alert.detail.get("since", local.strftime("%H:%M")),
            "device": alert.detail.get("device_label", alert.device_uid or "设备"),
            "battery": alert.detail.get("battery", ""),
            "gateway": alert.detail.get("gateway", ""),
            "fault": alert.detail.get("fault_label", ""),
        }

    #: An outbox row; ``priority`` defaults by purpose (:func:`alerts.outbox.priority_for`).
    _notification = staticmethod(new_notification)

    # -- delivery ---------------------------------------------------------------------

    async def send_pending(self) -> int:
        """Claim by priority and send everything due now (routine as far as its rate allows),
        batch by batch. Returns sends tried."""
        return await self.outbox.send_pending()

    def _provider_of(self, channel: str, phone: str) -> str:
        """The provider carrying a message (the outbox paces routine messages per provider)."""
        if channel == ROBOT_CHANNEL:
            return ROBOT_CHANNEL
        return self.channels.resolver.provider(phone, channel)

    async def _still_wanted(self, session: AsyncSession, row: Notification) -> bool:
        """An alert acknowledged while its message waited (e.g. a retry) needs no more calls."""
        if row.alert_id is None:
            return True
        alert = await session.get(Alert, row.alert_id)
        return alert is not None and alert.status == AlertStatus.OPEN.value

    async def _deliver(self, row: Notification) -> None:
        try:
            sent = await self.channels.deliver(outgoing_of(row))
            delivery = sent.delivery
        except DeliveryError as error:
            log.warning(
                "delivery %s to %s via %s failed (attempt %d): %s",
                row.id,
                mask_phone(row.recipient_phone),
                row.channel,
                row.attempt,
                redact(str(error)),
            )
            await self._record_failure(
                row.id,
                str(error),
                retryable=error.retryable,
                status="throttled" if error.status == "throttled" else "failed",
            )
            return
        except Exception as error:  # a notifier bug must not kill the worker
            log.exception("notifier raised unexpectedly for notification %s", row.id)
            await self._record_failure(row.id, repr(error), retryable=True)
            return
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(Notification)
                .where(Notification.id == row.id)
                .values(
                    status=delivery.status or "sent",
                    sid=delivery.sid,
                    provider=sent.provider,
                    body=sent.body or row.body,
                    sent_at=now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        self._count(row.channel, "sent")
        if delivery.status in FAILED_STATUSES:
            await self._record_failure(row.id, delivery.status, retryable=True)

    def _count(self, channel: str, status: str) -> None:
        if self._on_notification is not None:
            self._on_notification(channel, status)

    async def _record_failure(
        self, notification_id: int, error: str, *, retryable: bool, status: str = "failed"
    ) -> None:
        """Mark an attempt failed (or ``throttled``) and schedule what comes next: a retry,
        else the other channel of the step (if it has one), else nothing (the next step
        still comes)."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            row = await session.get(Notification, notification_id)
            if row is None or row.failure_handled:
                return
            row.status = status if row.status in ("sending", "pending") else row.status
            row.error = error[:500]
            row.failure_handled = True
            row.updated_at = now
            self._count(row.channel, status)
            if row.purpose == "alert" and not await self._still_wanted(session, row):
                return
            if retryable and row.attempt <= len(RETRY_DELAYS):
                session.add(
                    self._clone(
                        row,
                        channel=row.channel,
                        attempt=row.attempt + 1,
                        not_before=now + RETRY_DELAYS[row.attempt - 1],
                        now=now,
                    )
                )
            else:
                other = await self._fallback_channel(session, row)
                if other is not None:
                    session.add(self._clone(row, channel=other, attempt=1, not_before=now, now=now))
        self.wake.set()

    async def _fallback_channel(self, session: AsyncSession, row: Notification) -> str | None:
        """The step's other channel, unless it already got through to this recipient."""
        if row.alert_id is None or row.step_index is None or row.channel == ROBOT_CHANNEL:
            return None
        alert = await session.get(Alert, row.alert_id)
        if alert is None:
            return None
        steps = self.steps(alert.group)
        step = steps[min(row.step_index, len(steps) - 1)]
        others = [c for c in step.channels if c != row.channel]
        if not others and row.status == "throttled":
            # Over the carriers' budget the step goes by voice even if it had none (SPEC §11).
            others = ["voice"]
        if not others:
            return None
        other = others[0]
        got_through = (
            await session.execute(
                select(Notification.id).where(
                    Notification.alert_id == row.alert_id,
                    Notification.step_index == row.step_index,
                    Notification.step_round == row.step_round,
                    Notification.recipient_phone_bidx == row.recipient_phone,
                    Notification.channel == other,
                    Notification.status.notin_([*FAILED_STATUSES, "skipped"]),
                )
            )
        ).first()
        return None if got_through is not None else other

    def _clone(
        self,
        row: Notification,
        *,
        channel: str,
        attempt: int,
        not_before: datetime,
        now: datetime,
    ) -> Notification:
        """Another attempt of ``row``: same template and parameters, rendered for ``channel``."""
        return self._notification(
            alert_id=row.alert_id,
            purpose=row.purpose,
            template=row.template,
            recipient=Recipient(row.recipient_role, row.recipient_name, row.recipient_phone),
            channel=channel,
            params=row.params,
            now=now,
            step_index=row.step_index,
            step_round=row.step_round,
            attempt=attempt,
            not_before=not_before,
            priority=Priority(row.priority),
        )

    async def status_callback(self, sid: str, status: str, error_code: str | None = None) -> bool:
        """A Twilio delivery status for a message or call we sent. True when it was ours."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            row = (
                await session.execute(select(Notification).where(Notification.sid == sid))
            ).scalar_one_or_none()
            if row is None:
                return False
            row.status = status
            row.updated_at = now
            if error_code:
                row.error = f"twilio error {error_code}"
            notification_id = row.id
            failed = status in FAILED_STATUSES and not row.failure_handled
            channel = row.channel
        self._count(channel, status)
        if failed:
            await self._record_failure(notification_id, status, retryable=True)
        return True

    # -- acknowledgement ---------------------------------------------------------------

    async def acknowledge(
        self, alert_id: int, by: str, *, via_phone: str | None = None, channel: str = "system"
    ) -> AckResult:
        """Stop the escalation; tell everyone already notified who took it."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            alert = await session.get(Alert, alert_id, options=[selectinload(Alert.person)])
            if alert is None:
                raise LookupError(f"no alert {alert_id}")
            if alert.status != AlertStatus.OPEN.value:
                return AckResult(alert.id, alert.code, alert.acknowledged_by or "", True)
            result = await session.execute(
                update(Alert)
                .where(
                    Alert.id == alert_id,
                    Alert.version == alert.version,
                    Alert.status == AlertStatus.OPEN.value,
                )
                .values(
                    status=AlertStatus.ACKNOWLEDGED.value,
                    acknowledged_at=now,
                    acknowledged_by=by,
                    next_step_at=None,
                    version=alert.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return await self.acknowledge(alert_id, by, via_phone=via_phone, channel=channel)
            _audit_alert(
                session, now, by, "acknowledge", alert_id, code=alert.code, channel=channel
            )
            # Calls and retries not yet placed are no longer wanted.
            await _skip_pending(session, alert_id, now, purpose="alert")
            params = await self._alert_params(session, alert)
            await self._tell_everyone(
                session, alert.id, "taken", params | {"taker": by}, now, except_phone=via_phone
            )
            if via_phone:
                session.add(
                    self._notification(
                        alert_id=alert.id,
                        purpose="confirm",
                        template="ack_confirm",
                        recipient=Recipient("acker", by, via_phone),
                        channel="sms",
                        params=params,
                        now=now,
                    )
                )
            code = alert.code
        self.wake.set()
        log.info("alert %s acknowledged by %s", code, by)
        return AckResult(alert_id, code, by, False)

    async def _tell_everyone(
        self,
        session: AsyncSession,
        alert_id: int,
        template: str,
        params: dict[str, str],
        now: datetime,
        *,
        except_phone: str | None,
    ) -> None:
        rows = (
            await session.execute(
                select(
                    Notification.recipient_phone,
                    Notification.recipient_name,
                    Notification.recipient_role,
                )
                .where(
                    Notification.alert_id == alert_id,
                    Notification.purpose == "alert",
                    Notification.status.notin_(["pending", "skipped"]),
                )
                .order_by(Notification.id)
            )
        ).all()
        seen: set[str] = set()
        for phone, name, role in rows:
            if phone in seen or phone == except_phone or role == "resident":
                continue
            seen.add(phone)
            session.add(
                self._notification(
                    alert_id=alert_id,
                    purpose=template,
                    template=template,
                    recipient=Recipient(role, name, phone),
                    channel=ROBOT_CHANNEL if role == ROBOT_ROLE else "sms",
                    params=params,
                    now=now,
                )
            )

    async def acknowledge_by_sms(self, from_phone: str, body: str) -> AckResult | None:
        """``1`` acknowledges the newest open alert this phone was notified of; an alert code
        picks one. A number that was never notified acknowledges nothing."""
        text = body.strip().upper()
        async with self.db.session() as session:
            query = (
                select(Alert.id, Notification.recipient_name)
                .join(Notification, Notification.alert_id == Alert.id)
                .where(
                    Notification.recipient_phone_bidx == from_phone,
                    Notification.purpose == "alert",
                    Notification.status.notin_(["pending", "skipped"]),
                    Alert.status.in_(_ACTIVE_STATUSES),
                )
                .order_by(Alert.status.desc(), Alert.raised_at.desc())
            )
            if text not in ("1", "１"):
                query = query.where(Alert.code == text[:8])
            row = (await session.execute(query.limit(1))).first()
        if row is None:
            return None
        alert_id, name = row
        return await self.acknowledge(alert_id, name, via_phone=from_phone, channel="sms")

    async def notification_by_token(self, token: str) -> Notification | None:
        async with self.db.session() as session:
            return (
                await session.execute(select(Notification).where(Notification.token == token))
            ).scalar_one_or_none()

    async def acknowledge_by_call(self, token: str, digits: str) -> AckResult | None:
        row = await self.notification_by_token(token)
        if row is None or row.alert_id is None or digits.strip() != "1":
            return None
        if row.recipient_role == "resident":
            # The resident pressing 1 on an "are you all right?" call means they are fine.
            await self.cancel(
                row.alert_id, by=row.recipient_name, reason="resident_ok", channel="voice"
            )
            return AckResult(row.alert_id, "", row.recipient_name, False)
        return await self.acknowledge(row.alert_id, row.recipient_name, channel="voice")

    async def resolve(
        self, alert_id: int, by: str, note: str | None = None, *, channel: str = "system"
    ) -> Alert:
        """Close the alert; everybody already notified hears it is over (``resolved``)."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            alert = await session.get(Alert, alert_id, options=[selectinload(Alert.person)])
            if alert is None:
                raise LookupError(f"no alert {alert_id}")
            if alert.status in (AlertStatus.RESOLVED.value, AlertStatus.CANCELLED.value):
                return alert
            if alert.acknowledged_at is None:
                alert.acknowledged_at = now
                alert.acknowledged_by = by
            alert.status = AlertStatus.RESOLVED.value
            alert.resolved_at = now
            alert.resolved_by = by
            alert.resolution_note = note
            alert.next_step_at = None
            alert.version += 1
            _audit_alert(session, now, by, "resolve", alert_id, code=alert.code, channel=channel)
            await _skip_pending(session, alert_id, now)
            # After _skip_pending, which would otherwise skip these too. A helper who was
            # called about it must not be left wondering whether somebody went.
            params = await self._alert_params(session, alert)
            await self._tell_everyone(
                session, alert.id, "resolved", params | {"by": by}, now, except_phone=None
            )
        self.wake.set()
        log.info("alert %s resolved by %s", alert.code, by)
        return alert

    async def cancel(self, alert_id: int, *, by: str, reason: str, channel: str = "system") -> bool:
        """Close an alert that turned out unnecessary (e.g. the resident checked in)."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(Alert)
                .where(
                    Alert.id == alert_id,
                    Alert.status.in_(_ACTIVE_STATUSES),
                )
                .values(
                    status=AlertStatus.CANCELLED.value,
                    cancelled_at=now,
                    resolved_by=by,
                    resolution_note=reason,
                    next_step_at=None,
                    version=Alert.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            _audit_alert(session, now, by, "cancel", alert_id, reason=reason, channel=channel)
            await _skip_pending(session, alert_id, now)
        self.wake.set()
        return True

    async def reopen(self, alert_id: int, by: str, note: str, *, channel: str = "web") -> Alert:
        """A closed alert (closed by mistake, or the resident is not fine after all) is open
        again and escalates from its first step, as a new alert would."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            alert = await session.get(Alert, alert_id)
            if alert is None:
                raise LookupError(f"no alert {alert_id}")
            if alert.status not in (AlertStatus.RESOLVED.value, AlertStatus.CANCELLED.value):
                raise AlertStateError(f"alert {alert.code} is {alert.status}, not closed")
            other = await self._open_alert(session, alert.person_id, AlertType(alert.type))
            if other is not None:
                raise AlertConflictError(alert.code, other.code)
            closed = f"{alert.status} by {alert.resolved_by or '?'}"
            # A new round keeps the new messages apart from the first life's in the
            # fallback bookkeeping, which matches on (step_index, step_round).
            result = await session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.version == alert.version)
                .values(
                    status=AlertStatus.OPEN.value,
                    step_index=-1,
                    step_round=alert.step_round + 1,
                    next_step_at=now,
                    acknowledged_at=None,
                    acknowledged_by=None,
                    resolved_at=None,
                    resolved_by=None,
                    resolution_note=None,
                    cancelled_at=None,
                    close_cause=None,
                    version=alert.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise AlertStateError(f"alert {alert.code} changed meanwhile; try again")
            # The row forgets who closed it; the timeline keeps it in words.
            was = "处理完毕" if alert.status == AlertStatus.RESOLVED.value else "已取消"
            text = f"重新打开（此前{was}，{alert.resolved_by or '—'}）：{note}"
            session.add(AlertNote(alert_id=alert_id, at=now, author=by, text=text))
            _audit_alert(
                session, now, by, "reopen", alert_id, code=alert.code, channel=channel, was=closed
            )
            try:
                await session.flush()
            except IntegrityError as error:
                # Another alert of that person and type was raised a moment ago.
                raise AlertStateError(
                    f"alert {alert.code} cannot be re-opened: another alert of the same "
                    "person and type was just raised"
                ) from error
            code = alert.code
        async with self.db.session() as session:
            reopened = await session.get(Alert, alert_id)
        assert reopened is not None
        log.info("alert %s re-opened by %s (was %s)", code, by, closed)
        self.wake.set()
        return reopened

    async def hand_over(
        self, alert_id: int, by: str, to: str, note: str = "", *, channel: str = "web"
    ) -> Alert:
        """Whoever took the alert passes it on to a named person; the log shows who to whom."""
        to = to.strip()
        if not to:
            raise ValueError("to: the person taking the alert over must be named")
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            alert = await session.get(Alert, alert_id)
            if alert is None:
                raise LookupError(f"no alert {alert_id}")
            if alert.status != AlertStatus.ACKNOWLEDGED.value:
                raise AlertStateError(
                    f"alert {alert.code} is {alert.status}: only an acknowledged alert "
                    "can be handed over"
                )
            previous = alert.acknowledged_by or ""
            alert.acknowledged_by = to
            alert.version += 1
            text = f"交接：{previous} → {to}" + (f"（{note.strip()}）" if note.strip() else "")
            session.add(AlertNote(alert_id=alert_id, at=now, author=by, text=text))
            _audit_alert(
                session,
                now,
                by,
                "handover",
                alert_id,
                code=alert.code,
                channel=channel,
                previous=previous,
                to=to,
            )
        log.info("alert %s handed over by %s: %s -> %s", alert.code, by, previous, to)
        return alert

    async def notify_town_duty(self, template: str, params: dict[str, str]) -> bool:
        """An SMS straight to the town duty line, outside any alert (the system itself is
        failing, e.g. the broker is unreachable). False when no duty line is registered."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            town = (await session.execute(select(Town).limit(1))).scalar_one_or_none()
            if town is None:
                log.error("no town duty line registered: cannot send %s", template)
                return False
            session.add(
                self._notification(
                    alert_id=None,
                    purpose="system",
                    template=template,
                    recipient=Recipient("town_duty", town.duty_name, town.duty_phone),
                    channel="sms",
                    params=params,
                    now=now,
                )
            )
        self.wake.set()
        return True

    async def open_alerts(self, person_id: int, types: Sequence[AlertType]) -> list[Alert]:
        async with self.db.session() as session:
            return list(
                (
                    await session.execute(
                        select(Alert).where(
                            Alert.person_id == person_id,
                            Alert.type.in_([t.value for t in types]),
                            Alert.status.in_(_ACTIVE_STATUSES),
                        )
                    )
                ).scalars()
            )

    # -- the worker -------------------------------------------------------------------

    async def tick(self) -> None:
        """One pass: claim due steps, send what is pending. Safe to call at any time."""
        await self.run_due()
        await self.send_pending()

    async def run(self, stop: asyncio.Event, *, poll_seconds: float = 1.0) -> None:
        """Escalation and the outbox's lanes side by side: claiming a step never waits for
        a send, and an SOS send never waits behind routine ones."""
        await asyncio.gather(
            self._escalate(stop, poll_seconds),
            self.outbox.run(stop, poll_seconds=poll_seconds),
        )

    async def _escalate(self, stop: asyncio.Event, poll_seconds: float) -> None:
        wake = self.wake.listener()
        while not stop.is_set():
            wake.clear()
            try:
                await self.run_due()
            except Exception:
                log.exception("escalation pass failed; retrying")
            await sleep_unless(self.clock, poll_seconds, wake, stop)


def _audit_alert(
    session: AsyncSession, now: datetime, by: str, action: str, alert_id: int, **detail: str
) -> None:
    """The trail of who took, closed or cancelled an alert and by which channel (SPEC §10)."""
    audit.record(
        session, now=now, actor=by, action=action, entity="alert", entity_id=alert_id, detail=detail
    )


async def _skip_pending(
    session: AsyncSession, alert_id: int, now: datetime, *, purpose: str | None = None
) -> None:
    """Messages of an alert not yet sent (of ``purpose``, or all) are no longer wanted."""
    conditions = [Notification.alert_id == alert_id, Notification.status == "pending"]
    if purpose is not None:
        conditions.append(Notification.purpose == purpose)
    await session.execute(
        update(Notification)
        .where(*conditions)
        .values(status="skipped", updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4))
