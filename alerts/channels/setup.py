"""Building the dispatcher from configuration, refusing what cannot work (SPEC §11).

Called once at start by the composition root: a route that needs a carrier template nobody
filed, or Aliyun without credentials, stops the gateway with a :class:`ConfigError` naming
the setting, instead of failing at the first SOS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from alerts.channels.aliyun import AliyunAccount, AliyunSms, AliyunVoice
from alerts.channels.base import NotifierProvider, Provider
from alerts.channels.budget import CARRIER_LIMITED, CarrierBudget
from alerts.channels.consolidate import Consolidator
from alerts.channels.dispatch import ChannelDispatcher
from alerts.channels.resolver import ChannelResolver
from alerts.channels.team_robot import TeamRobots
from alerts.notifiers.base import Notifier
from alerts.templates import DUTY_LANDLINE_VOICE, TEMPLATES, plain_variant
from gateway.clock import Clock
from gateway.config import AliyunConfig, ChannelsConfig, ConfigError, Settings
from gateway.storage.db import Database

__all__ = ["build_dispatcher", "check_carrier_templates"]

log = logging.getLogger(__name__)

_ALIYUN_CHANNEL = {"aliyun_sms": "sms", "aliyun_voice": "voice"}


def check_carrier_templates(channels: ChannelsConfig | None, aliyun: AliyunConfig | None) -> None:
    """Every message we may send on a channel routed to Aliyun needs its filed code.

    Raises:
        ConfigError: Naming the ``aliyun.…`` key that is missing or wrong.
    """
    if channels is None:
        return
    used = channels.providers()
    for provider, channel in _ALIYUN_CHANNEL.items():
        if provider not in used:
            continue
        section = getattr(aliyun, channel, None) if aliyun is not None else None
        if section is None:
            raise ConfigError(
                f"aliyun.{channel}: required, since channels route {channel} to {provider}"
            )
        filed: dict[str, str] = section.templates
        unknown = sorted(set(filed) - set(TEMPLATES))
        if unknown:
            raise ConfigError(
                f"aliyun.{channel}.templates.{unknown[0]}: no message template of that name"
            )
        missing = [
            t.name
            for t in TEMPLATES.values()
            if channel in t.channels
            and not filed.get(t.name)
            and plain_variant(t.name) is None
            and not (channel == "voice" and t.name in DUTY_LANDLINE_VOICE)
        ]
        if channel == "voice":
            unfiled = sorted(t for t in DUTY_LANDLINE_VOICE if not filed.get(t))
            if unfiled:
                # Not refused: a town whose duty line is a mobile never needs them. A landline
                # duty line would not be called about the gateway link, so say so at start.
                log.warning(
                    "aliyun.voice.templates: no code for %s; a landline town duty line routed "
                    "to %s cannot be called when the gateway loses or regains its broker",
                    ", ".join(unfiled),
                    provider,
                )
        if missing:
            raise ConfigError(
                f"aliyun.{channel}.templates.{missing[0]}: no {provider} template code "
                f"(every template with {channel} text needs one; missing: {', '.join(missing)})"
            )


def build_dispatcher(
    settings: Settings,
    db: Database,
    clock: Clock,
    notifier: Notifier,
    *,
    make_notifier: Callable[[str], Notifier] | None = None,
    env: Mapping[str, str] | None = None,
) -> ChannelDispatcher:
    """The dispatcher for ``settings``.

    Args:
        settings: ``channels:``, ``aliyun:`` and the ``HOMEWATCH_ALIYUN_*`` variables.
        db: The database (team robots, the carriers' budget).
        clock: The injected clock.
        notifier: The single notifier of SPEC §2; it carries whatever no route claims.
        make_notifier: Builds ``twilio`` or ``console`` when a route names one that is not
            ``notifier``.
        env: Where the team robots' URLs and secrets are read; the process environment by
            default.

    Raises:
        ConfigError: A route that cannot work (see :func:`check_carrier_templates`).
    """
    check_carrier_templates(settings.channels, settings.aliyun)
    resolver = ChannelResolver.from_config(settings.channels, notifier.name)
    providers: dict[str, Provider] = {
        notifier.name: NotifierProvider(notifier, settings.public_url)
    }
    for name in sorted(resolver.names() - set(providers)):
        if name in _ALIYUN_CHANNEL:
            providers[name] = _aliyun(settings, name)
        elif make_notifier is not None:
            providers[name] = NotifierProvider(make_notifier(name), settings.public_url)
        else:
            raise ConfigError(f"channels: provider {name!r} cannot be set up here")
    limited = bool(resolver.names() & CARRIER_LIMITED)
    return ChannelDispatcher(
        resolver,
        providers,
        robots=TeamRobots(db, env),
        budget=CarrierBudget(db, clock) if limited else None,
        consolidator=Consolidator(db, clock) if limited else None,
    )


def _aliyun(settings: Settings, name: str) -> Provider:
    if not (settings.aliyun_access_key_id and settings.aliyun_access_key_secret):
        raise ConfigError(
            f"channels route to {name}: set HOMEWATCH_ALIYUN_ACCESS_KEY_ID and "
            "HOMEWATCH_ALIYUN_ACCESS_KEY_SECRET"
        )
    account = AliyunAccount(
        settings.aliyun_access_key_id,
        settings.aliyun_access_key_secret,
        protocol=settings.aliyun_protocol,
    )
    aliyun = settings.aliyun
    assert aliyun is not None  # check_carrier_templates made sure
    if name == "aliyun_sms":
        assert aliyun.sms is not None
        return AliyunSms(
            account, settings.aliyun_sms_endpoint, aliyun.sms.sign_name, aliyun.sms.templates
        )
    assert aliyun.voice is not None
    return AliyunVoice(
        account,
        settings.aliyun_voice_endpoint,
        aliyun.voice.called_show_number,
        aliyun.voice.templates,
        play_times=aliyun.voice.play_times,
        key_timeout_ms=aliyun.voice.key_timeout_ms,
    )
