"""What every device adapter shares: the device spec, topic roles, decoding, field readers.

An adapter turns one payload into a :class:`Reading` (facts plus the health fields and the
timestamp found in the payload); :func:`finish` applies the rules common to all protocols
(retained messages never raise an emergency, every accepted message yields an event, a
malformed field rejects the message unless the message reports an emergency) and builds the
:class:`~gateway.events.SensorEvent` objects.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from gateway.devices.vocabulary import DeviceKind, Protocol
from gateway.events import EventKind, PayloadError, SensorEvent

#: A payload timestamp further ahead of the receive time than this is a wrong device clock.
MAX_CLOCK_AHEAD = timedelta(minutes=5)
#: Devices without a real-time clock boot in 1970; anything before this is such a clock.
EARLIEST_PLAUSIBLE = datetime(2020, 1, 1, tzinfo=UTC)
#: Longer event ids are refused: they are dedup keys, not free text.
MAX_EVENT_ID_CHARS = 200

# Words a button press is made of, across zigbee2mqtt (``single``, ``1_double``,
# ``hold``), Tasmota (``SINGLE``, ``QUAD``, ``TOGGLE``) and Shelly Gen2 (``single_push``).
_PRESS_WORDS = frozenset(
    {
        "single",
        "double",
        "triple",
        "quadruple",
        "quad",
        "penta",
        "many",
        "multiple",
        "hold",
        "long",
        "press",
        "pressed",
        "push",
        "click",
        "tap",
        "short",
        "on",
        "off",
        "toggle",
    }
)
# A release follows a press that was already reported (``hold_release``); ``btn_up``/``stop``
# likewise carry no new press.
_RELEASE_WORDS = frozenset({"release", "released", "up", "stop", "clear"})
_EMERGENCY_WORDS = frozenset({"emergency", "sos", "panic"})
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")

_LOOSE_TRUE = frozenset({"on", "true", "1", "yes"})
_LOOSE_FALSE = frozenset({"off", "false", "0", "no"})


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A registered device, as the adapters need to know it.

    Attributes:
        uid: The device's unique id in the register.
        kind: What the device is for (``sos``, ``fall``, ``motion``, ``door``, ``multi``).
        protocol: How it talks (``native``, ``zigbee2mqtt``, ``tasmota``, ``shelly``).
        topic: The registered base topic; see :func:`gateway.devices.default_topic`.
        model: The vendor model id, informational.
    """

    uid: str
    kind: DeviceKind
    protocol: Protocol
    topic: str
    model: str | None = None

    def __post_init__(self) -> None:
        # Plain strings from a database row or a YAML file become the enums, so that
        # comparisons and dispatch never depend on how the spec was built.
        object.__setattr__(self, "kind", DeviceKind(self.kind))
        object.__setattr__(self, "protocol", Protocol(self.protocol))


