"""Scenarios: the emergencies and faults the gateway exists to catch, injected on purpose.

A scenario is pure data: :func:`build_injection` returns the events it adds, the routine
events it silences (a fallen resident stops moving about; an offline device stops
reporting) and the ground truth that a test or an evaluation compares the gateway's
alerts against. The runner applies injections while it publishes; :func:`apply_injections`
does the same to a list, for tests.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path

from gateway.config import parse_duration as config_duration
from gateway.events import MAX_PAYLOAD_BYTES, EventKind
from gateway.register.vocabulary import Protocol
from simulator.household import Household, SimDevice
from simulator.routine import TOWN_TZ, SimEvent, battery_level

__all__ = [
    "EXPECTED_ALERT",
    "BatteryCap",
    "GroundTruth",
    "Injection",
    "ScenarioName",
    "ScenarioRequest",
    "Suppression",
    "append_ground_truth",
    "apply_injections",
    "build_injection",
    "default_duration",
    "filter_event",
    "next_local_time",
    "parse_duration",
    "parse_scenario",
    "resolve_request",
]


class ScenarioName(StrEnum):
    """The scenarios of SPEC §8."""

    SOS = "sos"
    FALL = "fall"
    INACTIVITY = "inactivity"
    DOOR_OPEN_NIGHT = "door_open_night"
    DEVICE_OFFLINE = "device_offline"
    BATTERY_LOW = "battery_low"
    FLAPPING = "flapping"
    MALFORMED = "malformed"


#: The alert type (SPEC §6) the gateway should raise for each scenario; None = no alert
#: (flapping and malformed payloads must be absorbed, not alarmed on).
EXPECTED_ALERT: dict[ScenarioName, str | None] = {
    ScenarioName.SOS: "sos",
    ScenarioName.FALL: "fall",
    ScenarioName.INACTIVITY: "inactivity",
    ScenarioName.DOOR_OPEN_NIGHT: "door_open_night",
    ScenarioName.DEVICE_OFFLINE: "device_offline",
    ScenarioName.BATTERY_LOW: "battery_low",
    ScenarioName.FLAPPING: None,
    ScenarioName.MALFORMED: None,
}

# The gateway's default windows (SPEC §6), which scenario defaults are chosen to exceed.
_DAY_START, _DAY_END = time(6, 0), time(21, 0)
_NIGHT_START, _NIGHT_END = time(22, 0), time(5, 0)
_DAY_QUIET = timedelta(hours=4)
_NIGHT_QUIET = timedelta(hours=12)
_DOOR_OPEN_FOR = timedelta(minutes=15)
_BATTERY_ALARM = 15

_ACTIVITY_KINDS = frozenset({EventKind.MOTION, EventKind.DOOR, EventKind.CHECK_IN})
_ALL_KINDS = frozenset(EventKind)


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What was injected, and which alert the gateway should raise for it."""

    scenario: ScenarioName
    household: str
    person: str
    device: str | None  # None where no single device is involved (inactivity)
    at: datetime  # the decisive moment: the press, the fall, the start of silence, …
    expected_alert: str | None
    duration: timedelta | None = None

    def to_json(self) -> str:
        """One JSON-lines record (``at`` in UTC, ISO 8601)."""
        record = {
            "scenario": self.scenario.value,
            "household": self.household,
            "person": self.person,
            "device": self.device,
            "at": self.at.astimezone(UTC).isoformat(),
            "expected_alert": self.expected_alert,
            "duration_s": self.duration.total_seconds() if self.duration else None,
        }
        return json.dumps(record, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Suppression:
    """Routine events of ``kinds`` from ``devices`` that do not happen in ``[start, end)``."""

    household: str
    devices: frozenset[str]
    kinds: frozenset[EventKind]
    start: datetime
    end: datetime

    def drops(self, event: SimEvent) -> bool:
        """Whether ``event`` is silenced (a scenario's own events never are)."""
        return (
            event.scenario is None
            and event.household == self.household
            and event.device in self.devices
            and event.kind in self.kinds
            and self.start <= event.at < self.end
        )


@dataclass(frozen=True, slots=True)
class BatteryCap:
    """A battery that stays at ``level`` (or below) from ``start`` until ``end``."""

    device: str
    level: int
    start: datetime
    end: datetime

    def apply(self, event: SimEvent) -> SimEvent:
        """``event`` with its battery capped, when it falls in the window."""
        if (
            event.device == self.device
            and event.battery is not None
            and event.battery > self.level
            and self.start <= event.at < self.end
        ):
            return replace(event, battery=self.level)
        return event


@dataclass(frozen=True, slots=True)
class Injection:
    """A resolved scenario: its events, what it silences, and its ground truth."""

    truth: GroundTruth
    events: tuple[SimEvent, ...] = ()
    suppressions: tuple[Suppression, ...] = ()
    battery_caps: tuple[BatteryCap, ...] = ()

    @property
    def end(self) -> datetime:
        """When the scenario's influence on the routine is over."""
        ends = [self.truth.at]
        ends += [event.at for event in self.events]
        ends += [s.end for s in self.suppressions] + [c.end for c in self.battery_caps]
        return max(ends)

    def filter(self, event: SimEvent) -> SimEvent | None:
        """A routine event as it happens under this scenario; None if it does not."""
        if any(s.drops(event) for s in self.suppressions):
            return None
        for cap in self.battery_caps:
            event = cap.apply(event)
        return event


@dataclass(frozen=True, slots=True)
class ScenarioRequest:
    """A scenario asked for on the command line, on a schedule or on command.

    ``at``: an absolute instant, an offset from the simulation's start, a local time of day
    (its next occurrence), or None for the default (soon; door_open_night: 23:00).
    ``household``: a household key (``bm-002``) or None for one picked from the seed.
    """

    name: ScenarioName
    at: datetime | timedelta | time | None = None
    household: str | None = None
    duration: timedelta | None = None
    device: str | None = None


# --- Parsing --------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """``90s``, ``5m``, ``4h``, ``2d``, ``1w``, ISO 8601 ``PT4H`` (the gateway's own
    spellings, SPEC §2) or, on the command line, plain seconds."""
    stripped = text.strip()
    try:
        return config_duration(float(stripped))
    except ValueError:
        return config_duration(stripped)


def parse_scenario(text: str) -> ScenarioRequest:
    """Parse ``NAME[@WHEN][,HOUSEHOLD][,for=DURATION][,device=UID]``.

    WHEN is ``+10m`` (after the simulation's start), ``23:30`` (the next such local time)
    or an ISO 8601 instant (``2024-05-01T08:00+08:00``; without an offset: town time).
    Examples: ``sos``, ``fall@+30m,bm-002``, ``door_open_night@23:30,for=1h``.
    """
    head, *options = [part.strip() for part in text.split(",")]
    name_text, _, when_text = head.partition("@")
    try:
        name = ScenarioName(name_text.strip())
    except ValueError:
        known = ", ".join(s.value for s in ScenarioName)
        raise ValueError(f"unknown scenario {name_text!r} (known: {known})") from None
    at = _parse_when(when_text.strip()) if when_text else None
    household = duration = device = None
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            household = key
        elif key == "for":
            duration = parse_duration(value)
        elif key == "device":
            device = value
        elif key == "household":
            household = value
        else:
            raise ValueError(f"unknown scenario option {key!r} in {text!r}")
    return ScenarioRequest(name, at=at, household=household, duration=duration, device=device)


def _parse_when(text: str) -> datetime | timedelta | time:
    if text.startswith("+"):
        return parse_duration(text[1:])
    if re.fullmatch(r"\d{1,2}:\d{2}", text):
        hour, minute = (int(p) for p in text.split(":"))
        return time(hour, minute)
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (write +10m, 23:30 or an ISO instant)") from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=TOWN_TZ)
    return instant.astimezone(UTC)


# --- Resolving and building -----------------------------------------------------------------


def next_local_time(after: datetime, at: time) -> datetime:
    """The first instant at or after ``after`` when the town's clocks show ``at``."""
    local = after.astimezone(TOWN_TZ)
    candidate = datetime.combine(local.date(), at, TOWN_TZ)
    if candidate < local:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)


