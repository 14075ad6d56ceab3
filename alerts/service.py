"""The alert service: one facade over the parts that raise, escalate and deliver alerts.

Everything is written before anything is sent, so restarts lose and repeat nothing:

1. :mod:`alerts.lifecycle` inserts an alert (``open``, ``next_step_at`` = now, its
   escalation chain snapshotted onto it) and commits; acknowledge / resolve / cancel /
   re-open / hand over are the transitions of :mod:`alerts.types`.
2. :mod:`alerts.escalation` claims each due step against the alert's own chain with a
   compare-and-set on ``version`` and, in the same transaction, queues one notification per
   recipient (:mod:`alerts.recipients`) and channel.
3. :mod:`alerts.outbox` claims queued rows by priority; :mod:`alerts.delivery` sends each
   through the provider its recipient is routed to (:mod:`alerts.channels`), retries, and
   falls back to the step's other channel.

Callers (the rules, the API, the console) use only this class.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from alerts.channels import ChannelDispatcher
from alerts.delivery import FAILED_STATUSES, RETRY_DELAYS, Courier
from alerts.escalation import Escalator
from alerts.lifecycle import AckResult, AlertConflictError, AlertStateError, Lifecycle
from alerts.notifiers.base import Notifier
from alerts.outbox import SENDING_GRACE, Outbox, Recipient, Wake, enqueue
from alerts.recipients import Recipients, national_phone, town_duty
from alerts.replies import Replies
from alerts.types import AlertGroup, AlertTrigger, AlertType
from gateway.clock import Clock
from gateway.config import EscalationConfig, EscalationStep, OutboxConfig, RulesConfig
from gateway.register.phones import takes_sms
from gateway.storage.db import Database
from gateway.storage.models import Alert, Notification

__all__ = [
    "FAILED_STATUSES",
    "RETRY_DELAYS",
    "SENDING_GRACE",
    "AckResult",
    "AlertConflictError",
    "AlertService",
    "AlertStateError",
    "Recipient",
    "national_phone",
]

log = logging.getLogger(__name__)


class AlertService:
    """Raises, escalates, acknowledges and resolves alerts.

    Args:
        db: The shared database.
        clock: Injected time.
        notifier: The single notifier of SPEC §2 (carries everything when ``channels`` is
            not given).
        escalation: The live chain: snapshotted onto each alert raised from now on.
        rules: ``sos_debounce``.
        public_url: Where providers call back (Twilio's TwiML and status URLs).
        timezone: Local time in the messages.
        worker_id: Recorded on the notifications this process claims.
        on_alert_raised: Called with each newly raised alert (metrics).
        on_notification: Called with ``(channel, status)`` of each outcome (metrics).
        outbox: Outbox pacing; the defaults when None.
        channels: The provider per recipient (SPEC §11).
    """

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
        on_alert_raised: Callable[[Alert], object] | None = None,
        on_notification: Callable[[str, str], object] | None = None,
        outbox: OutboxConfig | None = None,
        channels: ChannelDispatcher | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.notifier = notifier
        self.channels = channels or ChannelDispatcher.single(notifier, public_url)
        self.escalation = escalation
        self.rules = rules
        self.public_url = public_url.rstrip("/")
        self.tz = timezone
        self.worker_id = worker_id
        #: Set whenever a step may be due or a message was queued; heard by the escalation
        #: loop and both outbox lanes.
        self.wake = Wake()
        self.recipients = Recipients(timezone, robots=self.channels.robots is not None)
        self.escalator = Escalator(db, clock, escalation, self.recipients, self.wake)
        self.lifecycle = Lifecycle(
            db, clock, self.escalator, self.recipients, rules, self.wake, on_alert_raised
        )
        self.replies = Replies(db, self.lifecycle)
        self.courier = Courier(
            db,
            clock,
            self.channels,
            self.escalator,
            self.wake,
            on_notification=on_notification,
        )
        self.outbox = Outbox(
            db,
            clock,
            deliver=self.courier.deliver,
            provider_of=self.courier.provider_of,
            worker_id=worker_id,
            config=outbox or OutboxConfig(),
            wake=self.wake,
        )

    # -- the chain ----------------------------------------------------------------------

    def steps(self, group: AlertGroup | str) -> tuple[EscalationStep, ...]:
        """The configured chain of ``group``: what an alert raised now would follow."""
        return self.escalator.live_steps(group)

    def chain_of(self, alert: Alert) -> tuple[EscalationStep, ...]:
        """The chain ``alert`` follows: its own snapshot (the live one only for an alert
        raised before snapshots existed)."""
        return self.escalator.chain_of(alert)

    # -- the lifecycle ------------------------------------------------------------------

    async def raise_alert(self, trigger: AlertTrigger) -> tuple[Alert, bool]:
        """Open an alert, or join the open one of that person and type. True when new."""
        return await self.lifecycle.raise_alert(trigger)

    async def acknowledge(
        self, alert_id: int, by: str, *, via_phone: str | None = None, channel: str = "system"
    ) -> AckResult:
        """Stop the escalation; tell everyone already notified who took it."""
        return await self.lifecycle.acknowledge(alert_id, by, via_phone=via_phone, channel=channel)

    async def resolve(
        self, alert_id: int, by: str, note: str | None = None, *, channel: str = "system"
    ) -> Alert:
        """Close the alert; everybody already notified hears it is over."""
        return await self.lifecycle.resolve(alert_id, by, note, channel=channel)

    async def cancel(self, alert_id: int, *, by: str, reason: str, channel: str = "system") -> bool:
        """Close an alert that turned out unnecessary (e.g. the resident checked in)."""
        return await self.lifecycle.cancel(alert_id, by=by, reason=reason, channel=channel)

    async def reopen(self, alert_id: int, by: str, note: str, *, channel: str = "web") -> Alert:
        """Open a closed alert again; it escalates from the first step of its own chain."""
        return await self.lifecycle.reopen(alert_id, by, note, channel=channel)

    async def hand_over(
        self, alert_id: int, by: str, to: str, note: str = "", *, channel: str = "web"
    ) -> Alert:
        """Pass an acknowledged alert on to a named person."""
        return await self.lifecycle.hand_over(alert_id, by, to, note, channel=channel)

    async def open_alerts(self, person_id: int, types: Sequence[AlertType]) -> list[Alert]:
        return await self.lifecycle.open_alerts(person_id, types)

    # -- replies ------------------------------------------------------------------------

    async def acknowledge_by_sms(self, from_phone: str, body: str) -> AckResult | None:
        return await self.replies.acknowledge_by_sms(from_phone, body)

    async def acknowledge_by_call(self, token: str, digits: str) -> AckResult | None:
        return await self.replies.acknowledge_by_call(token, digits)

    async def notification_by_token(self, token: str) -> Notification | None:
        return await self.replies.notification_by_token(token)

    async def status_callback(self, sid: str, status: str, error_code: str | None = None) -> bool:
        """A provider's delivery status for a message or call we sent. True when it was ours."""
        return await self.courier.status_callback(sid, status, error_code)

    # -- outside any alert --------------------------------------------------------------

    async def notify_town_duty(self, template: str, params: dict[str, str]) -> bool:
        """A message straight to the town duty line, outside any alert (the system itself is
        failing, e.g. the broker is unreachable): an SMS, or a call when the duty line cannot
        take one (a landline), since nothing else would tell it. False when no duty line is
        registered."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            duty = await town_duty(session)
            if duty is None:
                log.error("no town duty line registered: cannot send %s", template)
                return False
            enqueue(
                session,
                alert_id=None,
                purpose="system",
                template=template,
                recipient=duty,
                channel="sms" if takes_sms(duty.phone) else "voice",
                params=params,
                now=now,
            )
        self.wake.set()
        return True

    # -- the worker ---------------------------------------------------------------------

    async def run_due(self) -> int:
        """Claim and queue every escalation step that is due. Returns steps claimed."""
        return await self.escalator.run_due()

    async def send_pending(self) -> int:
        """Claim by priority and send everything due now (routine as far as its rate allows),
        batch by batch. Returns sends tried."""
        return await self.outbox.send_pending()

    async def tick(self) -> None:
        """One pass: claim due steps, send what is pending. Safe to call at any time."""
        await self.run_due()
        await self.send_pending()

    async def run(self, stop: asyncio.Event, *, poll_seconds: float = 1.0) -> None:
        """Escalation and the outbox's lanes side by side: claiming a step never waits for
        a send, and an SOS send never waits behind routine ones."""
        await asyncio.gather(
            self.escalator.run(stop, poll_seconds),
            self.outbox.run(stop, poll_seconds=poll_seconds),
        )
