"""Fail-over on any MQTT broker: the homes split into a fixed set of leased MQTT sessions.

A shared subscription (``$share/…``) strands messages: Mosquitto keeps queueing a dead
member's share to its session (mosquitto issue #2662). Instead the devices are split, by
person, into ``mqtt_partitions`` persistent sessions with fixed client ids
(``<mqtt_client_id><suffix>-p<k>``). Each session is held by at most one `run` process under a
PostgreSQL advisory lock taken on a connection of its own: the lock dies with that
connection, so when a process dies its sessions' leases lapse at once (a vanished host: when
the TCP keepalives below give up). Every process polls; a survivor takes a lapsed lease and
connects with that client id and ``clean_start`` false, so the broker hands it the session's
queued and unacknowledged messages. A home's devices share one session, so its order holds.

Processes balance: none takes more than ``ceil(P / live processes)`` sessions of a kind, and
one holding more than that hands the surplus back, one session per poll, after stopping its
ingest cleanly (stored, acknowledged, offline published).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from gateway.devices import DeviceSpec
from gateway.devices._common import is_valid_topic
from gateway.registry import DeviceRegistry, load_rows
from gateway.storage.db import Database

__all__ = [
    "LeaseBoard",
    "Partition",
    "PartitionRegistry",
    "PartitionSupervisor",
    "RegisterLoader",
    "SessionKind",
    "partition_of",
    "partitions_of",
]

log = logging.getLogger(__name__)

#: Advisory lock namespaces (the first of the two int4 keys): "Hwat" and "Hwau".
_LEASE_SPACE = 0x48776174
_MEMBER_SPACE = 0x48776175
#: Application name prefix of lease connections, so ``pg_stat_activity`` names the holders.
LEASE_APPLICATION = "homewatch-lease"
#: A vanished host's leases lapse after idle + interval × count seconds of silence.
_KEEPALIVE = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}


@dataclass(frozen=True, slots=True)
class SessionKind:
    """A family of sessions partitioned the same way (the main ingest; an emergency lane).

    Attributes:
        name: For logs.
        client_suffix: Appended to ``mqtt_client_id`` before ``-p<k>``.
        covers: Which devices this kind receives at all; None: every device.
    """

    name: str
    client_suffix: str = ""
    covers: Callable[[DeviceSpec], bool] | None = None


@dataclass(frozen=True, slots=True)
class Partition:
    """One leased MQTT session: the ``index``-th of ``count`` of its kind."""

    kind: SessionKind
    index: int
    count: int
    client_id: str

    @property
    def lease_key(self) -> int:
        """The second advisory lock key: stable across processes, from the client id."""
        return zlib.crc32(self.client_id.encode()) & 0x7FFFFFFF


def partition_of(person_id: int, count: int) -> int:
    """The partition of a person's devices: ids are dense, so a modulo spreads them evenly."""
    return person_id % count


def partitions_of(kinds: list[SessionKind], count: int, client_id: str) -> list[Partition]:
    """Every partition of every kind; refuses two that would share a lease key."""
    partitions = [
        Partition(kind, k, count, f"{client_id}{kind.client_suffix}-p{k}")
        for kind in kinds
        for k in range(count)
    ]
    keys = {p.lease_key for p in partitions}
    if len(keys) != len(partitions):
        raise ValueError("two partitions' client ids hash to one lease key; rename a kind")
    return partitions


# -- the register, loaded once and split ----------------------------------------------------

Rows = list[tuple[DeviceSpec, int, int]]


class RegisterLoader:
    """Loads the device register for every partition at once: one query per refresh period
    however many sessions the process holds, and only when the register changed (a
    signature of every device row, computed in PostgreSQL, is compared first: ~0.1 s at
    100,000 devices against seconds for a full load)."""

    def __init__(self, db: Database, max_age: float) -> None:
        self.db = db
        self.max_age = max_age
        self._rows: Rows = []
        self._signature: tuple[Any, ...] | None = None
        self._checked_at = -math.inf
        self._lock = asyncio.Lock()

    async def rows(self) -> Rows:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.max_age:
                signature = await self._current_signature()
                if signature != self._signature:
                    self._rows = await load_rows(self.db)
                    self._signature = signature
                self._checked_at = time.monotonic()
            return self._rows

    async def _current_signature(self) -> tuple[Any, ...]:
        async with self.db.session() as session:
            row = (await session.execute(_SIGNATURE)).one()
        return tuple(row)


_SIGNATURE = text(
    "SELECT count(*), coalesce(sum(hashtext(concat_ws('|', id, person_id, uid, kind,"
    " protocol, topic, model))), 0) FROM devices"
)


