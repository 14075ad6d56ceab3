"""The rules runner reads only what changed: an idle tick touches neither the register
nor any home, a report or a closed alert brings just that home back. Both databases, a
manual clock, no broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, update

from alerts.types import AlertType
from gateway.storage.models import Person
from tests.service.test_quiet_home import Home, home

__all__ = ["home"]


@contextmanager
def statements(home: Home) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = home.gateway.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def reads_homes(seen: list[str]) -> bool:
    return any("FROM persons" in s or "FROM devices" in s for s in seen)


async def test_an_idle_tick_reads_no_home_and_a_report_reads_one(home: Home) -> None:
    await home.motion()
    await home.tick()  # the first tick synchronises and judges every home
    person = await home.person_id()
    assert home.gateway.runner.due.next_at(person) == home.clock.now() + timedelta(hours=4)
    home.clock.advance(timedelta(seconds=5))
    with statements(home) as seen:
        await home.gateway.runner.tick()
    assert seen and not reads_homes(seen), "nobody due, nothing changed: no home read"
    await home.motion()
    with statements(home) as seen:
        await home.gateway.runner.tick()
    assert reads_homes(seen)
    assert home.gateway.runner.due.next_at(person) == home.clock.now() + timedelta(hours=4)


async def test_a_home_comes_due_on_time_without_being_read_before(home: Home) -> None:
    # The periodic resynchronisation (every 5 min) re-reads everybody on purpose: the
    # database checking the index. Put off here, to see what the ticks between read.
    home.gateway.runner.resync = timedelta(days=1)
    await home.motion()
    await home.tick()
    with statements(home) as seen:
        await home.advance(timedelta(hours=3, minutes=55))
    assert not reads_homes(seen)
    await home.advance(timedelta(minutes=5))
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1


async def test_a_changed_override_counts_from_the_persons_next_report(home: Home) -> None:
    home.gateway.runner.resync = timedelta(days=1)  # not the periodic resync's doing
    await home.motion()
    await home.tick()
    person = await home.person_id()
    async with home.gateway.db.session() as session, session.begin():
        await session.execute(
            update(Person)
            .where(Person.id == person)
            .values(rules_override={"inactivity": {"day": {"quiet": "2h"}}})
        )
    await home.motion()
    await home.advance(timedelta(hours=1, minutes=55))
    assert await home.alerts(AlertType.INACTIVITY) == []
    await home.advance(timedelta(minutes=10))
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1, "two quiet hours now, not four"
