"""The notice's vocabularies: person categories, care levels, visit services, roles.

Codes are English (API, files); labels are the notice's Chinese wording (exports, SMS, UI).
"""

from __future__ import annotations

from enum import StrEnum

# Re-exported for the register's readers (the simulator, files): the devices own them.
from gateway.devices.vocabulary import DeviceKind, Protocol

__all__ = [
    "CATEGORY_LABELS",
    "SERVICE_LABELS",
    "CareLevel",
    "Category",
    "DeviceKind",
    "Gender",
    "Protocol",
    "Role",
    "Service",
]


class Category(StrEnum):
    """人员类别: the six groups of the notice (三、对象范围)."""

    DISPERSED_DESTITUTE = "dispersed_destitute"
    SEVERE_DISABILITY = "severe_disability"
    CHILDREN_IN_DIFFICULTY = "children_in_difficulty"
    MINIMUM_LIVING_ALLOWANCE = "minimum_living_allowance"
    RELAPSE_RISK_HOUSEHOLD = "relapse_risk_household"
    LEFT_BEHIND = "left_behind"


CATEGORY_LABELS: dict[Category, str] = {
    Category.DISPERSED_DESTITUTE: "分散供养特困人员",
    Category.SEVERE_DISABILITY: "一、二级残疾人（无义务人或能力不足）",
    Category.CHILDREN_IN_DIFFICULTY: "困境儿童",
    Category.MINIMUM_LIVING_ALLOWANCE: "低保对象（无义务人或能力不足）",
    Category.RELAPSE_RISK_HOUSEHOLD: "易返贫致贫户",
    Category.LEFT_BEHIND: "留守老人、留守儿童、留守妇女",
}


class CareLevel(StrEnum):
    """general: >= 2 visits a month; special (特别困难): >= 1 visit a week."""

    GENERAL = "general"
    SPECIAL = "special"


CARE_LEVEL_LABELS: dict[CareLevel, str] = {
    CareLevel.GENERAL: "一般关爱对象",
    CareLevel.SPECIAL: "特别困难关爱对象",
}


class Gender(StrEnum):
    MALE = "男"
    FEMALE = "女"


class Service(StrEnum):
    """The seven kinds of care work the notice lists (四、（四）1–7)."""

    DAILY_CARE = "daily_care"
    COMPANIONSHIP = "companionship"
    EMPLOYMENT = "employment"
    EMERGENCY_AID = "emergency_aid"
    HEALTH = "health"
    LEGAL_AID = "legal_aid"
    RECREATION = "recreation"


SERVICE_LABELS: dict[Service, str] = {
    Service.DAILY_CARE: "生活照料",
    Service.COMPANIONSHIP: "精神陪伴",
    Service.EMPLOYMENT: "就业创业指导",
    Service.EMERGENCY_AID: "应急救助",
    Service.HEALTH: "健康保健",
    Service.LEGAL_AID: "法律援助",
    Service.RECREATION: "文体活动",
}


class Role(StrEnum):
    TOWN_ADMIN = "town_admin"
    VILLAGE_OFFICER = "village_officer"
    HELPER = "helper"
