"""`homewatch demo` as a user runs it: a real process with its embedded broker and SQLite
file; nothing of the machine's Mosquitto or PostgreSQL is used."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, wait_for

LOGIN = re.compile(r"login 登录:\s+(\S+) / (\S+)")


@dataclass
class Demo:
    process: subprocess.Popen[str]
    url: str
    mqtt_port: int
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def login(self) -> tuple[str, str]:
        match = LOGIN.search(self.output)
        assert match, self.output
        return match.group(1), match.group(2)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port, mqtt_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            *("--port", str(port), "--mqtt-port", str(mqtt_port)),
            *("--dir", str(tmp_path / "demo"), "--duration", "5m"),
        ],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.txt").open("w"),
        text=True,
        encoding="utf-8",
    )
    running = Demo(process, f"http://127.0.0.1:{port}", mqtt_port)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(5)


def _api_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_demo_escalates_and_acknowledges_an_sos_then_stops_cleanly_on_ctrl_c(
    demo: Demo, tmp_path: Path
) -> None:
    wait_for(lambda: LOGIN.search(demo.output), 30, "the login to be printed")
    assert f"{demo.url}/" in demo.output
    username, password = demo.login()
    wait_for(lambda: _api_up(demo.url), 20, "/healthz to answer 200")
    health = httpx.get(f"{demo.url}/healthz").json()
    assert health == {
        "status": "ok",
        "mqtt": "connected",
        "database": "ok",
        "notifier": "console",
    }

    token = httpx.post(
        f"{demo.url}/api/v1/auth/token", data={"username": username, "password": password}
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}

    def acknowledged_sos() -> dict[str, object] | None:
        alerts = httpx.get(f"{demo.url}/api/v1/alerts", headers=auth).json()
        return next(
            (a for a in alerts if a["type"] == "sos" and a["acknowledged_by"]),
            None,
        )

    # At --speed 60 the acknowledgement comes about six simulated minutes (six real
    # seconds) after the start; the issue asks for it within the first minute.
    wait_for(acknowledged_sos, 40, "the SOS to be acknowledged")
    sos = acknowledged_sos()
    assert sos is not None and sos["status"] in ("acknowledged", "resolved")
    detail = httpx.get(f"{demo.url}/api/v1/alerts/{sos['id']}", headers=auth).json()
    roles = {n["recipient_role"] for n in detail["notifications"]}
    assert {"helper", "village_team"} <= roles, "escalated from the helper to the team"
    assert "demo script" in demo.output and "[短信]" in demo.output and "已接单" in demo.output

    persons = httpx.get(f"{demo.url}/api/v1/persons", headers=auth).json()
    assert {p["village"] for p in persons} >= {"坝芒村", "隘口村"}
    assert "智慧看家" in httpx.get(f"{demo.url}/", follow_redirects=True).text

    started = time.monotonic()
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(20) == 0
    assert time.monotonic() - started < 15
    stderr = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert "Traceback" not in stderr, stderr
    assert "WARNING alerts" not in stderr, "raising or taking an alert is not a warning"
    wait_for(lambda: "demo stopped" in demo.output, 5, "the closing summary")
    assert "caused 1 emergency," in demo.output, "one SOS within the first minute"
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", demo.mqtt_port), 1),
    ):
        pass  # the embedded broker is closed