class TopicRole(StrEnum):
    """What a topic carries; :func:`gateway.devices.parse` interprets a payload by it."""

    #: native ``<t>/event``: the JSON event object.
    EVENT = "event"
    #: Online/offline (last will): native ``<t>/status``, zigbee2mqtt ``<t>/availability``,
    #: Tasmota ``tele/<t>/LWT``, Shelly ``<t>/online``.
    AVAILABILITY = "availability"
    #: zigbee2mqtt ``<t>`` device state; Tasmota ``tele/<t>/STATE``.
    STATE = "state"
    #: Tasmota ``tele/<t>/SENSOR`` (switches, Zigbee ``ZbReceived``).
    SENSOR = "sensor"
    #: Tasmota ``stat/<t>/RESULT`` and ``tele/<t>/RESULT`` (button/switch actions).
    RESULT = "result"
    #: Tasmota ``stat/<t>/POWER[n]``: relay state, a sign of life only.
    POWER = "power"
    #: A momentary button event: Tasmota ``stat/<t>/BUTTON<n>``, Shelly ``<t>/input_event/<n>``.
    BUTTON = "button"
    #: A binary input: Shelly Gen1 ``<t>/input/<n>``, Gen2 ``<t>/status/input:<n>``.
    INPUT = "input"
    #: Shelly Gen1 ``<t>/sensor/state`` (Door/Window ``open``/``close``).
    CONTACT = "contact"
    #: Shelly Gen1 ``<t>/sensor/motion``.
    MOTION = "motion"
    #: Shelly Gen1 ``<t>/sensor/battery``.
    BATTERY = "battery"
    #: Shelly Gen1 ``<t>/info`` and ``<t>/status`` (full status JSON).
    INFO = "info"
    #: Shelly Gen2 ``<t>/events/rpc`` (``NotifyEvent``, ``NotifyStatus``).
    RPC = "rpc"
    #: Shelly Gen2 ``<t>/status/devicepower:<n>`` (battery).
    DEVICE_POWER = "device_power"
    #: Any other message the device sends: a sign of life and nothing more.
    TELEMETRY = "telemetry"


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing a payload says, before it becomes a :class:`SensorEvent`."""

    kind: EventKind
    state: bool | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Reading:
    """What an adapter read from one payload."""

    facts: list[Fact] = field(default_factory=list)
    battery: int | None = None
    link_quality: int | None = None
    event_id: str | None = None
    #: The payload's own time, already checked; ``None`` means the receive time.
    occurred_at: datetime | None = None
    timestamp_fallback: bool = False
    #: Malformed known fields; they reject the message unless it reports an emergency.
    problems: list[PayloadError] = field(default_factory=list)

    def add(
        self, kind: EventKind, state: bool | None = None, *, source: tuple[str, str] | None = None
    ) -> None:
        """Record a fact; ``source`` is the (field, value) it came from, kept as event extra."""
        self.facts.append(Fact(kind, state, (source,) if source else ()))

    def problem(self, reason: str, detail: str) -> None:
        """Record a malformed field without giving up on the rest of the payload."""
        self.problems.append(PayloadError(reason, detail))


def finish(
    spec: DeviceSpec, reading: Reading, *, retained: bool, received_at: datetime
) -> list[SensorEvent]:
    """Apply the protocol-independent rules and build the events of one message."""
    facts = _unique(reading.facts)
    emergency = any(f.kind.is_emergency for f in facts)
    # Safety first: an SOS or a fall is reported whatever else is wrong with the payload.
    if reading.problems and not emergency:
        raise reading.problems[0]
    if retained:
        # A retained message is old news replayed by the broker on (re)subscribe.
        facts = [f for f in facts if not f.kind.is_emergency]
    if not facts:
        facts = [Fact(EventKind.HEARTBEAT)]
    # Emergencies first, so that a consumer handling events in order acts on them first.
    facts.sort(key=lambda f: not f.kind.is_emergency)
    occurred_at = reading.occurred_at or received_at
    return [
        SensorEvent(
            kind=f.kind,
            device_uid=spec.uid,
            occurred_at=occurred_at,
            received_at=received_at,
            state=f.state,
            battery=reading.battery,
            link_quality=reading.link_quality,
            event_id=reading.event_id,
            retained=retained,
            timestamp_fallback=reading.timestamp_fallback,
            extra=f.extra,
        )
        for f in facts
    ]


def _unique(facts: list[Fact]) -> list[Fact]:
    # ``action: emergency`` together with ``sos: true`` is one SOS, not two.
    seen: set[tuple[EventKind, bool | None]] = set()
    unique = []
    for fact in facts:
        key = (fact.kind, fact.state)
        if key not in seen:
            seen.add(key)
            unique.append(fact)
    return unique


# -- decoding ---------------------------------------------------------------------------


def decode_text(payload: bytes) -> str:
    """The payload as text, stripped; raises ``not_utf8`` or ``empty``."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PayloadError("not_utf8", f"payload is not valid UTF-8 (byte {error.start})") from None
    text = text.lstrip("\ufeff").strip()
    if not text:
        raise PayloadError("empty", "payload is empty")
    return text


def load_json(payload: bytes) -> object:
    """Decode a JSON payload; raises ``not_utf8``, ``empty`` or ``not_json``."""
    text = decode_text(payload)
    try:
        # NaN and Infinity are not JSON; read them as null so that they drop a field
        # instead of reaching arithmetic on batteries.
        return json.loads(text, parse_constant=lambda _: None)
    except (ValueError, RecursionError) as error:
        # RecursionError: deeply nested arrays; ValueError covers JSONDecodeError and
        # integers longer than Python's digit limit.
        raise PayloadError("not_json", f"payload is not JSON: {_short(str(error))}") from None


