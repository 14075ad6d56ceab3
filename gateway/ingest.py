"""MQTT ingest: messages in, typed events durably stored, then acknowledged, then rules.

The order is the point. aiomqtt acknowledges QoS 1 on receipt, so a crash between receipt
and commit would silently lose an SOS; we switch paho to manual acks and send each PUBACK
only after the batch holding that message has committed. Writes are batched (a commit per
message caps out near 1.4k msg/s), but an SOS or fall flushes its batch at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY, MQTTv5
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import Clock
from gateway.config import Settings
from gateway.devices import DeviceSpec, is_ignorable, parse
from gateway.events import EventKind, PayloadError, SensorEvent
from gateway.metrics import Metrics
from gateway.mqtt_lanes import LaneLedger
from gateway.ratelimit import DeviceRateLimiter
from gateway.registry import DeviceRegistry, Route
from gateway.rules.sensors import is_sign_of_life
from gateway.storage.db import Database
from gateway.storage.models import DeviceState, Event, Person, RejectedMessage, UnknownDevice
from gateway.tls import mqtt_tls_context

__all__ = ["ActivityJudge", "MqttIngest", "RoutedEvent", "StoreBatch", "Stored"]

log = logging.getLogger(__name__)

#: Largest payload kept for inspection (rejected and unknown-device rows).
_KEEP_PAYLOAD_BYTES = 4096
#: The broker may push this many unacknowledged QoS 1 messages at once (MQTT 5 Receive
#: Maximum). Mosquitto uses 20 for MQTT 3.1.1 clients, which would starve batching.
RECEIVE_MAXIMUM = 2000
#: A persistent session outlives a gateway restart or an upgrade by this long.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
_LOG_EVERY_SECONDS = 60.0
#: Payload ids up to this length are kept verbatim in the 100-character dedup key.
_MAX_PLAIN_ID = 90
_DEVICE_STATE = cast(Table, DeviceState.__table__)
_PERSONS = cast(Table, Person.__table__)
_EVENTS = cast(Table, Event.__table__)


@dataclass(frozen=True, slots=True)
class RoutedEvent:
    """A stored event with the register context the rules need."""

    event: SensorEvent
    device_id: int
    person_id: int


#: Does this stored report count as a sign of life? (event, did a door change position)
ActivityJudge = Callable[[RoutedEvent, bool], bool]


@dataclass(slots=True)
class _Accepted:
    route: Route
    events: list[SensorEvent]
    dedup_base: str


@dataclass(slots=True)
class _Rejected:
    topic: str
    device_uid: str | None
    error: PayloadError
    payload: bytes
    received_at: datetime


@dataclass(slots=True)
class _Unknown:
    topic: str
    payload: bytes
    received_at: datetime


@dataclass(slots=True)
class StoreBatch:
    """What one commit writes; built by :meth:`MqttIngest.classify`."""

    accepted: list[_Accepted] = field(default_factory=list)
    rejected: list[_Rejected] = field(default_factory=list)
    unknown: list[_Unknown] = field(default_factory=list)
    urgent: bool = False

    def __len__(self) -> int:
        return len(self.accepted) + len(self.rejected) + len(self.unknown)


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of one commit."""

    new_events: list[RoutedEvent]
    duplicates: int


def dedup_base(payload_id: str | None) -> str:
    """The per-message part of an event's dedup key.

    A payload ``id`` makes repeats and QoS 1 redeliveries no-ops. Without one, identical
    payloads are legitimately repeated by real sensors, so the key is unique per receipt:
    such a message redelivered after a crash between commit and ack is stored twice, which
    is harmless (a motion twice; a second SOS press joins the open alert).
    """
    if payload_id is None:
        return "r:" + uuid.uuid4().hex
    if len(payload_id) <= _MAX_PLAIN_ID:
        return "i:" + payload_id
    # The key column is 100 characters; a long id is hashed, never cut (two ids sharing a
    # prefix must stay two events).
    return "h:" + hashlib.blake2b(payload_id.encode(), digest_size=20).hexdigest()


