"""Which provider carries ``sms`` and ``voice`` for one recipient (SPEC §11).

Routes are matched by phone-number prefix, longest first, so ``+86`` can go to a China
carrier while ``+852`` or ``+1`` stay on Twilio. Without a ``channels:`` section every
recipient gets the single notifier of SPEC §2, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.config import ChannelsConfig

__all__ = ["ChannelResolver", "Route"]


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    providers: Mapping[str, str]  # channel -> provider name


class ChannelResolver:
    """Maps (phone, channel) to a provider name.

    Args:
        default: Provider per channel for numbers no route matches.
        routes: Prefix routes; a route that leaves a channel out uses the default's.
    """

    def __init__(self, default: Mapping[str, str], routes: Sequence[Route] = ()) -> None:
        self.default = dict(default)
        self.routes = sorted(routes, key=lambda route: len(route.prefix), reverse=True)

    @classmethod
    def from_config(cls, channels: ChannelsConfig | None, notifier: str) -> ChannelResolver:
        """Build from ``channels:``; ``notifier`` (SPEC §2) fills what the section leaves out."""
        if channels is None:
            return cls({"sms": notifier, "voice": notifier})
        default = {
            "sms": channels.default.sms or notifier,
            "voice": channels.default.voice or notifier,
        }
        routes = [
            Route(
                route.prefix,
                {
                    channel: provider
                    for channel, provider in (("sms", route.sms), ("voice", route.voice))
                    if provider is not None
                },
            )
            for route in channels.routes
        ]
        return cls(default, routes)

    def provider(self, phone: str, channel: str) -> str:
        """The provider that carries ``channel`` to ``phone``.

        Raises:
            KeyError: ``channel`` is neither ``sms`` nor ``voice``.
        """
        for route in self.routes:
            if phone.startswith(route.prefix) and channel in route.providers:
                return route.providers[channel]
        return self.default[channel]

    def names(self) -> set[str]:
        """Every provider some recipient may be routed to."""
        found = set(self.default.values())
        for route in self.routes:
            found.update(route.providers.values())
        return found