def load_object(payload: bytes) -> dict[str, object]:
    """Decode a payload that must be a JSON object; raises ``wrong_type`` otherwise."""
    value = load_json(payload)
    obj = as_object(value)
    if obj is None:
        raise PayloadError("wrong_type", f"payload: expected a JSON object, got {type_name(value)}")
    return obj


def as_object(value: object) -> dict[str, object] | None:
    """``value`` as a JSON object with string keys, or ``None``."""
    if not isinstance(value, dict):
        return None
    return {str(k): v for k, v in value.items()}


def lower_keys(obj: dict[str, object]) -> dict[str, object]:
    """Keys lower-cased: Tasmota and Shelly capitalise keys inconsistently across versions."""
    return {k.lower(): v for k, v in obj.items()}


def availability(payload: bytes, words: dict[str, bool], name: str) -> Reading:
    """An online/offline message: a plain word, a JSON string, or ``{"state": word}``."""
    text = decode_text(payload)
    value: object = text
    if text[0] in '{"':
        decoded = load_json(payload)
        obj = as_object(decoded)
        if obj is not None:
            if "state" not in obj:
                raise PayloadError("missing_field", f"{name}: field 'state' is missing")
            value = obj["state"]
        else:
            value = decoded
    if isinstance(value, bool):
        value = str(value).lower()
    if not isinstance(value, str):
        raise PayloadError("wrong_type", f"{name}: expected a string, got {type_name(value)}")
    online = words.get(value.strip().lower())
    if online is None:
        raise PayloadError("unknown_value", f"{name}: unknown value {_short(value)!r}")
    reading = Reading()
    reading.add(EventKind.AVAILABILITY, online)
    return reading


# -- field readers ----------------------------------------------------------------------


