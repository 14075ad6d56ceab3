"""What every channel provider is handed, and the adapter for the classic notifiers.

A :class:`~alerts.notifiers.base.Notifier` (Twilio, console) takes finished text. A China
carrier takes a *filed template code and its parameters* instead, and a group robot takes
text for a whole team. So the delivery path hands each provider the whole
:class:`Outgoing` message and lets it pick what it needs (STYLE "What we keep" 5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from alerts.notifiers.base import Delivery, Notifier

__all__ = ["NotifierProvider", "Outgoing", "Provider"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One notification row, as a provider needs it.

    Attributes:
        notification_id: The row's id; carriers echo it back in receipts as ``OutId``.
        to: Recipient in E.164 (empty for a group robot).
        channel: ``sms``, ``voice`` or ``robot``.
        template: Our template name (:data:`alerts.templates.TEMPLATES`).
        params: The template's parameters.
        body: The text rendered from the template for this channel.
        token: The row's secret token (Twilio's TwiML URL carries it).
        recipient_role: ``helper``, ``village_team``, ``resident``, ``team_robot`` …
        recipient_name: Whom it is for (for a robot: the village).
        alert_id: The alert it is about; None for a notice outside any alert (the duty line
            told the gateway lost its broker), which offers no key to acknowledge.
    """

    notification_id: int
    to: str
    channel: str
    template: str
    params: Mapping[str, Any]
    body: str
    token: str
    recipient_role: str
    recipient_name: str
    alert_id: int | None


@runtime_checkable
class Provider(Protocol):
    """Carries one channel of a message to a recipient."""

    #: Recorded on the notification row (``twilio``, ``aliyun_sms``, ``dingtalk`` …).
    name: str

    async def send(self, message: Outgoing) -> Delivery:
        """Hand the message over.

        Raises:
            DeliveryError: The provider did not take it.
        """
        ...


class NotifierProvider:
    """A text notifier (Twilio, console) as a provider; Twilio's callbacks point at us."""

    def __init__(self, notifier: Notifier, public_url: str) -> None:
        self.notifier = notifier
        self.name = notifier.name
        self.public_url = public_url.rstrip("/")

    async def send(self, message: Outgoing) -> Delivery:
        status_callback = f"{self.public_url}/twilio/status"
        if message.channel == "voice":
            return await self.notifier.place_call(
                message.to,
                speech=message.body,
                twiml_url=f"{self.public_url}/twilio/voice/{message.token}",
                status_callback=status_callback,
            )
        return await self.notifier.send_sms(
            message.to, message.body, status_callback=status_callback
        )
