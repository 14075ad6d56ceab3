"""``homewatch demo``: the whole system on one machine with nothing else installed (SPEC §1).

One process, one asyncio loop: an embedded MQTT broker (amqtt), a SQLite file, the whole
town's demo register, the gateway (ingest, rules, escalation, HTTP API and operator console),
the simulator publishing the homes' routines, and a *demo script* that plays the people:
it injects an SOS early on and later falls or SOS presses, and answers each alert the way a
helper or team member would (replies "1" by SMS, then closes it after the visit).

Gateway and simulator share one :class:`~gateway.clock.ScaledClock`, so the rules, the
escalation timers and the homes all live in the same accelerated time. The database keeps
its data between runs and the clock resumes after the newest time stored in it, so
simulated time never runs backwards in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from alerts.notifiers import ConsoleNotifier, Delivery, Notifier
from alerts.types import AlertGroup, AlertStatus
from gateway.app import Gateway
from gateway.clock import Clock, ScaledClock
from gateway.config import Settings, load_settings
from gateway.folder_lock import FolderInUseError, lock_folder
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage import queries
from gateway.storage.db import Database, migrate
from simulator.household import Household, Topics, generate_households
from simulator.provisioning import town_document
from simulator.routine import TOWN_TZ
from simulator.runner import RunSummary, run_simulation
from simulator.scenarios import ScenarioName, ScenarioRequest

__all__ = ["DemoError", "DemoOptions", "run_demo"]

log = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"
_PASSWORD_ENV = "HOMEWATCH_DEMO_ADMIN_PASSWORD"  # noqa: S105 - a variable's name, not a secret
_DB_FILE = "homewatch-demo.db"
#: The first SOS comes this soon after the start (simulated), so that at --speed 60 the
#: whole escalate-and-acknowledge story fits in the first real minute.
FIRST_SOS_AFTER = timedelta(minutes=1)
#: The demo script answers an emergency this long after its first message went out: longer
#: than the helper's 3-minute step, so the console shows the escalation to the village team.
ACK_AFTER = timedelta(minutes=4)
#: ... and closes it after the (simulated) visit.
RESOLVE_AFTER = timedelta(minutes=25)
#: Later emergencies, so that a demo left running keeps showing something.
INJECT_EVERY = timedelta(hours=3)
_POLL_SECONDS = 0.5  # wall clock: how often the script looks for new alerts


class _DemoClock(ScaledClock):
    """The shared scaled clock, whose sleeps last at least a few real milliseconds.

    The escalation worker polls every simulated second: at 60x that would be 60 database
    passes a real second, for nothing. Waking a little late costs a few simulated seconds
    of precision, which no rule or escalation step of minutes notices.
    """

    MIN_REAL_SLEEP = 0.05

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(max(0.0, seconds) / self.speed, self.MIN_REAL_SLEEP))


class DemoError(Exception):
    """The demo cannot start (e.g. a port given on the command line is taken)."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """``homewatch demo``'s options.

    Attributes:
        speed: Simulated seconds per real second.
        port: HTTP port; when it is taken and ``port_fallback`` is set, any free one.
        mqtt_port: Embedded broker's port; None picks a free one.
        households: Simulated homes (the pilot village 坝芒村 first).
        directory: Where the SQLite file and the demo's files go; None: ``./homewatch-demo``
            (or a temporary directory when the current one is not writable).
        duration: Stop by itself after this much real time; None runs until a signal.
        config: Optional YAML configuration (Twilio settings, rules, escalation).
        seed: Same seed, same homes and people.
    """

    speed: float = 60.0
    port: int = 8080
    port_fallback: bool = True
    mqtt_port: int | None = None
    households: int = 12
    directory: Path | None = None
    duration: timedelta | None = None
    config: str | None = None
    seed: int = 0


@dataclass
class _Stats:
    """What the demo script did, for the closing summary."""

    acknowledged: int = 0
    resolved: int = 0
    injected: list[str] = field(default_factory=list)


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 person``, ``2 persons``: the narration is read, so it should read right."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


class _TownTimeFormatter(logging.Formatter):
    """Log lines stamped with the demo's simulated town time, the time its SMS headings and
    its banner show, instead of the machine's wall clock in whatever zone it runs."""

    def __init__(self, clock: Clock) -> None:
        super().__init__("%(asctime)s town time %(levelname)s %(name)s: %(message)s")
        self._clock = clock

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return f"{self._clock.now().astimezone(TOWN_TZ):%m-%d %H:%M}"