def resolve_request(
    request: ScenarioRequest,
    households: Sequence[Household],
    *,
    start: datetime,
    now: datetime,
    default_at: datetime,
    rng: random.Random,
) -> Injection:
    """Turn a request into an injection: pick the household and the instant, then build.

    Instants in the past become ``now``: a scenario is never back-dated.
    """
    if not households:
        raise ValueError("no households to inject a scenario into")
    if request.household is None:
        household = rng.choice(list(households))
    else:
        matches = [h for h in households if h.key == request.household]
        if not matches:
            raise ValueError(f"no household {request.household!r}")
        household = matches[0]
    match request.at:
        case None:
            at = default_at
            if request.name is ScenarioName.DOOR_OPEN_NIGHT and not _in_night(at):
                at = next_local_time(at, time(23, 0))
        case timedelta() as offset:
            at = start + offset
        case time() as clock_time:
            at = next_local_time(now, clock_time)
        case datetime() as instant:
            at = instant.astimezone(UTC)
    return build_injection(
        request.name,
        household,
        max(at, now),
        rng,
        duration=request.duration,
        device=request.device,
    )


def default_duration(name: ScenarioName, at: datetime) -> timedelta | None:
    """How long a scenario lasts unless told otherwise: long enough for its alert to fire.

    Inactivity must outlast the quiet period that applies: 4 h by day, 12 h across the
    night, so 5 h when that still ends by 21:00 and 13 h otherwise.
    """
    match name:
        case ScenarioName.FALL:
            return timedelta(hours=6)
        case ScenarioName.INACTIVITY:
            by_day = _DAY_QUIET + timedelta(hours=1)
            local = at.astimezone(TOWN_TZ)
            ends = local + by_day
            if (
                local.time() >= _DAY_START
                and ends.date() == local.date()
                and ends.time() <= _DAY_END
            ):
                return by_day
            return _NIGHT_QUIET + timedelta(hours=1)
        case ScenarioName.DOOR_OPEN_NIGHT:
            return timedelta(hours=1)
        case ScenarioName.DEVICE_OFFLINE:
            return timedelta(hours=2)
        case ScenarioName.BATTERY_LOW:
            return timedelta(days=1)
        case ScenarioName.FLAPPING:
            return timedelta(seconds=90)
        case ScenarioName.SOS | ScenarioName.MALFORMED:
            return None


