"""Rules: plain classes fed typed facts (events, a snapshot of one home) and ``now``, that
return typed decisions (:mod:`gateway.rules.decisions`). They never read storage nor call
the alert service: :mod:`gateway.rules_runner` reads the facts and applies the decisions.

One module per rule: :mod:`~gateway.rules.emergency`, :mod:`~gateway.rules.check_in`,
:mod:`~gateway.rules.sensor_faults` (over :mod:`~gateway.rules.sensors`),
:mod:`~gateway.rules.inactivity` (over :mod:`~gateway.rules.quiet` and
:mod:`~gateway.rules.routine`), :mod:`~gateway.rules.night_door`,
:mod:`~gateway.rules.device_health`, :mod:`~gateway.rules.sos_sweep`,
:mod:`~gateway.rules.broker_link`.
"""

from __future__ import annotations

from gateway.rules.emergency import EmergencyRule

__all__ = ["EmergencyRule"]
