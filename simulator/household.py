"""Simulated homes: residents of 隘口镇, their helpers, and the sensors in their houses.

Everything here is generated from one ``random.Random(seed)``, so the same seed gives the
same people, the same device uids and the same habits, run after run. That is what lets a
demo or a test provision exactly the homes that the simulator then publishes
(:mod:`simulator.provisioning`). Names, ID numbers and phones come from
:mod:`simulator.identities`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum
from typing import Literal, get_args

from gateway.register.vocabulary import CareLevel, Category, DeviceKind, Gender, Protocol
from simulator.identities import (
    FEMALE_GIVEN,
    HELPER_GIVEN,
    HELPER_TITLES,
    MALE_GIVEN,
    SURNAMES,
    TEAM_GIVEN,
    id_number_for,
    mobile_number,
    unique,
)

__all__ = [
    "HOUSEHOLD_PROTOCOLS",
    "TOWN",
    "TOWN_DUTY",
    "VILLAGES",
    "Habits",
    "Helper",
    "Household",
    "HouseholdProtocol",
    "Resident",
    "Room",
    "SimDevice",
    "TeamMember",
    "Topics",
    "emergency_team",
    "generate_households",
    "make_helper",
    "seeded_random",
    "with_protocol",
]

TOWN = "隘口镇"
#: The town's duty line (民政办值班): a 秀山 landline (023-76xxxxxx), E.164.
TOWN_DUTY: tuple[str, str] = ("民政办值班", "+862376000000")

#: Villages of the town, pilot village first, with the short code used in device uids.
VILLAGES: tuple[tuple[str, str], ...] = (
    ("坝芒村", "bm"),
    ("隘口村", "ak"),
    ("富裕村", "fy"),
    ("东林村", "dl"),
    ("新院村", "xy"),
    ("平所村", "ps"),
    ("太阳山村", "tys"),
    ("岑龙村", "cl"),
    ("百岁村", "bs"),
)

#: Households per village before the next village is filled: a pilot village's list of
#: special-difficulty persons is about this long.
HOUSEHOLDS_PER_VILLAGE = 10

HouseholdProtocol = Literal["native", "zigbee2mqtt", "mixed"]
HOUSEHOLD_PROTOCOLS: tuple[HouseholdProtocol, ...] = get_args(HouseholdProtocol)


_MEASURES_SPECIAL = (
    "每周上门一次，代购生活用品",
    "每周上门一次，协助就医取药",
    "每周上门一次，帮助打扫卫生",
)
_MEASURES_GENERAL = (
    "每月上门两次，电话问候",
    "每月上门两次，协助办理补贴",
    "每月上门两次，陪同赶集",
)


class Room(StrEnum):
    """Where in the house a sensor hangs."""

    HALL = "hall"  # 堂屋 and the kitchen next to it: where the day is spent
    BEDROOM = "bedroom"
    FRONT_DOOR = "front_door"
    PENDANT = "pendant"  # worn or hung by the bed: the SOS button


@dataclass(frozen=True, slots=True)
class Topics:
    """MQTT topic roots; tests pass their own to stay apart on a shared broker.

    A native device's base topic is ``<native_prefix>/<uid>`` (events on ``…/event``,
    availability on ``…/status``); a zigbee2mqtt device's is ``<z2m_base>/<uid>`` (state on
    the base topic, availability on ``…/availability``).
    """

    native_prefix: str = "homewatch"
    z2m_base: str = "zigbee2mqtt"

    def base(self, device: SimDevice) -> str:
        """The device's topic as written in the provisioning file."""
        root = self.native_prefix if device.protocol is Protocol.NATIVE else self.z2m_base
        return f"{root}/{device.uid}"

    def state(self, device: SimDevice) -> str:
        """Where the device's events / state reports go."""
        base = self.base(device)
        return f"{base}/event" if device.protocol is Protocol.NATIVE else base

    def availability(self, device: SimDevice) -> str:
        """Where the device's retained online/offline goes (the last will, for native)."""
        suffix = "status" if device.protocol is Protocol.NATIVE else "availability"
        return f"{self.base(device)}/{suffix}"


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One sensor. ``protocol`` is native or zigbee2mqtt; ``model`` is the z2m model id."""

    uid: str
    kind: DeviceKind
    protocol: Protocol
    room: Room
    model: str | None
    battery_powered: bool
    #: Battery level right after the yearly battery change at the helper's annual check.
    battery_full: int
    #: Percent lost per day: coin cells last a year or two, so this is small.
    drain_per_day: float
    #: Day of the year on which the battery is changed; spreads changes over the year.
    battery_change_day: int
    #: Typical zigbee link quality (0-255); per-message noise is added around it.
    link_quality: int
    #: Seconds between periodic reports (native heartbeat, zigbee battery/state report).
    report_period_s: int
    #: Offset of the periodic reports within their period, so homes do not report in step.
    report_phase_s: int


@dataclass(frozen=True, slots=True)
class Resident:
    """The 关爱对象 living in the household."""

    name: str
    gender: Gender
    id_number: str
    birth_date: date
    phone: str
    address: str
    categories: tuple[Category, ...]
    care_level: CareLevel
    measures: str


@dataclass(frozen=True, slots=True)
class Helper:
    """A 帮扶责任人 (village cadre) responsible for the resident."""

    name: str
    phone: str
    title: str
    village: str


@dataclass(frozen=True, slots=True)
class TeamMember:
    """A member of a village's 应急救助志愿服务队."""

    name: str
    phone: str
    role: str