def build_injection(
    name: ScenarioName,
    household: Household,
    at: datetime,
    rng: random.Random,
    *,
    duration: timedelta | None = None,
    device: str | None = None,
) -> Injection:
    """The scenario ``name`` in ``household`` at ``at`` (UTC).

    ``device`` picks the device for device_offline, battery_low and malformed (defaults:
    bedroom PIR, front door, hall PIR); ``duration`` overrides :func:`default_duration`.
    """
    at = at.astimezone(UTC)
    if duration is None:
        duration = default_duration(name, at)
    builder = _Builder(name, household, at, rng, duration)
    match name:
        case ScenarioName.SOS:
            return builder.sos()
        case ScenarioName.FALL:
            return builder.fall()
        case ScenarioName.INACTIVITY:
            return builder.inactivity()
        case ScenarioName.DOOR_OPEN_NIGHT:
            return builder.door_open_night()
        case ScenarioName.DEVICE_OFFLINE:
            return builder.device_offline(_pick(household, device, household.bedroom_motion))
        case ScenarioName.BATTERY_LOW:
            return builder.battery_low(_pick(household, device, household.door))
        case ScenarioName.FLAPPING:
            return builder.flapping()
        case ScenarioName.MALFORMED:
            return builder.malformed(_pick(household, device, household.hall_motion))


def _pick(household: Household, uid: str | None, default: SimDevice) -> SimDevice:
    return default if uid is None else household.by_uid(uid)


