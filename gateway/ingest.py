"""MQTT ingest: messages in, typed events durably stored, then acknowledged, then rules.

The order is the point. aiomqtt acknowledges QoS 1 on receipt, so a crash between receipt
and commit would silently lose an SOS; we switch paho to manual acks and send each PUBACK
only after the batch holding that message has committed. Writes are batched (a commit per
message caps out near 1.4k msg/s), but an SOS or fall flushes its batch at once.

Per-message costs are kept out of the way (issue #15): packets go from the socket straight
into an inbox (gateway.mqtt_inbox), the next batch is classified while the previous one
commits (gateway.mqtt_store), and SOS and fall devices have a session of their own so
that they never queue behind routine traffic (gateway.mqtt_lanes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.clock import Clock
from gateway.config import Settings
from gateway.devices import DeviceSpec, is_ignorable, parse
from gateway.events import PayloadError, SensorEvent
from gateway.metrics import Metrics
from gateway.mqtt_inbox import Inbox, decode_publishes_directly, read_in_bursts
from gateway.mqtt_lanes import LaneLedger
from gateway.mqtt_store import (
    Accepted,
    ActivityJudge,
    EventStore,
    Rejected,
    RoutedEvent,
    StoreBatch,
    Stored,
    Unknown,
    dedup_base,
)
from gateway.ratelimit import DeviceRateLimiter
from gateway.registry import DeviceRegistry
from gateway.storage.db import Database
from gateway.tls import mqtt_tls_context

# The store's types are re-exported: the rules, replay and tests know them from here.
__all__ = ["ActivityJudge", "MqttIngest", "RoutedEvent", "StoreBatch", "Stored", "dedup_base"]

log = logging.getLogger(__name__)

#: Messages classified between turns for the other tasks (the emergency lane).
_YIELD_EVERY = 100

#: The broker may push this many unacknowledged QoS 1 messages at once (MQTT 5 Receive
#: Maximum). Mosquitto uses 20 for MQTT 3.1.1 clients, which would starve batching.
RECEIVE_MAXIMUM = 2000
#: A persistent session outlives a gateway restart or an upgrade by this long.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
_LOG_EVERY_SECONDS = 60.0
#: Filters per SUBSCRIBE packet.
_SUBSCRIBE_BATCH = 2000


EventsHandler = Callable[[Sequence[RoutedEvent]], Awaitable[None]]


def _refused(code: object) -> bool:
    """A SUBACK failure: MQTT 5 reason code, or MQTT 3.1.1 granted QoS, of 0x80 or more."""
    value = getattr(code, "value", code)
    return isinstance(value, int) and value >= 0x80


class _RateLimitedLog:
    """Log a bad payload once per device (or topic) per minute, not once per message."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def warn(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -_LOG_EVERY_SECONDS) >= _LOG_EVERY_SECONDS:
            self._last[key] = now
            log.warning(message, *args)


@dataclass(slots=True)
class _Commit:
    """A batch being written, and the packet ids to acknowledge once it has committed."""

    task: asyncio.Task[Stored]
    mids: list[tuple[int, int]]


