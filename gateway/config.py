"""Configuration (SPEC §2): an optional YAML file, overridden by ``HOMEWATCH_*`` variables.

One pydantic model per concern, unknown keys refused, thresholds as data.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.crypto import Keyring, keyring_for

__all__ = [
    "AliyunConfig",
    "ChannelsConfig",
    "ConfigError",
    "DigestConfig",
    "Duration",
    "EscalationConfig",
    "EscalationStep",
    "LearnedRoutine",
    "OutboxConfig",
    "RulesConfig",
    "Settings",
    "load_settings",
    "parse_duration",
    "unknown_environment",
]

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
#: A bare number is seconds, in an environment variable (always text) as in YAML.
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*$")
_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "changethis", "please-change"}


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names the setting."""


def parse_duration(value: object) -> timedelta:
    """Parse ``90s``, ``5m``, ``4h``, ``2d``, ISO 8601 ``PT4H`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    seconds = _SECONDS.match(value)
    if seconds:
        return timedelta(seconds=float(seconds.group(1)))
    match = _DURATION.match(value)
    if match:
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    iso = _ISO_DURATION.match(value.strip().upper())
    if iso and any(iso.groupdict().values()):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        return timedelta(
            days=parts.get("d", 0),
            hours=parts.get("h", 0),
            minutes=parts.get("m", 0),
            seconds=parts.get("s", 0),
        )
    raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 5m, 4h, 2d or PT4H)")


def _parse_clock_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hour, minute = (int(p) for p in value.strip().split(":"))
        if hour == 24 and minute == 0:
            return time(0, 0)
        return time(hour, minute)
    raise ValueError(f"not a time of day: {value!r} (write HH:MM)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ClockTime = Annotated[time, BeforeValidator(_parse_clock_time)]


def _protocol_text(value: object) -> object:
    # YAML reads `mqtt_protocol: 5` as a number, the environment gives the text "5".
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


MqttProtocol = Annotated[Literal["5", "3.1.1"], BeforeValidator(_protocol_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DayWindow(_Strict):
    start: ClockTime = time(6, 0)
    end: ClockTime = time(21, 0)
    quiet: Duration = timedelta(hours=4)


class NightWindow(_Strict):
    quiet: Duration = timedelta(hours=12)


class LearnedRoutine(_Strict):
    """Learned routines (``rules.inactivity.learned``): each home's own quiet periods by
    time of day replace the fixed windows once ``min_days`` of history exist. See
    :mod:`gateway.rules.routine` and docs/DETECTION.md."""

    enabled: bool = False
    #: Never alert sooner than this after the last sign of life...
    min_quiet: Duration = timedelta(hours=1)
    #: ...and never wait longer than this, however odd the home's history.
    max_quiet: Duration = timedelta(hours=16)
    #: Days of history the model looks back over (older days age out).
    history: Duration = timedelta(days=28)
    #: Fixed windows until the home has this many days of history.
    min_days: int = Field(default=7, ge=1, le=365)
    #: How unusual a silence must be: this quantile of the home's silences at that hour...
    quantile: float = Field(default=0.95, gt=0.5, le=1)
    #: ...times this factor plus ``margin``.
    factor: float = Field(default=1.25, ge=1, le=4)
    margin: Duration = timedelta(minutes=110)
    #: Out of the front door with no movement indoors since: the house is taken as empty,
    #: and the alert waits this long for somebody to come back through the door.
    out_max: Duration = timedelta(hours=24)
    #: Learn silences also per motion sensor that saw the last movement and by the pace
    #: before it (busy or still): a silence after pottering in the kitchen is judged
    #: apart from one after sitting down in front of the TV or lying down in the bedroom.
    by_sensor: bool = True

    @model_validator(mode="after")
    def _bounds_in_order(self) -> LearnedRoutine:
        if self.min_quiet >= self.max_quiet:
            raise ValueError("min_quiet must be shorter than max_quiet")
        if self.out_max < self.min_quiet:
            raise ValueError("out_max must not be shorter than min_quiet")
        if self.history < timedelta(days=self.min_days):
            raise ValueError("history must cover at least min_days")
        return self


class InactivityRule(_Strict):
    day: DayWindow = DayWindow()
    night: NightWindow = NightWindow()
    learned: LearnedRoutine = LearnedRoutine()
    #: Motion sensors whose reports must not count as activity (e.g. a bed-bound resident's
    #: bedroom PIR); per-person override only.
    ignore_devices: tuple[str, ...] = ()


class DoorOpenNightRule(_Strict):
    start: ClockTime = time(22, 0)
    end: ClockTime = time(5, 0)
    open_for: Duration = timedelta(minutes=15)


class FlappingRule(_Strict):
    """A door that changes state this often is broken (a loose magnet), not a person."""

    changes: int = Field(default=20, ge=3)
    within: Duration = timedelta(minutes=1)
    #: Counted as healthy again after this long without a flap.
    calm: Duration = timedelta(minutes=10)


class EmergencyModeFactors(_Strict):
    """Defaults for the town-wide emergency mode (突发公共事件或重大灾害)."""

    inactivity: float = Field(default=0.5, gt=0, le=1)
    visits: float = Field(default=2.0, ge=1, le=10)


class RulesConfig(_Strict):
    inactivity: InactivityRule = InactivityRule()
    door_open_night: DoorOpenNightRule = DoorOpenNightRule()
    device_silence: Duration = timedelta(hours=25)
    battery_low: int = Field(default=15, ge=0, le=100)
    sos_debounce: Duration = timedelta(seconds=30)
    # Extensions of SPEC §6 (defaults chosen so that normal life never trips them):
    #: An availability "offline" must last this long before the helper hears of it, so a
    #: hub reboot or a Wi-Fi blip does not send an SMS.
    offline_grace: Duration = timedelta(minutes=10)
    #: A battery alert closes only once the battery is this many points above the threshold
    #: (readings wobble around it).
    battery_hysteresis: int = Field(default=10, ge=0, le=100)
    #: Motion reported without a break for this long is a stuck sensor, not a person.
    stuck_motion: Duration = timedelta(hours=12)
    #: A silence this long between motion reports ends a run (for sensors that never send
    #: "no motion").
    motion_gap: Duration = timedelta(hours=1)
    flapping: FlappingRule = FlappingRule()
    #: The gateway without its broker this long -> SMS to the town duty line.
    gateway_link: Duration = timedelta(minutes=5)
    emergency_mode: EmergencyModeFactors = EmergencyModeFactors()


Recipient = Literal["resident", "helper", "village_team", "town_duty"]
Channel = Literal["sms", "voice"]


class EscalationStep(_Strict):
    notify: Recipient
    channels: tuple[Channel, ...] = Field(min_length=1)
    wait: Duration
    repeat: bool = False

    @field_validator("channels")
    @classmethod
    def _no_duplicate_channels(cls, channels: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels


def _default_emergency() -> tuple[EscalationStep, ...]:
    return (
        EscalationStep(notify="helper", channels=("sms", "voice"), wait=timedelta(minutes=3)),
        EscalationStep(notify="village_team", channels=("sms", "voice"), wait=timedelta(minutes=5)),
        EscalationStep(
            notify="town_duty", channels=("sms", "voice"), wait=timedelta(minutes=10), repeat=True
        ),
    )


def _default_wellbeing() -> tuple[EscalationStep, ...]:
    return (
        EscalationStep(notify="resident", channels=("voice",), wait=timedelta(minutes=5)),
        EscalationStep(notify="helper", channels=("sms", "voice"), wait=timedelta(minutes=15)),
        EscalationStep(
            notify="village_team",
            channels=("sms", "voice"),
            wait=timedelta(minutes=30),
            repeat=True,
        ),
    )


def _default_technical() -> tuple[EscalationStep, ...]:
    return (EscalationStep(notify="helper", channels=("sms",), wait=timedelta(days=1)),)


class EscalationConfig(_Strict):
    emergency: tuple[EscalationStep, ...] = Field(default_factory=_default_emergency)
    wellbeing: tuple[EscalationStep, ...] = Field(default_factory=_default_wellbeing)
    technical: tuple[EscalationStep, ...] = Field(default_factory=_default_technical)

    @model_validator(mode="after")
    def _only_last_step_repeats(self) -> EscalationConfig:
        for group in ("emergency", "wellbeing", "technical"):
            steps: tuple[EscalationStep, ...] = getattr(self, group)
            if not steps:
                raise ValueError(f"escalation.{group} needs at least one step")
            for index, step in enumerate(steps[:-1]):
                if step.repeat:
                    raise ValueError(f"escalation.{group}[{index}]: only the last step may repeat")
        return self


class DigestConfig(_Strict):
    """The weekly SMS telling each helper who is due a visit; day and hour in local time."""

    weekday: int = Field(default=1, ge=1, le=7)  # ISO weekday: 1 = Monday
    hour: int = Field(default=8, ge=0, le=23)
    #: Each helper's digest is due at a fixed point within this long after it is queued,
    #: not all at once (a county's digest is thousands of SMS).
    spread: Duration = timedelta(hours=1)
    #: After a start, wait this long before the first digest pass: alarms replayed from
    #: the broker's session and the register load come first.
    settle: Duration = timedelta(minutes=2)


class OutboxConfig(_Strict):
    """How the notification outbox paces what it sends (``outbox:``)."""

    #: Routine messages (digests, taken/resolved notices) per provider and minute, sustained.
    routine_per_minute: int = Field(default=60, ge=1)
    #: Routine messages a provider may get at once after a quiet spell.
    routine_burst: int = Field(default=10, ge=1)
    #: Sends in flight in the general lane. Keep it below the notifier's worker threads
    #: (asyncio's default pool) so the emergency lane always finds one free.
    concurrency: int = Field(default=4, ge=1, le=64)
    #: Sends in flight in the emergency lane (SOS and fall steps only).
    emergency_concurrency: int = Field(default=16, ge=1, le=256)


# -- Channels per recipient (SPEC §11) --------------------------------------------------

SmsProvider = Literal["twilio", "console", "aliyun_sms"]
VoiceProvider = Literal["twilio", "console", "aliyun_voice"]


class ChannelChoice(_Strict):
    """Which provider carries each channel; None means "as the default says"."""

    sms: SmsProvider | None = None
    voice: VoiceProvider | None = None


class ChannelRoute(ChannelChoice):
    """Recipients whose E.164 number starts with ``prefix`` (longest prefix wins)."""

    prefix: str = Field(pattern=r"^\+\d{1,15}$")


class ChannelsConfig(_Strict):
    default: ChannelChoice = ChannelChoice()
    routes: tuple[ChannelRoute, ...] = ()

    @field_validator("routes")
    @classmethod
    def _distinct_prefixes(cls, routes: tuple[ChannelRoute, ...]) -> tuple[ChannelRoute, ...]:
        seen = [route.prefix for route in routes]
        for prefix in seen:
            if seen.count(prefix) > 1:
                raise ValueError(f"prefix {prefix!r} is routed twice")
        return routes

    def providers(self) -> set[str]:
        """Every provider some recipient may be routed to."""
        found: set[str] = set()
        for choice in (self.default, *self.routes):
            found.update(p for p in (choice.sms, choice.voice) if p is not None)
        return found


class AliyunSmsConfig(_Strict):
    """Alibaba Cloud SMS: the filed sign name (签名) and our template name -> TemplateCode."""

    sign_name: str = Field(min_length=1)
    templates: dict[str, str] = Field(default_factory=dict)


class AliyunVoiceConfig(_Strict):
    """Alibaba Cloud voice (IvrCall): caller number and our template name -> TTS code."""

    called_show_number: str = Field(min_length=1)
    templates: dict[str, str] = Field(default_factory=dict)
    #: How often the start prompt is played (1-3).
    play_times: int = Field(default=2, ge=1, le=3)
    #: How long to wait for a key press, milliseconds.
    key_timeout_ms: int = Field(default=10_000, ge=1_000, le=60_000)


class AliyunConfig(_Strict):
    sms: AliyunSmsConfig | None = None
    voice: AliyunVoiceConfig | None = None


class Settings(BaseSettings):
    """Everything SPEC §2 names. Env ``HOMEWATCH_*`` beats the YAML file beats defaults."""

    model_config = SettingsConfigDict(
        env_prefix="HOMEWATCH_", extra="forbid", frozen=True, env_nested_delimiter="__"
    )

    database_url: str = "sqlite+aiosqlite:///homewatch.db"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_client_id: str = "homewatch-gateway"
    #: TLS (mqtts://): a private CA instead of the system's, and a client certificate.
    mqtt_ca_file: Path | None = None
    mqtt_client_cert: Path | None = None
    mqtt_client_key: Path | None = None
    #: MQTT version of every session the gateway opens: 5 (session expiry, receive maximum,
    #: shared subscriptions) or 3.1.1 for a broker that speaks nothing newer, such as the
    #: demo's embedded amqtt (its persistent session still keeps unacknowledged messages).
    mqtt_protocol: MqttProtocol = "5"
    #: Topic prefix for the gateway's own status topic and native devices (tests isolate runs).
    mqtt_topic_prefix: str = "homewatch"
    #: Share ingest across several `run` processes (MQTT 5 shared subscription group name).
    mqtt_share_group: str | None = None
    #: Fail-over (docs/SCALING.md): split the devices, by person, into this many persistent
    #: MQTT sessions ``<mqtt_client_id>-p<k>``, each held by one `run` process under a
    #: PostgreSQL lease and taken over by a survivor when its holder dies. 0: one session.
    #: Every process of a deployment must use the same number and the same client id.
    mqtt_partitions: int = Field(default=0, ge=0, le=256)
    #: How often a process looks for lapsed leases (and balances its share).
    mqtt_partition_poll: Duration = timedelta(seconds=3)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    #: Field encryption key (SPEC §10); defaults to one derived from ``secret_key``.
    data_key: str | None = None
    #: Earlier data keys (or secrets), comma-separated: they decrypt, never encrypt, until
    #: `homewatch rotate-key` has re-encrypted everything under the current key.
    retired_data_keys: str = ""
    timezone: str = "Asia/Shanghai"
    notifier: Literal["twilio", "console"] | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_api_base: str = "https://api.twilio.com"
    #: Ingest batching: flush after this many messages or this long, whichever first.
    ingest_batch_size: int = Field(default=500, ge=1, le=10_000)
    ingest_batch_window: Duration = timedelta(milliseconds=50)
    #: Per-device ingest limit (messages a second, sustained) and burst: a flooding device's
    #: surplus is kept as rejected ``rate_limited``; an SOS or fall always passes. Off (0) by
    #: default: the backlog a broker delivers after a gateway outage arrives at broker speed,
    #: and the ingest cannot tell it from a flood (docs/TRUST.md suggests values).
    device_rate_limit: float = Field(default=0.0, ge=0)
    device_rate_burst: int = Field(default=3600, ge=1)
    #: Rejected payloads kept for inspection (oldest dropped beyond this).
    rejected_keep: int = Field(default=10_000, ge=0)
    rules: RulesConfig = RulesConfig()
    #: How often, on the gateway's clock, the rules judge the homes: a quiet home's or a
    #: silent device's deadline is noticed at most this late (SOS, falls and check-ins act
    #: at once, not at the tick).
    rules_tick: Duration = timedelta(seconds=5)
    #: A console what-if (replay of the stored events) still running after this is stopped.
    whatif_timeout: Duration = timedelta(minutes=15)
    escalation: EscalationConfig = EscalationConfig()
    #: Uploaded visit photos are kept under this directory.
    data_dir: Path = Path("homewatch-data")
    digest: DigestConfig = DigestConfig()
    outbox: OutboxConfig = OutboxConfig()
    #: Provider per recipient by phone prefix (SPEC §11); absent: every recipient gets the
    #: single ``notifier`` above.
    channels: ChannelsConfig | None = None
    aliyun: AliyunConfig | None = None
    aliyun_access_key_id: str | None = None
    aliyun_access_key_secret: str | None = None
    aliyun_sms_endpoint: str = "dysmsapi.aliyuncs.com"
    aliyun_voice_endpoint: str = "dyvmsapi.aliyuncs.com"
    aliyun_protocol: Literal["https", "http"] = "https"
    #: The secret path segment of ``/receipts/aliyun/{token}/…`` (Aliyun's HTTP batch push).
    receipt_token: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the YAML file's content; the environment must win over it.
        return (env_settings, init_settings)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError("must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError("has no host")
        return url

    @model_validator(mode="after")
    def _partitions_need_leases(self) -> Settings:
        if self.mqtt_partitions:
            if not self.database_url.startswith("postgresql"):
                raise ValueError(
                    "mqtt_partitions needs PostgreSQL (its leases are advisory locks); "
                    "on SQLite run one process with mqtt_partitions 0"
                )
            if self.mqtt_share_group:
                raise ValueError(
                    "mqtt_partitions and mqtt_share_group exclude each other: partitioned "
                    "sessions subscribe to their own devices, not a shared group"
                )
            if self.mqtt_partition_poll <= timedelta(0):
                raise ValueError("mqtt_partition_poll must be positive")
        return self

    @field_validator("rules_tick")
    @classmethod
    def _tick_positive(cls, tick: timedelta) -> timedelta:
        if tick <= timedelta(0):
            raise ValueError("must be positive (e.g. 5s)")
        return tick

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
        return zone

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def notifier_name(self) -> str:
        if self.notifier:
            return self.notifier
        return "twilio" if self.twilio_account_sid else "console"

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if self.mqtt_tls else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme in ("mqtts", "ssl")

    def keyring(self) -> Keyring:
        """The field-encryption keys (SPEC §10) these settings describe."""
        return keyring_for(self.data_key, self.secret_key, self.retired_data_keys)

    def require_production_secret(self) -> str:
        """`run` refuses to start without a real secret."""
        key = self.secret_key
        if key is None or key.strip().lower() in _PLACEHOLDER_SECRETS:
            raise ConfigError(
                "HOMEWATCH_SECRET_KEY is required by `homewatch run` and must not be a "
                "placeholder (generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if len(key) < 16:
            raise ConfigError("HOMEWATCH_SECRET_KEY is too short: use at least 16 characters")
        return key

    def require_chosen_notifier(self) -> str:
        """`run` refuses to fall back to printing SMS and calls on its console: a production
        gateway left that way by mistake would swallow every SOS. The console notifier is
        fine when it is asked for by name."""
        # A `channels:` default naming a provider for both SMS and voice (e.g. Aliyun for a
        # town whose every phone is +86) reaches everybody without the single notifier.
        routed = self.channels is not None and all(
            provider not in (None, "console")
            for provider in (self.channels.default.sms, self.channels.default.voice)
        )
        if self.notifier is None and not self.twilio_account_sid and not routed:
            raise ConfigError(
                "homewatch run has no way to reach anybody: configure Twilio "
                "(HOMEWATCH_TWILIO_ACCOUNT_SID, HOMEWATCH_TWILIO_AUTH_TOKEN, "
                "HOMEWATCH_TWILIO_FROM), or choose the console notifier explicitly "
                "(HOMEWATCH_NOTIFIER=console, or `notifier: console` in the file) to only "
                "print SMS and calls"
            )
        return self.notifier_name


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


#: HOMEWATCH_* variables that are read, but are not settings.
_NOT_SETTINGS = frozenset({"HOMEWATCH_CONFIG"})
#: The test suite's own variables (tests/conftest.py, tests/services.py).
_TEST_VARIABLES = "HOMEWATCH_TEST_"


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """One message per ``HOMEWATCH_*`` variable that no setting reads (a misspelling is
    otherwise silently ignored), suggesting the setting it was probably meant to be.

    ``HOMEWATCH_…_PASSWORD`` variables that resemble no setting are left alone: the
    provisioning file names users' passwords that way (``password_env``).
    """
    fields = sorted(name.upper() for name in Settings.model_fields)
    messages = []
    for name in sorted(environ):
        upper = name.upper()
        if (
            not upper.startswith("HOMEWATCH_")
            or upper in _NOT_SETTINGS
            or upper.startswith(_TEST_VARIABLES)
        ):
            continue
        key = upper.removeprefix("HOMEWATCH_").split("__", 1)[0]
        if key in fields:
            continue
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.8)
        if close:
            messages.append(
                f"{name} is not a setting and is ignored: did you mean HOMEWATCH_{close[0]}?"
            )
        elif not upper.endswith("_PASSWORD"):
            messages.append(f"{name} is not a setting and is ignored")
    return messages


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the YAML file (``--config`` or ``HOMEWATCH_CONFIG``) and env.

    Unknown ``HOMEWATCH_*`` variables are logged as warnings (see
    :func:`unknown_environment`); unknown keys in the file are an error.
    """
    for message in unknown_environment(os.environ):
        log.warning("%s", message)
    path = config_file or os.environ.get("HOMEWATCH_CONFIG")
    data: dict[str, Any] = {}
    source = "environment"
    if path:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"configuration file {path} must be a mapping of settings")
        data = loaded
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from exc
