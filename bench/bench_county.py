"""A county on one process: start time and memory of `homewatch run` at 30,000 persons and
100,000 devices on PostgreSQL.

Run: .venv/bin/python -m bench.bench_county [--persons 30000] [--devices 100000]
     [--traffic-seconds 60] [--rate 50] [--partitions 0 8] [--no-write]

The register is bulk-inserted (Core executemany, encrypted under the run's own key so the
start re-encrypts nothing); provisioning time is bench_provision's figure, not this one's.
For each ``--partitions`` value: start the real `homewatch run` (its own Mosquitto, fake
Twilio), time from spawn to the first 200 from /healthz (subscribed, database reachable),
read its RSS (VmRSS) then, then publish light traffic (native motion reports, QoS 1, to
random devices at ``--rate`` a second) for ``--traffic-seconds`` and read RSS and the
stored count again. 0 partitions is the routine session on the standard family filters
(``homewatch/+/event`` ...) plus the emergency lane; N partitions is N leased sessions of
each lane in this one process, each
subscribed to its devices' exact topics (two a device), which is what a county fail-over
deployment subscribes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, insert, select

from gateway.config import load_settings
from gateway.storage.db import Database, migrate
from gateway.storage.models import (
    Device,
    DeviceState,
    Event,
    Helper,
    Person,
    TeamMember,
    Town,
    Village,
)
from tests.fakes.fake_twilio import FakeTwilio
from tests.helpers import id_number
from tests.services import free_port, mosquitto, scratch_pg_database

SECRET = "c" * 32
TOWNS = 27
VILLAGES_PER_TOWN = 11
PERSONS_PER_HELPER = 10
#: A home's devices, cycled: every home has an SOS button and a PIR; most a door sensor;
#: some a Zigbee fall radar (3.33 devices a home on average at 30k/100k).
_KINDS = [("sos", "native"), ("motion", "native"), ("door", "zigbee2mqtt")]
_EXTRA = ("fall", "zigbee2mqtt")
_BATCH = 5000


@dataclass
class Figures:
    partitions: int
    healthy_s: float
    rss_start_mb: float
    rss_after_mb: float
    sent: int
    stored: int
    subscribe_log: str
    #: CPU seconds (user + system) the process had used when it became healthy: what the
    #: start costs, whatever else the machine is doing.
    cpu_s: float
    #: Spawn → "gateway running" (interpreter, imports, settings, per-person rules loaded).
    running_s: float


def _id_number(p: int) -> str:
    """A valid, distinct GB 11643 number per person."""
    birth = (date(1930, 1, 1) + timedelta(days=p % 20_000)).strftime("%Y%m%d")
    return id_number(birth, p // 20_000, p % 2 == 0)


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + _BATCH] for i in range(0, len(rows), _BATCH)]


async def build_county(url: str, persons: int, devices: int) -> tuple[list[str], float]:
    """Bulk-insert the register; returns the native motion topics and the seconds taken."""
    settings = load_settings(database_url=url, secret_key=SECRET)
    started = time.perf_counter()
    await migrate(url, settings.keyring())
    db = Database(url, keyring=settings.keyring())
    now = datetime.now(UTC)
    villages = TOWNS * VILLAGES_PER_TOWN
    helpers = max(1, persons // PERSONS_PER_HELPER)
    rng = random.Random(15)
    try:
        async with db.session() as session, session.begin():
            await session.execute(
                insert(Town),
                [{"name": "秀山县", "duty_name": "民政局值班", "duty_phone": "+862376000000"}],
            )
            await session.execute(
                insert(Village), [{"name": f"村{v:03d}"} for v in range(villages)]
            )
            await session.execute(
                insert(TeamMember),
                [
                    {
                        "village_id": v // 2 + 1,
                        "name": f"队员{v}",
                        "phone": f"+86139{v:08d}",
                        "phone_bidx": f"+86139{v:08d}",
                        "role": "队员",
                    }
                    for v in range(villages * 2)
                ],
            )
            await session.execute(
                insert(Helper),
                [
                    {
                        "name": f"帮扶{h}",
                        "phone": f"+86137{h:08d}",
                        "phone_bidx": f"+86137{h:08d}",
                        "title": "村干部",
                        "village_id": h % villages + 1,
                    }
                    for h in range(helpers)
                ],
            )
            person_rows: list[dict[str, Any]] = [
                {
                    "name": f"老人{p}",
                    "gender": "男" if p % 2 == 0 else "女",
                    "id_number": (number := _id_number(p)),
                    "id_number_bidx": number,
                    "village_id": (p // PERSONS_PER_HELPER) % villages + 1,
                    "categories": ["dispersed_destitute"],
                    "care_level": "special" if p % 3 == 0 else "general",
                    "helper_id": p // PERSONS_PER_HELPER % helpers + 1,
                    "phone": f"+86136{p:08d}",
                    "address": f"{p % 50}组{p}号",
                    "rules_override": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for p in range(persons)
            ]
            for chunk in _chunks(person_rows):
                await session.execute(insert(Person), chunk)
            device_rows: list[dict[str, Any]] = []
            for d in range(devices):
                person = d % persons + 1
                slot = d // persons
                kind, protocol = _KINDS[slot] if slot < len(_KINDS) else _EXTRA
                uid = f"c{person:05d}-{kind}-{slot}"
                base = "homewatch" if protocol == "native" else "zigbee2mqtt"
                device_rows.append(
                    {
                        "uid": uid,
                        "person_id": person,
                        "kind": kind,
                        "protocol": protocol,
                        "topic": f"{base}/{uid}",
                        "model": "TS0210" if protocol == "zigbee2mqtt" else None,
                    }
                )
            for chunk in _chunks(device_rows):
                await session.execute(insert(Device), chunk)
            for chunk in _chunks([{"device_id": d + 1} for d in range(devices)]):
                await session.execute(insert(DeviceState), chunk)
        topics = [
            f"{row['topic']}/event"
            for row in device_rows
            if row["kind"] == "motion" and row["protocol"] == "native"
        ]
        rng.shuffle(topics)
        return topics, time.perf_counter() - started
    finally:
        await db.dispose()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _traffic(port: int, topics: list[str], rate: float, seconds: float) -> int:
    run = uuid.uuid4().hex[:6]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"county-{run}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent = 0
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            if sent < elapsed * rate:
                topic = topics[sent % len(topics)]
                payload = {"type": "motion", "state": sent % 2 == 0, "id": f"{run}-{sent}"}
                client.publish(topic, json.dumps(payload), qos=1)
                sent += 1
            else:
                time.sleep(0.005)
    finally:
        time.sleep(0.5)
        client.loop_stop()
        client.disconnect()
    return sent


async def _stored(url: str) -> int:
    db = Database(url)
    try:
        async with db.session() as session:
            return int((await session.execute(select(func.count(Event.id)))).scalar_one())
    finally:
        await db.dispose()


def run_once(
    url: str,
    broker: int,
    twilio: FakeTwilio,
    topics: list[str],
    partitions: int,
    args: argparse.Namespace,
    workdir: Path,
) -> Figures:
    api = free_port()
    log = workdir / f"run-p{partitions}.log"
    config = workdir / "county.yaml"
    config.write_text("timezone: Asia/Shanghai\ndigest: {weekday: 7, hour: 23}\n")
    env = {
        **os.environ,
        "HOMEWATCH_CONFIG": str(config),
        "HOMEWATCH_DATABASE_URL": url,
        "HOMEWATCH_MQTT_URL": f"mqtt://127.0.0.1:{broker}",
        "HOMEWATCH_MQTT_CLIENT_ID": f"county-{partitions}",
        "HOMEWATCH_MQTT_PARTITIONS": str(partitions),
        "HOMEWATCH_SECRET_KEY": SECRET,
        "HOMEWATCH_API_PORT": str(api),
        "HOMEWATCH_TWILIO_ACCOUNT_SID": twilio.account_sid,
        "HOMEWATCH_TWILIO_AUTH_TOKEN": twilio.auth_token,
        "HOMEWATCH_TWILIO_FROM": "+15005550006",
        "HOMEWATCH_TWILIO_API_BASE": twilio.base_url,
    }
    before = asyncio.run(_stored(url))
    spawned_at = datetime.now()  # the log writes local time
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--no-migrate"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = started + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway never healthy; see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{api}/healthz", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        healthy = time.monotonic() - started
        cpu = _cpu_seconds(process.pid)
        rss_start = _rss_mb(process.pid)
        sent = _traffic(broker, topics, args.rate, args.traffic_seconds)
        time.sleep(3)  # the last batches commit
        rss_after = _rss_mb(process.pid)
        stored = asyncio.run(_stored(url)) - before
    finally:
        process.terminate()
        process.wait(30)
    subscribed = [
        line.split("INFO ", 1)[-1]
        for line in log.read_text(errors="replace").splitlines()
        if "subscribed to" in line
    ]
    summary = f"{len(subscribed)} session(s): " + (subscribed[0] if subscribed else "none")
    running = next(
        line[:23]
        for line in log.read_text(errors="replace").splitlines()
        if "gateway running" in line
    )
    running_s = (datetime.strptime(running, "%Y-%m-%d %H:%M:%S,%f") - spawned_at).total_seconds()
    return Figures(partitions, healthy, rss_start, rss_after, sent, stored, summary, cpu, running_s)


def write_table(
    args: argparse.Namespace, build_s: float, figures: list[Figures], command: str
) -> str:
    lines = [
        "## A county on one process (issue #15, failover)",
        "",
        f"`{command}` — {args.persons:,} persons, {args.devices:,} devices on PostgreSQL, "
        f"one `homewatch run` on this 2-core machine shared with other work (noisy; one run "
        f"each). Register bulk-inserted in {build_s:.0f} s (not a provisioning figure). "
        f"Running = the log's `gateway running` (interpreter, imports, settings, per-person "
        f"rules read; the register is not loaded yet); healthy = first 200 from /healthz, "
        f"both counted from spawning the process (migrations already applied, "
        f"`--no-migrate`). Traffic: native motion reports, QoS 1, "
        f"{args.rate:g}/s for {args.traffic_seconds:g} s. Targets: healthy ≤ 10 s, RSS ≤ 400 MB.",
        "",
        "| MQTT sessions | running after | healthy after | CPU used by then | RSS at healthy | "
        "RSS after traffic | reports sent / stored | subscriptions |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        sessions = (
            "routine (family filters) + emergency lane"
            if f.partitions == 0
            else f"{f.partitions} partitions × 2 lanes"
        )
        lines.append(
            f"| {sessions} | {f.running_s:.1f} s | {f.healthy_s:.1f} s | {f.cpu_s:.1f} s | "
            f"{f.rss_start_mb:.0f} MB | "
            f"{f.rss_after_mb:.0f} MB | {f.sent} / {f.stored} | {f.subscribe_log} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--persons", type=int, default=30_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--traffic-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--partitions", type=int, nargs="+", default=[0, 8])
    parser.add_argument("--no-write", action="store_true", help="print, do not edit docs/")
    args = parser.parse_args()
    command = "python -m bench.bench_county " + " ".join(sys.argv[1:])
    with (
        mosquitto() as broker,
        scratch_pg_database("hwcounty") as url,
        FakeTwilio(account_sid="AC" + "0" * 32, auth_token="county-token-0123456789") as twilio,
        tempfile.TemporaryDirectory() as tmp,
    ):
        topics, build_s = asyncio.run(build_county(url, args.persons, args.devices))
        print(f"register built in {build_s:.1f} s", flush=True)
        figures = []
        for partitions in args.partitions:
            figures.append(run_once(url, broker, twilio, topics, partitions, args, Path(tmp)))
            print(figures[-1], flush=True)
    table = write_table(args, build_s, figures, command.strip())
    print(table)
    if not args.no_write:
        path = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
        text = path.read_text(encoding="utf-8")
        heading = table.splitlines()[0]
        if heading in text:  # replace our section only, wherever it now stands
            start = text.index(heading)
            end = text.find("\n## ", start + len(heading))
            rest = "" if end < 0 else text[end + 1 :]
            text = text[:start] + table + ("\n" + rest if rest else "")
        else:
            text = text.rstrip("\n") + "\n\n" + table
        path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
