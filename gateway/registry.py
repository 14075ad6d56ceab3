"""The in-memory map from MQTT topic to registered device, loaded from the database."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from gateway.devices import DeviceSpec, TopicRole, device_topics, subscription_filters
from gateway.devices.vocabulary import DeviceKind, Protocol
from gateway.storage.db import Database
from gateway.storage.models import Device

__all__ = ["DeviceRegistry", "Route", "load_rows", "spec_of"]


def spec_of(device: Device) -> DeviceSpec:
    """What the adapters need to know of a registered device."""
    return DeviceSpec(
        uid=device.uid,
        kind=DeviceKind(device.kind),
        protocol=Protocol(device.protocol),
        topic=device.topic,
        model=device.model,
    )


async def load_rows(db: Database) -> list[tuple[DeviceSpec, int, int]]:
    """Every device as (spec, device id, person id). Plain columns, not ORM objects: at a
    county's 100,000 devices this is the difference between seconds and ten seconds."""
    async with db.session() as session:
        rows = await session.execute(
            select(
                Device.id,
                Device.person_id,
                Device.uid,
                Device.kind,
                Device.protocol,
                Device.topic,
                Device.model,
            ).order_by(Device.id)
        )
        kinds = {k.value: k for k in DeviceKind}
        protocols = {p.value: p for p in Protocol}
        return [
            (DeviceSpec(uid, kinds[kind], protocols[protocol], topic, model), id_, person)
            for id_, person, uid, kind, protocol, topic, model in rows
        ]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a topic leads: the device, the role of the topic, and the person it watches."""

    spec: DeviceSpec
    role: TopicRole
    device_id: int
    person_id: int


class DeviceRegistry:
    """Topic lookup for ingest; refreshed from the database when the register changes."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._rows: list[tuple[DeviceSpec, int, int]] = []
        self._loaded_at = -math.inf
        self._loading = asyncio.Lock()

    def lookup(self, topic: str) -> Route | None:
        return self._routes.get(topic)

    def filters(self, owns: Callable[[DeviceSpec], bool] | None = None) -> list[str]:
        """Subscription filters of every device, or of those ``owns`` accepts (one MQTT
        session's share of the homes: an emergency lane, a partition)."""
        specs = (spec for spec, _, _ in self._rows)
        if owns is not None:
            specs = (spec for spec in specs if owns(spec))
        return list(subscription_filters(specs))

    def topics(self, owns: Callable[[DeviceSpec], bool]) -> list[str]:
        """The exact topics of the devices ``owns`` accepts, no family wildcards (a session
        that must hear those devices and nothing else: the emergency lane)."""
        return [
            topic
            for spec, _, _ in self._rows
            if owns(spec)
            for topic in device_topics(spec)
            # A bad register entry must not break the subscription (as in the filters).
            if topic and not any(c in topic for c in "+#\0")
        ]

    def replace(self, rows: list[tuple[DeviceSpec, int, int]]) -> None:
        routes: dict[str, Route] = {}
        for spec, device_id, person_id in rows:
            for topic, role in device_topics(spec).items():
                routes[topic] = Route(spec, role, device_id, person_id)
        self._routes = routes
        self._rows = rows

    async def load(self, db: Database, *, fresh_for: float = 0.0) -> bool:
        """Reload from the database; True when anything changed.

        Sessions sharing this register (the routine session and the emergency lane) each
        refresh it: a load younger than ``fresh_for`` seconds serves them all, rather than
        reading every device row once per session (seconds of CPU at a county's size).
        """
        async with self._loading:
            if time.monotonic() - self._loaded_at < fresh_for:
                return False
            rows = await load_rows(db)
            self._loaded_at = time.monotonic()
            changed = rows != self._rows
            self.replace(rows)
            return changed