def _log_in_town_time(clock: Clock) -> None:
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_TownTimeFormatter(clock))


def say(text: str) -> None:
    """Print a line of the demo's own narration, at once (output may be a pipe)."""
    print(text, flush=True)


def _tolerant_stdout() -> None:
    # Names and messages are Chinese: on an ASCII or GBK console they must degrade to
    # escapes rather than stop the demo with UnicodeEncodeError.
    if hasattr(sys.stdout, "reconfigure"):
        with contextlib.suppress(ValueError, OSError):
            sys.stdout.reconfigure(errors="backslashreplace")


# --- Entry point ----------------------------------------------------------------------------


async def run_demo(options: DemoOptions, *, stop: asyncio.Event | None = None) -> int:
    """Run the demo until ``stop`` is set, a signal arrives, or ``options.duration`` passes.

    Without ``stop``, SIGINT and SIGTERM stop it cleanly. Returns the exit status.
    """
    if options.households < 1:
        raise DemoError("--households must be at least 1")
    if stop is None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
    _tolerant_stdout()
    directory = _demo_directory(options.directory)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(lock_folder(directory, what="homewatch demo"))
        except FolderInUseError as error:
            raise DemoError(str(error)) from None
        api_socket = _bind_api_socket(options.port, fallback=options.port_fallback)
        try:
            async with _embedded_broker(options.mqtt_port) as mqtt_port:
                await _run(options, directory, api_socket, mqtt_port, stop)
        finally:
            api_socket.close()
    return 0


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            say("\nstopping the demo (正在停止演示)…")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still interrupts
            loop.add_signal_handler(signum, on_signal)


async def _run(
    options: DemoOptions,
    directory: Path,
    api_socket: socket.socket,
    mqtt_port: int,
    stop: asyncio.Event,
) -> None:
    port = api_socket.getsockname()[1]
    database_url = f"sqlite+aiosqlite:///{directory / _DB_FILE}"
    settings = _settings(options, database_url, mqtt_port, port)
    start = await _resume_time(database_url)
    clock = _DemoClock(options.speed, start=start)
    _log_in_town_time(clock)
    households = generate_households(options.households, seed=options.seed, protocol="mixed")
    password = secrets.token_urlsafe(9)
    document = _register_document(households, options.seed)
    (directory / "provisioning.yaml").write_text(_as_yaml(document), encoding="utf-8")

    gateway = Gateway(
        settings, secrets.token_urlsafe(32), clock, _notifier(settings, document, clock)
    )
    doc = parse_provisioning(
        _as_yaml(document), source="demo register", env={_PASSWORD_ENV: password}
    )
    await apply_provisioning(gateway.db, doc, clock.now(), actor="demo")
    left_over = await _close_left_over_alerts(gateway)
    _banner(options, settings, directory, mqtt_port, clock, households, document, password)
    if left_over:
        say(
            f"[demo script 演示脚本] closed {_count(left_over, 'alert')} left open by the "
            "previous run"
        )

    gateway_task = asyncio.create_task(
        gateway.run(stop, run_migrations=False, sockets=[api_socket]), name="gateway"
    )
    if options.duration is not None:
        asyncio.get_running_loop().call_later(options.duration.total_seconds(), stop.set)
    stats = _Stats()
    try:
        await _wait_connected(gateway, stop)
        summary = await _simulate_and_play(
            gateway, households, settings, clock, directory, stop, stats, options.seed
        )
    finally:
        stop.set()
        await gateway_task
    _farewell(summary, stats, directory)


