"""Personal data at rest (SPEC §10): the raw database holds no ID number or phone, the
API still shows them (masked to helpers), look-ups go through blind indexes, nothing of
them reaches the log, and rotation re-encrypts under a new key."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from alerts.notifiers.base import DeliveryError
from alerts.service import AlertService
from alerts.types import AlertTrigger, AlertType
from gateway.cli import main
from gateway.config import EscalationConfig, RulesConfig
from gateway.crypto import Keyring
from gateway.register.idnumber import mask
from gateway.storage.db import Database, alembic_config, migrate
from gateway.storage.models import Helper, Notification, Person, Visit
from gateway.storage.rekey import rotate_keys
from tests.helpers import _birth, id_number
from tests.service.api_support import running_api
from tests.service.test_escalation import RecordingNotifier

KEY = "first-data-key-" + "k" * 20
NEW_KEY = "second-data-key-" + "n" * 20
HELPER = "+8613700000001"
TEAM = "+8613900000002"
DUTY = "+8602376000000"
RESIDENT = "+8613600000000"
IDS = [id_number(_birth(n), 10 + n, n % 2 == 0) for n in range(2)]
PHONES = [HELPER, TEAM, DUTY, RESIDENT, "+8613900000001", "+8613700000003"]


def _needles() -> list[str]:
    """Every form an ID number or phone could take in a file or a log line."""
    national = [p.removeprefix("+86") for p in PHONES]
    return [*IDS, *PHONES, *national]


@pytest.fixture
async def keyed_db(database_url: str) -> AsyncIterator[Database]:
    keyring = Keyring(KEY)
    await migrate(database_url, keyring)
    database = Database(database_url, keyring=keyring)
    try:
        yield database
    finally:
        await database.dispose()


def _raw_dump(database_url: str) -> bytes:
    """The database as an attacker with the file (SQLite) or a dump (PostgreSQL) sees it."""
    parts = urlsplit(database_url)
    if parts.scheme.startswith("sqlite"):
        path = Path(parts.path.removeprefix("/"))
        path = Path("/" + str(path)) if not path.is_absolute() else path
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    return subprocess.run(
        [
            "pg_dump",
            "--host",
            parts.hostname or "127.0.0.1",
            "--port",
            str(parts.port or 5432),
            "--username",
            parts.username or "postgres",
            parts.path.lstrip("/"),
        ],
        check=True,
        capture_output=True,
    ).stdout


async def test_a_whole_flow_leaves_no_id_number_or_phone_in_the_database_or_the_log(
    keyed_db: Database, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_api(keyed_db, tmp_path) as api:
        admin = await api.login("admin")
        helper = await api.login("lisi")
        persons = (await api.client.get("/api/v1/persons", headers=admin)).json()
        person_id = persons[0]["id"]

        # Full values to those allowed, masked ID numbers to helpers.
        detail = (await api.client.get(f"/api/v1/persons/{person_id}", headers=admin)).json()
        assert detail["id_number"] in IDS and detail["phone"] == RESIDENT
        seen = (await api.client.get(f"/api/v1/persons/{person_id}", headers=helper)).json()
        assert seen["id_number"] == mask(detail["id_number"]) != detail["id_number"]

        # A register change, a visit, an export: all write or read personal data.
        patched = await api.client.patch(
            f"/api/v1/persons/{person_id}",
            headers=admin,
            json={
                "guardian_name": "张小",
                "guardian_phone": "+8613900000001",
                "health_status": "高血压",
            },
        )
        assert patched.status_code == 200, patched.text
        visit = await api.client.post(
            "/api/v1/visits",
            headers=helper,
            json={
                "person_id": person_id,
                "visited_at": api.clock.now().isoformat(),
                "helper_phone": HELPER,
                "services": ["daily_care"],
                "notes": "",
            },
        )
        assert visit.status_code == 201, visit.text
        listed = await api.client.get(
            "/api/v1/visits", headers=admin, params={"helper_phone": HELPER}
        )
        assert [v["id"] for v in listed.json()] == [visit.json()["id"]]
        export = await api.client.get(
            "/api/v1/register.xlsx", headers=admin, params={"village": "坝芒村"}
        )
        assert export.status_code == 200

    # An SOS escalated to the team and acknowledged by SMS: notifications hold phones.
    notifier = RecordingNotifier()
    # A refused delivery is logged: the log line must not carry the number either.
    notifier.fail[("sms", HELPER)] = [
        DeliveryError(f"The 'To' number {HELPER} is not valid", retryable=True, status="400")
    ]
    service = AlertService(
        keyed_db,
        api.clock,
        notifier,
        escalation=EscalationConfig(),
        rules=RulesConfig(),
        public_url="http://gw.example",
        timezone=ZoneInfo("Asia/Shanghai"),
        worker_id="w1",
    )
    await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, api.clock.now()))
    await service.tick()
    api.clock.advance(timedelta(minutes=3))
    await service.tick()
    acked = await service.acknowledge_by_sms(TEAM, "1")
    assert acked is not None and acked.acknowledged_by == "赵六"
    await service.tick()
    assert any("本人电话13600000000" in t for _, _, t in notifier.sent)

    async with keyed_db.session() as session:
        stored = await session.get(Person, person_id)
        assert stored is not None
        assert stored.guardian_phone == "+8613900000001" and stored.health_status == "高血压"
        raw = (
            await session.execute(
                text("SELECT id_number, phone, health_status FROM persons WHERE id = :id"),
                {"id": person_id},
            )
        ).one()
        assert all(str(v).startswith(f"v1:{keyed_db.keyring.current.kid}:") for v in raw)

    dump = _raw_dump(database_url)
    assert b"CREATE TABLE" in dump or b"SQLite format 3" in dump
    for needle in _needles():
        assert needle.encode() not in dump, f"{needle} in clear text in the database"
    # httpx here is the test's own client logging the URLs it asks for (the gateway runs
    # uvicorn at log level warning: no access log).
    logged = "\n".join(
        r.getMessage() + " " + repr(r.args) + (r.exc_text or "")
        for r in caplog.records
        if r.name != "httpx"
    )
    assert "delivery" in logged and "failed" in logged, "the refused delivery was not logged"
    for needle in _needles():
        assert needle not in logged, f"{needle} in the log"


async def test_lookups_by_phone_and_id_number_use_the_blind_index(keyed_db: Database) -> None:
    async with running_api(keyed_db, Path("/nonexistent")) as _api:
        pass
    async with keyed_db.session() as session:
        helper = (
            await session.execute(select(Helper).where(Helper.phone_bidx == HELPER))
        ).scalar_one()
        assert helper.phone == HELPER
        # The stored index is a keyed HMAC, not the phone, and differs between keys.
        assert helper.phone_bidx != HELPER and len(helper.phone_bidx) == 64
        assert helper.phone_bidx == keyed_db.keyring.blind_index(HELPER, "phone")
        assert helper.phone_bidx != Keyring(NEW_KEY).blind_index(HELPER, "phone")
        person = (
            await session.execute(select(Person).where(Person.id_number_bidx == IDS[1]))
        ).scalar_one()
        assert person.id_number == IDS[1]
        # An ID number written with a lower-case x or spaces is the same person.
        assert (
            await session.execute(select(Person.id).where(Person.id_number_bidx == f" {IDS[1]} "))
        ).scalar_one() == person.id


async def test_rotation_re_encrypts_everything_under_the_new_key_in_batches(
    keyed_db: Database, database_url: str
) -> None:
    async with running_api(keyed_db, Path("/nonexistent")) as api:
        admin = await api.login("admin")
        persons = (await api.client.get("/api/v1/persons", headers=admin)).json()
        await api.client.post(
            "/api/v1/visits",
            headers=admin,
            json={
                "person_id": persons[0]["id"],
                "visited_at": api.clock.now().isoformat(),
                "helper_phone": HELPER,
                "services": ["health"],
                "notes": "",
            },
        )
    old_kid = keyed_db.keyring.current.kid
    rotated = Database(database_url, keyring=Keyring(NEW_KEY, [KEY]))
    try:
        report = await rotate_keys(rotated, batch_size=1)
        assert report.kid != old_kid
        assert report.rows["persons"] == 2 and report.rows["helpers"] == 2
        assert report.rows["visits"] == 1 and report.rows["audit_log"] >= 1
        async with rotated.session() as session:
            raw = (await session.execute(text("SELECT id_number FROM persons"))).scalars().all()
            assert all(v.startswith(f"v1:{report.kid}:") for v in raw)
            # Blind indexes follow the new key: look-ups still find.
            helper = (
                await session.execute(select(Helper).where(Helper.phone_bidx == HELPER))
            ).scalar_one()
            assert helper.phone == HELPER
            visit = (
                await session.execute(select(Visit).where(Visit.helper_phone_bidx == HELPER))
            ).scalar_one()
            assert visit.helper_phone == HELPER
        assert (await rotate_keys(rotated)).total == 0, "a second run has nothing left to do"
    finally:
        await rotated.dispose()
    # Without the retired key the new values are readable, with only the old key they are not.
    only_new = Database(database_url, keyring=Keyring(NEW_KEY))
    try:
        async with only_new.session() as session:
            names = (await session.execute(select(Person.id_number))).scalars().all()
            assert sorted(names) == sorted(IDS)
    finally:
        await only_new.dispose()


async def test_the_migration_encrypts_rows_written_before_it(database_url: str) -> None:
    from alembic import command

    await _upgrade_to(database_url, "0003")
    plain = Database(database_url)
    try:
        async with plain.session() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO town (id, name, duty_name, duty_phone) "
                    "VALUES (1, '隘口镇', '值班', :phone)"
                ),
                {"phone": DUTY},
            )
            await session.execute(text("INSERT INTO villages (id, name) VALUES (1, '坝芒村')"))
            await session.execute(
                text(
                    "INSERT INTO helpers (id, name, phone, title, village_id) "
                    "VALUES (1, '李四', :phone, '', 1)"
                ),
                {"phone": HELPER},
            )
            await session.execute(
                text(
                    "INSERT INTO audit_log (at, actor, action, entity, entity_id, before, after)"
                    " VALUES (CURRENT_TIMESTAMP, 'x', 'create', 'helper', '1', NULL, :after)"
                ),
                {"after": f'{{"phone": "{HELPER}"}}'},
            )
    finally:
        await plain.dispose()
    keyring = Keyring(KEY)
    await _run(command.upgrade, alembic_config(database_url, keyring), "head")
    keyed = Database(database_url, keyring=keyring)
    try:
        async with keyed.session() as session:
            raw = (await session.execute(text("SELECT phone FROM helpers"))).scalar_one()
            assert raw.startswith(f"v1:{keyring.current.kid}:")
            helper = (
                await session.execute(select(Helper).where(Helper.phone_bidx == HELPER))
            ).scalar_one()
            assert helper.phone == HELPER
            entry = (await session.execute(text("SELECT after FROM audit_log"))).scalar_one()
            assert HELPER not in entry
    finally:
        await keyed.dispose()
    dump = _raw_dump(database_url)
    assert HELPER.encode() not in dump and DUTY.encode() not in dump

    # And back down: the values return in clear text, as 0003 had them.
    await _run(command.downgrade, alembic_config(database_url, keyring), "0003")
    plain = Database(database_url)
    try:
        async with plain.session() as session:
            raw = (await session.execute(text("SELECT phone FROM helpers"))).scalar_one()
            assert raw == HELPER
    finally:
        await plain.dispose()


async def test_notifications_are_found_by_the_phone_that_replies(keyed_db: Database) -> None:
    async with running_api(keyed_db, Path("/nonexistent"), persons=1) as api:
        pass
    service = AlertService(
        keyed_db,
        api.clock,
        RecordingNotifier(),
        escalation=EscalationConfig(),
        rules=RulesConfig(),
        public_url="http://gw.example",
        timezone=ZoneInfo("Asia/Shanghai"),
        worker_id="w1",
    )
    async with keyed_db.session() as session:
        person_id = (await session.execute(select(Person.id))).scalar_one()
    alert, _ = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, api.clock.now()))
    await service.tick()
    async with keyed_db.session() as session:
        rows = (
            await session.execute(
                select(Notification).where(Notification.recipient_phone_bidx == HELPER)
            )
        ).scalars()
        assert {n.recipient_phone for n in rows} == {HELPER}
    assert await service.acknowledge_by_sms("+8613700000009", "1") is None
    result = await service.acknowledge_by_sms(HELPER, alert.code)
    assert result is not None and result.alert_id == alert.id


async def _upgrade_to(database_url: str, revision: str) -> None:
    from alembic import command

    await _run(command.upgrade, alembic_config(database_url), revision)


async def _run(func: Callable[..., object], *args: object) -> None:
    await asyncio.to_thread(func, *args)


async def test_rotate_key_command_and_keyless_values_re_encrypted_at_start(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A keyless `provision` writes under the public development key ...
    await migrate(database_url)
    keyless = Database(database_url)
    try:
        async with running_api(keyless, tmp_path):
            pass
    finally:
        await keyless.dispose()
    # ... which `run` re-encrypts at start (only those values: nothing else is touched).
    keyed = Database(database_url, keyring=Keyring(KEY))
    try:
        report = await rotate_keys(keyed, only_development=True)
        assert report.rows["persons"] == 2
        assert (await rotate_keys(keyed)).total == 0
    finally:
        await keyed.dispose()
    # The command line: a new data key, the old one retired.
    monkeypatch.setenv("HOMEWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("HOMEWATCH_DATA_KEY", NEW_KEY)
    monkeypatch.setenv("HOMEWATCH_RETIRED_DATA_KEYS", f"unrelated-old-key-xxxxxxxx,{KEY}")
    assert await asyncio.to_thread(main, ["rotate-key", "--batch-size", "3"]) == 0
    only_new = Database(database_url, keyring=Keyring(NEW_KEY))
    try:
        async with only_new.session() as session:
            helper = (
                await session.execute(select(Helper).where(Helper.phone_bidx == HELPER))
            ).scalar_one()
            assert helper.phone == HELPER
    finally:
        await only_new.dispose()


def test_comparing_an_encrypted_column_is_refused_when_the_query_is_built() -> None:
    # It would run and silently match nothing (every encryption differs): a look-up by
    # phone that never finds is how an SMS reply would be lost.
    with pytest.raises(TypeError, match="phone_bidx"):
        select(Helper).where(Helper.phone == HELPER)
    with pytest.raises(TypeError, match="blind index"):
        select(Person).where(Person.id_number.in_(IDS))
    assert "IS NULL" in str(select(Person).where(Person.phone.is_(None)))
