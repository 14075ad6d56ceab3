"""Turning simulated events into the MQTT messages real devices send (SPEC §3).

Native devices publish ``{"type", "state", "ts", "id", "battery"}`` JSON on
``<prefix>/<uid>/event`` and a retained ``online``/``offline`` on ``<prefix>/<uid>/status``.
zigbee2mqtt publishes the device's *whole cached state* on ``<base>/<uid>`` every time
anything changes (its default ``cache_state: true``), so the encoder keeps that cache;
availability is a retained ``{"state": "online"}`` on ``<base>/<uid>/availability``.
Momentary values (``action``, a fall alarm) are sent once and never cached.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.events import EventKind
from gateway.register.vocabulary import DeviceKind, Protocol
from simulator.household import SimDevice, Topics
from simulator.routine import TOWN_TZ, SimEvent

__all__ = [
    "Encoder",
    "Outgoing",
    "iso_local",
    "native_payload",
    "zigbee_voltage",
]

QOS = 1
# SNZB-04 and friends raise their IAS "battery low" bit around here.
_BATTERY_LOW_FLAG = 15


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message to publish."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = QOS


def iso_local(at: datetime) -> str:
    """``at`` in the town's time, ISO 8601 with its offset (``…T07:02:03.120+08:00``).

    Devices in the village stamp local time; the offset keeps it unambiguous.
    """
    return at.astimezone(TOWN_TZ).isoformat(timespec="milliseconds")


def native_payload(event: SimEvent, *, event_id: str) -> bytes:
    """The native JSON for ``event`` (not for availability, which is plain text)."""
    body: dict[str, Any] = {"type": _NATIVE_TYPES[event.kind]}
    if event.kind is EventKind.DOOR:
        body["state"] = "open" if event.state else "closed"
    elif event.kind is EventKind.MOTION:
        body["state"] = bool(event.state)
    body["ts"] = iso_local(event.at)
    body["id"] = event_id
    if event.battery is not None:
        body["battery"] = event.battery
    return _json(body)


_NATIVE_TYPES: dict[EventKind, str] = {
    EventKind.SOS: "sos",
    EventKind.FALL: "fall",
    EventKind.MOTION: "motion",
    EventKind.DOOR: "door",
    EventKind.CHECK_IN: "check_in",
    EventKind.HEARTBEAT: "heartbeat",
    # A battery report from a native device is a heartbeat that carries the level.
    EventKind.BATTERY: "heartbeat",
}


def zigbee_voltage(device: SimDevice, battery: int) -> int:
    """Cell voltage in mV that zigbee2mqtt would report beside ``battery`` percent."""
    if device.model == "RTCGQ11LM":  # CR2450, zigbee2mqtt maps 2850-3000 mV to 0-100 %
        return round(2850 + 1.5 * battery)
    return round(2500 + 5 * battery)  # CR2032 devices: ~3.0 V full, ~2.6 V nearly empty


class Encoder:
    """Encodes events for one simulation run; holds zigbee2mqtt's per-device state cache."""

    def __init__(
        self,
        topics: Topics,
        new_id: Callable[[], str] | None = None,
        *,
        cache_state: bool = True,
    ) -> None:
        """``cache_state`` mirrors zigbee2mqtt's option of that name (default on).

        On, every zigbee message repeats the whole cached state, so an hourly battery
        report from a door sensor carries ``contact`` again: a consumer must not take an
        unchanged contact for a door movement. Off, a message carries only what changed.
        """
        self.topics = topics
        self.cache_state = cache_state
        self._new_id = new_id or (lambda: uuid.uuid4().hex)
        self._z2m_cache: dict[str, dict[str, Any]] = {}

    def encode(self, device: SimDevice, event: SimEvent) -> Outgoing:
        """The message ``device`` sends for ``event``."""
        if event.kind is EventKind.AVAILABILITY:
            return self.availability(device, online=bool(event.state))
        topic = self.topics.state(device)
        if event.raw is not None:
            return Outgoing(topic, event.raw)
        if device.protocol is Protocol.NATIVE:
            return Outgoing(topic, native_payload(event, event_id=self._new_id()))
        return Outgoing(topic, _json(self._zigbee_state(device, event)))

    def availability(self, device: SimDevice, *, online: bool) -> Outgoing:
        """The retained availability message (the last will, for a native device)."""
        topic = self.topics.availability(device)
        word = "online" if online else "offline"
        if device.protocol is Protocol.NATIVE:
            return Outgoing(topic, word.encode(), retain=True)
        return Outgoing(topic, _json({"state": word}), retain=True)

    def _zigbee_state(self, device: SimDevice, event: SimEvent) -> dict[str, Any]:
        cache = self._z2m_cache.setdefault(device.uid, _initial_state(device))
        update: dict[str, Any] = {}
        if event.kind is EventKind.DOOR:
            update["contact"] = not event.state  # zigbee2mqtt: contact true = door CLOSED
        elif event.kind is EventKind.MOTION:
            update["occupancy"] = bool(event.state)
        if device.battery_powered and event.battery is not None:
            update["battery"] = event.battery
            update["voltage"] = zigbee_voltage(device, event.battery)
            if "battery_low" in cache:
                update["battery_low"] = event.battery <= _BATTERY_LOW_FLAG
        if event.link_quality is not None:
            update["linkquality"] = event.link_quality
        if device.model == "RTCGQ11LM":
            update["illuminance"] = update["illuminance_lux"] = _daylight_lux(event.at)
        update["last_seen"] = iso_local(event.at)
        cache.update(update)
        message = dict(cache) if self.cache_state else update
        # Momentary values: in this one message only, never part of the cached state.
        if event.kind is EventKind.SOS:
            message["action"] = "emergency"
        elif event.kind is EventKind.FALL:
            message["fall_down_status"] = "fall"
        return message


def _initial_state(device: SimDevice) -> dict[str, Any]:
    """What zigbee2mqtt has cached for a freshly paired device of this model."""
    state: dict[str, Any]
    match device.kind:
        case DeviceKind.DOOR:  # Sonoff SNZB-04
            state = {"battery": 100, "battery_low": False, "contact": True, "tamper": False}
        case DeviceKind.MOTION:  # Aqara RTCGQ11LM
            state = {"battery": 100, "device_temperature": 22, "occupancy": False}
            state["power_outage_count"] = 2
        case DeviceKind.SOS:  # Tuya TS0215A_sos
            state = {"battery": 100}
        case DeviceKind.FALL | DeviceKind.MULTI:  # Tuya MIR-HE200-TY radar, mains powered
            state = {
                "fall_down_status": "none",
                "fall_sensitivity": 7,
                "tumble_alarm_time": 1,
                "tumble_switch": "ON",
            }
    if device.battery_powered:
        state["voltage"] = zigbee_voltage(device, state["battery"])
    state["linkquality"] = device.link_quality
    return state


def _daylight_lux(at: datetime) -> int:
    """Rough indoor light by the local hour: what an Aqara PIR's light sensor would read."""
    hour = at.astimezone(TOWN_TZ).hour
    if 7 <= hour < 18:
        return 120 + 15 * min(hour - 7, 18 - hour)
    if hour in (6, 18, 19, 20):
        return 25  # dawn, dusk, one bulb in the hall
    return 0


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
