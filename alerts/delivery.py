"""Delivery of a claimed notification, and what happens when it does not get through.

The outbox (:mod:`alerts.outbox`) claims rows and hands each to :meth:`Courier.deliver`,
which sends it through the channel its recipient is routed to and records the provider's
SID. A failure schedules a retry with backoff; after the last retry the step's other channel
(from the alert's own chain snapshot) is tried. Status callbacks from a provider (Twilio's,
Aliyun's receipts) land in :meth:`Courier.status_callback` and take the same failure path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.channels.consolidate import outgoing_of
from alerts.channels.dispatch import ROBOT_CHANNEL, ChannelDispatcher
from alerts.escalation import Escalator
from alerts.notifiers.base import DeliveryError
from alerts.outbox import Priority, Recipient, Wake, enqueue
from alerts.types import AlertStatus
from gateway.clock import Clock
from gateway.privacy import mask_phone, redact
from gateway.register.phones import takes_sms
from gateway.storage.db import Database
from gateway.storage.models import Alert, Notification

__all__ = ["FAILED_STATUSES", "RETRY_DELAYS", "Courier"]

log = logging.getLogger(__name__)

#: Delays before attempt 2, 3, ... of one delivery.
RETRY_DELAYS = (timedelta(seconds=20), timedelta(seconds=60))
FAILED_STATUSES = frozenset({"failed", "undelivered", "no-answer", "busy", "canceled"})

OnNotification = Callable[[str, str], object]


class Courier:
    """Sends claimed rows, records outcomes, retries and falls back.

    Args:
        db: The shared database.
        clock: Injected time (retry due times).
        channels: The provider per recipient (SPEC §11).
        escalator: The alert's own chain, for the fallback channel of a step.
        wake: Set when a retry or fallback was queued.
        on_notification: Counts ``(channel, status)`` for the metrics, if given.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        channels: ChannelDispatcher,
        escalator: Escalator,
        wake: Wake,
        on_notification: OnNotification | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.channels = channels
        self.escalator = escalator
        self.wake = wake
        self._on_notification = on_notification

    def provider_of(self, channel: str, phone: str) -> str:
        """The provider carrying a message (the outbox paces routine messages per provider)."""
        if channel == ROBOT_CHANNEL:
            return ROBOT_CHANNEL
        return self.channels.resolver.provider(phone, channel)

    async def deliver(self, row: Notification) -> None:
        """Send one claimed row and record what the provider said; never raises."""
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
            await self.record_failure(
                row.id,
                str(error),
                retryable=error.retryable,
                status="throttled" if error.status == "throttled" else "failed",
            )
            return
        except Exception as error:  # a notifier bug must not kill the worker
            log.exception("notifier raised unexpectedly for notification %s", row.id)
            await self.record_failure(row.id, repr(error), retryable=True)
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
            await self.record_failure(row.id, delivery.status, retryable=True)

    def _count(self, channel: str, status: str) -> None:
        if self._on_notification is not None:
            self._on_notification(channel, status)

    async def status_callback(self, sid: str, status: str, error_code: str | None = None) -> bool:
        """A provider's delivery status for a message or call we sent. True when it was ours."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            row = (
                await session.execute(select(Notification).where(Notification.sid == sid))
            ).scalar_one_or_none()
            if row is None:
                return False
            row.status = status
            row.updated_at = now
            # Aliyun's receipts come here too: name whoever carried it, and keep the code
            # through the failure handling (an operator looks the code up, not "failed").
            error = f"{row.provider or 'provider'} error {error_code}" if error_code else status
            if error_code:
                row.error = error
            notification_id = row.id
            failed = status in FAILED_STATUSES and not row.failure_handled
            channel = row.channel
        self._count(channel, status)
        if failed:
            await self.record_failure(notification_id, error, retryable=True)
        return True

    async def record_failure(
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
            if row.purpose == "alert" and not await _still_wanted(session, row):
                return
            if retryable and row.attempt <= len(RETRY_DELAYS):
                _again(
                    session,
                    row,
                    channel=row.channel,
                    attempt=row.attempt + 1,
                    not_before=now + RETRY_DELAYS[row.attempt - 1],
                    now=now,
                )
            else:
                other = await self._fallback_channel(session, row)
                if other is not None:
                    _again(session, row, channel=other, attempt=1, not_before=now, now=now)
        self.wake.set()

    async def _fallback_channel(self, session: AsyncSession, row: Notification) -> str | None:
        """The step's other channel, unless it already got through to this recipient."""
        if row.alert_id is None or row.step_index is None or row.channel == ROBOT_CHANNEL:
            return None
        alert = await session.get(Alert, row.alert_id)
        if alert is None:
            return None
        steps = self.escalator.chain_of(alert)
        step = steps[min(row.step_index, len(steps) - 1)]
        others = [c for c in step.channels if c != row.channel]
        if not takes_sms(row.recipient_phone):
            # A landline's call failed: an SMS would only be refused too.
            others = [c for c in others if c != "sms"]
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


async def _still_wanted(session: AsyncSession, row: Notification) -> bool:
    """An alert acknowledged while its message waited (e.g. a retry) needs no more calls."""
    if row.alert_id is None:
        return True
    alert = await session.get(Alert, row.alert_id)
    return alert is not None and alert.status == AlertStatus.OPEN.value


def _again(
    session: AsyncSession,
    row: Notification,
    *,
    channel: str,
    attempt: int,
    not_before: datetime,
    now: datetime,
) -> None:
    """Queue another attempt of ``row``: same template and parameters, rendered for
    ``channel``."""
    enqueue(
        session,
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