class PartitionRegistry(DeviceRegistry):
    """One partition's share of the register, as its :class:`MqttIngest` sees it.

    Filters are the exact topics of its own devices: a family wildcard such as
    ``homewatch/+/event`` would deliver every other partition's messages too. So in
    partitioned mode no session lists unknown devices (docs/SCALING.md).
    """

    def __init__(self, loader: RegisterLoader, partition: Partition) -> None:
        super().__init__()
        self.loader = loader
        self.partition = partition
        self._source: Rows | None = None
        self._uids: frozenset[str] = frozenset()

    def _mine(self, spec: DeviceSpec, person_id: int) -> bool:
        p = self.partition
        if p.kind.covers is not None and not p.kind.covers(spec):
            return False
        return partition_of(person_id, p.count) == p.index

    def owns(self, spec: DeviceSpec) -> bool:
        """The ``owns`` predicate handed to the partition's ingest."""
        return spec.uid in self._uids

    def filters(self, owns: Callable[[DeviceSpec], bool] | None = None) -> list[str]:
        by_device: dict[str, list[str]] = {}
        for topic, route in self._routes.items():
            if owns is None or owns(route.spec):
                by_device.setdefault(route.spec.topic, []).append(topic)
        filters: list[str] = []
        for base, topics in by_device.items():
            if not is_valid_topic(base):
                continue
            # Each filter costs the client ~50 µs to subscribe (paho builds an options and
            # a reason-code object each): a device whose topics all sit one level under its
            # base (native: event, status) takes one ``base/+`` instead of two.
            if len(topics) > 1 and all(t.rpartition("/")[0] == base for t in topics):
                filters.append(f"{base}/+")
            else:
                filters.extend(topics)
        return filters

    async def load(self, db: Database, *, fresh_for: float = 0.0) -> bool:
        # The loader shares one load among every partition, with its own freshness.
        rows = await self.loader.rows()
        if rows is self._source:
            return False
        self._source = rows
        mine = [row for row in rows if self._mine(row[0], row[2])]
        changed = mine != self._rows
        if changed:
            self.replace(mine)
            self._uids = frozenset(spec.uid for spec, _, _ in mine)
        return changed


# -- leases ----------------------------------------------------------------------------------


class LeaseBoard:
    """Advisory locks on one dedicated PostgreSQL connection: a lease lives as long as it.

    ``timeout`` bounds each lease query: past it the connection counts as lost and every
    session stops. Generous, because a busy event loop (a quiet-home tick over 30,000
    homes) delays the answer without the lease being in doubt, and stopping every session
    for nothing costs a re-subscription of each.
    """

    def __init__(self, database_url: str, *, timeout: float = 15.0, holder: str = "") -> None:
        self.database_url = database_url
        self.timeout = timeout
        holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.application_name = f"{LEASE_APPLICATION}:{holder}"
        self._engine: AsyncEngine | None = None
        self._connection: AsyncConnection | None = None

    async def open(self) -> None:
        """Connect and join: a member lock that others count to balance."""
        self._engine = create_async_engine(
            self.database_url,
            poolclass=NullPool,
            connect_args={
                "server_settings": {"application_name": self.application_name, **_KEEPALIVE}
            },
        )
        self._connection = await self._engine.connect()
        # Autocommit: session-level advisory locks need no transaction, and an open one would
        # hold a snapshot for as long as the process lives.
        await self._connection.execution_options(isolation_level="AUTOCOMMIT")
        while not await self._scalar(
            "SELECT pg_try_advisory_lock(:space, :key)",
            space=_MEMBER_SPACE,
            key=random.randrange(1, 2**31),  # noqa: S311 - an id, not a secret
        ):
            pass

    async def close(self) -> None:
        """Drop the connection, and with it every lease still held."""
        with contextlib.suppress(Exception):
            if self._connection is not None:
                await self._connection.close()
        if self._engine is not None:
            await self._engine.dispose()
        self._connection = None
        self._engine = None

    async def _scalar(self, sql: str, **params: Any) -> Any:
        if self._connection is None:
            raise ConnectionError("the lease connection is not open")
        result = await asyncio.wait_for(
            self._connection.execute(text(sql), params), timeout=self.timeout
        )
        return result.scalar_one()

    async def members(self) -> int:
        """Live gateway processes of this database (at least this one)."""
        count = await self._scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            " AND l.classid = :space AND d.datname = current_database()",
            space=_MEMBER_SPACE,
        )
        return max(1, int(count))

    async def try_take(self, partition: Partition) -> bool:
        return bool(
            await self._scalar(
                "SELECT pg_try_advisory_lock(:space, :key)",
                space=_LEASE_SPACE,
                key=partition.lease_key,
            )
        )

    async def release(self, partition: Partition) -> None:
        await self._scalar(
            "SELECT pg_advisory_unlock(:space, :key)", space=_LEASE_SPACE, key=partition.lease_key
        )


