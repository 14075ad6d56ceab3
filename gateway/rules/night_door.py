"""A door left open into the night: open for ``open_for`` inside the night window.

Closing the door withdraws an untaken alert; an opening somebody already dealt with (its
alert closed after the door opened) is not raised again.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.types import AlertType
from gateway.rules.decisions import Actor, Closing, DoorOpenDetail, Raise, Verdict, Withdraw
from gateway.rules.facts import DeviceFacts, HomeFacts
from gateway.rules.quiet import door_open_deadline

__all__ = ["NightDoorRule"]


class NightDoorRule:
    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz

    @staticmethod
    def open_door(home: HomeFacts) -> DeviceFacts | None:
        """The home's first door standing open (a faulty door's position is not trusted)."""
        for device in home.devices:
            if device.door_open and device.door_changed_at is not None and not device.faulty:
                return device
        return None

    def decide(self, home: HomeFacts, now: datetime) -> Verdict:
        door = self.open_door(home)
        alert = home.alert(AlertType.DOOR_OPEN_NIGHT)
        if alert is not None:
            if door is None and alert.untaken:
                return Verdict((Withdraw(alert.id, Actor.SYSTEM, Closing.DOOR_CLOSED),))
            return Verdict()
        if door is None or door.door_changed_at is None:
            return Verdict()
        closed = home.last_closed.get(AlertType.DOOR_OPEN_NIGHT)
        if closed is not None and closed >= door.door_changed_at:
            return Verdict()  # this opening was already dealt with
        due = door_open_deadline(door.door_changed_at, home.rules.door_open_night, self.tz)
        if due is None:
            return Verdict()
        if now < due:
            return Verdict(next_check=due)
        detail = DoorOpenDetail(door.door_changed_at, door.kind)
        return Verdict((Raise(AlertType.DOOR_OPEN_NIGHT, home.person_id, now, detail, door.uid),))
