"""Publishing simulated homes over MQTT, in simulated time.

:func:`run_simulation` walks every household's routine day by day, sleeps on the injected
:class:`~gateway.clock.Clock` until the next event is due (a ``ScaledClock`` at speed N runs
N times faster than real time; a ``ManualClock`` moves only when a test advances it), applies
scenarios (scheduled, or arriving on a command queue) and publishes with QoS 1 through
aiomqtt. The connection is the plain reconnect loop of the aiomqtt docs; a message whose
publish failed is published again after reconnecting, so an outage delays events but does
not lose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import ssl
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiomqtt

from gateway.clock import Clock
from gateway.events import EventKind
from gateway.register.vocabulary import Protocol
from simulator.household import (
    Household,
    HouseholdProtocol,
    SimDevice,
    Topics,
    seeded_random,
    with_protocol,
)
from simulator.payloads import Encoder, Outgoing
from simulator.routine import (
    SimEvent,
    battery_level,
    day_events,
    day_rng,
    local_date_of,
    local_midnight,
)
from simulator.scenarios import (
    GroundTruth,
    Injection,
    ScenarioRequest,
    append_ground_truth,
    filter_event,
    resolve_request,
)

__all__ = ["BrokerAddress", "RunSummary", "Timeline", "parse_mqtt_url", "run_simulation"]

logger = logging.getLogger(__name__)

#: Scheduled scenarios without a time go off this far apart after the start, so that a
#: demo shows them one by one rather than all in the same second.
SCENARIO_SPACING = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where to connect, from an ``mqtt://`` / ``mqtts://`` URL."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(
    url: str, *, username: str | None = None, password: str | None = None
) -> BrokerAddress:
    """Parse ``mqtt://[user:pass@]host[:port]`` (``mqtts://`` for TLS; ``tcp://`` too).

    ``username``/``password`` given separately win over the URL's.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"unsupported MQTT URL scheme in {url!r} (use mqtt:// or mqtts://)")
    if not parts.hostname:
        raise ValueError(f"no host in MQTT URL {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=username or (unquote(parts.username) if parts.username else None),
        password=password or (unquote(parts.password) if parts.password else None),
    )


@dataclass(slots=True)
class RunSummary:
    """What a simulation run did (simulated times)."""

    started_at: datetime
    ended_at: datetime | None = None
    published: int = 0
    #: Messages by event kind (``motion``, ``door``, ``heartbeat``, ``availability``, …).
    by_kind: Counter[str] = field(default_factory=Counter)
    #: Routine events that a scenario silenced.
    suppressed: int = 0
    injected: list[GroundTruth] = field(default_factory=list)
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)


class Timeline:
    """All events still to publish, in time order: routine days loaded lazily, plus injections.

    Invariant: every routine event before ``horizon`` is in the heap; days are loaded
    only when the earliest known event lies beyond it. Scenario suppressions are applied
    when an event is taken, so an injection that arrives late still silences events that
    were loaded earlier.
    """

    def __init__(
        self, households: Sequence[Household], *, start: datetime, until: datetime | None
    ) -> None:
        self.households = list(households)
        self.start = start
        self.until = until
        self.injections: list[Injection] = []
        self._heap: list[tuple[datetime, int, SimEvent | GroundTruth]] = []
        self._seq = itertools.count()
        self._next_day = local_date_of(start)
        self._horizon = start

    def add(self, injection: Injection) -> None:
        """Schedule a scenario: its events, and its ground truth at its decisive moment."""
        self.injections.append(injection)
        for event in injection.events:
            self._push(event.at, event)
        self._push(injection.truth.at, injection.truth)

    def peek(self) -> SimEvent | GroundTruth | None:
        """The next item due, or None when the simulation's end is reached."""
        while (not self._heap or self._heap[0][0] >= self._horizon) and self._can_load():
            self._load_day()
        if not self._heap:
            return None
        return self._heap[0][2]

    def pop(self) -> None:
        """Drop the item :meth:`peek` returned (after it was delivered)."""
        heapq.heappop(self._heap)

    def apply(self, event: SimEvent) -> SimEvent | None:
        """``event`` as the active scenarios let it happen, or None if they silence it."""
        return filter_event(event, self.injections)

    def forget_before(self, instant: datetime) -> None:
        """Stop checking scenarios that ended before ``instant`` (keeps :meth:`apply` cheap)."""
        self.injections = [i for i in self.injections if i.end >= instant]

    def _push(self, at: datetime, item: SimEvent | GroundTruth) -> None:
        if at < self.start or (self.until is not None and at >= self.until):
            return
        heapq.heappush(self._heap, (at, next(self._seq), item))

    def _can_load(self) -> bool:
        return self.until is None or self._horizon < self.until

    def _load_day(self) -> None:
        day = self._next_day
        for household in self.households:
            for event in day_events(household, day, day_rng(household, day)):
                self._push(event.at, event)
        self._next_day = day + timedelta(days=1)
        self._horizon = local_midnight(self._next_day)


