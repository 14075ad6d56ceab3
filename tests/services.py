"""Real services for tests and benchmarks: a Mosquitto of our own, a scratch PostgreSQL
database, a free port. One place, so tests and bench/ start them the same way."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = [
    "PG_ADMIN_URL",
    "GatewayProcess",
    "create_pg_database",
    "drop_pg_database",
    "free_port",
    "mosquitto",
    "scratch_pg_database",
    "wait_for",
]

PG_ADMIN_URL = os.environ.get("HOMEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def mosquitto(access: str = "allow_anonymous true\n") -> Iterator[int]:
    """A dedicated Mosquitto configured as docs/mosquitto-homewatch.conf recommends (no
    queued-message limit), on a free port; yields the port. ``access``: its access lines
    (e.g. ``allow_anonymous false``, ``password_file …``, ``acl_file …``)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\n{access}max_queued_messages 0\npersistence false\n"
        )
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            client = mqtt.Client(CallbackAPIVersion.VERSION2)
            try:
                client.connect("127.0.0.1", port)
                client.disconnect()
                break
            except OSError:
                time.sleep(0.1)
        try:
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def _pg_admin(sql: str) -> None:
    subprocess.run(
        ["psql", f"{PG_ADMIN_URL}/postgres", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True,
        capture_output=True,
    )


def create_pg_database(prefix: str = "hwtest", *, template: str | None = None) -> str:
    """A fresh PostgreSQL database (a copy of database ``template``, which nobody may be
    connected to, if given); returns its asyncpg URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return f"{PG_ADMIN_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"


def drop_pg_database(url: str) -> None:
    _pg_admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


@contextmanager
def scratch_pg_database(prefix: str = "hwtest", *, template: str | None = None) -> Iterator[str]:
    """:func:`create_pg_database`, dropped afterwards; yields its asyncpg URL."""
    url = create_pg_database(prefix, template=template)
    try:
        yield url
    finally:
        drop_pg_database(url)


def wait_for(predicate: Callable[[], object], within: float, what: str) -> None:
    """Poll ``predicate`` (blocking) until it is true; fail naming ``what``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class GatewayProcess:
    """The real ``homewatch`` command in a child process, for crash and restart tests."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def provision(self, register: Path) -> None:
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "provision", str(register)],
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        """Start ``homewatch run`` and wait until its routine session has subscribed (the
        emergency lane, ``<client id>-emergency``, logs its own line)."""
        client_id = self.env.get("HOMEWATCH_MQTT_CLIENT_ID", "homewatch-gateway")
        marker = f"{client_id} subscribed".encode()
        already = self.log.read_bytes().count(marker) if self.log.exists() else 0
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run"],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: self.log.read_bytes().count(marker) > already,
            30,
            f"the gateway to subscribe; log:\n{self.log.read_text(errors='replace')}",
        )

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait (kill after 20 s); returns the exit code."""
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        return self.process.returncode


def publish_qos1(
    port: int, messages: Sequence[tuple[str, str | bytes]], *, within: float = 60.0
) -> None:
    """Publish ``(topic, payload)`` pairs at QoS 1 to the broker on ``port``, many in flight,
    and return once the broker has acknowledged every one."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(within)
    client.loop_stop()
    client.disconnect()
