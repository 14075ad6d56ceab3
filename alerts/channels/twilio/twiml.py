"""TwiML for alert calls: Mandarin speech and a one-key ``<Gather>`` (SPEC §6).

Built with twilio's own :class:`~twilio.twiml.voice_response.VoiceResponse`, so the XML is
escaped and shaped exactly as Twilio expects.

The speech is said ``repeat`` times, each inside its own ``<Gather>``: a rural line is noisy
and an elderly helper may pick up late, so a second hearing is a second chance to press 1.
Without a key press Twilio falls through to the next verb, and after the last one hangs up;
``action`` is only requested when a key was pressed.
"""

from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

__all__ = [
    "GATHER_TIMEOUT_SECONDS",
    "LANGUAGE",
    "call_twiml",
    "hangup_twiml",
    "say_and_hang_up_twiml",
]

#: Twilio's ``<Say>`` language for Mandarin (mainland).
LANGUAGE = "zh-CN"

#: Seconds to wait for a key after the speech ends: longer than Twilio's 5 s default,
#: for people who need a moment to find the key on a basic phone.
GATHER_TIMEOUT_SECONDS = 8


def call_twiml(
    speech: str, gather_action: str, *, repeat: int = 2, voice: str | None = None
) -> str:
    """The TwiML Twilio fetches when an alert call is answered.

    Args:
        speech: The rendered voice template (ends with ``收到请按1``).
        gather_action: Absolute URL Twilio POSTs the pressed key to
            (``…/twilio/voice/{token}/gather``).
        repeat: How many times to say it, each time listening for a key.
        voice: Twilio TTS voice, e.g. ``Polly.Zhiyu``; None uses the account's default
            voice for ``zh-CN``.

    Returns:
        The XML document.

    Raises:
        ValueError: ``repeat`` is less than 1.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    response = VoiceResponse()
    for _ in range(repeat):
        gather = response.gather(
            num_digits=1,
            action=gather_action,
            method="POST",
            timeout=GATHER_TIMEOUT_SECONDS,
        )
        gather.say(speech, language=LANGUAGE, voice=voice)
    response.hangup()
    return str(response.to_xml())


def say_and_hang_up_twiml(speech: str, *, voice: str | None = None) -> str:
    """Say ``speech``, then hang up: the answer to a key press (``ack_confirm``), and a call
    outside any alert (the duty line told that the gateway lost its broker), which has no
    ``<Gather>`` because a key press there would acknowledge nothing."""
    response = VoiceResponse()
    response.say(speech, language=LANGUAGE, voice=voice)
    response.hangup()
    return str(response.to_xml())


def hangup_twiml() -> str:
    """Hang up: the answer to a key press that can mean nothing."""
    response = VoiceResponse()
    response.hangup()
    return str(response.to_xml())