class MqttIngest:
    """Owns the broker connection: subscribe, batch, store, acknowledge, hand to rules."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        registry: DeviceRegistry,
        clock: Clock,
        metrics: Metrics,
        *,
        on_events: EventsHandler | None = None,
        activity_judge: ActivityJudge | None = None,
        registry_refresh: float = 15.0,
        client_id: str | None = None,
        owns: Callable[[DeviceSpec], bool] | None = None,
        exact_topics: bool = False,
        ledger: LaneLedger | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.clock = clock
        self.metrics = metrics
        self.on_events = on_events
        self.store = EventStore(
            db, rejected_keep=settings.rejected_keep, activity_judge=activity_judge
        )
        self.registry_refresh = registry_refresh
        #: The MQTT session this ingest holds; several ingests (lanes, partitions) each hold
        #: their own client id and subscribe only to the devices ``owns`` accepts.
        self.client_id = client_id or settings.mqtt_client_id
        self.owns = owns
        #: Subscribe to the owned devices' own topics only, no family wildcards (the
        #: emergency lane: it must not receive routine traffic).
        self.exact_topics = exact_topics
        #: Shared with another session whose subscriptions overlap this one's: a message
        #: both receive is stored once (see gateway.mqtt_lanes).
        self.ledger = ledger
        self.connected = False
        #: For /healthz: ``disconnected``, ``subscribing`` (connected, SUBACK not yet in, or
        #: refused) or ``connected`` (subscribed: able to receive).
        self.mqtt_state = "disconnected"
        self._client: aiomqtt.Client | None = None
        self._inbox = Inbox()
        self._log = _RateLimitedLog()
        self.rate_limiter = DeviceRateLimiter(
            settings.device_rate_limit, settings.device_rate_burst
        )
        self._subscribed: set[str] = set()
        self.status_topic = f"{settings.mqtt_topic_prefix}/gateway/{self.client_id}/status"
        #: ``settings.mqtt_protocol``; on 3.1.1, ``clean_session=False`` still keeps the session
        #: (and unacknowledged messages).
        self.protocol = (
            aiomqtt.ProtocolVersion.V311
            if settings.mqtt_protocol == "3.1.1"
            else aiomqtt.ProtocolVersion.V5
        )

    # -- classification (pure apart from the registry lookup) --------------------------

    def classify(self, batch: StoreBatch, message: aiomqtt.Message, received_at: datetime) -> None:
        """Turn one MQTT message into accepted events, a rejection, or an unknown device."""
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload).encode()
        self._classify(batch, message.topic.value, bytes(payload), message.retain, received_at)

    def _classify(
        self, batch: StoreBatch, topic: str, payload: bytes, retain: bool, received_at: datetime
    ) -> None:
        route = self.registry.lookup(topic)
        if route is None:
            if not is_ignorable(topic):
                batch.unknown.append(Unknown(topic, payload, received_at))
            return
        if (
            self.ledger is not None
            and self.ledger.covers(route.spec)
            and not self.ledger.first_sight(self.client_id, topic, payload, retain)
        ):
            return  # the other session has this very message and stores it
        try:
            events = parse(
                route.spec, route.role, payload, retained=retain, received_at=received_at
            )
        except Exception as unexpected:
            if isinstance(unexpected, PayloadError):
                error = unexpected
            else:
                # An adapter bug must cost one message (kept for inspection), not the gateway.
                log.exception("adapter for %s failed on %s", route.spec.uid, topic)
                error = PayloadError("adapter_error", repr(unexpected)[:300])
            self._log.warn(
                route.spec.uid,
                "rejected payload from %s on %s: %s",
                route.spec.uid,
                topic,
                error,
            )
            batch.rejected.append(Rejected(topic, route.spec.uid, error, payload, received_at))
            return
        if not events:
            return
        if not self._within_rate(route.spec.uid, received_at, events):
            limited = PayloadError("rate_limited", "device exceeds its message rate")
            batch.rejected.append(Rejected(topic, route.spec.uid, limited, payload, received_at))
            return
        payload_id = next((e.event_id for e in events if e.event_id), None)
        batch.accepted.append(Accepted(route, events, dedup_base(payload_id)))
        if any(e.kind.is_emergency and not e.retained for e in events):
            batch.urgent = True

    def _within_rate(self, uid: str, received_at: datetime, events: list[SensorEvent]) -> bool:
        """The device's token bucket; an SOS or fall is never held back by it."""
        if self.rate_limiter.allow(uid, received_at):
            return True
        if any(e.kind.is_emergency and not e.retained for e in events):
            return True
        self._log.warn(uid, "device %s exceeds its message rate; surplus kept as rejected", uid)
        return False

    async def flush(self, batch: StoreBatch) -> Stored:
        """Store a batch and count it; the caller acknowledges afterwards."""
        started = time.perf_counter()
        stored = await self.store.store(batch)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.events.labels(result="accepted").inc(len(stored.new_events))
        if stored.duplicates:
            self.metrics.events.labels(result="duplicate").inc(stored.duplicates)
        for r in batch.rejected:
            self.metrics.events.labels(result="rejected").inc()
            self.metrics.rejected.labels(reason=r.error.reason).inc()
        if batch.unknown:
            self.metrics.events.labels(result="unknown_device").inc(len(batch.unknown))
        return stored

    # -- the connection ----------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        settings = self.settings
        v5 = self.protocol is aiomqtt.ProtocolVersion.V5
        connect_properties: Properties | None = None
        if v5:
            connect_properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect_properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
            connect_properties.ReceiveMaximum = RECEIVE_MAXIMUM
        tls_context = mqtt_tls_context(settings)
        client = aiomqtt.Client(
            settings.mqtt_host,
            settings.mqtt_port,
            identifier=self.client_id,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            protocol=self.protocol,
            clean_session=None if v5 else False,
            # paho refuses clean_start on 3.1.1 unless it is left at its default.
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect_properties,
            will=aiomqtt.Will(self.status_topic, "offline", qos=1, retain=True),
            tls_context=tls_context,
            keepalive=30,
            max_queued_incoming_messages=0,
        )
        # Must happen before connecting: the broker replays the persistent session at once.
        # aiomqtt exposes no switch for this, so we reach its paho client (pinned <3).
        client._client.manual_ack_set(True)  # noqa: SLF001
        # Messages go straight from paho's parser into our inbox: aiomqtt's own path (a
        # Message object, a queue item and a task wake-up per message) cost more than
        # storing them (issue #15).
        self._inbox = Inbox()
        client._client.on_message = self._inbox.on_message  # noqa: SLF001
        decode_publishes_directly(client._client, self._inbox)  # noqa: SLF001
        return client

    def _filters(self) -> set[str]:
        if self.exact_topics and self.owns is not None:
            filters = set(self.registry.topics(self.owns))
        else:
            filters = set(self.registry.filters(self.owns))
        group = self.settings.mqtt_share_group
        if group:
            return {f"$share/{group}/{f}" for f in filters}
        return filters

    async def _subscribe_new(self, client: aiomqtt.Client) -> None:
        wanted = self._filters()
        missing = sorted(wanted - self._subscribed)
        if missing:
            refused: list[str] = []
            # A partition's tens of thousands of filters in one SUBSCRIBE can outlast
            # aiomqtt's 10 s wait for the SUBACK on a busy machine: send them in batches.
            # Only the refusals are kept: paho decodes each granted code into an object of
            # ~1.7 KB, which for a county's 60,000 SOS topics held ~100 MB for good.
            for start in range(0, len(missing), _SUBSCRIBE_BATCH):
                batch = missing[start : start + _SUBSCRIBE_BATCH]
                granted = await client.subscribe([(f, 1) for f in batch])
                refused += [f for f, code in zip(batch, granted, strict=False) if _refused(code)]
                del granted
            if refused:
                # Connected but deaf to these devices: never report healthy; reconnect and
                # try again (an ACL fixed on the broker heals it).
                log.error("broker refused %d subscription(s), e.g. %s", len(refused), refused[0])
                raise aiomqtt.MqttError(f"broker refused subscription to {refused[0]!r}")
            self._subscribed |= set(missing)
            log.info("%s subscribed to %d filters", self.client_id, len(missing))

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, consume and reconnect (capped exponential backoff) until ``stop`` is set."""
        await self.registry.load(self.db, fresh_for=self.registry_refresh / 2)
        backoff = 1.0
        while not stop.is_set():
            client = self._make_client()
            try:
                async with client:
                    self._client = client
                    self._subscribed = set()
                    self.mqtt_state = "subscribing"
                    await self._subscribe_new(client)
                    await client.publish(self.status_topic, "online", qos=1, retain=True)
                    self._set_connected(True)
                    backoff = 1.0
                    await self._consume(client, stop)
                    await client.publish(self.status_topic, "offline", qos=1, retain=True)
            except aiomqtt.MqttError as error:
                if self.connected:
                    log.warning("broker connection lost: %s; retrying in %.0fs", error, backoff)
                else:  # never got as far as connected: nothing was lost
                    log.warning(
                        "cannot connect to the broker at %s:%s: %s; retrying in %.0fs",
                        self.settings.mqtt_host,
                        self.settings.mqtt_port,
                        error,
                        backoff,
                    )
            except Exception:
                # Unacknowledged messages are redelivered on the next connection: reconnecting
                # is always safe, stopping ingest never is.
                log.exception("ingest failed; reconnecting in %.0fs", backoff)
            finally:
                self._client = None
                self._set_connected(False)
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, 60.0)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.mqtt_state = "connected" if connected else "disconnected"
        self.metrics.mqtt_connected.set(1 if connected else 0)

    async def _consume(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        inbox = self._inbox
        paho = client._client  # noqa: SLF001 - manual acks and reads, see _make_client
        # Completed (with aiomqtt's MqttError) when the connection drops.
        disconnected: asyncio.Future[None] = client._disconnected  # noqa: SLF001
        disconnected.add_done_callback(lambda _: inbox.ready.set())
        read_in_bursts(paho, disconnected)

        async def stopper() -> None:
            await stop.wait()
            inbox.stopping = True
            inbox.ready.set()

        async def refresher() -> None:
            while True:
                await asyncio.sleep(self.registry_refresh)
                try:
                    # The register may be shared with another session that reloaded it
                    # first: compare subscriptions, not whether this load changed anything.
                    await self.registry.load(self.db, fresh_for=self.registry_refresh / 2)
                    await self._subscribe_new(client)
                except aiomqtt.MqttError:
                    raise
                except Exception:
                    log.exception("could not refresh the device register")

        tasks = [
            asyncio.create_task(stopper(), name="mqtt-stopper"),
            asyncio.create_task(refresher(), name="registry-refresh"),
        ]
        try:
            await self._batch_loop(paho, inbox, disconnected)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _batch_loop(
        self, paho: Any, inbox: Inbox, disconnected: asyncio.Future[None]
    ) -> None:
        """Collect, classify and commit batches; one commit in flight at a time.

        While batch N commits, batch N+1 is read and classified (the database works in
        another process or thread meanwhile). Commits, acknowledgements and the hand-over
        to the rules stay in batch order: batch N+1 is written only after N committed, and
        N is acknowledged and handed over as soon as its commit is in, not when N+1 is full.
        """
        window = self.settings.ingest_batch_window.total_seconds()
        limit = self.settings.ingest_batch_size
        messages = inbox.messages
        pending: _Commit | None = None
        try:
            while True:
                if not messages and pending is None:
                    await inbox.wait()
                if disconnected.done():
                    if pending is not None:
                        await self._finish(paho, pending)
                        pending = None
                    disconnected.result()  # re-raise the connection error
                    raise aiomqtt.MqttError("message stream ended")
                if not messages:
                    if pending is not None:
                        await self._finish(paho, pending)
                        pending = None
                        continue
                    if inbox.stopping:
                        return
                    continue
                batch = StoreBatch()
                mids: list[tuple[int, int]] = []
                taken = 0
                received_at = self.clock.now()
                deadline = time.monotonic() + window
                while True:
                    while messages and taken < limit and not batch.urgent:
                        topic, payload, retain, qos, mid = messages.popleft()
                        taken += 1
                        self._classify(batch, topic, payload, retain, received_at)
                        if qos > 0:
                            mids.append((mid, qos))
                        if taken % _YIELD_EVERY == 0:
                            # One event loop serves both lanes: a routine batch must not
                            # hold an SOS on the other session for its whole length.
                            await asyncio.sleep(0)
                    if batch.urgent or taken >= limit or inbox.stopping or disconnected.done():
                        break
                    if pending is not None and pending.task.done():
                        await self._finish(paho, pending)
                        pending = None
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not await inbox.wait(remaining):
                        break
                    received_at = self.clock.now()
                if pending is not None:
                    await self._finish(paho, pending)
                    pending = None
                if disconnected.done():
                    continue  # unacknowledged: the broker redelivers them on reconnection
                pending = _Commit(asyncio.create_task(self._flush_with_retry(batch)), mids)
                # Wakes the collection above when the commit is in.
                pending.task.add_done_callback(lambda _: inbox.ready.set())
                if inbox.stopping:
                    await self._finish(paho, pending)
                    pending = None
                    return
        finally:
            if pending is not None and not pending.task.done():
                # Rolled back and unacknowledged: redelivered on the next connection.
                pending.task.cancel()

    async def _finish(self, paho: Any, commit: _Commit) -> None:
        """Acknowledge a committed batch, then hand its new events to the rules."""
        stored = await commit.task
        for mid, qos in commit.mids:
            paho.ack(mid, qos)
        if stored.new_events and self.on_events is not None:
            try:
                await self.on_events(stored.new_events)
            except Exception:
                # The events are stored; rules re-evaluate from the database on tick.
                log.exception("rules failed on a stored batch")

    async def _flush_with_retry(self, batch: StoreBatch) -> Stored:
        """A database hiccup must not drop the batch: retry; unacked messages stay queued."""
        delay = 0.5
        while True:
            try:
                return await self.flush(batch)
            except Exception:
                log.exception("could not store a batch of %d messages; retrying", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