class _Builder:
    def __init__(
        self,
        name: ScenarioName,
        household: Household,
        at: datetime,
        rng: random.Random,
        duration: timedelta | None,
    ) -> None:
        self.name = name
        self.household = household
        self.at = at
        self.rng = rng
        self.duration = duration

    def event(
        self,
        device: SimDevice,
        at: datetime,
        kind: EventKind,
        *,
        state: bool | None = None,
        battery: int | None = None,
        raw: bytes | None = None,
        retain: bool = False,
    ) -> SimEvent:
        return SimEvent(
            at=at,
            household=self.household.key,
            device=device.uid,
            kind=kind,
            state=state,
            battery=battery if battery is not None else battery_level(device, at),
            link_quality=device.link_quality if device.protocol is Protocol.ZIGBEE2MQTT else None,
            activity=f"scenario:{self.name.value}",
            scenario=self.name.value,
            raw=raw,
            retain=retain,
        )

    def motion(self, at: datetime) -> list[SimEvent]:
        """The resident crossing the hall: occupancy on, and off again 70 s later."""
        hall = self.household.hall_motion
        return [
            self.event(hall, at, EventKind.MOTION, state=True),
            self.event(hall, at + timedelta(seconds=70), EventKind.MOTION, state=False),
        ]

    def truth(self, device: SimDevice | None, *, expected: str | None = None) -> GroundTruth:
        return GroundTruth(
            scenario=self.name,
            household=self.household.key,
            person=self.household.resident.name,
            device=device.uid if device else None,
            at=self.at,
            expected_alert=EXPECTED_ALERT[self.name] if expected is None else expected,
            duration=self.duration,
        )

    def silence(self, devices: Iterable[SimDevice], kinds: frozenset[EventKind]) -> Suppression:
        assert self.duration is not None  # every silencing scenario has a default duration
        return Suppression(
            household=self.household.key,
            devices=frozenset(d.uid for d in devices),
            kinds=kinds,
            start=self.at,
            end=self.at + self.duration,
        )

    # -- the scenarios -----------------------------------------------------------------------

    def sos(self) -> Injection:
        sos = self.household.sos
        events = [
            *self.motion(self.at - timedelta(seconds=90)),
            self.event(sos, self.at, EventKind.SOS),
        ]
        return Injection(self.truth(sos), tuple(events))

    def fall(self) -> Injection:
        # Moving about, the radar sees the fall, then nothing moves for the duration.
        fall = self.household.fall
        events = [
            *self.motion(self.at - timedelta(minutes=2)),
            self.event(fall, self.at, EventKind.FALL),
        ]
        quiet = self.silence(self.household.devices, _ACTIVITY_KINDS)
        return Injection(self.truth(fall), tuple(events), (quiet,))

    def inactivity(self) -> Injection:
        # No fall, no press: the resident simply stops moving about (ill in bed, or worse).
        quiet = self.silence(self.household.devices, _ACTIVITY_KINDS)
        return Injection(self.truth(None), (), (quiet,))

    def door_open_night(self) -> Injection:
        assert self.duration is not None
        door = self.household.door
        events = [
            *self.motion(self.at - timedelta(minutes=1)),
            self.event(door, self.at, EventKind.DOOR, state=True),
            self.event(door, self.at + self.duration, EventKind.DOOR, state=False),
        ]
        # The alert is only due when the door stands open long enough inside the night window.
        alarming = _in_night(self.at) and _in_night(self.at + _DOOR_OPEN_FOR)
        alarming = alarming and self.duration > _DOOR_OPEN_FOR
        expected = EXPECTED_ALERT[self.name] if alarming else None
        truth = replace(self.truth(door), expected_alert=expected)
        # The door's own routine opening and closing would shut it early.
        quiet = self.silence([door], frozenset({EventKind.DOOR}))
        return Injection(
            truth, tuple(events), (replace(quiet, end=quiet.end + timedelta(seconds=1)),)
        )

    def device_offline(self, device: SimDevice) -> Injection:
        assert self.duration is not None
        back = self.at + self.duration
        events = [
            self.event(device, self.at, EventKind.AVAILABILITY, state=False, retain=True),
            self.event(device, back, EventKind.AVAILABILITY, state=True, retain=True),
            self.event(device, back + timedelta(seconds=5), EventKind.HEARTBEAT),
        ]
        # Offline means nothing at all from the device: no reports, no heartbeats.
        quiet = self.silence([device], _ALL_KINDS)
        return Injection(self.truth(device), tuple(events), (quiet,))

    def battery_low(self, device: SimDevice) -> Injection:
        assert self.duration is not None
        if not device.battery_powered:
            raise ValueError(f"{device.uid} is mains powered: it has no battery to run low")
        level = self.rng.randint(5, _BATTERY_ALARM - 1)
        report = self.event(device, self.at, EventKind.HEARTBEAT, battery=level)
        cap = BatteryCap(device.uid, level, self.at, self.at + self.duration)
        return Injection(self.truth(device), (report,), battery_caps=(cap,))

    def flapping(self) -> Injection:
        # A loose magnet or a door banging in the wind: dozens of toggles a minute.
        assert self.duration is not None
        door = self.household.door
        events = []
        at = self.at
        opened = True
        end = self.at + self.duration
        while True:
            events.append(self.event(door, at, EventKind.DOOR, state=opened))
            if not opened and at >= end:  # stop once it is left closed
                break
            at += timedelta(seconds=self.rng.uniform(0.7, 2.0))
            opened = not opened
        quiet = self.silence([door], frozenset({EventKind.DOOR}))
        return Injection(
            self.truth(door), tuple(events), (replace(quiet, end=at + timedelta(seconds=1)),)
        )

    def malformed(self, device: SimDevice) -> Injection:
        payloads = _malformed_payloads(device)
        events = tuple(
            self.event(device, self.at + timedelta(seconds=i), EventKind.HEARTBEAT, raw=payload)
            for i, payload in enumerate(payloads)
        )
        return Injection(self.truth(device), events)


