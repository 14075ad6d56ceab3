"""The simulator against the machine's real Mosquitto, under a topic prefix of its own, on
its own and driving a real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import aiomqtt
import pytest
from sqlalchemy import func, select

from alerts.notifiers import ConsoleNotifier
from gateway.app import Gateway
from gateway.cli import main as cli_main
from gateway.clock import ManualClock, ScaledClock
from gateway.config import load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from gateway.storage.models import Alert, Event, Person, RejectedMessage, UnknownDevice
from simulator.household import Household, Topics, generate_households, with_protocol
from simulator.load import run_load
from simulator.routine import TOWN_TZ
from simulator.runner import parse_mqtt_url, run_simulation
from simulator.scenarios import ScenarioName, ScenarioRequest
from tests.conftest import wait_until
from tests.helpers import gateway_config, pinned_clock

pytestmark = pytest.mark.integration

NATIVE_TYPES = {"sos", "fall", "motion", "door", "check_in", "heartbeat"}


@dataclass
class Received:
    topic: str
    payload: bytes

    def json(self) -> dict[str, object]:
        body = json.loads(self.payload)
        assert isinstance(body, dict)
        return body


@dataclass
class Collector:
    messages: list[Received] = field(default_factory=list)

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]


@pytest.fixture
def prefix() -> str:
    return f"simtest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topics(prefix: str) -> Topics:
    return Topics(native_prefix=f"{prefix}/homewatch", z2m_base=f"{prefix}/z2m")


@pytest.fixture
def homes() -> list[Household]:
    first, second = generate_households(2, seed=42)
    return [with_protocol(first, "native"), with_protocol(second, "zigbee2mqtt")]


@contextlib.asynccontextmanager
async def subscribed(mqtt_url: str, prefix: str) -> AsyncIterator[Collector]:
    """Collect everything under ``prefix``; clears our retained topics afterwards."""
    address = parse_mqtt_url(mqtt_url)
    collector = Collector()
    async with aiomqtt.Client(address.host, address.port) as client:
        await client.subscribe(f"{prefix}/#", qos=1)

        async def collect() -> None:
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                if payload:  # skip our own clean-up of retained messages
                    collector.messages.append(Received(str(message.topic), payload))

        task = asyncio.create_task(collect())
        try:
            yield collector
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # Leave the shared broker as we found it: no retained availability of ours.
            for topic in {m.topic for m in collector.messages}:
                if topic.endswith(("/status", "/availability")):
                    await client.publish(topic, b"", qos=1, retain=True)


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


def at_local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), TOWN_TZ).astimezone(UTC)


async def test_routines_and_sos_arrive_with_the_right_topics_and_shapes(
    mqtt_url: str, prefix: str, topics: Topics, homes: list[Household], tmp_path: Path
) -> None:
    native, z2m = homes
    truth_path = tmp_path / "truth.jsonl"
    start = at_local(date(2026, 3, 10), 6, 30)
    # 1200x: the first simulated hour of the morning in three seconds.
    clock = ScaledClock(1200, start=start)
    scenarios = [
        ScenarioRequest(ScenarioName.SOS, at=timedelta(minutes=20), household=native.key),
        ScenarioRequest(ScenarioName.SOS, at=timedelta(minutes=30), household=z2m.key),
    ]
    async with subscribed(mqtt_url, prefix) as received:
        summary = await asyncio.wait_for(
            run_simulation(
                homes,
                mqtt_url=mqtt_url,
                clock=clock,
                stop=asyncio.Event(),
                scenarios=scenarios,
                ground_truth_path=truth_path,
                topics=topics,
                until=start + timedelta(hours=1),
            ),
            timeout=30,
        )
        await eventually(lambda: len(received.messages) >= summary.published)

    assert summary.errors == [] and summary.reconnects == 0
    assert len(received.messages) == summary.published
    assert summary.by_kind["sos"] == 2
    assert summary.by_kind["motion"] > 0  # breakfast
    assert summary.by_kind["heartbeat"] >= 10  # one first report per device, then periodic

    # Availability, retained on the status / availability topics.
    for device in native.devices:
        assert [m.payload for m in received.on(topics.availability(device))] == [b"online"]
    for device in z2m.devices:
        states = [m.json() for m in received.on(topics.availability(device))]
        assert states == [{"state": "online"}]

    # Native events: the SPEC §3 object, unique ids, local timestamps with their offset.
    ids = []
    for device in native.devices:
        for message in received.on(f"{prefix}/homewatch/{device.uid}/event"):
            body = message.json()
            assert body["type"] in NATIVE_TYPES
            ts = datetime.fromisoformat(str(body["ts"]))
            assert ts.utcoffset() == timedelta(hours=8)
            assert start - timedelta(seconds=1) <= ts <= start + timedelta(hours=1)
            ids.append(body["id"])
            if device.battery_powered:
                assert isinstance(body["battery"], int)
    assert ids and len(ids) == len(set(ids))
    sos = [m.json() for m in received.on(f"{prefix}/homewatch/{native.sos.uid}/event")]
    presses = [b for b in sos if b["type"] == "sos"]
    assert len(presses) == 1
    # Offsets count from the run's start (the clock's reading when the run began).
    pressed_at = datetime.fromisoformat(str(presses[0]["ts"]))
    assert abs(pressed_at - (summary.started_at + timedelta(minutes=20))) < timedelta(
        milliseconds=1
    )

    # zigbee2mqtt: full device state on <base>/<friendly name>.
    z2m_sos = [m.json() for m in received.on(f"{prefix}/z2m/{z2m.sos.uid}")]
    emergency = [b for b in z2m_sos if b.get("action") == "emergency"]
    assert len(emergency) == 1
    assert isinstance(emergency[0]["battery"], int)
    assert isinstance(emergency[0]["linkquality"], int)
    for message in received.on(f"{prefix}/z2m/{z2m.door.uid}"):
        body = message.json()
        assert isinstance(body["contact"], bool) and isinstance(body["battery_low"], bool)
    for message in received.on(f"{prefix}/z2m/{z2m.hall_motion.uid}"):
        assert isinstance(message.json()["occupancy"], bool)

    # Ground truth: one line per injected scenario.
    records = [json.loads(line) for line in truth_path.read_text(encoding="utf-8").splitlines()]
    assert [(r["scenario"], r["household"], r["expected_alert"]) for r in records] == [
        ("sos", native.key, "sos"),
        ("sos", z2m.key, "sos"),
    ]
    assert records[0]["device"] == native.sos.uid
    assert records[0]["person"] == native.resident.name
    assert datetime.fromisoformat(records[1]["at"]) == summary.started_at + timedelta(minutes=30)


async def test_manual_clock_publishes_only_what_is_due_and_takes_commands(
    mqtt_url: str, prefix: str, topics: Topics, homes: list[Household], tmp_path: Path
) -> None:
    native, _ = homes
    start = at_local(date(2026, 3, 10), 10)
    clock = ManualClock(start)
    stop = asyncio.Event()
    commands: asyncio.Queue[ScenarioRequest] = asyncio.Queue()
    sos_topic = f"{prefix}/homewatch/{native.sos.uid}/event"

    def presses(received: Collector) -> list[dict[str, object]]:
        return [b for b in (m.json() for m in received.on(sos_topic)) if b["type"] == "sos"]

    async with subscribed(mqtt_url, prefix) as received:
        runner = asyncio.create_task(
            run_simulation(
                homes,
                mqtt_url=mqtt_url,
                clock=clock,
                stop=stop,
                scenarios=[
                    ScenarioRequest(ScenarioName.SOS, at=timedelta(minutes=10), household="bm-001")
                ],
                commands=commands,
                ground_truth_path=tmp_path / "truth.jsonl",
                topics=topics,
            )
        )
        # Announcement: availability and a first report for each of the 10 devices.
        await eventually(lambda: len(received.messages) >= 20)
        clock.advance(timedelta(minutes=9))
        await asyncio.sleep(0.5)
        assert presses(received) == [], "published before it was due"
        clock.advance(timedelta(minutes=2))
        await eventually(lambda: len(presses(received)) == 1)

        # On command: happens at once, in simulated time.
        commands.put_nowait(ScenarioRequest(ScenarioName.SOS, household="bm-001"))
        await eventually(lambda: len(presses(received)) == 2)
        assert datetime.fromisoformat(str(presses(received)[1]["ts"])) == clock.now()

        stop.set()
        summary = await asyncio.wait_for(runner, 10)
    assert [t.scenario for t in summary.injected] == [ScenarioName.SOS, ScenarioName.SOS]
    assert summary.ended_at == start + timedelta(minutes=11)
    lines = (tmp_path / "truth.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2


async def test_load_mode_delivers_every_message_at_the_requested_rate(
    mqtt_url: str, prefix: str, topics: Topics
) -> None:
    homes = generate_households(10, seed=7)
    async with subscribed(mqtt_url, prefix) as received:
        summary = await asyncio.to_thread(
            run_load, homes, mqtt_url=mqtt_url, rate=1000, count=2000, topics=topics
        )
        await eventually(lambda: len(received.messages) >= 2000, within=15)
        await asyncio.sleep(0.2)  # nothing beyond the 2000 may follow

    assert summary.ok, summary
    assert (summary.sent, summary.acknowledged, summary.failed) == (2000, 2000, 0)
    assert 900 <= summary.achieved_rate <= 1100
    assert 1.8 <= summary.elapsed_s <= 2.5
    bodies = [m.json() for m in received.messages]
    assert len(bodies) == 2000
    assert len({b["id"] for b in bodies}) == 2000
    assert {b["type"] for b in bodies} == {"motion", "door"}
    expected_topics = {topics.state(h.hall_motion) for h in homes} | {
        topics.state(h.door) for h in homes
    }
    assert {m.topic for m in received.messages} == expected_topics
    for body in bodies:
        assert isinstance(body["sent_at_ns"], int)
        assert datetime.fromisoformat(str(body["ts"])).utcoffset() == timedelta(hours=8)
        state = body["state"]
        assert state in ("open", "closed") if body["type"] == "door" else isinstance(state, bool)


async def test_load_mode_reports_an_unreachable_broker_honestly(topics: Topics) -> None:
    homes = generate_households(1, seed=7)
    summary = await asyncio.to_thread(
        run_load, homes, mqtt_url="mqtt://127.0.0.1:1", rate=100, count=10, topics=topics
    )
    assert not summary.ok
    assert (summary.sent, summary.failed) == (0, 10)
    assert "cannot connect" in summary.errors[0]


async def test_simulation_keeps_reconnecting_until_stopped(
    topics: Topics, homes: list[Household]
) -> None:
    stop = asyncio.Event()
    run = asyncio.create_task(
        run_simulation(
            homes,
            mqtt_url="mqtt://127.0.0.1:1",  # nobody listens here
            clock=ManualClock(at_local(date(2026, 3, 10), 9)),
            stop=stop,
            topics=topics,
            reconnect_interval=0.05,
        )
    )
    await asyncio.sleep(0.5)
    assert not run.done(), "an unreachable broker must not end the run"
    stop.set()
    summary = await asyncio.wait_for(run, 5)
    assert summary.reconnects >= 2
    assert summary.published == 0


async def test_homewatch_simulate_drives_a_real_gateway_whose_alerts_match_the_ground_truth(
    mqtt_url: str, prefix: str, tmp_path: Path
) -> None:
    """The `homewatch simulate` command, its provisioning file applied to a real gateway on
    the same Mosquitto: every injected emergency becomes exactly its expected alert."""
    seed, count = 11, 3
    homes = generate_households(count, seed=seed, protocol="mixed")
    common = [
        *("--households", str(count), "--seed", str(seed), "--protocol", "mixed"),
        *("--topic-prefix", f"{prefix}/homewatch", "--z2m-base", f"{prefix}/z2m"),
    ]
    register = tmp_path / "register.yaml"
    assert (
        cli_main(["simulate", *common, "--write-provisioning", str(register), "--provision-only"])
        == 0
    )
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'homewatch.db'}"
    settings = load_settings(
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_client_id=f"gw-{prefix}",
        mqtt_topic_prefix=prefix,
        secret_key="k" * 32,
        **gateway_config(),
    )
    await migrate(database_url)
    sms = io.StringIO()
    clock = pinned_clock()
    gateway = Gateway(settings, "k" * 32, clock=clock, notifier=ConsoleNotifier(sms))
    await apply_provisioning(
        gateway.db, parse_provisioning(register.read_text(encoding="utf-8")), clock.now()
    )
    truth_path = tmp_path / "truth.jsonl"
    stop = asyncio.Event()
    async with subscribed(mqtt_url, prefix):
        running = asyncio.create_task(gateway.run(stop, serve_api=False, run_migrations=False))
        try:
            await eventually(lambda: gateway.ingest.connected)
            simulate = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.cli",
                "simulate",
                *common,
                *("--mqtt-url", mqtt_url, "--speed", "600", "--duration", "40m"),
                *("--start", "2026-03-10T09:00:00+08:00", "--ground-truth", str(truth_path)),
                *("--scenario", f"sos@+10m,{homes[0].key}", f"fall@+15m,{homes[1].key}"),
                *("--scenario", f"malformed@+20m,{homes[2].key}"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(simulate.communicate(), 60)
            assert simulate.returncode == 0, output.decode()
            truth = [json.loads(line) for line in truth_path.read_text("utf-8").splitlines()]
            expected = {(t["expected_alert"], t["person"]) for t in truth if t["expected_alert"]}
            assert expected == {("sos", homes[0].resident.name), ("fall", homes[1].resident.name)}

            async def raised() -> set[tuple[str, str]]:
                async with gateway.db.session() as session:
                    rows = await session.execute(
                        select(Alert.type, Person.name).join(Person, Person.id == Alert.person_id)
                    )
                    return {(kind, name) for kind, name in rows}

            async def all_raised() -> bool:
                return await raised() == expected

            await wait_until(all_raised, within=10)
            await asyncio.sleep(0.5)  # nothing else may follow
            assert await raised() == expected
            async with gateway.db.session() as session:
                seen = (await session.execute(select(func.count(Event.id)))).scalar_one()
                devices = set((await session.execute(select(Event.device_uid))).scalars())
                rejected = (
                    await session.execute(select(func.count(RejectedMessage.id)))
                ).scalar_one()
                unknown = (
                    await session.execute(select(func.count()).select_from(UnknownDevice))
                ).scalar_one()
            assert seen > 3 * 5, "routines, heartbeats and the scenarios were stored"
            assert devices == {d.uid for h in homes for d in h.devices}
            assert rejected >= 1 and unknown == 0  # malformed payloads kept, none acted on
            told = [line for line in sms.getvalue().splitlines() if "紧急求助" in line]
            assert any(homes[0].resident.name in line for line in told)  # the helper was told
        finally:
            stop.set()
            await asyncio.wait_for(running, 20)
            async with aiomqtt.Client(
                parse_mqtt_url(mqtt_url).host,
                parse_mqtt_url(mqtt_url).port,
                identifier=f"gw-{prefix}",
                clean_session=True,
            ):
                pass  # drop the gateway's persistent session from the shared broker