class EventStore:
    """Writes a batch in one transaction; dialect-aware upserts for SQLite and PostgreSQL."""

    def __init__(
        self, db: Database, *, rejected_keep: int, activity_judge: ActivityJudge | None = None
    ) -> None:
        self.db = db
        self.rejected_keep = rejected_keep
        self._activity_judge = activity_judge
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        self._commits = 0

    async def store(self, batch: StoreBatch) -> Stored:
        async with self.db.session() as session, session.begin():
            stored = await self._store_events(session, batch.accepted)
            await self._store_rejected(session, batch.rejected)
            await self._store_unknown(session, batch.unknown)
        self._commits += 1
        if batch.rejected and self._commits % 100 == 0:
            await self.trim_rejected()
        return stored

    async def _store_events(self, session: AsyncSession, accepted: list[_Accepted]) -> Stored:
        rows: list[dict[str, Any]] = []
        context: dict[tuple[str, str], RoutedEvent] = {}
        repeated_in_batch = 0
        for item in accepted:
            for index, ev in enumerate(item.events):
                key = f"{item.dedup_base}#{index}"
                if (ev.device_uid, key) in context:
                    repeated_in_batch += 1
                    continue
                context[(ev.device_uid, key)] = RoutedEvent(
                    ev, item.route.device_id, item.route.person_id
                )
                rows.append(
                    {
                        "device_uid": ev.device_uid,
                        "person_id": item.route.person_id,
                        "kind": ev.kind.value,
                        "state": ev.state,
                        "occurred_at": ev.occurred_at,
                        "received_at": ev.received_at,
                        "event_id": ev.event_id,
                        "dedup_key": key,
                        "battery": ev.battery,
                        "link_quality": ev.link_quality,
                        "retained": ev.retained,
                        "timestamp_fallback": ev.timestamp_fallback,
                    }
                )
        if not rows:
            return Stored([], repeated_in_batch)
        # Core on the table, not the ORM entity: the ORM's bulk path costs per row.
        statement = (
            self._insert(_EVENTS)
            .on_conflict_do_nothing(index_elements=["device_uid", "dedup_key"])
            .returning(_EVENTS.c.device_uid, _EVENTS.c.dedup_key)
        )
        inserted = (await session.execute(statement, rows)).all()
        new = [context[(uid, key)] for uid, key in inserted]
        new.sort(key=lambda r: r.event.received_at)
        await self._update_state(session, new)
        return Stored(new, len(rows) - len(new) + repeated_in_batch)

    async def _previous_sensor_state(
        self, session: AsyncSession, new: list[RoutedEvent]
    ) -> dict[int, tuple[bool | None, datetime | None]]:
        """Door position and motion-run start before this batch, for devices that report them."""
        wanted = {r.device_id for r in new if r.event.kind in (EventKind.DOOR, EventKind.MOTION)}
        if not wanted:
            return {}
        rows = await session.execute(
            select(
                _DEVICE_STATE.c.device_id, _DEVICE_STATE.c.door_open, _DEVICE_STATE.c.motion_since
            ).where(_DEVICE_STATE.c.device_id.in_(wanted))
        )
        return {device_id: (door, since) for device_id, door, since in rows}

    async def _update_state(self, session: AsyncSession, new: list[RoutedEvent]) -> None:
        previous = await self._previous_sensor_state(session, new)
        seen: dict[int, dict[str, Any]] = {}
        activity: dict[int, datetime] = {}
        for routed in new:
            ev = routed.event
            state = seen.setdefault(routed.device_id, {"device_id": routed.device_id})
            if ev.retained and ev.kind is not EventKind.AVAILABILITY:
                # A retained message was published long ago: current state, not a sign of life.
                continue
            state["last_seen_at"] = max(ev.received_at, state.get("last_seen_at", ev.received_at))
            if ev.kind is EventKind.AVAILABILITY:
                state["online"] = bool(ev.state)
            else:
                state["online"] = True
            if ev.battery is not None:
                state["battery"] = ev.battery
            if ev.link_quality is not None:
                state["link_quality"] = ev.link_quality
            door_before, motion_since = previous.get(routed.device_id, (None, None))
            door_changed = False
            if ev.kind is EventKind.DOOR and ev.state is not None:
                # Zigbee2MQTT repeats `contact` in every battery and link report: only a
                # change of position is somebody using the door.
                door_changed = ev.state != state.get("door_open", door_before)
                if door_changed:
                    state["door_open"] = ev.state
                    state["door_changed_at"] = min(ev.occurred_at, ev.received_at)
            if ev.kind is EventKind.MOTION and ev.state is not None:
                since = state.get("motion_since", motion_since)
                state["motion_since"] = (since or ev.received_at) if ev.state else None
            if self._counts_as_activity(routed, door_changed):
                # A device clock running fast must not push "last seen alive" into the future
                # and so silence the inactivity rule.
                at = min(ev.occurred_at, ev.received_at)
                previous_at = activity.get(routed.person_id)
                if previous_at is None or at > previous_at:
                    activity[routed.person_id] = at
        # Group by key set: executemany needs identical parameter shapes.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for params in seen.values():
            if "last_seen_at" not in params and "online" not in params:
                continue
            groups.setdefault(tuple(sorted(params)), []).append(params)
        for keys, params_list in groups.items():
            values: dict[str, Any] = {k: bindparam(f"p_{k}") for k in keys if k != "device_id"}
            # Core (not ORM) executemany: one UPDATE statement for the whole batch.
            statement = (
                update(_DEVICE_STATE)
                .where(_DEVICE_STATE.c.device_id == bindparam("p_device_id"))
                .values(**values)
            )
            await session.execute(
                statement, [{f"p_{k}": v for k, v in p.items()} for p in params_list]
            )
        if activity:
            persons = _PERSONS
            statement = (
                update(persons)
                .where(
                    and_(
                        persons.c.id == bindparam("p_id"),
                        or_(
                            persons.c.last_activity_at.is_(None),
                            persons.c.last_activity_at < bindparam("p_at"),
                        ),
                    )
                )
                .values(last_activity_at=bindparam("p_at"))
            )
            await session.execute(
                statement, [{"p_id": pid, "p_at": at} for pid, at in activity.items()]
            )

    def _counts_as_activity(self, routed: RoutedEvent, door_changed: bool) -> bool:
        if self._activity_judge is not None:
            return self._activity_judge(routed, door_changed)
        return is_sign_of_life(routed.event, door_changed=door_changed)

    async def _store_rejected(self, session: AsyncSession, rejected: list[_Rejected]) -> None:
        if not rejected or self.rejected_keep == 0:
            return
        await session.execute(
            insert(RejectedMessage),
            [
                {
                    "topic": r.topic[:255],
                    "device_uid": r.device_uid,
                    "reason": r.error.reason,
                    "detail": r.error.detail[:1000],
                    "payload": r.payload[:_KEEP_PAYLOAD_BYTES],
                    "payload_size": len(r.payload),
                    "received_at": r.received_at,
                }
                for r in rejected
            ],
        )

    async def _store_unknown(self, session: AsyncSession, unknown: list[_Unknown]) -> None:
        merged: dict[str, dict[str, Any]] = {}
        for u in unknown:
            row = merged.get(u.topic)
            if row is None:
                merged[u.topic] = {
                    "topic": u.topic[:255],
                    "first_seen_at": u.received_at,
                    "last_seen_at": u.received_at,
                    "message_count": 1,
                    "last_payload": u.payload[:_KEEP_PAYLOAD_BYTES],
                }
            else:
                row["last_seen_at"] = u.received_at
                row["message_count"] += 1
                row["last_payload"] = u.payload[:_KEEP_PAYLOAD_BYTES]
        for row in merged.values():
            statement = self._insert(UnknownDevice).values(**row)
            statement = statement.on_conflict_do_update(
                index_elements=["topic"],
                set_={
                    "last_seen_at": statement.excluded.last_seen_at,
                    "last_payload": statement.excluded.last_payload,
                    "message_count": UnknownDevice.message_count + statement.excluded.message_count,
                },
            )
            await session.execute(statement)

    async def trim_rejected(self) -> None:
        """Keep the newest ``rejected_keep`` rejected payloads; older ones are dropped."""
        async with self.db.session() as session, session.begin():
            threshold = (
                await session.execute(
                    select(RejectedMessage.id)
                    .order_by(RejectedMessage.id.desc())
                    .offset(self.rejected_keep)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if threshold is not None:
                await session.execute(
                    delete(RejectedMessage).where(RejectedMessage.id <= threshold)
                )


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


#: A received PUBLISH: topic, payload, retain, QoS, packet id.
_Received = tuple[str, bytes, bool, int, int]


class _Inbox:
    """Messages read off the socket, waiting for the batch loop (filled on the event loop)."""

    def __init__(self) -> None:
        self.messages: deque[_Received] = deque()
        self.ready = asyncio.Event()
        self.stopping = False

    def on_message(self, _client: object, _userdata: object, message: Any) -> None:
        """paho's callback, for the PUBLISH packets the fast path leaves to paho."""
        payload = message.payload
        self.messages.append(
            (message.topic, bytes(payload), bool(message.retain), message.qos, message.mid)
        )
        if not self.ready.is_set():
            self.ready.set()

    async def wait(self, within: float | None = None) -> bool:
        """Wait until a message (or a stop, or a disconnection) is in; False on timeout."""
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), within)
            except TimeoutError:
                return False
        self.ready.clear()
        return True