async def run_simulation(
    households: Sequence[Household],
    *,
    mqtt_url: str,
    clock: Clock,
    stop: asyncio.Event,
    protocol: HouseholdProtocol | None = None,
    scenarios: Sequence[ScenarioRequest] = (),
    commands: asyncio.Queue[ScenarioRequest] | None = None,
    ground_truth_path: Path | str | None = None,
    topics: Topics | None = None,
    until: datetime | None = None,
    seed: int = 0,
    username: str | None = None,
    password: str | None = None,
    client_id: str | None = None,
    reconnect_interval: float = 2.0,
    z2m_cache_state: bool = True,
    on_publish: Callable[[Outgoing], None] | None = None,
) -> RunSummary:
    """Publish ``households``' routines and ``scenarios`` until ``stop`` is set or ``until``.

    Args:
        households: The homes, e.g. from :func:`~simulator.household.generate_households`.
        mqtt_url: ``mqtt://host:port`` (``mqtts://`` for TLS).
        clock: Simulated time; its ``now()`` at the call is the simulation's start.
        stop: Set it to end the run cleanly (the message being published is finished).
        protocol: Re-assign every household's protocol; None keeps what they were generated
            with (which is what a provisioning file written from them says).
        scenarios: Injected on schedule: at their ``at`` or, without one, two simulated
            minutes apart after the start.
        commands: Scenario requests arriving while running (a demo button, a console);
            without ``at`` they happen at once.
        ground_truth_path: JSON-lines file that gets one record per injected scenario, when
            its decisive moment is reached.
        topics: Topic roots (tests pass their own prefix).
        until: Simulated end; None runs until ``stop``.
        seed: Seed for choosing households for scenarios that name none.
        username: Broker login (overrides the URL's).
        password: Broker password (overrides the URL's).
        client_id: MQTT client id; a random one by default.
        reconnect_interval: Seconds (wall clock) between reconnection attempts.
        z2m_cache_state: zigbee2mqtt's ``cache_state``: each message repeats the device's
            whole state (its default), or carries only what changed.
        on_publish: Called after each message is acknowledged by the broker.

    Returns:
        What was published.
    """
    if protocol is not None:
        households = [with_protocol(h, protocol) for h in households]
    runner = _Runner(
        households,
        address=parse_mqtt_url(mqtt_url, username=username, password=password),
        clock=clock,
        stop=stop,
        commands=commands,
        ground_truth_path=Path(ground_truth_path) if ground_truth_path else None,
        until=until,
        seed=seed,
        client_id=client_id,
        reconnect_interval=reconnect_interval,
        on_publish=on_publish,
        encoder=Encoder(topics or Topics(), cache_state=z2m_cache_state),
    )
    for index, request in enumerate(scenarios):
        runner.request(request, default_at=runner.start + SCENARIO_SPACING * (index + 1))
    return await runner.run()