async def _simulate_and_play(
    gateway: Gateway,
    households: Sequence[Household],
    settings: Settings,
    clock: Clock,
    directory: Path,
    stop: asyncio.Event,
    stats: _Stats,
    seed: int,
) -> RunSummary | None:
    """The simulator and the demo script, until ``stop``."""
    if stop.is_set():
        return None
    commands: asyncio.Queue[ScenarioRequest] = asyncio.Queue()
    first = households[0]
    say(
        f"[demo script 演示脚本] in {FIRST_SOS_AFTER.total_seconds() / 60:g} simulated minute "
        f"{first.resident.name} ({first.village}, {first.key}) presses the SOS button"
    )
    stats.injected.append(f"sos {first.key}")
    script = asyncio.create_task(
        _play(gateway, clock, households, commands, stats, seed), name="demo-script"
    )
    try:
        return await run_simulation(
            households,
            mqtt_url=settings.mqtt_url,
            clock=clock,
            stop=stop,
            scenarios=[ScenarioRequest(ScenarioName.SOS, at=FIRST_SOS_AFTER, household=first.key)],
            commands=commands,
            ground_truth_path=directory / "ground-truth.jsonl",
            seed=seed,
            client_id="homewatch-demo-simulator",
            reconnect_interval=0.5,
        )
    finally:
        script.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await script


# --- Setting up -----------------------------------------------------------------------------


def _demo_directory(requested: Path | None) -> Path:
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        return requested.resolve()
    default = Path.cwd() / "homewatch-demo"
    try:
        default.mkdir(exist_ok=True)
        probe = default / ".write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError:
        return Path(tempfile.mkdtemp(prefix="homewatch-demo-"))
    return default


def _bind_api_socket(port: int, *, fallback: bool) -> socket.socket:
    """The HTTP socket, bound before anything starts so the printed URL is the real one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as error:
        if error.errno != errno.EADDRINUSE or not fallback:
            sock.close()
            raise DemoError(f"cannot listen on 127.0.0.1:{port}: {error.strerror}") from error
        sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _embedded_broker(port: int | None) -> AsyncIterator[int]:
    """An amqtt broker on 127.0.0.1 (anonymous, no $SYS topics); yields its port."""
    from amqtt.broker import Broker  # imported late: it loads many plugins at import

    for logger_name in ("amqtt", "transitions"):
        logging.getLogger(logger_name).setLevel(logging.ERROR)
    attempts = 1 if port is not None else 3  # a probed free port can be taken meanwhile
    for attempt in range(attempts):
        chosen = port if port is not None else _free_port()
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{chosen}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        try:
            await broker.start()
        except Exception as error:
            if attempt + 1 < attempts:
                continue
            raise DemoError(f"cannot start the MQTT broker on port {chosen}: {error}") from error
        break
    try:
        yield chosen
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), 10)


def _settings(options: DemoOptions, database_url: str, mqtt_port: int, port: int) -> Settings:
    """The configured settings (Twilio, rules, escalation), with the demo's own broker,
    database and HTTP address, whatever HOMEWATCH_* variables say about those."""
    base = load_settings(options.config)
    return base.model_copy(
        update={
            "database_url": database_url,
            "mqtt_url": f"mqtt://127.0.0.1:{mqtt_port}",
            "mqtt_username": None,
            "mqtt_password": None,
            "mqtt_client_id": "homewatch-demo",
            "mqtt_share_group": None,
            "api_host": "127.0.0.1",
            "api_port": port,
            "public_url": f"http://127.0.0.1:{port}",
            # amqtt speaks MQTT 3.1.1 only.
            "mqtt_protocol": "3.1.1",
            # Quiet-home rules think in minutes: one pass per real second is plenty at any
            # speed (the rules tick on the scaled clock).
            "rules_tick": max(base.rules_tick, timedelta(seconds=options.speed)),
            # The demo prints SMS and calls unless Twilio is configured; chosen by name,
            # as `run` requires (the API's /healthz then says which one is in use).
            "notifier": base.notifier_name,
        }
    )


async def _resume_time(database_url: str) -> datetime:
    """Now, or just after the newest time in the database of a previous run if later."""
    await migrate(database_url)
    db = Database(database_url)
    try:
        async with db.session() as session:
            latest = await queries.latest_recorded_time(session)
    finally:
        await db.dispose()
    now = datetime.now(UTC)
    if latest is not None and latest + timedelta(minutes=1) > now:
        return latest + timedelta(minutes=1)
    return now


def _register_document(households: Sequence[Household], seed: int) -> dict[str, Any]:
    document = town_document(households, topics=Topics(), seed=seed)
    document["users"] = [
        {"username": ADMIN_USERNAME, "role": "town_admin", "password_env": _PASSWORD_ENV}
    ]
    return document


def _as_yaml(document: dict[str, Any]) -> str:
    header = "# The demo register, written by `homewatch demo` at each start.\n"
    return header + yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=120)


def _notifier(settings: Settings, document: dict[str, Any], clock: Clock) -> Notifier | None:
    """The console, printing names beside numbers; None lets the gateway build Twilio's."""
    if settings.notifier_name == "twilio":
        return None
    return _TimedConsole(ConsoleNotifier(directory=_phone_book(document)), clock)


