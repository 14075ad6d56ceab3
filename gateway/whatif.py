"""What-if (SPEC §12 in the console): the town's own stored events, replayed under other
thresholds, next to the alerts that were actually raised.

"If we had set this threshold last month, how many alarms would we have had?" The replay
(:mod:`gateway.replay`, ``--from-db``) runs the gateway's adapters' stored output and its
rules over the chosen period with a simulated clock and sends nothing; this module adds the
choice of thresholds an officer makes on a form, the warm-up learned routines need, and the
comparison per home with the ``alerts`` table.

Read only: nothing here writes to the database or notifies anybody. The replay itself is
CPU-bound (a month of a hundred homes: about a minute), so it runs in a worker thread and
the period is bounded (:data:`MAX_DAYS`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from alerts.types import AlertType
from gateway.config import RulesConfig
from gateway.register.provisioning import merge_rules
from gateway.replay import load_register, replay_events, stored_events
from gateway.storage.db import Database
from gateway.storage.models import Alert

__all__ = ["MAX_DAYS", "WhatIfChoice", "WhatIfHome", "WhatIfResult", "run_what_if"]

#: The longest period one what-if replays (a month and a bit).
MAX_DAYS = 35
#: The alert types a threshold changes; emergencies and device faults do not depend on them.
THRESHOLD_TYPES = (AlertType.INACTIVITY, AlertType.DOOR_OPEN_NIGHT)


@dataclass(frozen=True, slots=True)
class WhatIfChoice:
    """What the officer picked: fixed quiet hours (None: as configured) or learned
    routines, over the last ``days`` days."""

    days: int = 28
    learned: bool = False
    day_quiet: timedelta | None = None
    night_quiet: timedelta | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.days <= MAX_DAYS:
            raise ValueError(f"days: between 1 and {MAX_DAYS}")
        for name, value in (("day_quiet", self.day_quiet), ("night_quiet", self.night_quiet)):
            if value is not None and not timedelta(minutes=30) <= value <= timedelta(hours=48):
                raise ValueError(f"{name}: between 30 minutes and 48 hours")

    def rules(self, configured: RulesConfig) -> RulesConfig:
        """The configured rules with this choice laid over them."""
        inactivity: dict[str, Any] = {"learned": {"enabled": self.learned}}
        if self.day_quiet is not None:
            inactivity["day"] = {"quiet": _duration(self.day_quiet)}
        if self.night_quiet is not None:
            inactivity["night"] = {"quiet": _duration(self.night_quiet)}
        return merge_rules(configured, {"inactivity": inactivity})


@dataclass(slots=True)
class WhatIfHome:
    person_id: int
    name: str
    village: str
    would: Counter[str] = field(default_factory=Counter)
    actual: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    start: datetime
    end: datetime
    rules: RulesConfig
    homes: list[WhatIfHome]

    def total(self, side: str, alert_type: str) -> int:
        """All homes' count of ``alert_type`` on one side (``would`` or ``actual``)."""
        counts = [home.would if side == "would" else home.actual for home in self.homes]
        return sum(count[alert_type] for count in counts)


async def run_what_if(
    db: Database,
    configured: RulesConfig,
    tz: ZoneInfo,
    choice: WhatIfChoice,
    now: datetime,
    *,
    villages: set[str] | None = None,
) -> WhatIfResult:
    """Replay the last ``choice.days`` days under ``choice`` and compare with what was raised.

    Learned routines learn from ``history`` days before the period (the gateway has them
    stored too), so that the period is judged as a running gateway would have judged it.
    ``villages``: only homes in these villages (None: all).
    """
    rules = choice.rules(configured)
    start = now - timedelta(days=choice.days)
    warm_up = rules.inactivity.learned.history if choice.learned else timedelta(0)
    register = await load_register(db)
    events = await stored_events(db, register, start - warm_up)
    replayed = await asyncio.to_thread(
        replay_events, register, events, rules, tz, start=start - warm_up, end=now
    )
    homes = {
        pid: WhatIfHome(pid, person.name, person.village)
        for pid, person in register.persons.items()
        if villages is None or person.village in villages
    }
    for alert in replayed:
        home = homes.get(alert.person_id)
        if home is not None and alert.raised_at >= start:
            home.would[alert.type.value] += 1
    async with db.session() as session:
        rows = await session.execute(
            select(Alert.person_id, Alert.type).where(
                Alert.raised_at >= start, Alert.raised_at < now
            )
        )
        for person_id, alert_type in rows:
            home = homes.get(person_id)
            if home is not None:
                home.actual[alert_type] += 1
    ordered = sorted(homes.values(), key=lambda h: (h.village, h.name, h.person_id))
    return WhatIfResult(start, now, rules, ordered)


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes}m"
