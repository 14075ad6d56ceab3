"""Notifiers: the interchangeable ways an alert reaches a phone (SPEC §6).

The protocol lives in :mod:`alerts.notifiers.base`; the notifiers themselves live with their
provider under :mod:`alerts.channels` and are named here for existing callers.
"""

from alerts.channels.console import ConsoleNotifier
from alerts.channels.twilio import TwilioNotifier
from alerts.notifiers.base import Delivery, DeliveryError, Notifier

__all__ = ["ConsoleNotifier", "Delivery", "DeliveryError", "Notifier", "TwilioNotifier"]
