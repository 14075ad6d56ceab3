"""Notifiers: the interchangeable ways an alert reaches a phone (SPEC §6)."""

from alerts.notifiers.base import Delivery, DeliveryError, Notifier
from alerts.notifiers.console import ConsoleNotifier
from alerts.notifiers.twilio import TwilioNotifier

__all__ = ["ConsoleNotifier", "Delivery", "DeliveryError", "Notifier", "TwilioNotifier"]
