"""SOS and fall: a press or a detected fall raises an emergency alert, at once."""

from __future__ import annotations

from collections.abc import Iterable

from alerts.types import AlertTrigger, AlertType
from gateway.events import EventKind, SensorEvent
from gateway.rules.decisions import EmergencyDetail, Raise

__all__ = ["EMERGENCY_TYPES", "EmergencyRule"]

EMERGENCY_TYPES = {EventKind.SOS: AlertType.SOS, EventKind.FALL: AlertType.FALL}


class EmergencyRule:
    """Stateless: debouncing repeated presses is the alert store's job (one open alert)."""

    def decide(self, event: SensorEvent, person_id: int) -> list[Raise]:
        alert_type = EMERGENCY_TYPES.get(event.kind)
        if event.retained or alert_type is None:
            # A retained SOS is an old press replayed by the broker, never a new emergency.
            return []
        return [
            Raise(
                alert_type,
                person_id,
                # Receive time, not the device's: a skewed device clock must not make an
                # emergency look old, and escalation waits count from when we knew.
                event.received_at,
                EmergencyDetail(),
                event.device_uid,
            )
        ]

    def evaluate(self, event: SensorEvent, person_id: int) -> Iterable[AlertTrigger]:
        """The same decision as a bare trigger (``homewatch replay`` runs it this way)."""
        return [
            AlertTrigger(type=r.type, person_id=r.person_id, at=r.at, device_uid=r.device_uid)
            for r in self.decide(event, person_id)
        ]
