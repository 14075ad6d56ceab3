"""Simulated homes: residents of 隘口镇, their helpers, and the sensors in their houses.

Everything here is generated from one ``random.Random(seed)``, so the same seed gives the
same people, the same device uids and the same habits, run after run. That is what lets a
demo or a test provision exactly the homes that the simulator then publishes
(:func:`write_provisioning`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from gateway.register.idnumber import check_digit
from gateway.register.vocabulary import CareLevel, Category, DeviceKind, Gender, Protocol

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
    "provisioning_document",
    "seeded_random",
    "town_document",
    "with_protocol",
    "write_provisioning",
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

# 秀山土家族苗族自治县: the first six digits of residents' ID numbers.
_REGION_CODE = "500241"

# Surnames common among the Tujia, Miao and Han families of 秀山, roughly by frequency.
_SURNAMES = (
    "杨杨杨吴吴吴龙龙田田彭彭向向白石王王李李张张刘陈冉胡周罗黄姚滕"  # weighted by repetition
)
# fmt: off
_MALE_GIVEN = (
    "德明", "国华", "光荣", "世清", "宗富", "永福", "正发", "昌友", "成林", "家贵", "启明", "建国",
    "树清", "文才", "开银", "仕奎", "泽民", "绍华", "金山", "明亮", "清和", "光辉", "再兴",
)
_FEMALE_GIVEN = (
    "秀英", "桂英", "玉兰", "翠华", "淑芬", "凤英", "春花", "兰芝", "素珍", "秀珍", "桂兰", "玉珍",
    "菊花", "银花", "金秀", "月娥", "素芳", "秀兰", "碧云", "德秀", "明英", "仙桃",
)
_HELPER_GIVEN = (
    "海军", "晓燕", "建华", "丽娟", "勇", "静", "小平", "红梅", "志刚", "春燕", "文军", "艳",
    "飞", "兴旺", "丽", "长江",
)
_HELPER_TITLES = (
    "村支书", "村主任", "村综治专干", "网格员", "驻村工作队员", "村妇联主席",
)
_TEAM_GIVEN = (
    "大勇", "正权", "光明", "小军", "代兵", "云", "国强", "永红", "林", "德胜", "春林", "晓东",
)
# Mobile prefixes of the three carriers. 199 is left out on purpose: emergency-team numbers
# are built from it (see emergency_team) so that they can never collide with random ones.
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
    "156", "157", "158", "159", "177", "180", "181", "182", "183", "186", "187", "188", "189",
)
# fmt: on

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
                _make_helper(rng, village, title, used_phones)
                for title in rng.sample(_HELPER_TITLES, 2)
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
    given = _MALE_GIVEN if gender is Gender.MALE else _FEMALE_GIVEN
    name = rng.choice(_SURNAMES) + rng.choice(given)
    # Mostly elderly (born 1935-1960); some younger severely disabled or low-income adults.
    younger = rng.random() < 0.1
    year = rng.randint(1961, 1975) if younger else rng.randint(1935, 1960)
    born = date(year, 1, 1) + timedelta(days=rng.randrange(365))
    id_number = _unique(lambda: _id_number(rng, born, gender), used_ids)
    address = _unique(
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
        phone=_unique(lambda: _mobile(rng), used_phones),
        address=address,
        categories=tuple(categories),
        care_level=care_level,
        measures=measures,
    )


def _make_helper(rng: random.Random, village: str, title: str, used_phones: set[str]) -> Helper:
    return Helper(
        name=rng.choice(_SURNAMES) + rng.choice(_HELPER_GIVEN),
        phone=_unique(lambda: _mobile(rng), used_phones),
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


def _id_number(rng: random.Random, born: date, gender: Gender) -> str:
    # Digits 15-17 are the sequence code; the 17th is odd for men and even for women.
    gender_digit = rng.choice("13579" if gender is Gender.MALE else "02468")
    first17 = f"{_REGION_CODE}{born:%Y%m%d}{rng.randint(0, 99):02d}{gender_digit}"
    return first17 + check_digit(first17)


def _mobile(rng: random.Random) -> str:
    return f"+86{rng.choice(_MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}"


def seeded_random(*parts: object) -> random.Random:
    """A generator seeded from ``parts`` (joined with ``:``), the same in every run.

    String seeds go through SHA-512 in :class:`random.Random`, so they do not depend on
    ``PYTHONHASHSEED``. Reproducible simulation, not secrets: hence no ``secrets`` here.
    """
    return random.Random(":".join(str(part) for part in parts))  # noqa: S311


def _unique(make: Callable[[], str], used: set[str]) -> str:
    while True:
        value = make()
        if value not in used:
            used.add(value)
            return value


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
            name=rng.choice(_SURNAMES) + rng.choice(_TEAM_GIVEN),
            phone=f"+86199{number:02d}76{member:04d}",
            role="队长" if member == 0 else "队员",
        )
        for member in range(3)
    )


# --- Provisioning file (SPEC §4) ------------------------------------------------------------


def provisioning_document(
    households: Sequence[Household], *, topics: Topics | None = None
) -> dict[str, Any]:
    """The SPEC §4 provisioning document for ``households``, as plain data."""
    topics = topics or Topics()
    villages = _ordered(h.village for h in households)
    helpers: dict[str, Helper] = {}
    for household in households:
        helpers.setdefault(household.helper.phone, household.helper)
    return {
        "town": TOWN,
        "town_duty": {"name": TOWN_DUTY[0], "phone": TOWN_DUTY[1]},
        "villages": [
            {
                "name": village,
                "emergency_team": [
                    {"name": m.name, "phone": m.phone, "role": m.role}
                    for m in emergency_team(village)
                ],
            }
            for village in villages
        ],
        "helpers": [
            {"name": h.name, "phone": h.phone, "title": h.title, "village": h.village}
            for h in helpers.values()
        ],
        "persons": [_person_entry(h, topics) for h in households],
    }


def _person_entry(household: Household, topics: Topics) -> dict[str, Any]:
    resident = household.resident
    devices = []
    for device in household.devices:
        entry: dict[str, Any] = {
            "uid": device.uid,
            "kind": device.kind.value,
            "protocol": device.protocol.value,
            "topic": topics.base(device),
        }
        if device.protocol is Protocol.ZIGBEE2MQTT and device.model:
            entry["model"] = device.model
        devices.append(entry)
    return {
        "name": resident.name,
        "gender": resident.gender.value,
        "id_number": resident.id_number,
        "village": household.village,
        "categories": [c.value for c in resident.categories],
        "care_level": resident.care_level.value,
        "helper": household.helper.phone,
        "measures": resident.measures,
        "phone": resident.phone,
        "notes": f"模拟住户 {household.key}",
        "address": resident.address,
        "devices": devices,
    }


# --- The whole town's register (the demo) ---------------------------------------------------

# Children in difficulty (the notice's category 3) and left-behind women are in the 台账 but
# live with a guardian or family, so they get no sensors; the demo lists them to show all six
# categories. The second register-only person of each village cycles through these.
_REGISTER_ONLY_CATEGORIES = (
    Category.LEFT_BEHIND,
    Category.SEVERE_DISABILITY,
    Category.RELAPSE_RISK_HOUSEHOLD,
    Category.MINIMUM_LIVING_ALLOWANCE,
    Category.DISPERSED_DESTITUTE,
)
_CHILD_GIVEN = ("小雨", "思琪", "浩然", "子涵", "欣怡", "宇航", "梓萱", "俊杰", "雨萱", "明轩")
_CHILD_MEASURES = (
    "每周上门一次，督促监护人履责，辅导作业",
    "每周上门一次，联系学校心理疏导",
    "每周上门一次，落实助学金和营养餐",
)
_ADULT_MEASURES = (
    "每月上门两次，宣传就业政策，推荐技能培训",
    "每月上门两次，协助申请临时救助",
    "每月上门两次，联系卫生院上门随访",
)


def town_document(
    households: Sequence[Household],
    *,
    topics: Topics | None = None,
    seed: int = 0,
    register_only_per_village: int = 2,
) -> dict[str, Any]:
    """The provisioning document of the whole town: every village of :data:`VILLAGES` with
    its emergency team and helpers, the simulated ``households`` (with their devices), and
    ``register_only_per_village`` persons per village who are in the register without
    sensors: a 困境儿童 with a guardian, then persons of the other categories in turn.

    Deterministic for a given ``seed`` and ``households``; new phones and ID numbers never
    collide with the households' own.
    """
    document = provisioning_document(households, topics=topics)
    rng = seeded_random(seed, "town")
    used_phones = {h.resident.phone for h in households} | {h.helper.phone for h in households}
    used_ids = {h.resident.id_number for h in households}
    used_addresses = {h.resident.address for h in households}
    helpers_by_village: dict[str, list[str]] = {}
    for helper in document["helpers"]:
        helpers_by_village.setdefault(helper["village"], []).append(helper["phone"])
    named = {village["name"] for village in document["villages"]}
    for village, _code in VILLAGES:
        if village not in named:
            document["villages"].append(
                {
                    "name": village,
                    "emergency_team": [
                        {"name": m.name, "phone": m.phone, "role": m.role}
                        for m in emergency_team(village)
                    ],
                }
            )
        if village not in helpers_by_village:
            helper = _make_helper(rng, village, rng.choice(_HELPER_TITLES), used_phones)
            document["helpers"].append(
                {
                    "name": helper.name,
                    "phone": helper.phone,
                    "title": helper.title,
                    "village": village,
                }
            )
            helpers_by_village[village] = [helper.phone]
    cycle = itertools.cycle(_REGISTER_ONLY_CATEGORIES)
    for village, _code in VILLAGES:
        for number in range(register_only_per_village):
            helper_phone = rng.choice(helpers_by_village[village])
            if number == 0:
                person = _child_entry(rng, village, used_ids, used_phones, used_addresses)
            else:
                person = _adult_entry(
                    rng, village, next(cycle), used_ids, used_phones, used_addresses
                )
            document["persons"].append(person | {"helper": helper_phone})
    return document


def _child_entry(
    rng: random.Random,
    village: str,
    used_ids: set[str],
    used_phones: set[str],
    used_addresses: set[str],
) -> dict[str, Any]:
    gender = rng.choice((Gender.MALE, Gender.FEMALE))
    surname = rng.choice(_SURNAMES)
    born = date(rng.randint(2011, 2019), 1, 1) + timedelta(days=rng.randrange(365))
    # Parents working in the cities or gone: the child lives with a grandparent.
    grandparent = surname + rng.choice(_MALE_GIVEN + _FEMALE_GIVEN)
    categories = [Category.CHILDREN_IN_DIFFICULTY]
    if rng.random() < 0.5:
        categories.append(Category.LEFT_BEHIND)
    return {
        "name": surname + rng.choice(_CHILD_GIVEN),
        "gender": gender.value,
        "id_number": _unique(lambda: _id_number(rng, born, gender), used_ids),
        "village": village,
        "categories": [c.value for c in categories],
        "care_level": CareLevel.SPECIAL.value,
        "measures": rng.choice(_CHILD_MEASURES),
        "guardian": {"name": grandparent, "phone": _unique(lambda: _mobile(rng), used_phones)},
        "notes": "祖辈监护，未安装看家设备",
        "address": _unique(
            lambda: f"{village}{rng.randint(1, 9)}组{rng.randint(1, 60)}号", used_addresses
        ),
    }


def _adult_entry(
    rng: random.Random,
    village: str,
    category: Category,
    used_ids: set[str],
    used_phones: set[str],
    used_addresses: set[str],
) -> dict[str, Any]:
    # A left-behind adult here is a 留守妇女; the others are working-age residents.
    gender = (
        Gender.FEMALE
        if category is Category.LEFT_BEHIND
        else rng.choice((Gender.MALE, Gender.FEMALE))
    )
    given = _MALE_GIVEN if gender is Gender.MALE else _FEMALE_GIVEN
    born = date(rng.randint(1965, 1992), 1, 1) + timedelta(days=rng.randrange(365))
    return {
        "name": rng.choice(_SURNAMES) + rng.choice(given),
        "gender": gender.value,
        "id_number": _unique(lambda: _id_number(rng, born, gender), used_ids),
        "village": village,
        "categories": [category.value],
        "care_level": CareLevel.GENERAL.value,
        "measures": rng.choice(_ADULT_MEASURES),
        "phone": _unique(lambda: _mobile(rng), used_phones),
        "notes": "未安装看家设备",
        "address": _unique(
            lambda: f"{village}{rng.randint(1, 9)}组{rng.randint(1, 60)}号", used_addresses
        ),
    }


def write_provisioning(
    households: Sequence[Household],
    path: Path | str,
    *,
    topic_prefix: str = "homewatch",
    z2m_base: str = "zigbee2mqtt",
) -> None:
    """Write a provisioning YAML (SPEC §4) for exactly these households.

    Every device carries an explicit ``topic`` built from ``topic_prefix`` (native) or
    ``z2m_base`` (zigbee2mqtt), which must be the ones the simulator publishes under.
    """
    document = provisioning_document(
        households, topics=Topics(native_prefix=topic_prefix, z2m_base=z2m_base)
    )
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=120)
    header = "# Generated by the Homewatch simulator (homewatch simulate --write-provisioning).\n"
    Path(path).write_text(header + text, encoding="utf-8")


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
