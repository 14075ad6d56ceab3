"""What a device is (its kind) and how it talks (its protocol).

These belong to the devices: the adapters are chosen by protocol and read payloads by kind.
The register stores them as plain strings and imports them from here, never the other way.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DeviceKind", "Protocol"]


class DeviceKind(StrEnum):
    SOS = "sos"
    FALL = "fall"
    MOTION = "motion"
    DOOR = "door"
    MULTI = "multi"


class Protocol(StrEnum):
    NATIVE = "native"
    ZIGBEE2MQTT = "zigbee2mqtt"
    TASMOTA = "tasmota"
    SHELLY = "shelly"
