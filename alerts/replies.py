"""Acknowledgements that arrive as a reply: an SMS ``1`` (or an alert code), a key pressed
in an alert call. The provider's webhook parsing lives in its channel folder; this is what a
reply means, whichever provider carried it."""

from __future__ import annotations

from sqlalchemy import case, select

from alerts.lifecycle import AckResult, Lifecycle
from alerts.types import ACTIVE_STATUSES, AlertGroup
from gateway.storage.db import Database
from gateway.storage.models import Alert, Notification

__all__ = ["Replies"]

_ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)


class Replies:
    def __init__(self, db: Database, lifecycle: Lifecycle) -> None:
        self.db = db
        self.lifecycle = lifecycle

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
                    Alert.status.in_(_ACTIVE),
                )
                # Raised at the same instant (an SOS and a battery alert of one visit), the
                # emergency is what a helper answering "1" means; the id makes it the same
                # choice on every database.
                .order_by(
                    Alert.status.desc(),
                    Alert.raised_at.desc(),
                    case((Alert.group == AlertGroup.EMERGENCY.value, 0), else_=1),
                    Alert.id,
                )
            )
            if text not in ("1", "１"):
                query = query.where(Alert.code == text[:8])
            row = (await session.execute(query.limit(1))).first()
        if row is None:
            return None
        alert_id, name = row
        return await self.lifecycle.acknowledge(alert_id, name, via_phone=from_phone, channel="sms")

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
            await self.lifecycle.cancel(
                row.alert_id, by=row.recipient_name, reason="resident_ok", channel="voice"
            )
            return AckResult(row.alert_id, "", row.recipient_name, False)
        return await self.lifecycle.acknowledge(row.alert_id, row.recipient_name, channel="voice")
