"""Shared by the topic-role adapters' tests (Tasmota, Shelly): parse one literal payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.devices import DeviceSpec, TopicRole, parse
from gateway.events import EventKind, PayloadError, SensorEvent

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def msg(
    device: DeviceSpec, role: TopicRole, payload: object, *, retained: bool = False
) -> list[SensorEvent]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse(device, role, raw, retained=retained, received_at=NOW)


def kinds(events: list[SensorEvent]) -> list[EventKind]:
    return [e.kind for e in events]


def rejected(device: DeviceSpec, role: TopicRole, payload: object) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        msg(device, role, payload)
    return info.value
