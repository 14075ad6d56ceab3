"""The weekly SMS digest: each helper learns which of their persons are due a visit.

Once per ISO week, from the configured weekday and hour (local time, ``digest:`` in the
configuration) on, every helper with at least one person due gets one ``visit_digest`` SMS.
"Due" is :func:`gateway.register.compliance.week_needs_visit`: a special person not yet
visited this week, a general person whose month is not yet covered.

The digest is only *queued* here, through the outbox's :func:`alerts.outbox.enqueue`
(purpose ``digest``, no alert, routine priority); the outbox sends it with the same retries
as everything else, after every alarm and at the routine rate. Each helper's digest is due
at its own point within ``digest.spread`` (an hour by default) after it is queued — a
deterministic offset from the week and the phone — so a county's thousands of digests
trickle out instead of leaving in one burst, whether queued on time or by a gateway started
late in the week. The loop's first pass waits ``digest.settle`` after a start. Its
token is derived from the week and the phone, so the unique index on the token makes the
digest exactly-once per helper and week even with several gateway processes calling this at
the same moment, and after restarts. Helpers with nobody due get nothing (an SMS saying
"nothing to do" every week teaches people to ignore the sender).

Wiring: call :func:`send_due_digests` every few minutes (or run :func:`digest_loop`); calls
before the week's send time, and repeated calls after it, do nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alerts.outbox import Priority, Recipient, enqueue, spread_offset
from alerts.templates import format_people
from gateway.clock import Clock, sleep_unless
from gateway.config import DigestConfig
from gateway.register.compliance import (
    emergency_factor,
    iso_week_label,
    load_person_visits,
    month_bounds,
    week_needs_visit,
)
from gateway.storage.db import Database
from gateway.storage.models import Helper, Notification

__all__ = ["DIGEST_PURPOSE", "digest_loop", "digest_token", "send_due_digests"]

log = logging.getLogger(__name__)

DIGEST_PURPOSE = "digest"
_TEMPLATE = "visit_digest"


def digest_token(week: str, phone: str) -> str:
    """The notification token of ``phone``'s digest for ISO ``week`` (``2026-W11``)."""
    return f"digest:{week}:{phone}"


def _week_text(monday: datetime) -> str:
    sunday = monday + timedelta(days=6)
    if sunday.month == monday.month:
        return f"{monday.month}月{monday.day}日至{sunday.day}日"
    return f"{monday.month}月{monday.day}日至{sunday.month}月{sunday.day}日"


async def send_due_digests(db: Database, now: datetime, tz: tzinfo, config: DigestConfig) -> int:
    """Queue this week's digest for every helper with persons due who has not had it yet.

    Returns:
        How many digests were queued by this call.
    """
    local = now.astimezone(tz)
    monday = datetime.combine(local.date() - timedelta(days=local.weekday()), time(0), tzinfo=tz)
    send_from = monday + timedelta(days=config.weekday - 1, hours=config.hour)
    if local < send_from:
        return 0
    week = iso_week_label(monday.date())
    month = f"{local.year:04d}-{local.month:02d}"
    month_start, month_end = month_bounds(month, tz)
    async with db.session() as session:
        factor = await emergency_factor(session, month, tz)
        persons = await load_person_visits(
            session,
            since=min(month_start, monday).astimezone(UTC),
            until=max(month_end, monday + timedelta(days=7)).astimezone(UTC),
        )
        helpers = {h.id: h for h in (await session.execute(select(Helper))).scalars()}
        tokens = [digest_token(week, h.phone) for h in helpers.values()]
        already = set(
            (
                await session.execute(
                    select(Notification.token).where(Notification.token.in_(tokens))
                )
            ).scalars()
        )
    due: dict[int, list[str]] = {}
    for person in persons:
        if person.helper_id is not None and week_needs_visit(person, now, tz, factor):
            due.setdefault(person.helper_id, []).append(person.name)
    queued = 0
    for helper_id, names in due.items():
        helper = helpers.get(helper_id)
        if helper is None:
            continue
        token = digest_token(week, helper.phone)
        if token in already:
            continue
        params = {
            "helper": helper.name,
            "week": _week_text(monday),
            "count": str(len(names)),
            "people": format_people(names),
        }
        try:
            async with db.session() as session, session.begin():
                enqueue(
                    session,
                    alert_id=None,
                    purpose=DIGEST_PURPOSE,
                    template=_TEMPLATE,
                    recipient=Recipient("helper", helper.name, helper.phone),
                    channel="sms",
                    params=params,
                    now=now,
                    priority=Priority.ROUTINE,
                    not_before=now + spread_offset(token, config.spread),
                    token=token,
                )
        except IntegrityError:
            continue  # another gateway process queued it a moment ago
        queued += 1
    if queued:
        log.info("queued %d visit digest(s) for %s", queued, week)
    return queued


async def digest_loop(
    stop: asyncio.Event,
    db: Database,
    clock: Clock,
    tz: tzinfo,
    config: DigestConfig,
    *,
    interval_seconds: float = 300.0,
    on_queued: Callable[[], None] | None = None,
) -> None:
    """Call :func:`send_due_digests` every ``interval_seconds`` until ``stop`` is set.

    ``on_queued`` is called when anything was queued, e.g. to wake the delivery loop. The
    first pass waits ``config.settle``: a start is when alarms held by the broker arrive.
    """
    await sleep_unless(clock, config.settle.total_seconds(), stop)
    while not stop.is_set():
        try:
            if await send_due_digests(db, clock.now(), tz, config) and on_queued is not None:
                on_queued()
        except Exception:
            log.exception("visit digest pass failed; retrying")
        await sleep_unless(clock, interval_seconds, stop)