def _decode_publishes_directly(paho: Any, inbox: _Inbox) -> None:
    """Decode QoS 0/1 PUBLISH packets without properties straight into the inbox.

    paho builds an ``MQTTMessage`` per PUBLISH, with a ``threading.Condition``, an MQTT 5
    ``Properties`` object and a debug log line: that was most of a drain's time once the
    storage was batched. Our sessions never enable topic aliases, and the broker sends
    properties only when a publisher set some; anything unusual (QoS 2, any property) goes
    through paho's own handler and reaches ``on_message`` as before. Acknowledgement stays
    paho's ``ack()`` after commit (manual acks).
    """
    original = paho._handle_publish  # noqa: SLF001
    v5 = paho._protocol == MQTTv5  # noqa: SLF001
    messages = inbox.messages
    ready = inbox.ready

    def handle_publish() -> MQTTErrorCode:
        packet = paho._in_packet  # noqa: SLF001
        header: int = packet["command"]
        data: bytearray = packet["packet"]
        qos = (header & 0x06) >> 1
        if qos > 1:
            return cast(MQTTErrorCode, original())
        end = 2 + int.from_bytes(data[0:2], "big")
        topic = data[2:end]
        mid = 0
        if qos:
            mid = int.from_bytes(data[end : end + 2], "big")
            end += 2
        if v5:
            if end >= len(data) or data[end] != 0:  # properties present
                return cast(MQTTErrorCode, original())
            end += 1
        try:
            text = topic.decode("utf-8")
        except UnicodeDecodeError:
            return cast(MQTTErrorCode, original())
        messages.append((text, bytes(data[end:]), bool(header & 0x01), qos, mid))
        if not ready.is_set():
            ready.set()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho._handle_publish = handle_publish  # noqa: SLF001


