"""The provisioning file's records (SPEC §4) as the storage layer receives them, and the
problems that refuse a file. Pure data: no YAML, no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import RulesConfig
from gateway.devices.vocabulary import DeviceKind, Protocol
from gateway.register.vocabulary import (
    CareLevel,
    Category,
    Gender,
    Role,
)

__all__ = [
    "DeviceEntry",
    "DutyLine",
    "HelperSpec",
    "PersonSpec",
    "ProvisioningDoc",
    "ProvisioningError",
    "ProvisioningIssue",
    "TeamMemberSpec",
    "TeamRobotSpec",
    "UserSpec",
    "VillageSpec",
    "merge_rules",
]


# --- What the storage layer receives --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DutyLine:
    """The town's duty line (民政办值班): the last escalation step for every village."""

    name: str
    phone: str  # E.164


@dataclass(frozen=True, slots=True)
class TeamMemberSpec:
    """A member of a village's 应急救助志愿服务队."""

    name: str
    phone: str  # E.164
    role: str  # e.g. 队长; "" when not given


@dataclass(frozen=True, slots=True)
class TeamRobotSpec:
    """A village team's group robot (SPEC §11); URL and secret stay in the environment."""

    provider: str  # dingtalk | wecom
    url_env: str
    secret_env: str | None = None

    def as_json(self) -> dict[str, str]:
        stored = {"provider": self.provider, "url_env": self.url_env}
        if self.secret_env:
            stored["secret_env"] = self.secret_env
        return stored


@dataclass(frozen=True, slots=True)
class VillageSpec:
    """A village (村/居) and its emergency team, in file order."""

    name: str
    emergency_team: tuple[TeamMemberSpec, ...] = ()
    team_robot: TeamRobotSpec | None = None


@dataclass(frozen=True, slots=True)
class HelperSpec:
    """A 帮扶责任人. The phone is the helper's identity across files and in ``persons``."""

    name: str
    phone: str  # E.164
    title: str  # 职务, e.g. 村支书; "" when not given
    village: str


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A device in a person's home."""

    uid: str
    kind: DeviceKind
    protocol: Protocol
    #: Base MQTT topic as written in the file; None means "the protocol's default for this
    #: uid", which the gateway's device package fills in (it owns the configurable prefix).
    topic: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class PersonSpec:
    """A 关爱对象 with everything the 台账 and the rules need."""

    name: str
    gender: Gender
    id_number: str  # 18 characters, check character upper-case
    village: str
    categories: tuple[Category, ...]  # at least one, no repeats, in file order
    care_level: CareLevel
    helper_phone: str  # E.164, always one of ProvisioningDoc.helpers
    measures: str = ""  # 帮扶措施
    phone: str | None = None  # E.164
    notes: str = ""
    address: str = ""
    guardian_name: str | None = None  # 监护人/赡养人
    guardian_phone: str | None = None  # E.164
    #: The person's ``rules:`` section as written (already validated against RulesConfig);
    #: empty when the person follows the gateway's rules. Kept raw rather than merged so
    #: that a later change of the gateway-wide rules still reaches this person.
    rules_override: dict[str, Any] = field(default_factory=dict, hash=False)
    devices: tuple[DeviceEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class UserSpec:
    """A dashboard/API login. ``password`` is None when the file names no ``password_env``."""

    username: str
    role: Role
    village: str | None = None  # village_officer only
    phone: str | None = None  # E.164; a helper user's phone is a helper's phone
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ProvisioningDoc:
    """A whole, valid provisioning file."""

    town: str
    town_duty: DutyLine
    villages: tuple[VillageSpec, ...] = ()
    helpers: tuple[HelperSpec, ...] = ()
    persons: tuple[PersonSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class ProvisioningIssue:
    """One problem in the file: where (1-based line, record path) and what."""

    line: int
    path: str
    message: str

    def format(self, source: str) -> str:
        """``FILE:LINE: path: message``, the shape editors and CI logs link to."""
        if self.path:
            return f"{source}:{self.line}: {self.path}: {self.message}"
        return f"{source}:{self.line}: {self.message}"


class ProvisioningError(ValueError):
    """The file is refused; ``errors`` lists every problem found, ordered by line."""

    def __init__(self, errors: list[ProvisioningIssue], source: str = "<input>") -> None:
        self.errors = errors
        self.source = source
        super().__init__("\n".join(issue.format(source) for issue in errors))


def merge_rules(defaults: RulesConfig, override: Mapping[str, Any]) -> RulesConfig:
    """A person's effective rules: ``override`` deep-merged over ``defaults``.

    ``defaults`` is normally ``Settings.rules`` (which may differ from the built-in
    defaults the override was checked against when the file was provisioned).
    """
    # Python mode, not JSON: config's time-of-day parser takes time objects but not the
    # "HH:MM:SS" strings that JSON mode would produce.
    merged = _deep_merge(defaults.model_dump(), override)
    return RulesConfig.model_validate(merged)


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(below, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(below, value)
        else:
            merged[key] = value
    return merged


# --- Vocabulary accepted in the file ---------------------------------------------------------
