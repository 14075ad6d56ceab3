"""Replay (SPEC §12): the gateway's adapters and rules over a recorded log, nothing sent.

A hand-written log for two residents of 坝芒村 (town time = UTC+8): 老人0 presses SOS, then
falls silent from 10:00 local; 老人1's fall detector fires. Times are fixed dates, never today.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.cli import main
from gateway.clock import ManualClock
from gateway.config import load_settings
from gateway.ingest import MqttIngest, StoreBatch
from gateway.metrics import Metrics
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import merge_rules, parse_provisioning
from gateway.registry import DeviceRegistry
from gateway.replay import (
    ReplayError,
    ReplayRequest,
    read_messages,
    register_from_provisioning,
    replay_messages,
    run_replay,
)
from gateway.storage.db import Database
from tests.helpers import register_yaml

P = "rp"


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


def motion(person: int, at: datetime, n: int) -> dict[str, Any]:
    return {
        "topic": f"{P}/homewatch/{P}-p{person}-pir/event",
        "payload": {"type": "motion", "state": True, "id": f"m{person}-{n}"},
        "received_at": at.isoformat(),
    }


def pendant(person: int, kind: str, at: datetime, event_id: str) -> dict[str, Any]:
    return {
        "topic": f"{P}/homewatch/{P}-p{person}-sos/event",
        "payload": {"type": kind, "id": event_id},
        "received_at": at.isoformat(),
    }


def hand_written_log() -> list[dict[str, Any]]:
    lines = [
        motion(0, utc(10, 0), 0),  # 08:00 local
        motion(1, utc(10, 0, 0, 5), 0),
        pendant(0, "sos", utc(10, 0, 30), "s1"),
        pendant(0, "sos", utc(10, 0, 30, 10), "s2"),  # a second press joins the first
        pendant(0, "sos", utc(10, 0, 30, 10), "s2"),  # QoS 1 redelivery: processed once
        pendant(1, "fall", utc(10, 1), "f1"),
        motion(0, utc(10, 2), 1),  # 10:00 local, then nothing until 14:30
    ]
    # 老人1 potters about until 20:00 and is up again at 07:00.
    lines += [motion(1, utc(10, hour), hour) for hour in range(2, 13)]
    lines.append(motion(0, utc(10, 6, 30), 2))  # 14:30 local: 老人0 moves again...
    lines += [motion(0, utc(10, 9), 3), motion(0, utc(10, 12), 4)]  # ...until bed at 20:00
    lines.append(motion(1, utc(10, 23), 99))
    return sorted(lines, key=lambda line: str(line["received_at"]))


def write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    register = tmp_path / "register.yaml"
    register.write_text(register_yaml(P), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in hand_written_log()),
        encoding="utf-8",
    )
    return register, events


async def test_replay_raises_what_the_gateway_would_at_the_simulated_times(tmp_path: Path) -> None:
    register_file, events_file = write_inputs(tmp_path)
    settings = load_settings()
    register = await register_from_provisioning(register_file.read_text(), source="r.yaml")
    with events_file.open() as lines:
        alerts = replay_messages(register, read_messages(lines), settings.rules, settings.tz)
    rows = [alert.to_json(register) for alert in alerts]
    assert [
        (r["type"], r["person"], r["raised_at"], r["status"], r["closed_at"]) for r in rows
    ] == [
        # Nobody answers a replayed alert: emergencies count as handled an hour later.
        ("sos", "老人0", utc(10, 0, 30).isoformat(), "resolved", utc(10, 1, 30).isoformat()),
        ("fall", "老人1", utc(10, 1).isoformat(), "resolved", utc(10, 2).isoformat()),
        # Four quiet hours by day from 10:00 local; withdrawn at the first tick after the
        # movement at 14:30.
        ("inactivity", "老人0", utc(10, 6).isoformat(), "cancelled", utc(10, 6, 31).isoformat()),
    ]
    assert rows[2]["village"] == "坝芒村"
    assert rows[2]["detail"]["since"] == "10:00"


async def test_time_based_rules_fire_between_messages(tmp_path: Path) -> None:
    """Two messages 21 hours apart: the silence between them alerts at 14:00 local, and
    again four hours after the helper (simulated) dealt with the first alert; kept open,
    it alerts once."""
    register_file, _ = write_inputs(tmp_path)
    settings = load_settings()
    register = await register_from_provisioning(register_file.read_text(), source="r.yaml")
    lines = [json.dumps(motion(0, utc(10, 2), 1)), json.dumps(motion(0, utc(10, 23), 2))]
    alerts = replay_messages(register, read_messages(lines), settings.rules, settings.tz)
    assert [(a.type.value, a.raised_at, a.closed_at) for a in alerts] == [
        ("inactivity", utc(10, 6), utc(10, 7)),
        ("inactivity", utc(10, 11), utc(10, 12)),
    ]
    kept_open = replay_messages(
        register, read_messages(lines), settings.rules, settings.tz, resolve_after=None
    )
    assert [(a.raised_at, a.status.value, a.closed_at) for a in kept_open] == [
        (utc(10, 6), "cancelled", utc(10, 23, 1))
    ]


def test_the_cli_writes_the_same_json_lines_twice_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were anything sent, it would go to this (unreachable) Twilio and fail loudly.
    monkeypatch.setenv("HOMEWATCH_TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("HOMEWATCH_TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("HOMEWATCH_TWILIO_FROM", "+15005550006")
    monkeypatch.setenv("HOMEWATCH_TWILIO_API_BASE", "http://127.0.0.1:9")
    register_file, events_file = write_inputs(tmp_path)
    outputs = []
    for run in range(2):
        output = tmp_path / f"alerts{run}.jsonl"
        code = main(
            [
                "replay",
                "--register",
                str(register_file),
                "--events",
                str(events_file),
                "-o",
                str(output),
            ]
        )
        assert code == 0
        outputs.append(output.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1]
    rows = [json.loads(line) for line in outputs[0].splitlines()]
    assert [r["type"] for r in rows] == ["sos", "fall", "inactivity"]
    assert set(rows[0]) >= {"type", "person", "village", "raised_at", "closed_at", "status"}
    assert "3 alerts" in capsys.readouterr().out


def test_other_thresholds_from_config_change_the_outcome(tmp_path: Path) -> None:
    register_file, events_file = write_inputs(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("rules:\n  inactivity:\n    day: {quiet: 210m}\n", encoding="utf-8")
    output = tmp_path / "alerts.jsonl"
    argv = ["replay", "--config", str(config), "--register", str(register_file)]
    assert main([*argv, "--events", str(events_file), "-o", str(output)]) == 0
    inactivity = [
        json.loads(line)
        for line in output.read_text().splitlines()
        if json.loads(line)["type"] == "inactivity"
    ]
    assert [row["raised_at"] for row in inactivity] == [utc(10, 5, 30).isoformat()]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "events:2: not a JSON object"),
        ('{"payload": {}, "received_at": "2026-03-10T00:00:00+00:00"}', "events:2: topic"),
        ('{"topic": "a", "received_at": "2026-03-10T00:00:00+00:00"}', "events:2: payload"),
        ('{"topic": "a", "payload": 1, "received_at": "2026-03-10T00:00:00"}', "UTC offset"),
        ('{"topic": "a", "payload": 1, "received_at": "2026-03-09T00:00:00+00:00"}', "time order"),
    ],
)
def test_a_bad_line_is_named_with_its_field(line: str, message: str) -> None:
    first = json.dumps(motion(0, utc(10, 0), 0))
    with pytest.raises(ReplayError, match=message):
        list(read_messages([first, line]))


def test_the_cli_refuses_bad_input_with_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_file, events_file = write_inputs(tmp_path)
    events_file.write_text('{"topic": "x"}\n', encoding="utf-8")
    output = tmp_path / "alerts.jsonl"
    argv = ["replay", "--register", str(register_file), "--events", str(events_file)]
    assert main([*argv, "-o", str(output)]) == 2
    assert "events.jsonl:1: payload: missing" in capsys.readouterr().err


async def test_from_db_replays_a_gateways_stored_events_with_other_thresholds(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """The stored events of a running gateway (written by its real ingest path) replayed
    read-only under a shorter day quiet."""
    doc = parse_provisioning(register_yaml(P), env={"HW_TEST_ADMIN_PASSWORD": "pw-123456789"})
    await apply_provisioning(db, doc, utc(9, 0))
    clock = ManualClock(utc(10, 0))
    settings = load_settings(database_url=database_url)
    registry = DeviceRegistry()
    await registry.load(db)
    ingest = MqttIngest(settings, db, registry, clock, Metrics())
    for mid, line in enumerate(hand_written_log(), start=1):
        clock.advance(datetime.fromisoformat(line["received_at"]) - clock.now())
        batch = StoreBatch()
        body = json.dumps(line["payload"]).encode()
        message = aiomqtt.Message(line["topic"], body, 1, False, mid, None)
        ingest.classify(batch, message, clock.now())
        await ingest.flush(batch)

    shorter = load_settings(
        database_url=database_url, rules={"inactivity": {"day": {"quiet": "210m"}}}
    )
    output = tmp_path / "alerts.jsonl"
    request = ReplayRequest(output=output, from_db=True, since=date(2026, 3, 10))
    rows = await run_replay(request, shorter)
    assert [(r["type"], r["person"], r["raised_at"]) for r in rows] == [
        ("sos", "老人0", utc(10, 0, 30).isoformat()),
        ("fall", "老人1", utc(10, 1).isoformat()),
        ("inactivity", "老人0", utc(10, 5, 30).isoformat()),
        # The zigbee pendant and door never reported: offline 25 h after the replay's start
        # (local midnight of --since).
        ("device_offline", "老人0", utc(10, 17).isoformat()),
        ("device_offline", "老人1", utc(10, 17).isoformat()),
    ]
    assert output.read_text(encoding="utf-8").count("\n") == 5
    # Starting the replay after the emergencies leaves them out.
    later = ReplayRequest(output=output, from_db=True, since=date(2026, 3, 11))
    assert [r["type"] for r in await run_replay(later, shorter)] == []


async def test_the_replay_learns_per_sensor_as_the_live_gateway_does(tmp_path: Path) -> None:
    """The schedule of tests/service/test_learned_routines.py (kitchen every quarter hour,
    the living room's PIR and two hours of TV from 10:30) replayed: the silence after the
    kitchen at 10:00 on day 4 alerts at 11:00, as in the live gateway."""
    kitchen = f"      - {{uid: {P}-p0-kitchen, kind: motion, protocol: native, "
    kitchen += f"topic: {P}/homewatch/{P}-p0-kitchen}}\n"
    text = register_yaml(P, persons=1).replace("    devices:\n", "    devices:\n" + kitchen, 1)
    register = await register_from_provisioning(text, source="r.yaml")
    settings = load_settings()
    learned = {"enabled": True, "min_days": 2, "margin": "30m"}
    rules = merge_rules(settings.rules, {"inactivity": {"learned": learned}})

    def seen(sensor: str, at: datetime) -> str:
        return json.dumps(
            {
                "topic": f"{P}/homewatch/{P}-p0-{sensor}/event",
                "payload": {"type": "motion", "state": True, "id": f"{sensor}{at.timestamp()}"},
                "received_at": at.isoformat(),
            }
        )

    lines = []
    for day in (10, 11, 12):  # from 08:00 local (00:00 UTC)
        quarters = [utc(day, 0) + timedelta(minutes=15 * n) for n in range(10)]
        lines += [seen("kitchen", at) for at in quarters]
        lines.append(seen("pir", utc(day, 2, 30)))  # the TV until 12:30
        lines += [seen("kitchen", utc(day, 4, 30) + timedelta(minutes=15 * n)) for n in range(30)]
    lines += [seen("kitchen", utc(13, 1) + timedelta(minutes=15 * n)) for n in range(5)]
    lines.append(seen("pir", utc(13, 8)))  # 16:00 local: up again
    alerts = replay_messages(register, read_messages(lines), rules, settings.tz)
    # The first of day 4 (resolved after the simulated hour, the silence alerts again).
    alert = next(a for a in alerts if a.raised_at >= utc(13, 0))
    assert alert.raised_at == utc(13, 3)  # 11:00 local, not 13:00 (the TV's two hours)
    assert alert.to_json(register)["detail"]["since"] == "10:00"
