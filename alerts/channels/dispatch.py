"""The point of delivery: one notification row -> the provider that carries it.

:class:`ChannelDispatcher` asks the :class:`~alerts.channels.resolver.ChannelResolver` which
provider carries the row's channel to its recipient, keeps the carriers' per-number budget
(:mod:`alerts.channels.budget`), and hands group-robot posts to the village's robot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alerts.channels.base import NotifierProvider, Outgoing, Provider
from alerts.channels.budget import CARRIER_LIMITED, CarrierBudget
from alerts.channels.carrier_texts import carrier_render
from alerts.channels.resolver import ChannelResolver
from alerts.notifiers.base import Delivery, DeliveryError, Notifier

__all__ = ["ROBOT_CHANNEL", "ChannelDispatcher", "Sent", "ThrottledError"]

#: The channel of a post to a village team's group robot.
ROBOT_CHANNEL = "robot"
#: Providers that send the filed carrier wording (:mod:`alerts.channels.carrier_texts`).
CARRIER_TEMPLATED = frozenset({"aliyun_sms", "aliyun_voice"})


class ThrottledError(DeliveryError):
    """Over the carriers' budget for this number and template: not sent, on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, status="throttled")


@dataclass(frozen=True, slots=True)
class Sent:
    """Who took the message, their answer, and — when it differs from the row's text —
    what the recipient actually gets (a carrier's filed wording)."""

    provider: str
    delivery: Delivery
    body: str | None = None


class ChannelDispatcher:
    """Sends a notification through the provider its recipient is routed to.

    Args:
        resolver: Which provider carries ``sms``/``voice`` for a phone.
        providers: Provider by name; every name the resolver may answer must be here.
        robots: Carries ``robot`` posts (a village's DingTalk or WeCom robot), if any.
        budget: The carriers' per-number limit; None when no limited provider is used.

    Raises:
        ValueError: The resolver routes to a provider that is not given.
    """

    def __init__(
        self,
        resolver: ChannelResolver,
        providers: Mapping[str, Provider],
        *,
        robots: Provider | None = None,
        budget: CarrierBudget | None = None,
    ) -> None:
        missing = sorted(resolver.names() - set(providers))
        if missing:
            raise ValueError(f"channels route to providers that are not set up: {missing}")
        self.resolver = resolver
        self.providers = dict(providers)
        self.robots = robots
        self.budget = budget

    @classmethod
    def single(cls, notifier: Notifier, public_url: str) -> ChannelDispatcher:
        """Everything through one notifier: the behaviour without a ``channels:`` section."""
        provider = NotifierProvider(notifier, public_url)
        resolver = ChannelResolver({"sms": provider.name, "voice": provider.name})
        return cls(resolver, {provider.name: provider})

    async def deliver(self, message: Outgoing) -> Sent:
        """Send ``message``; which provider took it comes back with the provider's answer.

        Raises:
            ThrottledError: Over the carriers' budget; nothing was sent.
            DeliveryError: The provider did not take it, or nobody can carry it.
        """
        if message.channel == ROBOT_CHANNEL:
            if self.robots is None:
                raise DeliveryError("no team robot is set up", retryable=False)
            delivery = await self.robots.send(message)
            return Sent(delivery.sid.split("-", 1)[0], delivery)
        name = self.resolver.provider(message.to, message.channel)
        provider = self.providers[name]
        if message.channel == "sms" and name in CARRIER_LIMITED and self.budget is not None:
            async with self.budget.lock(message.to):
                if await self.budget.exhausted(message.to, message.template):
                    raise ThrottledError(
                        f"{message.template} to {message.to}: already {self.budget.limit} "
                        f"times within {self.budget.window.total_seconds() / 3600:g} h; "
                        "the carrier would refuse it"
                    )
                await self.budget.reserve(message.notification_id, name)
        delivery = await provider.send(message)
        body = None
        if name in CARRIER_TEMPLATED and message.channel in ("sms", "voice"):
            body = carrier_render(message.template, message.channel, message.params)  # type: ignore[arg-type]
        return Sent(name, delivery, body)
