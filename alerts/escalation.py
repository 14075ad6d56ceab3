"""Escalation: each due step is claimed in the database against the alert's own chain.

**The chain is snapshotted onto the alert when it is raised** (``alerts.escalation_chain``,
as Grafana OnCall keeps an escalation snapshot per alert group): every later step — who, on
which channels, how long to wait, whether the last one repeats — is read from that snapshot,
never from the live ``escalation:`` configuration. A gateway restarted with another file, or
a second process with a different one, therefore never shifts an alert already under way;
only alerts raised afterwards follow the new chain. Alerts raised before the snapshot
existed (migration 0008) have none: nothing in the database knows the chain they started
with, so they take the live configuration at their next step, which is then written onto
them and kept.

A step is claimed with a compare-and-set on the alert's ``version``; in the same
transaction one ``pending`` notification per recipient and channel goes to the outbox. Two
gateway processes racing for a step: one wins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from alerts.channels.dispatch import ROBOT_CHANNEL
from alerts.channels.team_robot import ROBOT_ROLE
from alerts.outbox import Recipient, Wake, enqueue, priority_for
from alerts.recipients import Recipients
from alerts.types import AlertGroup, AlertStatus
from gateway.clock import Clock, sleep_unless
from gateway.config import EscalationConfig, EscalationStep
from gateway.privacy import mask_phone
from gateway.register.phones import takes_sms
from gateway.storage.db import Database
from gateway.storage.models import Alert

__all__ = ["Escalator", "chain_from_snapshot", "chain_snapshot", "channels_for"]

log = logging.getLogger(__name__)

#: Due alerts read per pass.
_DUE_BATCH = 200


def chain_snapshot(steps: Sequence[EscalationStep]) -> list[dict[str, Any]]:
    """The JSON stored on the alert: everything a later step needs, in plain values."""
    return [
        {
            "notify": step.notify,
            "channels": list(step.channels),
            "wait_seconds": step.wait.total_seconds(),
            "repeat": step.repeat,
        }
        for step in steps
    ]


def chain_from_snapshot(snapshot: Sequence[dict[str, Any]]) -> tuple[EscalationStep, ...]:
    """The steps of a stored snapshot, validated as the configuration's steps are."""
    return tuple(
        EscalationStep(
            notify=item["notify"],
            channels=tuple(item["channels"]),
            wait=timedelta(seconds=float(item["wait_seconds"])),
            repeat=bool(item.get("repeat", False)),
        )
        for item in snapshot
    )


def channels_for(recipient: Recipient, channels: Sequence[str]) -> list[str]:
    """The channels a step uses for ``recipient``: its own, except that a number which
    cannot take an SMS (a landline duty line) is called instead, once.

    A provider refuses an SMS to a landline every time, so sending one anyway only leaves
    a failed row and a warning on every escalation to that line."""
    if "sms" not in channels or takes_sms(recipient.phone):
        return list(channels)
    log.info("%s %s cannot take SMS: calling instead", recipient.role, mask_phone(recipient.phone))
    called = ["voice" if channel == "sms" else channel for channel in channels]
    return list(dict.fromkeys(called))


class Escalator:
    """Claims due steps and queues their messages.

    Args:
        db: The shared database.
        clock: Injected time.
        config: The live ``escalation:`` section: the chain snapshotted onto new alerts, and
            the fallback for alerts raised before snapshots existed.
        recipients: Who a step reaches and what they are told.
        wake: Set when a step queued something.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: EscalationConfig,
        recipients: Recipients,
        wake: Wake,
    ) -> None:
        self.db = db
        self.clock = clock
        self.config = config
        self.recipients = recipients
        self.wake = wake

    def live_steps(self, group: AlertGroup | str) -> tuple[EscalationStep, ...]:
        """The configured chain of ``group`` (what a newly raised alert gets)."""
        steps: tuple[EscalationStep, ...] = getattr(self.config, str(group))
        return steps

    def snapshot_for(self, group: AlertGroup | str) -> list[dict[str, Any]]:
        """The chain to store on an alert of ``group`` raised now."""
        return chain_snapshot(self.live_steps(group))

    def chain_of(self, alert: Alert) -> tuple[EscalationStep, ...]:
        """The alert's own chain; the live one only for an alert raised before 0008."""
        if alert.escalation_chain:
            return chain_from_snapshot(alert.escalation_chain)
        return self.live_steps(alert.group)

    async def run_due(self) -> int:
        """Claim and queue every escalation step that is due. Returns steps claimed."""
        now = self.clock.now()
        async with self.db.session() as session:
            due = (
                await session.execute(
                    select(Alert.id, Alert.version)
                    .where(Alert.status == AlertStatus.OPEN.value, Alert.next_step_at <= now)
                    .order_by(Alert.next_step_at)
                    .limit(_DUE_BATCH)
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
            steps = self.chain_of(alert)
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
            claim: dict[str, Any] = {
                "step_index": index,
                "step_round": step_round,
                "next_step_at": next_at,
                "version": version + 1,
            }
            if not alert.escalation_chain:
                # Open during the 0008 upgrade: its chain is fixed from here on, so a later
                # change of the file no longer shifts it either.
                claim["escalation_chain"] = chain_snapshot(steps)
            result = await session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.version == version)
                .values(**claim)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return False
            recipients = await self.recipients.of_step(session, alert.person, step.notify)
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
            params = await self.recipients.params(session, alert)
            template = self.recipients.template(alert, step, params)
            deliveries = [
                (r, channel) for r in recipients for channel in channels_for(r, step.channels)
            ]
            robot_village = await self.recipients.team_robot(session, alert, step)
            if robot_village is not None:
                deliveries.append((Recipient(ROBOT_ROLE, robot_village, ""), ROBOT_CHANNEL))
            for recipient, channel in deliveries:
                enqueue(
                    session,
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
        self.wake.set()
        return True

    async def run(self, stop: asyncio.Event, poll_seconds: float) -> None:
        """Claim due steps until ``stop``; woken early whenever something may be due."""
        wake = self.wake.listener()
        while not stop.is_set():
            wake.clear()
            try:
                await self.run_due()
            except Exception:
                log.exception("escalation pass failed; retrying")
            await sleep_unless(self.clock, poll_seconds, wake, stop)