def _malformed_payloads(device: SimDevice) -> list[bytes]:
    """Broken payloads of every sort an ingest loop must survive and count."""
    oversize = b'{"padding":"' + b"x" * (MAX_PAYLOAD_BYTES + 4096) + b'"}'
    common = [
        b"not json at all",
        b'{"type":"motion","state":',  # truncated
        b"[1,2,3]",  # JSON, but not an object
        b'"online"',  # a bare JSON string
        b"\xff\xfe\x00\x01garbage",  # not UTF-8
        b"",
        oversize,
    ]
    if device.protocol is Protocol.NATIVE:
        typed = [
            b'{"type":"motion","state":"yes","battery":"full","ts":12345}',
            b'{"type":"teleport","state":true}',
            b'{"type":"door","state":"ajar"}',
            b'{"state":true}',  # no type
            b'{"type":"motion","state":true,"id":["not","a","string"]}',
        ]
    else:
        typed = [
            b'{"occupancy":"yes","battery":"full","linkquality":"strong"}',
            b'{"contact":"maybe"}',
            b'{"battery":"97%","linkquality":120}',
            b'{"occupancy":1}',
            b'{"action":42}',
        ]
    return common + typed


def _in_night(at: datetime) -> bool:
    local = at.astimezone(TOWN_TZ).time()
    return local >= _NIGHT_START or local < _NIGHT_END


def filter_event(event: SimEvent, injections: Iterable[Injection]) -> SimEvent | None:
    """``event`` as the scenarios let it happen: None if one silences it, battery capped."""
    kept: SimEvent | None = event
    for injection in injections:
        if kept is None:
            break
        kept = injection.filter(kept)
    return kept


def apply_injections(events: Iterable[SimEvent], injections: Sequence[Injection]) -> list[SimEvent]:
    """Routine ``events`` as they happen under ``injections``, with the injected events added.

    Time-ordered. The runner does the same incrementally while it publishes.
    """
    result = [kept for event in events if (kept := filter_event(event, injections))]
    for injection in injections:
        result.extend(injection.events)
    result.sort(key=lambda event: event.at)
    return result


def append_ground_truth(path: Path, truth: GroundTruth) -> None:
    """Append one JSON-lines record to ``path`` (flushed: a crash loses no record)."""
    with path.open("a", encoding="utf-8") as file:
        file.write(truth.to_json() + "\n")
