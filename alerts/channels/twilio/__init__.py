"""Twilio: SMS and calls through its REST API (:mod:`.notifier`), the TwiML of an alert call
(:mod:`.twiml`), webhook signatures (:mod:`.signatures`) and what its webhooks carry
(:mod:`.webhooks`). The HTTP routes in ``gateway.api.routes_twilio`` only wire these up."""

from alerts.channels.twilio.notifier import DEFAULT_API_BASE, TwilioNotifier

__all__ = ["DEFAULT_API_BASE", "TwilioNotifier"]
