"""The notification outbox: every message waits here as a row, and leaves by priority.

One constructor, :func:`enqueue` (or :func:`new_notification` for a caller that adds the row
itself), is used by the alerts and the visit digest alike; each row carries a
:class:`Priority`. The outbox claims rows in the database ordered by ``(priority,
not_before, id)`` with one compare-and-set ``UPDATE … WHERE status = 'pending' RETURNING``,
so several gateway processes sharing one database claim each row exactly once, on SQLite and
on PostgreSQL alike.

Why it is not one serial loop (issue 17): a county's weekly digest is thousands of SMS. If the
sender works through them in batches before it looks at the table again, an SOS enqueued
behind them waits minutes. So:

* **Two lanes.** The *emergency lane* claims only emergency rows (SOS, fall) and sends each
  at once in its own task; the *general lane* claims everything else, most urgent first,
  with a few sends in flight and a fresh claim whenever one of them finishes. A slow provider
  call for a digest occupies one general slot and never an emergency send.
* **Routine is paced.** Digests and taken/resolved notices pass a token bucket per provider
  (``outbox: {routine_per_minute, routine_burst}``) before they are claimed, so a burst of
  them can never fill the provider's pipe (Twilio and the carriers throttle bulk sends
  anyway). The bucket is per process: N gateway processes may send N times the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.pacing import RateLimiter, Wake, spread_offset
from alerts.templates import render
from alerts.types import AlertGroup, AlertStatus
from gateway.clock import Clock, sleep_unless
from gateway.config import OutboxConfig
from gateway.storage.db import Database
from gateway.storage.models import Alert, Notification

__all__ = [
    "SENDING_GRACE",
    "Outbox",
    "Priority",
    "RateLimiter",
    "Recipient",
    "Wake",
    "enqueue",
    "new_notification",
    "priority_for",
    "skip_pending",
    "spread_offset",
]

log = logging.getLogger(__name__)

#: A notification stuck in ``sending`` this long was orphaned by a crash.
SENDING_GRACE = timedelta(minutes=2)
#: Candidate rows read per claim, per free slot: room to skip routine rows of a provider
#: whose bucket is empty in favour of another provider's.
_CANDIDATES_PER_SLOT = 4
#: Claim rounds when other processes keep taking the chosen rows first.
_CLAIM_ATTEMPTS = 3
#: On stop, sends in flight get this long to finish.
_DRAIN_SECONDS = 10.0


class Priority(IntEnum):
    """Lower goes first. Stored on the notification row and indexed with status and due time."""

    EMERGENCY = 0
    WELLBEING = 1
    TECHNICAL = 2
    ROUTINE = 3


_GROUP_PRIORITY = {
    AlertGroup.EMERGENCY.value: Priority.EMERGENCY,
    AlertGroup.WELLBEING.value: Priority.WELLBEING,
    AlertGroup.TECHNICAL.value: Priority.TECHNICAL,
}


def priority_for(purpose: str, group: str | None = None) -> Priority:
    """The priority of a message: an alert step by its alert's group; a system message (the
    broker link is down) as technical; everything else (digests, taken/resolved notices,
    confirmations) routine. An alert step of unknown group counts as an emergency: being
    early by mistake is cheap, being late is not."""
    if purpose == "alert":
        return _GROUP_PRIORITY.get(group or "", Priority.EMERGENCY)
    if purpose == "system":
        return Priority.TECHNICAL
    return Priority.ROUTINE


@dataclass(frozen=True, slots=True)
class Recipient:
    role: str
    name: str
    phone: str


def new_notification(
    *,
    alert_id: int | None,
    purpose: str,
    template: str,
    recipient: Recipient,
    channel: str,
    params: dict[str, Any],
    now: datetime,
    priority: Priority | None = None,
    step_index: int | None = None,
    step_round: int | None = None,
    attempt: int = 1,
    not_before: datetime | None = None,
    token: str | None = None,
) -> Notification:
    """A ``pending`` row, rendered from its template; ``priority`` defaults by purpose."""
    return Notification(
        alert_id=alert_id,
        purpose=purpose,
        template=template,
        step_index=step_index,
        step_round=step_round,
        recipient_role=recipient.role,
        recipient_name=recipient.name,
        recipient_phone=recipient.phone,
        channel=channel,
        attempt=attempt,
        status="pending",
        priority=int(priority if priority is not None else priority_for(purpose)),
        not_before=not_before or now,
        token=token or secrets.token_urlsafe(24),
        params=params,
        # A robot post carries the SMS wording.
        body=render(template, "voice" if channel == "voice" else "sms", params),
        created_at=now,
        updated_at=now,
        failure_handled=False,
    )


def enqueue(session: AsyncSession, **fields: Any) -> Notification:
    """Add a message to the outbox in ``session``'s transaction (see :func:`new_notification`
    for the fields). It is sent once that transaction commits and a lane is woken."""
    row = new_notification(**fields)
    session.add(row)
    return row


async def skip_pending(
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


Deliver = Callable[[Notification], Awaitable[None]]
ProviderOf = Callable[[str, str], str]


class Outbox:
    """Claims due notifications by priority and hands them to ``deliver``.

    Args:
        db: The shared database.
        clock: Injected time (due times, the routine bucket, polling).
        deliver: Sends one claimed row and records the outcome; must not raise.
        provider_of: Which provider carries a message, from its channel and phone (the
            routine bucket is per provider).
        worker_id: Recorded as ``claimed_by``.
        config: Pacing (``outbox:`` in the settings).
        wake: Set whenever something is enqueued.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        deliver: Deliver,
        provider_of: ProviderOf,
        worker_id: str,
        config: OutboxConfig,
        wake: Wake,
    ) -> None:
        self.db = db
        self.clock = clock
        self.deliver = deliver
        self.provider_of = provider_of
        self.worker_id = worker_id
        self.config = config
        self.wake = wake
        self.routine = RateLimiter(
            clock, per_minute=config.routine_per_minute, burst=config.routine_burst
        )

    # -- claiming -----------------------------------------------------------------------

    async def recover_orphans(self) -> int:
        """Rows left ``sending`` by a crash go back to the queue: for an alarm a rare
        duplicate beats a lost message."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(Notification)
                .where(
                    Notification.status == "sending",
                    Notification.updated_at < now - SENDING_GRACE,
                )
                .values(status="pending", updated_at=now)
                .execution_options(synchronize_session=False)
            )
        count: int = result.rowcount  # type: ignore[attr-defined]
        return count

    async def claim(
        self, limit: int, *, emergency_only: bool = False
    ) -> tuple[list[Notification], int]:
        """Claim up to ``limit`` due rows, most urgent first, oldest first within a priority.

        Routine rows are claimed only while their provider's bucket has tokens. Rows of an
        alert that is no longer open are marked ``skipped`` instead of being returned.

        Returns:
            The rows to send, and how many rows this call claimed (sent or skipped).
        """
        if limit <= 0:
            return [], 0
        # Losing every chosen row to another process does not mean nothing is due.
        for _attempt in range(_CLAIM_ATTEMPTS):
            now = self.clock.now()
            chosen, spent = await self._candidates(limit, emergency_only=emergency_only, now=now)
            if not chosen:
                return [], 0
            to_send, claimed = await self._take(chosen, spent, now)
            if claimed:
                return to_send, claimed
        return [], 0

    async def _candidates(
        self, limit: int, *, emergency_only: bool, now: datetime
    ) -> tuple[list[int], dict[int, str]]:
        """Due row ids in claim order, routine ones only as far as their buckets allow;
        and the provider of each routine row chosen (its token was spent)."""
        query = (
            select(
                Notification.id,
                Notification.priority,
                Notification.channel,
                Notification.recipient_phone,
            )
            .where(Notification.status == "pending", Notification.not_before <= now)
            .order_by(Notification.priority, Notification.not_before, Notification.id)
        )
        if emergency_only:
            query = query.where(Notification.priority == int(Priority.EMERGENCY))
        async with self.db.session() as session:
            candidates = (await session.execute(query.limit(limit * _CANDIDATES_PER_SLOT))).all()
        chosen: list[int] = []
        spent: dict[int, str] = {}
        for notification_id, priority, channel, phone in candidates:
            if len(chosen) >= limit:
                break
            if priority >= Priority.ROUTINE:
                provider = self.provider_of(channel, phone)
                if not self.routine.take(provider):
                    continue
                spent[notification_id] = provider
            chosen.append(notification_id)
        return chosen, spent

    async def _take(
        self, chosen: list[int], spent: dict[int, str], now: datetime
    ) -> tuple[list[Notification], int]:
        """Compare-and-set ``pending`` → ``sending`` on ``chosen``: what another process
        claimed first is not returned (and its routine token is given back)."""
        async with self.db.session() as session, session.begin():
            won = set(
                (
                    await session.execute(
                        update(Notification)
                        .where(Notification.id.in_(chosen), Notification.status == "pending")
                        .values(status="sending", claimed_by=self.worker_id, updated_at=now)
                        .returning(Notification.id)
                        .execution_options(synchronize_session=False)
                    )
                ).scalars()
            )
            for notification_id, provider in spent.items():
                if notification_id not in won:
                    self.routine.give_back(provider)
            if not won:
                return [], 0
            rows = list(
                (
                    await session.execute(
                        select(Notification)
                        .where(Notification.id.in_(won))
                        .order_by(Notification.priority, Notification.not_before, Notification.id)
                    )
                ).scalars()
            )
            closed = await _closed_alerts(
                session, {r.alert_id for r in rows if r.purpose == "alert"}
            )
            to_send: list[Notification] = []
            for row in rows:
                if row.purpose == "alert" and row.alert_id in closed:
                    # Acknowledged while this message waited (e.g. a retry): no more calls.
                    row.status = "skipped"
                else:
                    to_send.append(row)
        return to_send, len(rows)

    # -- sending ------------------------------------------------------------------------

    async def send_pending(self) -> int:
        """Claim and send, batch by batch, everything due now (routine as far as its bucket
        allows), waiting for each batch. For ``tick()`` and tests; the gateway runs
        :meth:`run`. Returns the sends tried."""
        await self.recover_orphans()
        sent = 0
        while True:
            rows, claimed = await self.claim(self.config.concurrency)
            if not claimed:
                return sent
            await asyncio.gather(*(self._send(row) for row in rows))
            sent += len(rows)

    async def _send(self, row: Notification) -> None:
        try:
            await self.deliver(row)
        except Exception:  # deliver records its own failures; this is a bug, not an outage
            log.exception("delivering notification %s failed unexpectedly", row.id)

    async def run(self, stop: asyncio.Event, *, poll_seconds: float = 1.0) -> None:
        """Both lanes until ``stop`` is set."""
        await asyncio.gather(
            self._lane(stop, "emergency", self.config.emergency_concurrency, poll_seconds),
            self._lane(stop, "general", self.config.concurrency, poll_seconds),
        )

    async def _lane(self, stop: asyncio.Event, name: str, slots: int, poll_seconds: float) -> None:
        wake = self.wake.listener()
        slot_freed = asyncio.Event()
        in_flight: set[asyncio.Task[None]] = set()
        emergency_only = name == "emergency"

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            slot_freed.set()

        last_recovery = self.clock.now() - SENDING_GRACE
        try:
            while not stop.is_set():
                wake.clear()
                slot_freed.clear()
                free = slots - len(in_flight)
                claimed = 0
                try:
                    if not emergency_only and self.clock.now() - last_recovery >= SENDING_GRACE / 4:
                        last_recovery = self.clock.now()
                        await self.recover_orphans()
                    rows, claimed = await self.claim(free, emergency_only=emergency_only)
                    for row in rows:
                        task = asyncio.create_task(self._send(row), name=f"send-{row.id}")
                        in_flight.add(task)
                        task.add_done_callback(finished)
                except Exception:
                    log.exception("outbox %s lane: claim failed; retrying", name)
                if len(in_flight) >= slots:
                    # The lane is full and more may be due: look again as soon as a slot frees.
                    await sleep_unless(self.clock, poll_seconds, slot_freed, stop)
                elif claimed:
                    continue  # slots left (or rows skipped): the table may hold more
                else:
                    await sleep_unless(self.clock, poll_seconds, wake, stop)
        finally:
            # A send cut off half-way would be repeated after the grace period: let the ones
            # in flight finish (the provider call has its own timeout), then cancel.
            if in_flight:
                await asyncio.wait(list(in_flight), timeout=_DRAIN_SECONDS)
            for task in list(in_flight):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*in_flight, return_exceptions=True)


async def _closed_alerts(session: AsyncSession, alert_ids: set[int | None]) -> set[int]:
    """Of ``alert_ids``, those no longer open (or gone)."""
    wanted = {a for a in alert_ids if a is not None}
    if not wanted:
        return set()
    open_ids = set(
        (
            await session.execute(
                select(Alert.id).where(Alert.id.in_(wanted), Alert.status == AlertStatus.OPEN.value)
            )
        ).scalars()
    )
    return wanted - open_ids