async def lease_holders(connection: AsyncConnection) -> dict[int, str]:
    """Lease key → holder's application name (``homewatch-lease:<host>:<pid>``), for
    operators and tests: ``SELECT`` over ``pg_locks`` joined to ``pg_stat_activity``."""
    rows = await connection.execute(
        text(
            "SELECT l.objid::bigint, a.application_name FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            " AND l.classid = :space AND d.datname = current_database()"
        ),
        {"space": _LEASE_SPACE},
    )
    return {int(key): str(name) for key, name in rows}


# -- the supervisor --------------------------------------------------------------------------


class Session(Protocol):
    """What the supervisor needs of an ingest (:class:`gateway.ingest.MqttIngest`)."""

    connected: bool
    mqtt_state: str

    async def run(self, stop: asyncio.Event) -> None: ...


#: Builds the ingest of one partition: (client id, its register share, its owns predicate).
SessionFactory = Callable[[str, DeviceRegistry, Callable[[DeviceSpec], bool]], Session]


@dataclass
class _Held:
    session: Session
    stop: asyncio.Event
    task: asyncio.Task[None]


@dataclass
class PartitionSupervisor:
    """Holds leases and runs one ingest per held partition; see the module docstring."""

    partitions: list[Partition]
    leases: LeaseBoard
    loader: RegisterLoader
    make_session: SessionFactory
    poll_seconds: float = 3.0
    held: dict[Partition, _Held] = field(default_factory=dict)
    #: False until the first lease round: /healthz must not call a process that has not yet
    #: taken its share healthy.
    started: bool = False
    leases_ok: bool = False

    @property
    def connected(self) -> bool:
        """Every held session is subscribed (a process holding none has nothing to miss)."""
        return (
            self.started and self.leases_ok and all(h.session.connected for h in self.held.values())
        )

    @property
    def mqtt_state(self) -> str:
        if not self.started or not self.leases_ok:
            return "disconnected"
        states = {h.session.mqtt_state for h in self.held.values()}
        for state in ("disconnected", "subscribing"):
            if state in states:
                return state
        return "connected"

    def held_client_ids(self) -> list[str]:
        return sorted(p.client_id for p in self.held)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    if not self.leases_ok:
                        await self.leases.close()
                        await self.leases.open()
                        self.leases_ok = True
                    await self.rebalance()
                    self.started = True
                except Exception:
                    # Our leases may be gone (the database restarted, the network dropped):
                    # another process may take them, so stop every session now rather than
                    # fight it for the client ids.
                    log.exception("lease connection lost; stopping every held session")
                    self.leases_ok = False
                    await self._stop_all()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
        finally:
            await self._stop_all(release=True)
            await self.leases.close()

    async def rebalance(self) -> None:
        """One round: restart crashed sessions, hand back a surplus, take free leases."""
        for partition, held in list(self.held.items()):
            if held.task.done():
                log.error("session %s stopped; starting it again", partition.client_id)
                self.held[partition] = self._start(partition)
        live = await self.leases.members()
        kinds = dict.fromkeys(p.kind for p in self.partitions)
        for kind in kinds:
            mine = [p for p in self.partitions if p.kind == kind]
            quota = math.ceil(len(mine) / live)
            taken = [p for p in mine if p in self.held]
            if len(taken) > quota:
                await self._hand_back(taken[-1])
                continue
            # Start from a different place in each process so that two starting together
            # try different leases first.
            offset = random.randrange(len(mine))  # noqa: S311 - spreading, not a secret
            for partition in mine[offset:] + mine[:offset]:
                if len(taken) >= quota:
                    break
                if partition in self.held:
                    continue
                if await self.leases.try_take(partition):
                    log.info("took lease of %s", partition.client_id)
                    self.held[partition] = self._start(partition)
                    taken.append(partition)

    def _start(self, partition: Partition) -> _Held:
        registry = PartitionRegistry(self.loader, partition)
        session = self.make_session(partition.client_id, registry, registry.owns)
        stop = asyncio.Event()
        task = asyncio.create_task(session.run(stop), name=f"ingest-{partition.client_id}")
        return _Held(session, stop, task)

    async def _hand_back(self, partition: Partition) -> None:
        log.info("handing back %s (more gateways are alive now)", partition.client_id)
        held = self.held.pop(partition)
        await self._stop_session(held)
        await self.leases.release(partition)

    async def _stop_session(self, held: _Held) -> None:
        """Let the ingest finish its batch and say offline; cancel it if it hangs."""
        held.stop.set()
        done, _ = await asyncio.wait({held.task}, timeout=15)
        if not done:
            held.task.cancel()
            await asyncio.gather(held.task, return_exceptions=True)
        elif not held.task.cancelled() and held.task.exception() is not None:
            log.error("a session failed while stopping", exc_info=held.task.exception())

    async def _stop_all(self, *, release: bool = False) -> None:
        held, self.held = self.held, {}
        await asyncio.gather(*(self._stop_session(h) for h in held.values()))
        if release and self.leases_ok:
            for partition in held:
                with contextlib.suppress(Exception):
                    await self.leases.release(partition)