@dataclass(frozen=True, slots=True)
class Habits:
    """Per-person routine parameters; the daily routine draws around these.

    Times are minutes after local midnight (Asia/Shanghai).
    """

    wake_minute: float  # usual wake time, 5:45-6:45
    bed_minute: float  # usual bedtime, 20:15-21:15
    morning_outing_prob: float  # to the fields, the market or a neighbour
    afternoon_outing_prob: float
    nap_prob: float
    night_trip_prob: float  # getting up for the toilet between 1 and 4 am
    overnight_visit_prob: float  # per day: sleeping at a daughter's in town; 0 when none
    check_in_prob: float  # per day: pressing "I am fine" on a native pendant
    yard_trip_prob: float  # per hour at home: out to the yard (chickens, firewood) and back


@dataclass(frozen=True, slots=True)
class Household:
    """A resident's home: the person, their helper, their devices and their habits."""

    key: str  # "bm-001": village code and number, the prefix of every device uid
    village: str
    resident: Resident
    helper: Helper
    devices: tuple[SimDevice, ...]
    protocol: HouseholdProtocol
    habits: Habits
    #: Seed of everything random that is derived later (daily routines, away nights).
    seed: int

    def device(self, kind: DeviceKind, room: Room | None = None) -> SimDevice:
        """The household's device of ``kind`` (and ``room`` where there are several)."""
        for device in self.devices:
            if device.kind is kind and (room is None or device.room is room):
                return device
        raise KeyError(f"{self.key} has no {kind} device" + (f" in {room}" if room else ""))

    def by_uid(self, uid: str) -> SimDevice:
        """The household's device with ``uid``."""
        for device in self.devices:
            if device.uid == uid:
                return device
        raise KeyError(f"{self.key} has no device {uid}")

    @property
    def sos(self) -> SimDevice:
        return self.device(DeviceKind.SOS)

    @property
    def fall(self) -> SimDevice:
        return self.device(DeviceKind.FALL)

    @property
    def door(self) -> SimDevice:
        return self.device(DeviceKind.DOOR)

    @property
    def hall_motion(self) -> SimDevice:
        return self.device(DeviceKind.MOTION, Room.HALL)

    @property
    def bedroom_motion(self) -> SimDevice:
        return self.device(DeviceKind.MOTION, Room.BEDROOM)


# --- Generation -----------------------------------------------------------------------------

# (kind, room, uid suffix, zigbee2mqtt model, battery powered, report period in seconds).
# Models are common Chinese-market devices that zigbee2mqtt supports: Tuya SOS button,
# Tuya mmWave radar with fall detection (mains powered), Aqara PIR (reports every ~50 min),
# Sonoff door contact. A native device keeps the same period for its heartbeat (SPEC: about
# hourly), so switching a home's protocol changes its payloads, not its timing.
_DEVICE_PLAN: tuple[tuple[DeviceKind, Room, str, str, bool, int], ...] = (
    (DeviceKind.SOS, Room.PENDANT, "sos", "TS0215A_sos", True, 3600),
    (DeviceKind.FALL, Room.BEDROOM, "fall", "MIR-HE200-TY", False, 3600),
    (DeviceKind.MOTION, Room.HALL, "pir-hall", "RTCGQ11LM", True, 3000),
    (DeviceKind.MOTION, Room.BEDROOM, "pir-bed", "RTCGQ11LM", True, 3000),
    (DeviceKind.DOOR, Room.FRONT_DOOR, "door", "SNZB-04", True, 3600),
)
# In a mixed home the SOS pendant and the fall radar are native (4G/Wi-Fi devices with
# their own firmware) and the room sensors hang off a zigbee coordinator.
_MIXED_NATIVE_KINDS = frozenset({DeviceKind.SOS, DeviceKind.FALL})


