"""The demo's pieces that need no broker: its register, its HTTP socket, its clock's start."""

from __future__ import annotations

import socket
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest
import yaml

from gateway.app import Gateway
from gateway.clock import ScaledClock
from gateway.demo import (
    DemoError,
    DemoOptions,
    _bind_api_socket,
    _count,
    _register_document,
    _resume_time,
    _settings,
)
from gateway.register.provisioning import parse_provisioning
from gateway.register.vocabulary import Category
from gateway.storage.db import Database, migrate
from gateway.storage.models import Alert, Person, Village
from simulator.household import VILLAGES, generate_households


def test_the_demo_register_is_the_whole_town_with_all_six_categories() -> None:
    homes = generate_households(12, seed=0, protocol="mixed")
    document = _register_document(homes, seed=0)
    doc = parse_provisioning(
        yaml.safe_dump(document, allow_unicode=True),
        env={"HOMEWATCH_DEMO_ADMIN_PASSWORD": "a-demo-password"},
    )
    assert doc.villages[0].name == "坝芒村"  # the pilot
    assert {v.name for v in doc.villages} == {name for name, _ in VILLAGES}
    assert all(len(v.emergency_team) >= 2 for v in doc.villages)
    assert {h.village for h in doc.helpers} == {v.name for v in doc.villages}
    categories = Counter(c for p in doc.persons for c in p.categories)
    assert set(categories) == set(Category)
    with_devices = [p for p in doc.persons if p.devices]
    assert len(with_devices) == 12 and with_devices[0].village == "坝芒村"
    children = [p for p in doc.persons if Category.CHILDREN_IN_DIFFICULTY in p.categories]
    assert children and all(p.guardian_name and not p.devices for p in children)
    assert [(u.username, u.role.value) for u in doc.users] == [("admin", "town_admin")]


def test_a_taken_http_port_falls_back_to_a_free_one_unless_it_was_asked_for() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fallback = _bind_api_socket(port, fallback=True)
        try:
            assert fallback.getsockname()[1] not in (0, port)
        finally:
            fallback.close()
        with pytest.raises(DemoError, match=str(port)):
            _bind_api_socket(port, fallback=False)


async def test_the_clock_resumes_after_a_previous_run_so_time_never_runs_backwards(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    before = datetime.now(UTC)
    assert before <= await _resume_time(url) <= datetime.now(UTC)  # an empty database

    # A previous run at 60x left simulated time two days ahead of the wall clock.
    ahead = datetime.now(UTC) + timedelta(days=2)
    await migrate(url)
    db = Database(url)
    try:
        async with db.session() as session, session.begin():
            village = Village(name="坝芒村")
            session.add(village)
            await session.flush()
            person = Person(
                name="张三",
                gender="男",
                id_number="500241194905050016",
                village_id=village.id,
                categories=["dispersed_destitute"],
                care_level="special",
                created_at=ahead,
                updated_at=ahead,
            )
            session.add(person)
            await session.flush()
            session.add(
                Alert(
                    code="ABCD",
                    type="sos",
                    group="emergency",
                    status="resolved",
                    person_id=person.id,
                    raised_at=ahead,
                    last_trigger_at=ahead,
                )
            )
    finally:
        await db.dispose()
    assert await _resume_time(url) == ahead + timedelta(minutes=1)


def test_the_narration_counts_in_good_english() -> None:
    assert _count(1, "emergency", "emergencies") == "1 emergency"
    assert _count(2, "emergency", "emergencies") == "2 emergencies"
    assert _count(1, "person") == "1 person"
    assert _count(0, "person") == "0 persons"


async def test_the_demo_sets_up_the_gateway_through_its_settings_alone(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    settings = _settings(DemoOptions(speed=120), url, mqtt_port=18830, port=18080)
    assert (settings.mqtt_protocol, settings.rules_tick) == ("3.1.1", timedelta(minutes=2))
    gateway = Gateway(settings, "a-demo-secret-key-of-some-length", ScaledClock(120))
    try:
        # The embedded amqtt speaks 3.1.1 only: both sessions, routine and emergency, must.
        assert gateway.ingest.protocol is aiomqtt.ProtocolVersion.V311
        assert gateway.emergency_ingest.protocol is aiomqtt.ProtocolVersion.V311
        assert gateway.runner.poll_seconds == 120
    finally:
        await gateway.db.dispose()
    production = Gateway(
        settings.model_copy(update={"mqtt_protocol": "5", "rules_tick": timedelta(seconds=5)}),
        "a-demo-secret-key-of-some-length",
    )
    try:
        assert production.ingest.protocol is aiomqtt.ProtocolVersion.V5
        assert production.emergency_ingest.protocol is aiomqtt.ProtocolVersion.V5
        assert production.runner.poll_seconds == 5
    finally:
        await production.db.dispose()