class _Runner:
    def __init__(
        self,
        households: Sequence[Household],
        *,
        address: BrokerAddress,
        clock: Clock,
        stop: asyncio.Event,
        commands: asyncio.Queue[ScenarioRequest] | None,
        ground_truth_path: Path | None,
        encoder: Encoder,
        until: datetime | None,
        seed: int,
        client_id: str | None,
        reconnect_interval: float,
        on_publish: Callable[[Outgoing], None] | None,
    ) -> None:
        self.households = list(households)
        self.devices: dict[str, SimDevice] = {d.uid: d for h in households for d in h.devices}
        if len(self.devices) != sum(len(h.devices) for h in households):
            raise ValueError("device uids must be unique across households")
        self.address = address
        self.clock = clock
        self.stop = stop
        self.commands = commands
        self.ground_truth_path = ground_truth_path
        self.encoder = encoder
        self.start = clock.now()
        self.timeline = Timeline(self.households, start=self.start, until=until)
        self.rng = seeded_random(seed, "scenarios")
        self.client_id = client_id
        self.reconnect_interval = reconnect_interval
        self.on_publish = on_publish
        self.summary = RunSummary(started_at=self.start)
        self._announced = False

    def request(self, request: ScenarioRequest, *, default_at: datetime) -> None:
        """Resolve a scenario request and put it on the timeline (errors are reported)."""
        try:
            injection = resolve_request(
                request,
                self.households,
                start=self.start,
                now=self.clock.now(),
                default_at=default_at,
                rng=self.rng,
            )
        except (ValueError, KeyError) as exc:
            message = f"scenario {request.name.value} not injected: {exc}"
            logger.warning(message)
            self.summary.errors.append(message)
            return
        truth = injection.truth
        logger.info(
            "scenario %s scheduled in %s (%s) at %s",
            truth.scenario.value,
            truth.household,
            truth.person,
            truth.at.isoformat(),
        )
        self.timeline.add(injection)

    async def run(self) -> RunSummary:
        while not self.stop.is_set():
            try:
                async with self._client() as client:
                    logger.info("connected to %s:%d", self.address.host, self.address.port)
                    if not self._announced:
                        await self._announce(client)
                    await self._publish_until_done(client)
                break
            except aiomqtt.MqttError as exc:
                self.summary.reconnects += 1
                logger.warning(
                    "MQTT connection lost (%s); reconnecting in %.1fs", exc, self.reconnect_interval
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.reconnect_interval)
        self.summary.ended_at = self.clock.now()
        return self.summary

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.address.host,
            self.address.port,
            username=self.address.username,
            password=self.address.password,
            identifier=self.client_id,
            tls_context=ssl.create_default_context() if self.address.tls else None,
            # Without a bound, a broker that stops acknowledging would hang the run forever.
            timeout=30,
        )

    async def _announce(self, client: aiomqtt.Client) -> None:
        """Every device says it is online (retained) and sends its first report."""
        now = self.clock.now()
        for household in self.households:
            for device in household.devices:
                await self._send(client, self.encoder.availability(device, online=True))
                self.summary.by_kind[EventKind.AVAILABILITY.value] += 1
                first = _first_report(household, device, now)
                await self._send(client, self.encoder.encode(device, first))
                self.summary.by_kind[EventKind.HEARTBEAT.value] += 1
        self._announced = True

    async def _publish_until_done(self, client: aiomqtt.Client) -> None:
        """Publish due items until the end or ``stop``; MqttError propagates (reconnect)."""
        while not self.stop.is_set():
            self._take_commands()
            item = self.timeline.peek()
            if item is None:
                # Nothing left before the end: still let simulated time reach it, so that a
                # run of a given duration lasts that long (the gateway sees the silence).
                until = self.timeline.until
                remaining = (until - self.clock.now()).total_seconds() if until else 0.0
                if remaining <= 0:
                    return
                await self._wait(remaining)
                continue
            delay = (item.at - self.clock.now()).total_seconds()
            if delay > 0:
                await self._wait(delay)
                continue
            await self._deliver(client, item)
            self.timeline.pop()

    async def _deliver(self, client: aiomqtt.Client, item: SimEvent | GroundTruth) -> None:
        if isinstance(item, GroundTruth):
            self._record(item)
            return
        event = self.timeline.apply(item)
        if event is None:
            self.summary.suppressed += 1
            return
        await self._send(client, self.encoder.encode(self.devices[event.device], event))
        self.summary.by_kind[event.kind.value] += 1

    async def _send(self, client: aiomqtt.Client, message: Outgoing) -> None:
        await client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        self.summary.published += 1
        if self.on_publish is not None:
            self.on_publish(message)

    def _record(self, truth: GroundTruth) -> None:
        logger.info(
            "scenario %s in %s (%s): expected alert %s",
            truth.scenario.value,
            truth.household,
            truth.person,
            truth.expected_alert,
        )
        self.summary.injected.append(truth)
        if self.ground_truth_path is not None:
            append_ground_truth(self.ground_truth_path, truth)
        self.timeline.forget_before(self.clock.now() - timedelta(days=2))

    def _take_commands(self) -> None:
        if self.commands is None:
            return
        while not self.commands.empty():
            self.request(self.commands.get_nowait(), default_at=self.clock.now())

    async def _wait(self, seconds: float) -> None:
        """Sleep in simulated time, waking early for ``stop`` or a command."""
        waiters: list[asyncio.Task[object]] = [
            asyncio.ensure_future(self.clock.sleep(seconds)),
            asyncio.ensure_future(self.stop.wait()),
        ]
        getter: asyncio.Task[ScenarioRequest] | None = None
        if self.commands is not None:
            getter = asyncio.ensure_future(self.commands.get())
            waiters.append(getter)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                if not waiter.done():
                    waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if getter is not None and getter.done() and not getter.cancelled():
            self.request(getter.result(), default_at=self.clock.now())


def _first_report(household: Household, device: SimDevice, now: datetime) -> SimEvent:
    return SimEvent(
        at=now,
        household=household.key,
        device=device.uid,
        kind=EventKind.HEARTBEAT,
        battery=battery_level(device, now),
        link_quality=device.link_quality if device.protocol is Protocol.ZIGBEE2MQTT else None,
        activity="announce",
    )
