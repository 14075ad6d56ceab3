"""The point of delivery: one notification row -> the provider that carries it.

:class:`ChannelDispatcher` asks the :class:`~alerts.channels.resolver.ChannelResolver` which
provider carries the row's channel to its recipient, keeps the carriers' per-number budget
(:mod:`alerts.channels.budget`), and hands group-robot posts to the village's robot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from alerts.channels.base import NotifierProvider, Outgoing, Provider
from alerts.channels.budget import CARRIER_LIMITED, CarrierBudget
from alerts.channels.carrier_texts import carrier_render
from alerts.channels.consolidate import CONSOLIDATED_TEMPLATE, Consolidator, consolidated_params
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
        consolidator: Folds two alert SMS to one carrier-limited number into one.

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
        consolidator: Consolidator | None = None,
    ) -> None:
        missing = sorted(resolver.names() - set(providers))
        if missing:
            raise ValueError(f"channels route to providers that are not set up: {missing}")
        self.resolver = resolver
        self.providers = dict(providers)
        self.robots = robots
        self.budget = budget
        self.consolidator = consolidator

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
            # A robot's sid is "<dingtalk|wecom>-<notification id>" (TeamRobots.send).
            return Sent(delivery.sid.split("-", 1)[0], delivery)
        name = self.resolver.provider(message.to, message.channel)
        provider = self.providers[name]
        if message.channel == "sms" and name in CARRIER_LIMITED and self.budget is not None:
            # One sender per number at a time: the count, the send and the folding of a
            # companion alert must not interleave with another SMS to the same number.
            async with self.budget.lock(message.to):
                return await self._carrier_sms(name, provider, message)
        delivery = await provider.send(message)
        return Sent(name, delivery, self._carrier_body(name, message))

    async def _carrier_sms(self, name: str, provider: Provider, message: Outgoing) -> Sent:
        assert self.budget is not None
        companions: list[Outgoing] = []
        if self.consolidator is not None:
            done = await self.consolidator.already_sent(message.notification_id)
            if done is not None:  # went out inside another alert's SMS a moment ago
                return Sent(name, Delivery(sid=done.sid, status="sent"), done.body)
            if self.consolidator.foldable(message):
                companions = await self.consolidator.companions(message)
        outgoing = message
        if companions:
            outgoing = replace(
                message,
                template=CONSOLIDATED_TEMPLATE,
                params=consolidated_params([message, *companions]),
            )
        if await self.budget.exhausted(outgoing.to, outgoing.template):
            raise ThrottledError(
                f"{outgoing.template} to {outgoing.to}: already {self.budget.limit} "
                f"times within {self.budget.window.total_seconds() / 3600:g} h; "
                "the carrier would refuse it"
            )
        await self.budget.reserve(message.notification_id, name)
        delivery = await provider.send(outgoing)
        body = self._carrier_body(name, outgoing)
        if companions and self.consolidator is not None and body is not None:
            await self.consolidator.record(companions, name, delivery.sid, body)
        return Sent(name, delivery, body)

    @staticmethod
    def _carrier_body(name: str, message: Outgoing) -> str | None:
        if name in CARRIER_TEMPLATED and message.channel in ("sms", "voice"):
            return carrier_render(message.template, message.channel, message.params)  # type: ignore[arg-type]
        return None
