"""Leased session partitions on a real PostgreSQL: balance, hand-back, take-over, lease loss.
The sessions are stand-ins that record when they run (the broker side is the kill test's,
tests/integration/test_failover.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from gateway.config import ConfigError, load_settings
from gateway.devices import DeviceSpec
from gateway.partitions import (
    LeaseBoard,
    PartitionRegistry,
    PartitionSupervisor,
    RegisterLoader,
    SessionKind,
    lease_holders,
    partition_of,
    partitions_of,
)
from gateway.register.vocabulary import DeviceKind, Protocol
from gateway.registry import DeviceRegistry
from gateway.storage.db import Database, migrate
from tests.conftest import wait_until
from tests.services import scratch_pg_database

PARTITIONS = 4


@dataclass
class _Running:
    """Which client ids run now, and the most that ever ran at once per id."""

    now: Counter[str]
    most: Counter[str]


class _StandInSession:
    def __init__(self, client_id: str, running: _Running) -> None:
        self.client_id = client_id
        self.running = running
        self.connected = True
        self.mqtt_state = "connected"

    async def run(self, stop: asyncio.Event) -> None:
        self.running.now[self.client_id] += 1
        self.running.most[self.client_id] = max(
            self.running.most[self.client_id], self.running.now[self.client_id]
        )
        try:
            await stop.wait()
        finally:
            self.running.now[self.client_id] -= 1


@pytest.fixture
async def pg() -> AsyncIterator[Database]:
    with scratch_pg_database("hwlease") as url:
        await migrate(url)
        database = Database(url)
        try:
            yield database
        finally:
            await database.dispose()


def _supervisor(db: Database, running: _Running, name: str) -> PartitionSupervisor:
    def session(
        client_id: str, registry: DeviceRegistry, owns: Callable[[DeviceSpec], bool]
    ) -> _StandInSession:
        return _StandInSession(client_id, running)

    return PartitionSupervisor(
        partitions_of([SessionKind("ingest")], PARTITIONS, "gw"),
        LeaseBoard(db.url, holder=name),
        RegisterLoader(db, max_age=5.0),
        session,
        poll_seconds=0.2,
    )


async def test_two_processes_balance_and_a_survivor_takes_over_a_stopped_ones_sessions(
    pg: Database,
) -> None:
    running = _Running(Counter(), Counter())
    first, second = _supervisor(pg, running, "first"), _supervisor(pg, running, "second")
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first_task = asyncio.create_task(first.run(stop_first))
    await wait_until(lambda: len(first.held) == PARTITIONS, within=10)
    assert first.connected and first.mqtt_state == "connected"
    second_task = asyncio.create_task(second.run(stop_second))
    # The first hands back its surplus one per poll; the second takes it.
    await wait_until(lambda: len(first.held) == len(second.held) == PARTITIONS // 2, within=10)
    assert set(first.held_client_ids()).isdisjoint(second.held_client_ids())
    async with pg.engine.connect() as connection:
        holders = await lease_holders(connection)
    assert Counter(holders.values()) == {
        first.leases.application_name: 2,
        second.leases.application_name: 2,
    }

    stop_first.set()
    await first_task
    await wait_until(lambda: len(second.held) == PARTITIONS, within=10)
    assert all(n == 1 for n in running.most.values()), "a session ran twice at once"
    stop_second.set()
    await second_task
    assert sum(running.now.values()) == 0


async def test_a_process_that_loses_its_lease_connection_stops_its_sessions(
    pg: Database,
) -> None:
    running = _Running(Counter(), Counter())
    supervisor = _supervisor(pg, running, "only")
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await wait_until(lambda: len(supervisor.held) == PARTITIONS, within=10)
    lost = asyncio.Event()
    original = supervisor._stop_all

    async def observed(*, release: bool = False) -> None:
        if not release:
            lost.set()
        await original(release=release)

    supervisor._stop_all = observed  # type: ignore[method-assign]
    async with pg.engine.connect() as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"
            ),
            {"n": supervisor.leases.application_name},
        )
    await asyncio.wait_for(lost.wait(), timeout=10)
    # It reconnects, leases again and carries on.
    await wait_until(lambda: len(supervisor.held) == PARTITIONS, within=10)
    stop.set()
    await task


def _spec(uid: str) -> DeviceSpec:
    return DeviceSpec(
        uid=uid,
        kind=DeviceKind.SOS,
        protocol=Protocol.NATIVE,
        topic=f"homewatch/{uid}",
        model=None,
    )


class _Rows(RegisterLoader):
    def __init__(self, rows: list[tuple[DeviceSpec, int, int]]) -> None:
        self._fixed = rows

    async def rows(self) -> list[tuple[DeviceSpec, int, int]]:
        return self._fixed


async def test_a_partition_subscribes_to_its_persons_devices_exact_topics_only() -> None:
    rows = [(_spec(f"d{n}"), n, 10 + n // 2) for n in range(8)]  # two devices a person
    [p0, p1] = partitions_of([SessionKind("ingest")], 2, "gw")
    share0 = PartitionRegistry(_Rows(rows), p0)
    share1 = PartitionRegistry(_Rows(rows), p1)
    assert await share0.load(None)  # type: ignore[arg-type]
    assert await share1.load(None)  # type: ignore[arg-type]
    assert not await share0.load(None)  # type: ignore[arg-type]
    mine = {spec.uid for spec, _, person in rows if partition_of(person, 2) == 0}
    assert mine == {"d0", "d1", "d4", "d5"}  # a person's devices stay together
    # One filter a native device, covering its event and status topics and nobody else's.
    assert sorted(share0.filters(share0.owns)) == sorted(f"homewatch/{uid}/+" for uid in mine)
    assert share0.lookup("homewatch/d0/event") is not None
    assert share0.lookup("homewatch/d2/event") is None
    assert share1.lookup("homewatch/d2/event") is not None
    assert [p.client_id for p in (p0, p1)] == ["gw-p0", "gw-p1"]


async def test_a_zigbee2mqtt_device_keeps_its_exact_topics() -> None:
    """``base/#`` would also bring the device's ``/set`` commands, listed as unknown."""
    door = DeviceSpec("z1", DeviceKind.DOOR, Protocol.ZIGBEE2MQTT, "zigbee2mqtt/z1", None)
    [only] = partitions_of([SessionKind("ingest")], 1, "gw")
    share = PartitionRegistry(_Rows([(door, 1, 7)]), only)
    assert await share.load(None)  # type: ignore[arg-type]
    assert sorted(share.filters()) == ["zigbee2mqtt/z1", "zigbee2mqtt/z1/availability"]


def test_partitions_need_postgresql_and_no_share_group() -> None:
    with pytest.raises(ConfigError, match="needs PostgreSQL"):
        load_settings(mqtt_partitions=4, database_url="sqlite+aiosqlite:///x.db")
    with pytest.raises(ConfigError, match="exclude each other"):
        load_settings(
            mqtt_partitions=4,
            mqtt_share_group="g",
            database_url="postgresql+asyncpg://postgres@127.0.0.1/x",
        )
    settings = load_settings(
        mqtt_partitions=4, database_url="postgresql+asyncpg://postgres@127.0.0.1/x"
    )
    assert settings.mqtt_partitions == 4