class _TimedConsole:
    """The console notifier, with a simulated-time heading whenever the minute changes, so
    that the reader sees the escalation's waits pass."""

    name = "console"

    def __init__(self, console: ConsoleNotifier, clock: Clock) -> None:
        self._console = console
        self._clock = clock
        self._last_heading = ""

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Delivery:
        self._heading()
        return await self._console.send_sms(to, body, status_callback=status_callback)

    async def place_call(
        self, to: str, *, speech: str, twiml_url: str, status_callback: str | None = None
    ) -> Delivery:
        self._heading()
        return await self._console.place_call(
            to, speech=speech, twiml_url=twiml_url, status_callback=status_callback
        )

    def _heading(self) -> None:
        heading = f"-- {self._clock.now().astimezone(TOWN_TZ):%m-%d %H:%M} town time 镇上时间 --"
        if heading != self._last_heading:
            self._last_heading = heading
            say(heading)


def _phone_book(document: dict[str, Any]) -> dict[str, str]:
    book = {document["town_duty"]["phone"]: document["town_duty"]["name"]}
    for village in document["villages"]:
        for member in village["emergency_team"]:
            book[member["phone"]] = f"{village['name']}应急队{member['role']} {member['name']}"
    for helper in document["helpers"]:
        book[helper["phone"]] = f"帮扶责任人 {helper['name']}，{helper['title']}"
    for person in document["persons"]:
        if person.get("phone"):
            book[person["phone"]] = f"关爱对象 {person['name']}"
    return book


async def _close_left_over_alerts(gateway: Gateway) -> int:
    """Resolve what an earlier run left open: the first SOS would otherwise join its
    person's still-open alert (one per person and type) and the story would not be told."""
    async with gateway.db.session() as session:
        ids = await queries.alert_ids(
            session, statuses=[AlertStatus.OPEN.value, AlertStatus.ACKNOWLEDGED.value]
        )
    for alert_id in ids:
        await gateway.alerts.resolve(alert_id, "演示脚本", "演示重新启动时关闭")
    return len(ids)


async def _wait_connected(gateway: Gateway, stop: asyncio.Event) -> None:
    """The simulator starts once the gateway listens, so no early message goes unheard."""
    # MqttIngest exposes a flag, not an event; a short poll is enough for a one-off wait.
    while not gateway.ingest.connected and not stop.is_set():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


# --- The demo script ------------------------------------------------------------------------


async def _play(
    gateway: Gateway,
    clock: Clock,
    households: Sequence[Household],
    commands: asyncio.Queue[ScenarioRequest],
    stats: _Stats,
    seed: int,
) -> None:
    """Answer every emergency alert; now and then cause a new one."""
    handled: set[int] = set()
    async with asyncio.TaskGroup() as group:
        group.create_task(_inject_now_and_then(clock, households, commands, stats, seed))
        while True:
            for alert_id in await _new_emergencies(gateway, handled):
                handled.add(alert_id)
                group.create_task(_answer(gateway, clock, alert_id, stats))
            await asyncio.sleep(_POLL_SECONDS)


async def _new_emergencies(gateway: Gateway, handled: set[int]) -> list[int]:
    async with gateway.db.session() as session:
        ids = await queries.alert_ids(
            session, statuses=[AlertStatus.OPEN.value], group=AlertGroup.EMERGENCY.value
        )
    return [i for i in ids if i not in handled]


