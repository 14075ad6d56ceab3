"""Load mode: native motion/door events at a fixed rate, for benchmarks.

Uses paho-mqtt directly (its network thread, ``loop_start``) rather than aiomqtt: a
benchmark publisher should not be the bottleneck it measures. Each payload carries its
send time (``ts`` and ``sent_at_ns``) and a unique ``id`` so a consumer can compute
end-to-end latency and check that nothing was lost or duplicated.

paho hands out 16-bit message ids: with more than 65,535 QoS 1 messages in flight, ids are
reused and messages are lost without an error. The number in flight is therefore capped
(``max_inflight``, at most 65,535 and by default far below) by a semaphore released on
each PUBACK, and whatever was not acknowledged at the end is reported as failed. A small
window is also the fast one: paho walks its whole outgoing table on every PUBACK, so
against a local Mosquitto 200 in flight ran at ~7,800 msg/s and 10,000 at ~1,300.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from gateway.register.vocabulary import DeviceKind, Protocol
from simulator.household import Household, SimDevice, Topics
from simulator.payloads import iso_local
from simulator.runner import parse_mqtt_url

__all__ = ["MAX_PAHO_INFLIGHT", "LoadSummary", "run_load"]

logger = logging.getLogger(__name__)

#: paho's message ids are 16 bit; more QoS 1 messages than this in flight collide.
MAX_PAHO_INFLIGHT = 65_535
_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What a load run achieved. Rates are messages per wall-clock second."""

    requested: int  # messages the run was asked for (count, or rate x duration)
    sent: int  # handed to paho successfully
    acknowledged: int  # PUBACK received
    failed: int  # refused by paho, or never acknowledged
    target_rate: float
    achieved_rate: float  # sent / time spent sending
    acknowledged_rate: float  # acknowledged / time until the last PUBACK
    elapsed_s: float  # time spent sending
    max_inflight: int
    stopped_early: bool = False
    errors: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Everything requested was sent and acknowledged."""
        return self.failed == 0 and self.acknowledged == self.requested and not self.errors


@dataclass(slots=True)
class _Counters:
    acknowledged: int = 0
    send_started: float = 0.0  # perf_counter() when the first message was due
    last_ack: float = 0.0  # perf_counter() at the latest PUBACK
    connected: threading.Event = field(default_factory=threading.Event)
    connect_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_load(
    households: Sequence[Household],
    *,
    mqtt_url: str,
    rate: float,
    count: int | None = None,
    duration_s: float | None = None,
    topics: Topics | None = None,
    max_inflight: int = 200,
    stop: threading.Event | None = None,
    username: str | None = None,
    password: str | None = None,
    client_id: str | None = None,
    ack_timeout_s: float = 30.0,
) -> LoadSummary:
    """Publish ``count`` messages (or ``rate * duration_s``) at ``rate`` msg/s, QoS 1.

    Messages go round the households' hall PIRs and front doors as native ``motion`` and
    ``door`` events (alternating states per device, as a real sensor would), on the same
    topics a provisioned gateway listens to. Blocking; run it in a thread from async code.
    ``stop`` ends the run early (what was sent is still waited for and counted).
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    if (count is None) == (duration_s is None):
        raise ValueError("give exactly one of count and duration_s")
    if not 1 <= max_inflight <= MAX_PAHO_INFLIGHT:
        raise ValueError(f"max_inflight must be between 1 and {MAX_PAHO_INFLIGHT}")
    requested = count if count is not None else round(rate * (duration_s or 0))
    targets = _targets(households, topics or Topics())
    if not targets:
        raise ValueError("no households to load")
    address = parse_mqtt_url(mqtt_url, username=username, password=password)

    counters = _Counters()
    window = threading.BoundedSemaphore(max_inflight)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"homewatch-load-{uuid.uuid4().hex[:8]}",
        clean_session=True,
    )
    # paho's own window equals ours, so paho never queues beyond what we let in flight.
    client.max_inflight_messages_set(max_inflight)
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set_context(ssl.create_default_context())
    _install_callbacks(client, counters, window)

    errors: list[str] = []
    try:
        client.connect(address.host, address.port, keepalive=30)
    except OSError as exc:
        return _failed_summary(requested, rate, max_inflight, f"cannot connect: {exc}")
    client.loop_start()
    try:
        if not counters.connected.wait(_CONNECT_TIMEOUT_S) or counters.connect_error:
            reason = counters.connect_error or "no CONNACK within 10 s"
            return _failed_summary(requested, rate, max_inflight, f"cannot connect: {reason}")
        sent, refused, elapsed, ended_early = _publish_paced(
            client,
            targets,
            requested=requested,
            rate=rate,
            window=window,
            counters=counters,
            stop=stop,
            stall_s=ack_timeout_s,
        )
        if ended_early and ended_early != "stopped":
            errors.append(ended_early)
        if refused:
            errors.append(f"{refused} publishes refused by paho (its message table was full)")
        _wait_for_acks(counters, sent, ack_timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()

    with counters.lock:
        acknowledged = counters.acknowledged
        ack_span = counters.last_ack - counters.send_started
    if acknowledged < sent:
        errors.append(f"{sent - acknowledged} messages not acknowledged within {ack_timeout_s}s")
    return LoadSummary(
        requested=requested,
        sent=sent,
        acknowledged=acknowledged,
        failed=refused + (sent - acknowledged),
        target_rate=rate,
        achieved_rate=sent / elapsed if elapsed > 0 else 0.0,
        acknowledged_rate=acknowledged / ack_span if acknowledged and ack_span > 0 else 0.0,
        elapsed_s=elapsed,
        max_inflight=max_inflight,
        stopped_early=ended_early is not None,
        errors=tuple(errors),
    )


def _targets(households: Sequence[Household], topics: Topics) -> list[tuple[SimDevice, str]]:
    """(device, event topic) for every hall PIR and front door, as native devices."""
    targets = []
    for household in households:
        for device in (household.hall_motion, household.door):
            native = device if device.protocol is Protocol.NATIVE else _as_native(device)
            targets.append((native, topics.state(native)))
    return targets


def _as_native(device: SimDevice) -> SimDevice:
    return replace(device, protocol=Protocol.NATIVE)


def _install_callbacks(
    client: mqtt.Client, counters: _Counters, window: threading.BoundedSemaphore
) -> None:
    def on_connect(
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Any,
    ) -> None:
        if reason_code.is_failure:
            counters.connect_error = str(reason_code)
        counters.connected.set()

    def on_publish(
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        _reason_code: ReasonCode,
        _properties: Any,
    ) -> None:
        with counters.lock:
            counters.acknowledged += 1
            counters.last_ack = time.perf_counter()
        window.release()

    client.on_connect = on_connect
    client.on_publish = on_publish


def _publish_paced(
    client: mqtt.Client,
    targets: list[tuple[SimDevice, str]],
    *,
    requested: int,
    rate: float,
    window: threading.BoundedSemaphore,
    counters: _Counters,
    stop: threading.Event | None,
    stall_s: float,
) -> tuple[int, int, float, str | None]:
    """Publish on schedule; returns (sent, refused, seconds spent, why it ended early)."""
    run_id = uuid.uuid4().hex[:12]
    states: dict[str, bool] = {}
    sent = refused = 0
    ended_early: str | None = None
    started = counters.send_started = time.perf_counter()
    for number in range(requested):
        if stop is not None and stop.is_set():
            ended_early = "stopped"
            break
        # Message k is due at k / rate: pacing against the start, not the previous send,
        # so that a slow moment is caught up rather than lowering the rate for good.
        ahead = started + number / rate - time.perf_counter()
        if ahead > 0.001:
            time.sleep(ahead)
        ended_early = _acquire(window, stop, stall_s)
        if ended_early:
            break
        device, topic = targets[number % len(targets)]
        state = not states.get(device.uid, False)
        states[device.uid] = state
        info = client.publish(topic, _payload(device, state, f"{run_id}-{number}"), qos=1)
        # NO_CONN: paho keeps the message and sends it after reconnecting, so it counts as
        # sent and its PUBACK frees the slot. Anything else (QUEUE_SIZE: paho's id table
        # is full) was dropped on the spot.
        if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            sent += 1
        else:
            refused += 1
            window.release()
    return sent, refused, time.perf_counter() - started, ended_early


def _acquire(
    window: threading.BoundedSemaphore, stop: threading.Event | None, stall_s: float
) -> str | None:
    """Take an in-flight slot; a reason string if the run must end instead."""
    deadline = time.monotonic() + stall_s
    while not window.acquire(timeout=0.5):
        if stop is not None and stop.is_set():
            return "stopped"
        if time.monotonic() > deadline:
            return f"stalled: no PUBACK for {stall_s:.0f}s with the in-flight window full"
    return None


def _payload(device: SimDevice, state: bool, event_id: str) -> bytes:
    sent_at_ns = time.time_ns()
    now = datetime.fromtimestamp(sent_at_ns / 1e9, tz=UTC)
    body: dict[str, Any] = {"type": "motion" if device.kind is DeviceKind.MOTION else "door"}
    body["state"] = state if body["type"] == "motion" else ("open" if state else "closed")
    body["ts"] = iso_local(now)
    body["id"] = event_id
    body["battery"] = device.battery_full
    body["sent_at_ns"] = sent_at_ns
    return json.dumps(body, separators=(",", ":")).encode()


def _wait_for_acks(counters: _Counters, sent: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with counters.lock:
            if counters.acknowledged >= sent:
                return
        time.sleep(0.01)


def _failed_summary(requested: int, rate: float, max_inflight: int, error: str) -> LoadSummary:
    logger.error("load run failed: %s", error)
    return LoadSummary(
        requested=requested,
        sent=0,
        acknowledged=0,
        failed=requested,
        target_rate=rate,
        achieved_rate=0.0,
        acknowledged_rate=0.0,
        elapsed_s=0.0,
        max_inflight=max_inflight,
        errors=(error,),
    )
