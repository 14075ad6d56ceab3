"""One SMS naming two open alerts, rather than two SMS to the same mainland number.

Carriers count every SMS to a number, and a helper whose two residents need help at the
same moment is better served by one text naming both (with both codes to reply with) than
by two that the carrier may delay as a burst. When an alert SMS for a carrier-limited
provider is about to go, another alert SMS queued for the same number at the same time is
folded into it: the ``alerts_open`` template names both, and the companion row is recorded
as sent with it (its sid is the combined message's, suffixed with its own id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from alerts.channels.base import Outgoing
from alerts.templates import ALERT_TEMPLATES, TEMPLATES, plain_variant
from alerts.types import AlertStatus
from gateway.clock import Clock
from gateway.storage.db import Database
from gateway.storage.models import Alert, Notification

__all__ = [
    "CONSOLIDATED_TEMPLATE",
    "AlreadySent",
    "Consolidator",
    "consolidated_params",
    "outgoing_of",
]

#: The template naming several alerts in one SMS.
CONSOLIDATED_TEMPLATE = "alerts_open"
#: Alert SMS that may be folded together (not the resident's own check, not replies).
_FOLDABLE = frozenset(ALERT_TEMPLATES.values()) | {t for t in TEMPLATES if plain_variant(t)}
#: Two alerts fit one carrier variable (about 35 characters); a third goes on its own.
_MAX_COMPANIONS = 1


@dataclass(frozen=True, slots=True)
class AlreadySent:
    sid: str
    body: str


def consolidated_params(messages: Sequence[Outgoing]) -> dict[str, str]:
    """``count`` and ``alerts`` (person, label and code of each) for ``alerts_open``."""
    items = [
        f"{m.params.get('person', '')}{m.params.get('what', '')}（{m.params.get('code', '')}）"
        for m in messages
    ]
    return {"count": str(len(messages)), "alerts": "、".join(items)}


class Consolidator:
    """Finds alert SMS to fold together, and records the folded ones as sent."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def foldable(self, message: Outgoing) -> bool:
        return message.channel == "sms" and message.template in _FOLDABLE

    async def already_sent(self, notification_id: int) -> AlreadySent | None:
        """Set when this row went out inside another row's combined SMS."""
        async with self.db.session() as session:
            row = await session.get(Notification, notification_id)
        if row is None or row.sid is None or row.status != "sent":
            return None
        return AlreadySent(row.sid, row.body)

    async def companions(self, message: Outgoing) -> list[Outgoing]:
        """Other alert SMS for open alerts, due now, queued for the same number."""
        now = self.clock.now()
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Notification)
                    .join(Alert, Alert.id == Notification.alert_id)
                    .where(
                        Notification.recipient_phone_bidx == message.to,
                        Notification.id != message.notification_id,
                        Notification.channel == "sms",
                        Notification.purpose == "alert",
                        Notification.template.in_(sorted(_FOLDABLE)),
                        Notification.status.in_(("pending", "sending")),
                        Notification.sid.is_(None),
                        Notification.provider.is_(None),
                        Notification.not_before <= now,
                        Alert.status == AlertStatus.OPEN.value,
                    )
                    .order_by(Notification.id)
                    .limit(_MAX_COMPANIONS)
                )
            ).scalars()
            return [outgoing_of(row) for row in rows if row.alert_id is not None]

    async def record(
        self, companions: Sequence[Outgoing], provider: str, sid: str, body: str
    ) -> None:
        """The companions went out in the combined SMS ``sid``."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            for companion in companions:
                await session.execute(
                    update(Notification)
                    .where(
                        Notification.id == companion.notification_id,
                        Notification.sid.is_(None),
                        Notification.status.in_(("pending", "sending")),
                    )
                    .values(
                        status="sent",
                        sid=f"{sid}+{companion.notification_id}",
                        provider=provider,
                        body=body,
                        sent_at=now,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )


def outgoing_of(row: Notification) -> Outgoing:
    """What a provider needs of an outbox row."""
    return Outgoing(
        notification_id=row.id,
        to=row.recipient_phone,
        channel=row.channel,
        template=row.template,
        params=row.params,
        body=row.body,
        token=row.token,
        recipient_role=row.recipient_role,
        recipient_name=row.recipient_name,
        alert_id=row.alert_id,
    )
