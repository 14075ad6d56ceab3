"""The emergency lane's bookkeeping: a message two sessions receive is stored once."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.devices import DeviceSpec
from gateway.mqtt_lanes import LaneLedger, combined_mqtt_state, is_emergency_device
from gateway.register.vocabulary import DeviceKind, Protocol


def _spec(kind: DeviceKind) -> DeviceSpec:
    return DeviceSpec(uid="d", kind=kind, protocol=Protocol.NATIVE, topic="homewatch/d")


def test_sos_and_fall_devices_take_the_emergency_lane() -> None:
    assert is_emergency_device(_spec(DeviceKind.SOS))
    assert is_emergency_device(_spec(DeviceKind.FALL))
    assert not is_emergency_device(_spec(DeviceKind.MOTION))
    assert not is_emergency_device(_spec(DeviceKind.MULTI))


def test_whichever_session_sees_a_message_first_stores_it_the_other_drops_its_copy() -> None:
    ledger = LaneLedger()
    press = ("z/sos", b'{"action":"emergency"}', False)
    assert ledger.first_sight("emergency", *press)
    assert not ledger.first_sight("routine", *press)
    # Two identical presses (no id) reach both sessions: two stored, two copies dropped.
    assert ledger.first_sight("routine", *press)
    assert ledger.first_sight("routine", *press)
    assert not ledger.first_sight("emergency", *press)
    assert not ledger.first_sight("emergency", *press)
    assert ledger.first_sight("emergency", *press), "every receipt was matched: a new press"


def test_a_retained_copy_is_not_the_live_message() -> None:
    ledger = LaneLedger()
    assert ledger.first_sight("emergency", "t", b"x", True)
    assert ledger.first_sight("routine", "t", b"x", False)


def test_a_receipt_the_other_session_never_matched_expires() -> None:
    now = [0.0]
    ledger = LaneLedger(keep_seconds=60, monotonic=lambda: now[0])
    assert ledger.first_sight("emergency", "t", b"x", False)  # routine was not subscribed
    now[0] = 61.0
    assert ledger.first_sight("routine", "t", b"x", False), "a new message, not that copy"


@dataclass
class _Session:
    mqtt_state: str


def test_healthy_only_when_every_session_is_subscribed() -> None:
    assert combined_mqtt_state([_Session("connected"), _Session("connected")]) == "connected"
    assert combined_mqtt_state([_Session("connected"), _Session("subscribing")]) == "subscribing"
    assert combined_mqtt_state([_Session("disconnected"), _Session("subscribing")]) == (
        "disconnected"
    )