def type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for error details."""
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
        case _:
            return type(value).__name__


def number(value: object) -> float | None:
    """A JSON number as a float, or ``None`` (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def read_battery(reading: Reading, value: object, name: str) -> None:
    """Set the battery percentage; out-of-range values are dropped, wrong types recorded."""
    if value is None:
        return
    percent = number(value)
    if percent is None:
        reading.problem("wrong_type", f"field {name!r}: expected a number, got {type_name(value)}")
        return
    # A flaky gauge reporting 255 % must not reject the message it rides on.
    if 0 <= percent <= 100:
        reading.battery = round(percent)


def read_link_quality(reading: Reading, value: object, name: str, *, top: int = 255) -> None:
    """Set the link quality (0..``top``); out-of-range values are dropped."""
    if value is None:
        return
    quality = number(value)
    if quality is None:
        reading.problem("wrong_type", f"field {name!r}: expected a number, got {type_name(value)}")
        return
    if 0 <= quality <= top:
        reading.link_quality = round(quality)


def rssi_quality(dbm: float) -> int:
    """Wi-Fi RSSI in dBm as 0-100 %, the scale Tasmota reports its own ``RSSI`` in."""
    return max(0, min(100, round(2 * (dbm + 100))))


def strict_bool(reading: Reading, value: object, name: str) -> bool | None:
    """A JSON boolean; anything else but null is recorded as ``wrong_type``."""
    if value is None or isinstance(value, bool):
        return value
    reading.problem("wrong_type", f"field {name!r}: expected a boolean, got {type_name(value)}")
    return None


def loose_bool(reading: Reading, value: object, name: str) -> bool | None:
    """A boolean written as ``true``, ``1``, ``"ON"`` or ``"true"`` (and their negatives)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _LOOSE_TRUE:
            return True
        if word in _LOOSE_FALSE:
            return False
        reading.problem("unknown_value", f"field {name!r}: unknown value {_short(value)!r}")
        return None
    reading.problem("wrong_type", f"field {name!r}: expected a boolean, got {type_name(value)}")
    return None


def string(reading: Reading, value: object, name: str) -> str | None:
    """A JSON string; anything else but null is recorded as ``wrong_type``."""
    if value is None or isinstance(value, str):
        return value
    reading.problem("wrong_type", f"field {name!r}: expected a string, got {type_name(value)}")
    return None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# -- timestamps -------------------------------------------------------------------------


def iso_time(reading: Reading, value: object, received_at: datetime) -> None:
    """Use an ISO 8601 timestamp with offset as the event time, if it is believable.

    Missing (absent or null) keeps the receive time. Anything unusable -- not a string,
    unparseable, without offset, before 2020, more than five minutes ahead of the receive
    time -- also keeps the receive time and sets ``timestamp_fallback``; it never rejects.
    """
    if value is None:
        return
    parsed: datetime | None = None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None or parsed.utcoffset() is None:
        reading.timestamp_fallback = True
        return
    _use_time(reading, parsed, received_at)


def epoch_time(
    reading: Reading, value: object, received_at: datetime, *, scale: float = 1.0
) -> None:
    """Like :func:`iso_time` for a Unix timestamp (seconds times ``scale``)."""
    if value is None:
        return
    seconds = number(value)
    if seconds is None:
        reading.timestamp_fallback = True
        return
    try:
        parsed = datetime.fromtimestamp(seconds / scale, tz=UTC)
    except (OverflowError, OSError, ValueError):
        reading.timestamp_fallback = True
        return
    _use_time(reading, parsed, received_at)


def _use_time(reading: Reading, parsed: datetime, received_at: datetime) -> None:
    try:
        moment = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        # 9999-12-31T23:59-05:00 has no UTC representation.
        reading.timestamp_fallback = True
        return
    if moment < EARLIEST_PLAUSIBLE or moment > received_at + MAX_CLOCK_AHEAD:
        reading.timestamp_fallback = True
        return
    reading.occurred_at = moment


# -- what presses and inputs mean -------------------------------------------------------


def _words(action: str) -> frozenset[str]:
    return frozenset(w for w in _WORD_SPLIT.split(action.lower()) if w)


def is_emergency_action(action: str) -> bool:
    """An action that means "help" on any device (``emergency``, ``sos``, ``panic``)."""
    return bool(_words(action) & _EMERGENCY_WORDS)


def is_press(action: str) -> bool:
    """An action that reports a fresh button press (not a release)."""
    words = _words(action)
    return bool(words & _PRESS_WORDS) and not words & _RELEASE_WORDS


def add_action(reading: Reading, spec: DeviceSpec, action: str, name: str) -> None:
    """Interpret a momentary action (button event) reported in field ``name``.

    Any device's ``emergency``/``sos``/``panic`` is an SOS. A plain press is an SOS on an
    SOS button; on any other device it is the resident saying "I am here" (check-in).
    Other actions (dimmer steps, arming a keypad, releases) carry no fact.
    """
    if not action.strip():
        return
    if is_emergency_action(action):
        reading.add(EventKind.SOS, source=(name, action))
    elif is_press(action):
        kind = EventKind.SOS if spec.kind == DeviceKind.SOS else EventKind.CHECK_IN
        reading.add(kind, source=(name, action))


def add_input(reading: Reading, spec: DeviceSpec, active: bool, name: str) -> None:
    """Interpret a binary input (Tasmota ``Switch<n>``, Shelly ``input``) by device kind.

    Convention, chosen to match :class:`~gateway.events.SensorEvent` and Home Assistant's
    door sensors: an input that is ON (true, ``1``) means OPEN on a door, movement on a
    motion sensor, a press on an SOS button and a fall on a fall sensor. A plain reed
    switch closes its circuit when the door is shut, so installers configure the device to
    report it inverted (Tasmota ``SwitchMode 2``/``16``, Shelly input ``invert: true``).
    On a ``multi`` device an input's meaning is unknown and yields no fact.
    """
    value = "ON" if active else "OFF"
    match spec.kind:
        case DeviceKind.DOOR:
            reading.add(EventKind.DOOR, active, source=(name, value))
        case DeviceKind.MOTION:
            reading.add(EventKind.MOTION, active, source=(name, value))
        case DeviceKind.SOS if active:
            reading.add(EventKind.SOS, source=(name, value))
        case DeviceKind.FALL if active:
            reading.add(EventKind.FALL, source=(name, value))
        case _:
            pass


# -- topics -----------------------------------------------------------------------------


def parent(topic: str) -> str:
    """The topic without its last level (``""`` for a single-level topic)."""
    return topic.rpartition("/")[0]


def is_valid_topic(topic: str) -> bool:
    """A topic name a device can publish on (no wildcards, not empty, not too long)."""
    return (
        bool(topic)
        and not any(c in topic for c in "+#\x00")
        and len(topic.encode("utf-8", "surrogatepass")) <= 65535
    )


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether MQTT topic filter ``pattern`` matches ``topic``."""
    levels = topic.split("/")
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    for index, level in enumerate(pattern.split("/")):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(levels) == len(pattern.split("/"))