#: Packets read per wake-up before other tasks get a turn.
_BURST_PACKETS = 2000


def _read_in_bursts(paho: Any, disconnected: asyncio.Future[None]) -> None:
    """Read every packet the socket holds per wake-up, not one (aiomqtt's reader): a loop
    iteration per message was the largest single cost of a backlog drain."""
    loop = asyncio.get_running_loop()
    sock = paho.socket()
    if sock is None:
        return

    def burst() -> None:
        try:
            for _ in range(_BURST_PACKETS):
                if paho._sock is None:  # noqa: SLF001
                    return
                rc = paho._packet_read()  # noqa: SLF001
                if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                    return
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    paho._loop_rc_handle(rc)  # noqa: SLF001 - as loop_read(): disconnect
                    return
            loop.call_soon(burst)  # more may be waiting; let the batch loop run first
        except Exception as exc:  # noqa: BLE001 - a broken connection, as aiomqtt's reader
            if not disconnected.done():
                disconnected.set_exception(aiomqtt.MqttError(str(exc)))

    loop.remove_reader(sock.fileno())
    loop.add_reader(sock.fileno(), burst)


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
        self._inbox = _Inbox()
        self._log = _RateLimitedLog()
        self.rate_limiter = DeviceRateLimiter(
            settings.device_rate_limit, settings.device_rate_burst
        )
        self._subscribed: set[str] = set()
        self.status_topic = f"{settings.mqtt_topic_prefix}/gateway/{self.client_id}/status"
        #: MQTT 5 by default (session expiry, receive maximum, shared subscriptions). 3.1.1 is
        #: for brokers that speak nothing newer, such as the demo's embedded amqtt; its
        #: ``clean_session=False`` still keeps the session (and unacknowledged messages).
        self.protocol = aiomqtt.ProtocolVersion.V5

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
                batch.unknown.append(_Unknown(topic, payload, received_at))
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
            batch.rejected.append(_Rejected(topic, route.spec.uid, error, payload, received_at))
            return
        if not events:
            return
        if not self._within_rate(route.spec.uid, received_at, events):
            limited = PayloadError("rate_limited", "device exceeds its message rate")
            batch.rejected.append(_Rejected(topic, route.spec.uid, limited, payload, received_at))
            return
        payload_id = next((e.event_id for e in events if e.event_id), None)
        batch.accepted.append(_Accepted(route, events, dedup_base(payload_id)))
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
        self._inbox = _Inbox()
        client._client.on_message = self._inbox.on_message  # noqa: SLF001
        _decode_publishes_directly(client._client, self._inbox)  # noqa: SLF001
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
            granted = await client.subscribe([(f, 1) for f in missing])
            refused = [f for f, code in zip(missing, granted, strict=False) if _refused(code)]
            if refused:
                # Connected but deaf to these devices: never report healthy; reconnect and
                # try again (an ACL fixed on the broker heals it).
                log.error("broker refused %d subscription(s), e.g. %s", len(refused), refused[0])
                raise aiomqtt.MqttError(f"broker refused subscription to {refused[0]!r}")
            self._subscribed |= set(missing)
            log.info("%s subscribed to %d filters", self.client_id, len(missing))

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, consume and reconnect (capped exponential backoff) until ``stop`` is set."""
        await self.registry.load(self.db)
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
        _read_in_bursts(paho, disconnected)

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
                    await self.registry.load(self.db)
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
        self, paho: Any, inbox: _Inbox, disconnected: asyncio.Future[None]
    ) -> None:
        window = self.settings.ingest_batch_window.total_seconds()
        limit = self.settings.ingest_batch_size
        messages = inbox.messages
        while True:
            if not messages:
                await inbox.wait()
            if disconnected.done():
                disconnected.result()  # re-raise the connection error
                raise aiomqtt.MqttError("message stream ended")
            if not messages:
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
                if batch.urgent or taken >= limit or inbox.stopping or disconnected.done():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await inbox.wait(remaining):
                    break
                received_at = self.clock.now()
            if disconnected.done():
                continue  # unacknowledged: the broker redelivers them on reconnection
            stored = await self._flush_with_retry(batch)
            for mid, qos in mids:
                paho.ack(mid, qos)
            if stored.new_events and self.on_events is not None:
                try:
                    await self.on_events(stored.new_events)
                except Exception:
                    # The events are stored; rules re-evaluate from the database on tick.
                    log.exception("rules failed on a stored batch")
            if inbox.stopping:
                return

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
