"""SOS and fall: a press or a detected fall raises an emergency alert, at once."""

from __future__ import annotations

from collections.abc import Iterable

from alerts.types import AlertTrigger, AlertType
from gateway.events import EventKind, SensorEvent

__all__ = ["EmergencyRule"]


class EmergencyRule:
    """Stateless: debouncing repeated presses is the alert store's job (one open alert)."""

    def evaluate(self, event: SensorEvent, person_id: int) -> Iterable[AlertTrigger]:
        if event.retained:
            # A retained SOS is an old press replayed by the broker, never a new emergency.
            return ()
        if event.kind is EventKind.SOS:
            alert_type = AlertType.SOS
        elif event.kind is EventKind.FALL:
            alert_type = AlertType.FALL
        else:
            return ()
        return (
            AlertTrigger(
                type=alert_type,
                person_id=person_id,
                # Receive time, not the device's: a skewed device clock must not make an
                # emergency look old, and escalation waits count from when we knew.
                at=event.received_at,
                device_uid=event.device_uid,
            ),
        )
