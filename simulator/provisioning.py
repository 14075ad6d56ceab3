"""The provisioning file (SPEC §4) of simulated homes, so that a demo or a test provisions
exactly the homes the simulator then publishes: :func:`provisioning_document` for the
households themselves, :func:`town_document` for the whole town's register (the demo),
:func:`write_provisioning` for the YAML file.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from gateway.register.vocabulary import CareLevel, Category, Gender, Protocol
from simulator.household import (
    TOWN,
    TOWN_DUTY,
    VILLAGES,
    Helper,
    Household,
    Topics,
    emergency_team,
    make_helper,
    seeded_random,
)
from simulator.identities import (
    FEMALE_GIVEN,
    HELPER_TITLES,
    MALE_GIVEN,
    SURNAMES,
    id_number_for,
    mobile_number,
    unique,
)

__all__ = ["provisioning_document", "town_document", "write_provisioning"]


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
            helper = make_helper(rng, village, rng.choice(HELPER_TITLES), used_phones)
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
    surname = rng.choice(SURNAMES)
    born = date(rng.randint(2011, 2019), 1, 1) + timedelta(days=rng.randrange(365))
    # Parents working in the cities or gone: the child lives with a grandparent.
    grandparent = surname + rng.choice(MALE_GIVEN + FEMALE_GIVEN)
    categories = [Category.CHILDREN_IN_DIFFICULTY]
    if rng.random() < 0.5:
        categories.append(Category.LEFT_BEHIND)
    return {
        "name": surname + rng.choice(_CHILD_GIVEN),
        "gender": gender.value,
        "id_number": unique(lambda: id_number_for(rng, born, gender), used_ids),
        "village": village,
        "categories": [c.value for c in categories],
        "care_level": CareLevel.SPECIAL.value,
        "measures": rng.choice(_CHILD_MEASURES),
        "guardian": {"name": grandparent, "phone": unique(lambda: mobile_number(rng), used_phones)},
        "notes": "祖辈监护，未安装看家设备",
        "address": unique(
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
    given = MALE_GIVEN if gender is Gender.MALE else FEMALE_GIVEN
    born = date(rng.randint(1965, 1992), 1, 1) + timedelta(days=rng.randrange(365))
    return {
        "name": rng.choice(SURNAMES) + rng.choice(given),
        "gender": gender.value,
        "id_number": unique(lambda: id_number_for(rng, born, gender), used_ids),
        "village": village,
        "categories": [category.value],
        "care_level": CareLevel.GENERAL.value,
        "measures": rng.choice(_ADULT_MEASURES),
        "phone": unique(lambda: mobile_number(rng), used_phones),
        "notes": "未安装看家设备",
        "address": unique(
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
