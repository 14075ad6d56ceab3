"""The alert lifecycle: raise (or join), acknowledge, resolve, cancel, re-open, hand over.

Each change is one transition of the state machine in :mod:`alerts.types`
(:func:`~alerts.types.transition`), applied with a compare-and-set so that two processes, or
a person and a rule, never both win. Everything is written before anything is sent: a
change queues its messages (taken / resolved notices, a confirmation) in the same
transaction, and the outbox sends them after the commit.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from alerts.escalation import Escalator
from alerts.outbox import Recipient, Wake, enqueue, skip_pending
from alerts.recipients import Recipients, tell_everyone
from alerts.types import (
    ACTIVE_STATUSES,
    AlertAction,
    AlertStatus,
    AlertTrigger,
    AlertType,
    transition,
)
from gateway import audit
from gateway.clock import Clock
from gateway.config import RulesConfig
from gateway.storage.db import Database
from gateway.storage.models import Alert, AlertNote

__all__ = ["AckResult", "AlertConflictError", "AlertStateError", "Lifecycle"]

log = logging.getLogger(__name__)

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud over a phone
_ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)


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


class Lifecycle:
    """Raises alerts and moves them through their states.

    Args:
        db: The shared database.
        clock: Injected time.
        escalator: The chain snapshotted onto a new alert.
        recipients: Parameters of the notices sent on a change.
        rules: ``sos_debounce`` (a press soon after the last joins that alert).
        wake: Set when something was queued or a step may be due.
        on_alert_raised: Called with each newly raised alert (metrics).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        escalator: Escalator,
        recipients: Recipients,
        rules: RulesConfig,
        wake: Wake,
        on_alert_raised: Callable[[Alert], object] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.escalator = escalator
        self.recipients = recipients
        self.rules = rules
        self.wake = wake
        self._on_alert_raised = on_alert_raised

    async def raise_alert(self, trigger: AlertTrigger) -> tuple[Alert, bool]:
        """Open an alert, or join the open one of that person and type. True when new."""
        for _attempt in range(3):
            async with self.db.session() as session, session.begin():
                existing = await self._active_alert(session, trigger.person_id, trigger.type)
                if existing is None and trigger.type in (AlertType.SOS, AlertType.FALL):
                    existing = await self._recent_closed(session, trigger)
                if existing is not None:
                    existing.trigger_count += 1
                    existing.last_trigger_at = max(existing.last_trigger_at, trigger.at)
                    return existing, False
                now = self.clock.now()
                group = trigger.type.group
                alert = Alert(
                    code=_new_code(),
                    type=trigger.type.value,
                    group=group.value,
                    status=AlertStatus.OPEN.value,
                    person_id=trigger.person_id,
                    device_uid=trigger.device_uid,
                    raised_at=now,
                    last_trigger_at=trigger.at,
                    trigger_count=1,
                    detail=dict(trigger.detail),
                    escalation_chain=self.escalator.snapshot_for(group),
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

    async def _active_alert(
        self, session: AsyncSession, person_id: int, alert_type: AlertType
    ) -> Alert | None:
        result = await session.execute(
            select(Alert).where(
                Alert.person_id == person_id,
                Alert.type == alert_type.value,
                Alert.status.in_(_ACTIVE),
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

    async def open_alerts(self, person_id: int, types: Sequence[AlertType]) -> list[Alert]:
        """The person's alerts of ``types`` still being handled (open or acknowledged)."""
        async with self.db.session() as session:
            return list(
                (
                    await session.execute(
                        select(Alert).where(
                            Alert.person_id == person_id,
                            Alert.type.in_([t.value for t in types]),
                            Alert.status.in_(_ACTIVE),
                        )
                    )
                ).scalars()
            )

    async def acknowledge(
        self, alert_id: int, by: str, *, via_phone: str | None = None, channel: str = "system"
    ) -> AckResult:
        """Stop the escalation; tell everyone already notified who took it."""
        move = transition(AlertAction.ACKNOWLEDGE)
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            alert = await _existing(session, alert_id, with_person=True)
            if not move.allows(alert.status):
                return AckResult(alert.id, alert.code, alert.acknowledged_by or "", True)
            result = await session.execute(
                update(Alert)
                .where(
                    Alert.id == alert_id,
                    Alert.version == alert.version,
                    Alert.status.in_(move.source_values()),
                )
                .values(
                    status=move.target.value,
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
            _audit(
                session,
                now,
                by,
                AlertAction.ACKNOWLEDGE,
                alert_id,
                code=alert.code,
                channel=channel,
            )
            # Calls and retries not yet placed are no longer wanted.
            await skip_pending(session, alert_id, now, purpose="alert")
            params = await self.recipients.params(session, alert)
            await tell_everyone(
                session, alert.id, "taken", params | {"taker": by}, now, except_phone=via_phone
            )
            if via_phone:
                enqueue(
                    session,
                    alert_id=alert.id,
                    purpose="confirm",
                    template="ack_confirm",
                    recipient=Recipient("acker", by, via_phone),
                    channel="sms",
                    params=params,
                    now=now,
                )
            code = alert.code
        self.wake.set()
        log.info("alert %s acknowledged by %s", code, by)
        return AckResult(alert_id, code, by, False)

    async def resolve(
        self, alert_id: int, by: str, note: str | None = None, *, channel: str = "system"
    ) -> Alert:
        """Close the alert; everybody already notified hears it is over (``resolved``)."""
        move = transition(AlertAction.RESOLVE)
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            alert = await _existing(session, alert_id, with_person=True)
            if not move.allows(alert.status):
                return alert  # already closed: resolving twice is harmless
            if alert.acknowledged_at is None:
                alert.acknowledged_at = now
                alert.acknowledged_by = by
            alert.status = move.target.value
            alert.resolved_at = now
            alert.resolved_by = by
            alert.resolution_note = note
            alert.next_step_at = None
            alert.version += 1
            _audit(
                session, now, by, AlertAction.RESOLVE, alert_id, code=alert.code, channel=channel
            )
            await skip_pending(session, alert_id, now)
            # After skip_pending, which would otherwise skip these too. A helper who was
            # called about it must not be left wondering whether somebody went.
            params = await self.recipients.params(session, alert)
            await tell_everyone(
                session, alert.id, "resolved", params | {"by": by}, now, except_phone=None
            )
        self.wake.set()
        log.info("alert %s resolved by %s", alert.code, by)
        return alert

    async def cancel(self, alert_id: int, *, by: str, reason: str, channel: str = "system") -> bool:
        """Close an alert that turned out unnecessary (e.g. the resident checked in)."""
        move = transition(AlertAction.CANCEL)
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.status.in_(move.source_values()))
                .values(
                    status=move.target.value,
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
            _audit(session, now, by, AlertAction.CANCEL, alert_id, reason=reason, channel=channel)
            await skip_pending(session, alert_id, now)
        self.wake.set()
        return True

    async def reopen(self, alert_id: int, by: str, note: str, *, channel: str = "web") -> Alert:
        """A closed alert (closed by mistake, or the resident is not fine after all) is open
        again and escalates from the first step of its own chain, as a new alert would."""
        move = transition(AlertAction.REOPEN)
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            alert = await _existing(session, alert_id)
            if not move.allows(alert.status):
                raise AlertStateError(f"alert {alert.code} is {alert.status}, not closed")
            other = await self._active_alert(session, alert.person_id, AlertType(alert.type))
            if other is not None:
                raise AlertConflictError(alert.code, other.code)
            closed = f"{alert.status} by {alert.resolved_by or '?'}"
            # A new round keeps the new messages apart from the first life's in the
            # fallback bookkeeping, which matches on (step_index, step_round).
            result = await session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.version == alert.version)
                .values(
                    status=move.target.value,
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
            _audit(
                session,
                now,
                by,
                AlertAction.REOPEN,
                alert_id,
                code=alert.code,
                channel=channel,
                was=closed,
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
        move = transition(AlertAction.HAND_OVER)
        to = to.strip()
        if not to:
            raise ValueError("to: the person taking the alert over must be named")
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            alert = await _existing(session, alert_id)
            if not move.allows(alert.status):
                raise AlertStateError(
                    f"alert {alert.code} is {alert.status}: only an acknowledged alert "
                    "can be handed over"
                )
            previous = alert.acknowledged_by or ""
            alert.acknowledged_by = to
            alert.version += 1
            text = f"交接：{previous} → {to}" + (f"（{note.strip()}）" if note.strip() else "")
            session.add(AlertNote(alert_id=alert_id, at=now, author=by, text=text))
            _audit(
                session,
                now,
                by,
                AlertAction.HAND_OVER,
                alert_id,
                code=alert.code,
                channel=channel,
                previous=previous,
                to=to,
            )
        log.info("alert %s handed over by %s: %s -> %s", alert.code, by, previous, to)
        return alert


async def _existing(session: AsyncSession, alert_id: int, *, with_person: bool = False) -> Alert:
    """The alert ``alert_id``, to change in this session (with its person, to tell them).

    Raises:
        LookupError: There is no such alert.
    """
    options = [selectinload(Alert.person)] if with_person else []
    alert = await session.get(Alert, alert_id, options=options)
    if alert is None:
        raise LookupError(f"no alert {alert_id}")
    return alert


def _audit(
    session: AsyncSession,
    now: datetime,
    by: str,
    action: AlertAction,
    alert_id: int,
    **detail: str,
) -> None:
    """The trail of who took, closed or cancelled an alert and by which channel (SPEC §10)."""
    audit.record(
        session,
        now=now,
        actor=by,
        action=action.value,
        entity="alert",
        entity_id=alert_id,
        detail=detail,
    )


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4))