def generate_households(
    count: int,
    *,
    seed: int = 0,
    protocol: HouseholdProtocol = "native",
    per_village: int = HOUSEHOLDS_PER_VILLAGE,
) -> list[Household]:
    """``count`` households, filling 坝芒村 first, then the next villages in turn.

    Deterministic for a given ``seed``: names, ID numbers, phones, device uids
    (``bm-001-sos``, …) and habits. ``protocol`` ``mixed`` gives each home native,
    zigbee2mqtt or a mix of both, chosen per home from the seed.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if per_village < 1:
        raise ValueError("per_village must be at least 1")
    if protocol not in HOUSEHOLD_PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(HOUSEHOLD_PROTOCOLS)}")
    rng = seeded_random(seed)
    used_phones: set[str] = set()
    used_ids: set[str] = set()
    used_addresses: set[str] = set()
    helpers: dict[str, list[Helper]] = {}
    numbers: dict[str, int] = {}
    households: list[Household] = []
    for index in range(count):
        village, code = VILLAGES[(index // per_village) % len(VILLAGES)]
        numbers[village] = numbers.get(village, 0) + 1
        key = f"{code}-{numbers[village]:03d}"
        if village not in helpers:
            helpers[village] = [
                make_helper(rng, village, title, used_phones)
                for title in rng.sample(HELPER_TITLES, 2)
            ]
        resident = _make_resident(rng, village, used_phones, used_ids, used_addresses)
        household = Household(
            key=key,
            village=village,
            resident=resident,
            helper=rng.choice(helpers[village]),
            devices=_make_devices(rng, key),
            protocol="native",
            habits=_make_habits(rng),
            seed=rng.getrandbits(32),
        )
        households.append(with_protocol(household, protocol))
    return households


def with_protocol(household: Household, protocol: HouseholdProtocol) -> Household:
    """The household with its devices speaking ``protocol``.

    ``mixed`` resolves, from the household's own seed, to native, zigbee2mqtt or a home
    with a native pendant and radar beside zigbee room sensors; so the same household
    always gets the same answer.
    """
    if protocol == "mixed":
        protocol = seeded_random(household.seed, "protocol").choice(HOUSEHOLD_PROTOCOLS)
    devices = tuple(
        replace(device, protocol=_device_protocol(device.kind, protocol))
        for device in household.devices
    )
    return replace(household, devices=devices, protocol=protocol)


def _device_protocol(kind: DeviceKind, protocol: HouseholdProtocol) -> Protocol:
    if protocol == "native" or (protocol == "mixed" and kind in _MIXED_NATIVE_KINDS):
        return Protocol.NATIVE
    return Protocol.ZIGBEE2MQTT


def _make_devices(rng: random.Random, key: str) -> tuple[SimDevice, ...]:
    devices = []
    for kind, room, suffix, model, battery_powered, report_period in _DEVICE_PLAN:
        devices.append(
            SimDevice(
                uid=f"{key}-{suffix}",
                kind=kind,
                protocol=Protocol.NATIVE,  # set by with_protocol
                room=room,
                model=model,
                battery_powered=battery_powered,
                battery_full=rng.randint(90, 100) if battery_powered else 100,
                # At most 0.15 %/day: a full year leaves >= 35 %, well above the 15 % alarm,
                # so only the battery_low scenario raises that alert.
                drain_per_day=round(rng.uniform(0.05, 0.15), 3) if battery_powered else 0.0,
                battery_change_day=rng.randrange(365),
                link_quality=rng.randint(60, 200),
                report_period_s=report_period,
                report_phase_s=rng.randrange(report_period),
            )
        )
    return tuple(devices)


def _make_resident(
    rng: random.Random,
    village: str,
    used_phones: set[str],
    used_ids: set[str],
    used_addresses: set[str],
) -> Resident:
    gender = rng.choice((Gender.MALE, Gender.FEMALE))
    given = MALE_GIVEN if gender is Gender.MALE else FEMALE_GIVEN
    name = rng.choice(SURNAMES) + rng.choice(given)
    # Mostly elderly (born 1935-1960); some younger severely disabled or low-income adults.
    younger = rng.random() < 0.1
    year = rng.randint(1961, 1975) if younger else rng.randint(1935, 1960)
    born = date(year, 1, 1) + timedelta(days=rng.randrange(365))
    id_number = unique(lambda: id_number_for(rng, born, gender), used_ids)
    address = unique(
        lambda: f"{village}{rng.randint(1, 9)}组{rng.randint(1, 60)}号", used_addresses
    )
    if younger:
        main = rng.choice((Category.SEVERE_DISABILITY, Category.MINIMUM_LIVING_ALLOWANCE))
    else:
        # children_in_difficulty is one of the six, but these homes are elderly residents'.
        main = rng.choices(
            (
                Category.LEFT_BEHIND,
                Category.DISPERSED_DESTITUTE,
                Category.MINIMUM_LIVING_ALLOWANCE,
                Category.SEVERE_DISABILITY,
                Category.RELAPSE_RISK_HOUSEHOLD,
            ),
            weights=(40, 20, 20, 10, 10),
        )[0]
    categories = [main]
    if rng.random() < 0.2:  # e.g. a destitute resident who also holds a disability card
        extra = rng.choice(
            [c for c in Category if c not in (main, Category.CHILDREN_IN_DIFFICULTY)]
        )
        categories.append(extra)
    care_level = CareLevel.SPECIAL if rng.random() < 0.3 else CareLevel.GENERAL
    measures = rng.choice(
        _MEASURES_SPECIAL if care_level is CareLevel.SPECIAL else _MEASURES_GENERAL
    )
    return Resident(
        name=name,
        gender=gender,
        id_number=id_number,
        birth_date=born,
        phone=unique(lambda: mobile_number(rng), used_phones),
        address=address,
        categories=tuple(categories),
        care_level=care_level,
        measures=measures,
    )


def make_helper(rng: random.Random, village: str, title: str, used_phones: set[str]) -> Helper:
    """A helper of ``village`` with a phone not yet in ``used_phones`` (then added)."""
    return Helper(
        name=rng.choice(SURNAMES) + rng.choice(HELPER_GIVEN),
        phone=unique(lambda: mobile_number(rng), used_phones),
        title=title,
        village=village,
    )


def _make_habits(rng: random.Random) -> Habits:
    has_daughter_in_town = rng.random() < 0.4
    return Habits(
        wake_minute=rng.uniform(5 * 60 + 45, 6 * 60 + 45),
        bed_minute=rng.uniform(20 * 60 + 15, 21 * 60 + 15),
        morning_outing_prob=rng.uniform(0.4, 0.9),
        afternoon_outing_prob=rng.uniform(0.2, 0.6),
        nap_prob=rng.uniform(0.6, 0.95),
        night_trip_prob=rng.uniform(0.3, 0.8),
        overnight_visit_prob=rng.uniform(0.03, 0.08) if has_daughter_in_town else 0.0,
        check_in_prob=rng.uniform(0.0, 0.5),
        yard_trip_prob=rng.uniform(0.1, 0.4),
    )


def seeded_random(*parts: object) -> random.Random:
    """A generator seeded from ``parts`` (joined with ``:``), the same in every run.

    String seeds go through SHA-512 in :class:`random.Random`, so they do not depend on
    ``PYTHONHASHSEED``. Reproducible simulation, not secrets: hence no ``secrets`` here.
    """
    return random.Random(":".join(str(part) for part in parts))  # noqa: S311


def emergency_team(village: str) -> tuple[TeamMember, ...]:
    """The village's 应急救助志愿服务队: a leader and two members.

    Derived from the village alone (not from a household seed) so that every simulated run
    and every provisioning file agree on it. Phones use the 199 range, which random
    resident and helper numbers never do.
    """
    number = next(i for i, (name, _) in enumerate(VILLAGES) if name == village)
    rng = seeded_random("team", village)
    return tuple(
        TeamMember(
            name=rng.choice(SURNAMES) + rng.choice(TEAM_GIVEN),
            phone=f"+86199{number:02d}76{member:04d}",
            role="队长" if member == 0 else "队员",
        )
        for member in range(3)
    )
