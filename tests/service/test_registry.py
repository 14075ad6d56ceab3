"""The device register the MQTT sessions share: one load serves every session that asks
while it is fresh, so the routine session and the emergency lane do not each read every
device row."""

from __future__ import annotations

import pytest

from gateway.clock import ManualClock
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.registry import DeviceRegistry
from gateway.storage.db import Database
from tests.helpers import register_yaml


async def test_a_fresh_load_serves_the_next_session_and_a_stale_one_is_read_again(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml("rg", persons=1)), clock.now())
    registry = DeviceRegistry()
    new_home = "rg/homewatch/rg-p1-sos/event"
    assert await registry.load(db, fresh_for=60)
    assert registry.lookup("rg/homewatch/rg-p0-sos/event") is not None

    await apply_provisioning(db, parse_provisioning(register_yaml("rg", persons=2)), clock.now())
    # Another session asking within the minute gets the same load: no new device yet.
    assert not await registry.load(db, fresh_for=60)
    assert registry.lookup(new_home) is None
    # Asked without tolerance (or once the load is older), the new home's devices come in.
    assert await registry.load(db)
    assert registry.lookup(new_home) is not None
