"""The notifier protocol: how an alert leaves the building (STYLE "What we keep" 5).

Escalation talks to one small interface, so Twilio, the console and a China carrier's SMS or
voice service are interchangeable per recipient (SPEC §6). A notifier only *hands over* a
message: it returns the provider's id and initial status, and raises :class:`DeliveryError`
when the provider did not take it. Final delivery status arrives later, by status callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Delivery", "DeliveryError", "Notifier"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message the provider accepted.

    Attributes:
        sid: The provider's id for it (Twilio ``SM…``/``CA…``), recorded with the attempt so
            that status callbacks can be matched to it.
        status: The provider's initial status, e.g. ``queued`` (Twilio) or ``delivered``
            (console).
    """

    sid: str
    status: str


class DeliveryError(Exception):
    """The provider did not accept the message.

    Attributes:
        retryable: True when trying again may succeed (provider 5xx, 429 rate limit, timeout,
            connection refused). When unsure we say True: for an SOS a duplicate SMS is far
            cheaper than a missed one, and escalation bounds the retries anyway.
            False when the same request will fail again (invalid number, bad credentials).
        status: The provider's HTTP status as text (``"503"``, ``"400"``) when it answered,
            None when it never did (timeout, unreachable).
        code: The provider's own error code when it gave one (Twilio ``21211`` = invalid
            'To' number), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.code = code

    def __repr__(self) -> str:
        return (
            f"DeliveryError({self.args[0]!r}, retryable={self.retryable!r}, "
            f"status={self.status!r}, code={self.code!r})"
        )


@runtime_checkable
class Notifier(Protocol):
    """Sends SMS and places voice calls. Implementations must be safe to call concurrently."""

    #: Short identifier recorded with every attempt (``twilio``, ``console``, …).
    name: str

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Delivery:
        """Hand an SMS to the provider.

        Args:
            to: Recipient in E.164 (``+8613700000001``).
            body: Text rendered from a template (:func:`alerts.templates.render`).
            status_callback: URL the provider POSTs delivery status changes to, if any.

        Returns:
            The provider's id and initial status.

        Raises:
            DeliveryError: The provider did not accept the message.
        """
        ...

    async def place_call(
        self, to: str, *, speech: str, twiml_url: str, status_callback: str | None = None
    ) -> Delivery:
        """Start a voice call that speaks ``speech`` and listens for key 1.

        Args:
            to: Recipient in E.164.
            speech: The rendered voice template. Providers that speak text themselves
                (console, carrier TTS) use it; Twilio instead fetches the TwiML for the same
                speech from ``twiml_url`` when the call is answered.
            twiml_url: Our webhook serving the call's TwiML (``/twilio/voice/{token}``).
            status_callback: URL the provider POSTs call status changes to, if any.

        Returns:
            The provider's id and initial status.

        Raises:
            DeliveryError: The provider did not accept the call.
        """
        ...
