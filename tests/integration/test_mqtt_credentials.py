"""Per-device MQTT credentials (SPEC §10) against a real Mosquitto started with the generated
password file and ACL: anonymous clients are refused, a home cannot publish on another
home's topic, and the gateway keeps working."""

from __future__ import annotations

import asyncio
import csv
import getpass
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import func, select

from alerts.notifiers import ConsoleNotifier
from gateway.app import Gateway
from gateway.cli import main
from gateway.clock import SystemClock
from gateway.config import load_settings
from gateway.mqtt_credentials import mosquitto_hash, verify_mosquitto_hash
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from gateway.storage.models import Alert, Event
from tests.conftest import wait_until
from tests.helpers import register_yaml
from tests.services import mosquitto

pytestmark = pytest.mark.integration


def _devices(out: Path) -> dict[str, tuple[str, str]]:
    with (out / "devices.csv").open(encoding="utf-8") as handle:
        return {r["uid"]: (r["username"], r["password"]) for r in csv.DictReader(handle)}


def test_our_hash_is_the_one_mosquitto_passwd_writes(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwd), "alice", "s3cret-pass"], check=True
    )
    stored = passwd.read_text().strip().split(":", 1)[1]
    assert stored.startswith("$7$101$")
    assert verify_mosquitto_hash("s3cret-pass", stored)
    assert not verify_mosquitto_hash("s3cret-pasS", stored)
    assert verify_mosquitto_hash("x", mosquitto_hash("x"))


async def test_generated_files_lock_each_home_to_its_own_topics(
    database_url: str,
    mqtt_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    settings = load_settings(
        database_url=database_url,
        mqtt_client_id=f"gw-{mqtt_prefix}",
        mqtt_topic_prefix=mqtt_prefix,
        secret_key="x" * 32,
    )
    await migrate(database_url, settings.keyring())
    gateway = Gateway(settings, "x" * 32, clock=SystemClock(), notifier=ConsoleNotifier())
    await apply_provisioning(
        gateway.db, parse_provisioning(register_yaml(mqtt_prefix, persons=1)), clock_now()
    )

    out = tmp_path / "mqtt"
    monkeypatch.setenv("HOMEWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("HOMEWATCH_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("HOMEWATCH_MQTT_CLIENT_ID", f"gw-{mqtt_prefix}")
    monkeypatch.setenv("HOMEWATCH_MQTT_TOPIC_PREFIX", mqtt_prefix)
    assert await asyncio.to_thread(main, ["mqtt-credentials", "--out", str(out)]) == 0
    first = _devices(out)
    assert len(first) == 4
    assert (out / "passwd").stat().st_mode & 0o077 == 0, "passwords readable by others"

    # A second home joins: a rerun keeps every password and adds the new devices.
    await apply_provisioning(
        gateway.db, parse_provisioning(register_yaml(mqtt_prefix, persons=2)), clock_now()
    )
    env_before = (out / "gateway.env").read_text()
    assert await asyncio.to_thread(main, ["mqtt-credentials", "--out", str(out)]) == 0
    devices = _devices(out)
    assert len(devices) == 8 and all(devices[uid] == first[uid] for uid in first)
    assert (out / "gateway.env").read_text() == env_before
    env = dict(line.split("=", 1) for line in env_before.splitlines())

    # The files are the owner's only (0600); a broker started as root would switch to the
    # `mosquitto` user and could not read them, so it runs as their owner (in production:
    # chown them to the broker's user, see docs/TRUST.md).
    access = (
        f"user {getpass.getuser()}\nallow_anonymous false\n"
        f"password_file {out / 'passwd'}\nacl_file {out / 'acl'}\n"
    )
    with mosquitto(access) as port:
        secured = settings.model_copy(
            update={
                "mqtt_url": f"mqtt://127.0.0.1:{port}",
                "mqtt_username": env["HOMEWATCH_MQTT_USERNAME"],
                "mqtt_password": env["HOMEWATCH_MQTT_PASSWORD"],
            }
        )
        gateway = Gateway(secured, "x" * 32, clock=SystemClock(), notifier=ConsoleNotifier())
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
        try:
            await wait_until(lambda: gateway.ingest.connected, within=10)

            # Refused at CONNECT: no login, or a wrong password. (mosquitto_pub, a client of
            # its own: a refused aiomqtt client leaves its socket's reader in this loop.)
            p0_user, p0_password = devices[f"{mqtt_prefix}-p0-sos"]
            for login in ([], ["-u", p0_user, "-P", "wrong-password"]):
                refused = await asyncio.to_thread(
                    subprocess.run,
                    ["mosquitto_pub", "-p", str(port), "-t", "x", "-m", "1", *login],
                    capture_output=True,
                    text=True,
                    timeout=10,
                )
                assert refused.returncode != 0 and "not authorised" in refused.stderr

            p0_topic = f"{mqtt_prefix}/homewatch/{mqtt_prefix}-p0-sos/event"
            p1_topic = f"{mqtt_prefix}/homewatch/{mqtt_prefix}-p1-sos/event"
            # Home 0 forges an SOS for its neighbour (QoS 1: the broker has dealt with it
            # when it answers), then sends an honest heartbeat of its own; once that is
            # stored, the forged one would have been too.
            forged = await asyncio.to_thread(
                subprocess.run,
                [
                    "mosquitto_pub",
                    "-p",
                    str(port),
                    "-u",
                    p0_user,
                    "-P",
                    p0_password,
                    "-q",
                    "1",
                    "-t",
                    p1_topic,
                    "-m",
                    json.dumps({"type": "sos", "id": "f"}),
                    "-V",
                    "mqttv5",
                ],
                capture_output=True,
                text=True,
                timeout=10,
            )
            assert "not authorized" in forged.stderr.lower(), forged.stderr
            async with aiomqtt.Client(
                "127.0.0.1", port, username=p0_user, password=p0_password, identifier="home0"
            ) as home0:
                own = json.dumps({"type": "heartbeat", "id": "own"}).encode()
                await home0.publish(p0_topic, own, qos=1)
            await wait_until(lambda: _count(gateway, f"{mqtt_prefix}-p0-sos"), within=10)
            assert await _count(gateway, f"{mqtt_prefix}-p1-sos") == 0
            async with gateway.db.session() as session:
                assert (await session.execute(select(func.count(Alert.id)))).scalar_one() == 0

            # The neighbour's own device still gets through with its own credentials.
            p1_user, p1_password = devices[f"{mqtt_prefix}-p1-sos"]
            async with aiomqtt.Client(
                "127.0.0.1", port, username=p1_user, password=p1_password, identifier="home1"
            ) as home1:
                await home1.publish(p1_topic, json.dumps({"type": "sos"}).encode(), qos=1)
            await wait_until(lambda: _count(gateway, f"{mqtt_prefix}-p1-sos"), within=10)
            assert gateway.ingest.connected
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await gateway.db.dispose()


async def _count(gateway: Gateway, uid: str) -> int:
    async with gateway.db.session() as session:
        return (
            await session.execute(select(func.count(Event.id)).where(Event.device_uid == uid))
        ).scalar_one()


def clock_now() -> datetime:
    return datetime.now(UTC)
