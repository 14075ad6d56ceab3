"""Device health: a device offline (or silent) too long, and batteries running low.

One alert per person and type: the first offline (low) device in device order names it;
it resolves once every device is back (every battery above the threshold plus hysteresis,
so a battery wobbling around the threshold does not open and close alerts all day).
"""

from __future__ import annotations

from datetime import datetime

from alerts.types import AlertType
from gateway.rules.decisions import (
    BatteryDetail,
    Closing,
    Decision,
    OfflineDetail,
    Raise,
    Resolve,
    Verdict,
)
from gateway.rules.facts import DeviceFacts, HomeFacts
from gateway.rules.quiet import offline_since

__all__ = ["DeviceHealthRule"]


class DeviceHealthRule:
    def decide(self, home: HomeFacts, now: datetime) -> Verdict:
        decisions: list[Decision] = []
        next_check = self._offline(home, now, decisions)
        self._battery(home, now, decisions)
        return Verdict(tuple(decisions), next_check)

    def _offline(self, home: HomeFacts, now: datetime, out: list[Decision]) -> datetime | None:
        rules = home.rules
        first: tuple[DeviceFacts, datetime] | None = None
        next_check: datetime | None = None
        for device in home.devices:
            since = offline_since(
                now,
                rules,
                online=device.online,
                last_seen_at=device.last_seen_at,
                registered_at=home.created_at,
            )
            if since is not None:
                first = first or (device, since)
                continue
            last = device.last_seen_at or home.created_at
            due = last + rules.device_silence
            if device.online is False:
                due = min(due, last + rules.offline_grace)
            next_check = due if next_check is None else min(next_check, due)
        alert = home.alert(AlertType.DEVICE_OFFLINE)
        if alert is not None and first is None:
            out.append(Resolve(alert.id, Closing.DEVICE_ONLINE))
        elif alert is None and first is not None:
            device, since = first
            detail = OfflineDetail(device.kind, since)
            out.append(Raise(AlertType.DEVICE_OFFLINE, home.person_id, now, detail, device.uid))
        return next_check

    def _battery(self, home: HomeFacts, now: datetime, out: list[Decision]) -> None:
        rules = home.rules
        low: DeviceFacts | None = None
        recovered: bool | None = None
        for device in home.devices:
            if device.battery is None:
                continue
            if device.battery < rules.battery_low and low is None:
                low = device
            if device.battery < rules.battery_low + rules.battery_hysteresis:
                recovered = False
            elif recovered is None:
                recovered = True
        alert = home.alert(AlertType.BATTERY_LOW)
        if alert is not None and recovered:
            out.append(Resolve(alert.id, Closing.BATTERY_REPLACED))
        elif alert is None and low is not None and low.battery is not None:
            detail = BatteryDetail(low.kind, low.battery)
            out.append(Raise(AlertType.BATTERY_LOW, home.person_id, now, detail, low.uid))
