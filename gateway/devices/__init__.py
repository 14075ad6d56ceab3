"""Device adapters: pure functions from MQTT messages to :class:`~gateway.events.SensorEvent`.

The register describes each device by a :class:`DeviceSpec`. :func:`device_topics` says which
exact topics a device publishes on and what each carries (a :class:`TopicRole`);
:func:`subscription_filters` is what the gateway subscribes to; :func:`parse` turns one
payload into events; :func:`is_ignorable` names the topics that are infrastructure and never
an unknown device.

Rules every protocol follows:

* Every accepted message yields at least one event; a message that says nothing
  kind-specific (only battery and link quality, an ``announce``) yields a ``HEARTBEAT``.
  The battery (0-100 %, out-of-range values dropped) and link quality of a message ride on
  all its events. Link quality is Zigbee LQI 0-255 for zigbee devices and Wi-Fi signal
  0-100 % for Tasmota and Shelly.
* Retained messages never yield SOS or FALL (replayed history, not a call for help); what
  remains is marked ``retained``, and an emptied message becomes a retained ``HEARTBEAT``.
* Safety first: a message that reports an SOS or a fall is accepted whatever else is wrong
  with it (malformed fields are dropped); any other message with a malformed known field is
  rejected with :class:`~gateway.events.PayloadError` naming the field. Unknown fields are
  ignored. Nothing but ``PayloadError`` is ever raised for any payload.
* The event time is the payload's own timestamp where the protocol has one (native ``ts``,
  zigbee2mqtt ``last_seen``, Shelly Gen2 ``ts``, Tasmota ``Time`` with offset) and it is
  believable; otherwise the receive time, with ``timestamp_fallback`` set when a timestamp was
  present but unusable (no offset, unparseable, before 2020, > 5 minutes in the future).
* State convention: DOOR ``True`` = open, MOTION ``True`` = movement, AVAILABILITY ``True`` =
  online, BATTERY ``True`` = the device reports its battery low.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.devices import native, shelly, tasmota, zigbee2mqtt
from gateway.devices._common import (
    DeviceSpec,
    Reading,
    TopicRole,
    finish,
    is_valid_topic,
    topic_matches,
)
from gateway.devices.vocabulary import Protocol
from gateway.events import MAX_PAYLOAD_BYTES, PayloadError, SensorEvent

__all__ = [
    "DeviceSpec",
    "TopicRole",
    "default_topic",
    "device_topics",
    "is_ignorable",
    "parse",
    "subscription_filters",
]


@dataclass(frozen=True, slots=True)
class _Adapter:
    topics: Callable[[DeviceSpec], dict[str, TopicRole]]
    family_filters: Callable[[str], list[str]]
    read: Callable[[DeviceSpec, TopicRole, bytes, datetime], Reading]


_ADAPTERS = {
    Protocol.NATIVE: _Adapter(native.topics, native.family_filters, native.read),
    Protocol.ZIGBEE2MQTT: _Adapter(
        zigbee2mqtt.topics, zigbee2mqtt.family_filters, zigbee2mqtt.read
    ),
    Protocol.TASMOTA: _Adapter(tasmota.topics, tasmota.family_filters, tasmota.read),
    Protocol.SHELLY: _Adapter(shelly.topics, shelly.family_filters, shelly.read),
}
_DEFAULT_PREFIX = {
    Protocol.NATIVE: "homewatch/",
    Protocol.ZIGBEE2MQTT: "zigbee2mqtt/",
    Protocol.TASMOTA: "",
    Protocol.SHELLY: "shellies/",
}
_STANDARD_FILTERS = (
    *native.STANDARD_FILTERS,
    *zigbee2mqtt.STANDARD_FILTERS,
    *tasmota.STANDARD_FILTERS,
    *shelly.STANDARD_FILTERS,
)
# zigbee2mqtt's own topics under ``<base>/bridge/`` (state, devices, logging, requests ...).
_Z2M_BRIDGE = frozenset(
    {
        "state",
        "info",
        "devices",
        "groups",
        "definitions",
        "extensions",
        "converters",
        "logging",
        "log",
        "config",
        "health",
        "options",
        "networkmap",
        "request",
        "response",
        "event",
    }
)
# Roots whose second level is a device id, never zigbee2mqtt's ``bridge``.
_NOT_Z2M_ROOTS = frozenset({"homewatch", "tele", "stat", "cmnd", "shellies"})


def default_topic(uid: str, protocol: Protocol) -> str:
    """The topic a device of ``protocol`` uses unless the register says otherwise.

    Args:
        uid: The device's id in the register.
        protocol: The device's protocol.

    Returns:
        ``homewatch/<uid>`` (native), ``zigbee2mqtt/<uid>`` (the friendly name under the
        default base), ``<uid>`` (Tasmota ``%topic%``) or ``shellies/<uid>`` (Shelly Gen1;
        a Gen2 device's topic prefix is registered explicitly).
    """
    return _DEFAULT_PREFIX[Protocol(protocol)] + uid


def device_topics(spec: DeviceSpec) -> dict[str, TopicRole]:
    """Every exact topic the device publishes on, with what it carries.

    Args:
        spec: The registered device.

    Returns:
        A mapping from topic to role, for a topic -> device lookup table.
    """
    return _adapter(spec.protocol).topics(spec)


def subscription_filters(specs: Iterable[DeviceSpec]) -> list[str]:
    """The MQTT filters that cover every registered device and its unregistered siblings.

    The standard families are always covered (``homewatch/+/event``, ``zigbee2mqtt/+``,
    ``tele/+/+``, ``shellies/+/online``, ``+/events/rpc`` ...). A device registered under
    another prefix adds that prefix's family, e.g. ``t5/homewatch/abc`` adds
    ``t5/homewatch/+/event`` and ``t5/homewatch/+/status``, so that messages from devices of
    the same family reach the gateway and can be listed as unknown devices. A device whose
    topic has no prefix adds its exact topics. Topics that are not valid topic names (with
    ``+``, ``#`` or NUL) are skipped: one bad register entry must not break the subscription.

    Args:
        specs: The registered devices.

    Returns:
        Deduplicated filters, the standard ones first, in a stable order.
    """
    filters = list(_STANDARD_FILTERS)
    for spec in specs:
        if not is_valid_topic(spec.topic):
            continue
        adapter = _adapter(spec.protocol)
        filters.extend(adapter.family_filters(spec.topic) or adapter.topics(spec))
    unique = list(dict.fromkeys(filters))
    wildcards = [f for f in unique if "+" in f or "#" in f]
    return [f for f in unique if f in wildcards or not any(topic_matches(w, f) for w in wildcards)]


def is_ignorable(topic: str) -> bool:
    """Whether a topic that no registered device owns is infrastructure, not a device.

    Ignorable: broker ``$SYS`` topics; gateway status (``homewatch/gateway/...``, also under
    a prefix); zigbee2mqtt's ``<base>/bridge/...``; Tasmota commands (``cmnd/...``),
    discovery (``tasmota/discovery/...``, ``homeassistant/...``) and firmware chatter
    (``tele/<t>/INFO1``, ``stat/<t>/STATUS5`` ...); Shelly relay/meter topics, broadcast
    ``shellies/announce`` and Gen2 component statuses other than inputs and battery.
    Consult it only after the device lookup: a registered device's topics are never ignored.

    Args:
        topic: The topic a message arrived on.

    Returns:
        True when the message must not be listed as coming from an unknown device.
    """
    if not topic or topic.startswith("$"):
        return True
    parts = topic.split("/")
    if any(a == "homewatch" and b == "gateway" for a, b in itertools.pairwise(parts)):
        return True
    if parts[0] in ("homeassistant",) or parts[:2] == ["tasmota", "discovery"]:
        return True
    if _is_z2m_bridge(parts):
        return True
    return tasmota.is_noise(parts) or shelly.is_noise(parts)


def parse(
    spec: DeviceSpec,
    role: TopicRole,
    payload: bytes,
    *,
    retained: bool,
    received_at: datetime,
) -> list[SensorEvent]:
    """Turn one message from a registered device into events.

    Args:
        spec: The device the topic belongs to.
        role: What the topic carries, from :func:`device_topics`.
        payload: The raw MQTT payload.
        retained: The MQTT retain flag of the message.
        received_at: When the gateway received it; timezone-aware.

    Returns:
        At least one event.

    Raises:
        PayloadError: The payload is malformed (``too_large``, ``not_utf8``, ``empty``,
            ``not_json``, ``wrong_type``, ``missing_field``, ``unknown_value``, ...). The
            detail names the field. No other exception escapes for any payload.
        ValueError: ``received_at`` is naive (a programming error, not a payload problem).
    """
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    received_at = received_at.astimezone(UTC)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    reading = _adapter(spec.protocol).read(spec, TopicRole(role), bytes(payload), received_at)
    return finish(spec, reading, retained=retained, received_at=received_at)


def _adapter(protocol: Protocol) -> _Adapter:
    return _ADAPTERS[Protocol(protocol)]


def _is_z2m_bridge(parts: list[str]) -> bool:
    if parts[0] in _NOT_Z2M_ROOTS or "homewatch" in parts:
        return False
    # The base topic may itself contain slashes: look for ``bridge`` at any depth >= 1.
    return any(
        part == "bridge" and (index == len(parts) - 1 or parts[index + 1] in _Z2M_BRIDGE)
        for index, part in enumerate(parts)
        if index >= 1
    )
