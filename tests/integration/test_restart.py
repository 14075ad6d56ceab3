"""kill -9 the real gateway process mid-drain, publish while it is down, restart: every
event is stored exactly once. Uses its own Mosquitto configured as docs/ recommends."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import register_yaml
from tests.services import GatewayProcess, free_port, mosquitto, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def broker() -> Iterator[int]:
    with mosquitto() as port:
        yield port


def _count_events(db_url: str) -> tuple[int, int]:
    """(rows, distinct event ids), read outside the gateway with the plain drivers."""
    sql = "SELECT count(*), count(DISTINCT event_id) FROM events"
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.split("///", 1)[1]) as connection:
            total, distinct = connection.execute(sql).fetchone()
        return int(total), int(distinct)
    dsn = db_url.replace("postgresql+asyncpg", "postgresql")
    out = subprocess.run(
        ["psql", dsn, "-tA", "-F", " ", "-c", sql], capture_output=True, text=True, check=True
    )
    total, distinct = out.stdout.split()
    return int(total), int(distinct)


def _publish(port: int, topic: str, start: int, count: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{start}")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for n in range(start, start + count):
        payload = json.dumps({"type": "motion", "state": n % 2 == 0, "id": f"ev-{n}"})
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    client.loop_stop()
    client.disconnect()


def test_kill_9_mid_drain_and_publish_while_down_loses_and_duplicates_nothing(
    broker: int, tmp_path: Path, run_id: str, database_url: str
) -> None:
    prefix = f"rs{run_id}"
    env = {
        **os.environ,
        "HOMEWATCH_DATABASE_URL": database_url,
        "HOMEWATCH_MQTT_URL": f"mqtt://127.0.0.1:{broker}",
        "HOMEWATCH_MQTT_CLIENT_ID": f"gw-{prefix}",
        "HOMEWATCH_SECRET_KEY": "s" * 32,
        "HOMEWATCH_API_PORT": str(free_port()),
        "HOMEWATCH_NOTIFIER": "console",
        "HW_TEST_ADMIN_PASSWORD": "correct-horse-battery",
    }
    provisioning = tmp_path / "register.yaml"
    provisioning.write_text(register_yaml(prefix, persons=1), encoding="utf-8")
    gateway = GatewayProcess(env, tmp_path / "gateway.log")
    gateway.provision(provisioning)
    topic = f"{prefix}/homewatch/{prefix}-p0-pir/event"
    try:
        gateway.start()  # inside: a start that times out still leaves no process behind
        publisher = threading.Thread(target=_publish, args=(broker, topic, 0, 15000))
        publisher.start()
        wait_for(lambda: _count_events(database_url)[0] >= 1000, 60, "the drain to start")
        gateway.kill9()
        stored_at_kill = _count_events(database_url)[0]
        publisher.join(60)
        assert stored_at_kill < 15000, "killed too late to prove anything; publish more"
        _publish(broker, topic, 15000, 3000)  # while the gateway is down
        assert _count_events(database_url)[0] == stored_at_kill
        gateway.start()
        wait_for(lambda: _count_events(database_url)[0] >= 18000, 120, "all 18000 events")
        time.sleep(1.0)  # anything more arriving would be a duplicate
        total, distinct = _count_events(database_url)
        assert (total, distinct) == (18000, 18000), f"stored at kill: {stored_at_kill}"
    finally:
        returncode = gateway.stop()
    assert returncode in (0, -signal.SIGTERM)