async def _answer(gateway: Gateway, clock: Clock, alert_id: int, stats: _Stats) -> None:
    """Like a helper would: reply "1" a few minutes after the alarm, close it after the visit."""
    first_sent = await _first_sent_at(gateway, alert_id)
    await clock.sleep((first_sent + ACK_AFTER - clock.now()).total_seconds())
    recipient = await _latest_recipient(gateway, alert_id)
    if recipient is None:
        return
    name, phone = recipient
    say(f'[demo script 演示脚本] {name} ({phone}) replies "1" by SMS (回复短信“1”接单)')
    result = await gateway.alerts.acknowledge_by_sms(phone, "1")
    if result is None or result.already:
        return  # somebody took it through the API meanwhile
    stats.acknowledged += 1
    await clock.sleep(RESOLVE_AFTER.total_seconds())
    note = "已上门查看，老人无大碍（演示）"
    say(f"[demo script 演示脚本] {name} has visited and closes alert {result.code}: {note}")
    await gateway.alerts.resolve(alert_id, name, note)
    stats.resolved += 1


async def _first_sent_at(gateway: Gateway, alert_id: int) -> datetime:
    while True:
        async with gateway.db.session() as session:
            sent = await queries.first_alert_sent_at(session, alert_id)
        if sent is not None:
            return sent
        await asyncio.sleep(_POLL_SECONDS / 5)


async def _latest_recipient(gateway: Gateway, alert_id: int) -> tuple[str, str] | None:
    """The first person of the latest escalation step reached (not the resident)."""
    async with gateway.db.session() as session:
        return await queries.latest_reached_recipient(session, alert_id)


async def _inject_now_and_then(
    clock: Clock,
    households: Sequence[Household],
    commands: asyncio.Queue[ScenarioRequest],
    stats: _Stats,
    seed: int,
) -> None:
    rng_pick = itertools.count()
    kinds = itertools.cycle((ScenarioName.FALL, ScenarioName.SOS))
    while True:
        await clock.sleep(INJECT_EVERY.total_seconds())
        household = households[(seed + 3 * next(rng_pick) + 1) % len(households)]
        kind = next(kinds)
        what = "falls (跌倒)" if kind is ScenarioName.FALL else "presses SOS (按下求助键)"
        say(
            f"[demo script 演示脚本] {household.resident.name} ({household.village}, "
            f"{household.key}) {what}"
        )
        stats.injected.append(f"{kind.value} {household.key}")
        commands.put_nowait(ScenarioRequest(kind, household=household.key))


# --- Narration ------------------------------------------------------------------------------


def _banner(
    options: DemoOptions,
    settings: Settings,
    directory: Path,
    mqtt_port: int,
    clock: Clock,
    households: Sequence[Household],
    document: dict[str, Any],
    password: str,
) -> None:
    homes = ", ".join(dict.fromkeys(h.village for h in households))
    started = clock.now().astimezone(TOWN_TZ)
    notifier = "Twilio" if settings.notifier_name == "twilio" else "console (printed below)"
    lines = [
        "",
        "Homewatch 智慧看家 — demo (演示)",
        f"  console 操作台:      {settings.public_url}/    wall screen 值班大屏: "
        f"{settings.public_url}/wall    API docs: {settings.public_url}/docs",
        f"  login 登录:          {ADMIN_USERNAME} / {password}   (town_admin; new each start)",
        f"  simulated time:      {started:%Y-%m-%d %H:%M} town time, {options.speed:g}x faster",
        f"  homes with sensors:  {len(households)} ({homes}; 坝芒村 is the pilot village)",
        f"  register 台账:       {_count(len(document['villages']), 'village')}, "
        f"{_count(len(document['persons']), 'person')}, "
        f"{_count(len(document['helpers']), 'helper')}",
        f"  MQTT broker:         mqtt://127.0.0.1:{mqtt_port} (embedded)",
        f"  SMS and calls:       {notifier}",
        f"  data:                {directory}",
        "  Ctrl-C stops the demo.",
        "",
    ]
    say("\n".join(lines))


def _farewell(summary: RunSummary | None, stats: _Stats, directory: Path) -> None:
    published = summary.published if summary else 0
    say(
        f"demo stopped: {_count(published, 'sensor message')} published; the demo script "
        f"caused {_count(len(stats.injected), 'emergency', 'emergencies')}, acknowledged "
        f"{_count(stats.acknowledged, 'alert')} and closed {stats.resolved}. "
        f"Data kept in {directory}"
    )
