"""The carriers' limit per number: the same template at most 3 times in 24 hours.

Mainland carriers refuse (``isv.BUSINESS_LIMIT_CONTROL``) or silently drop the same content
to one number beyond a few times a day. An alert must not run into that wall unannounced:
we count what we handed to a carrier-limited provider ourselves and, over the budget, the
attempt is recorded as ``throttled`` and the step goes on by voice (SPEC §11).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import func, select, update

from gateway.clock import Clock
from gateway.storage.db import Database
from gateway.storage.models import Notification

__all__ = ["CARRIER_LIMITED", "CarrierBudget"]

#: Providers whose SMS the mainland carriers limit per number and template.
CARRIER_LIMITED = frozenset({"aliyun_sms"})

#: Statuses of attempts that never reached the carrier's count. A row being sent counts
#: once :meth:`CarrierBudget.reserve` has stamped it.
_NOT_COUNTED = ("pending", "skipped", "throttled", "failed")


class CarrierBudget:
    """Counts recent SMS of one template to one number.

    Args:
        db: Where the attempts are recorded.
        clock: The injected clock.
        limit: How many of the same template one number may get within ``window``.
        window: The carriers' counting period.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        limit: int = 3,
        window: timedelta = timedelta(hours=24),
    ) -> None:
        self.db = db
        self.clock = clock
        self.limit = limit
        self.window = window
        # Held from the count until the slot is reserved, so that two alerts queued in the
        # same pass cannot both take the last slot (within this process).
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def lock(self, phone: str) -> asyncio.Lock:
        return self._locks[phone]

    async def spent(self, phone: str, template: str) -> int:
        """How many SMS of ``template`` went to ``phone`` through a limited provider lately."""
        since = self.clock.now() - self.window
        async with self.db.session() as session:
            count = (
                await session.execute(
                    select(func.count(Notification.id)).where(
                        Notification.recipient_phone_bidx == phone,
                        Notification.template == template,
                        Notification.channel == "sms",
                        Notification.provider.in_(sorted(CARRIER_LIMITED)),
                        Notification.sent_at >= since,
                        Notification.status.notin_(_NOT_COUNTED),
                    )
                )
            ).scalar_one()
        return int(count)

    async def exhausted(self, phone: str, template: str) -> bool:
        return await self.spent(phone, template) >= self.limit

    async def reserve(self, notification_id: int, provider: str) -> None:
        """Stamp the row as handed to ``provider`` now, so that it counts from here on."""
        now = self.clock.now()
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(Notification)
                .where(Notification.id == notification_id)
                .values(provider=provider, sent_at=now)
                .execution_options(synchronize_session=False)
            )
