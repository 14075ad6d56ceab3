"""The console: prints each SMS and call (``homewatch demo``, development)."""

from alerts.channels.console.notifier import ConsoleNotifier

__all__ = ["ConsoleNotifier"]
