"""Real services for tests and benchmarks: a Mosquitto of our own, a scratch PostgreSQL
database, a free port. One place, so tests and bench/ start them the same way."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["PG_ADMIN_URL", "free_port", "mosquitto", "scratch_pg_database"]

PG_ADMIN_URL = os.environ.get("HOMEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def mosquitto() -> Iterator[int]:
    """A dedicated Mosquitto configured as docs/mosquitto-homewatch.conf recommends (no
    queued-message limit), on a free port; yields the port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
            "persistence false\n"
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


@contextmanager
def scratch_pg_database(prefix: str = "hwtest") -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its asyncpg URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_ADMIN_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    finally:
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
