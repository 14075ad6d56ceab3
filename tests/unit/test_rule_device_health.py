"""Device health on typed facts: offline after the grace or a day's silence, resolved when
back; battery low below the threshold, resolved only above threshold plus hysteresis."""

from __future__ import annotations

from datetime import timedelta

from alerts.types import AlertType
from gateway.rules.decisions import BatteryDetail, Closing, OfflineDetail, Raise, Resolve
from gateway.rules.device_health import DeviceHealthRule
from tests.unit.rule_facts import PERSON, alert, clock_at, door, home, local, pir

RULE = DeviceHealthRule()


def test_reported_offline_for_the_grace_period_raises_once() -> None:
    facts = home(door(online=False, last_seen_at=local(10, 9)))
    clock = clock_at(local(10, 9, 9, 59))
    verdict = RULE.decide(facts, clock.now())
    assert verdict.decisions == () and verdict.next_check == local(10, 9, 10)
    clock.advance(timedelta(seconds=1))
    assert RULE.decide(facts, clock.now()).decisions == (
        Raise(
            AlertType.DEVICE_OFFLINE,
            PERSON,
            local(10, 9, 10),
            OfflineDetail("door", local(10, 9)),
            "door",
        ),
    )
    already = home(
        door(online=False, last_seen_at=local(10, 9)),
        alerts=(alert(AlertType.DEVICE_OFFLINE, local(10, 9, 10)),),
    )
    assert RULE.decide(already, local(10, 10)).decisions == ()


def test_a_silent_device_is_offline_after_25_hours() -> None:
    facts = home(pir(local(10, 9), online=True))
    assert RULE.decide(facts, local(11, 9, 59)).next_check == local(11, 10)
    assert [type(d) for d in RULE.decide(facts, local(11, 10)).decisions] == [Raise]


def test_a_device_that_never_reported_counts_from_registration() -> None:
    facts = home(pir(None), created_at=local(10, 8))
    assert RULE.decide(facts, local(10, 9)).next_check == local(11, 9)


def test_the_offline_alert_resolves_when_every_device_is_back() -> None:
    facts = home(
        door(online=True, last_seen_at=local(10, 9, 30)),
        alerts=(alert(AlertType.DEVICE_OFFLINE, local(10, 9, 10)),),
    )
    assert RULE.decide(facts, local(10, 9, 31)).decisions == (Resolve(100, Closing.DEVICE_ONLINE),)


def test_low_battery_raises_below_the_threshold_and_wobbling_does_not_close_it() -> None:
    now = local(10, 9)
    low = home(door(online=True, last_seen_at=now, battery=14))
    assert RULE.decide(low, now).decisions == (
        Raise(AlertType.BATTERY_LOW, PERSON, now, BatteryDetail("door", 14), "door"),
    )
    not_yet = home(door(online=True, last_seen_at=now, battery=15))
    assert RULE.decide(not_yet, now).decisions == ()
    open_ = (alert(AlertType.BATTERY_LOW, now),)
    wobbling = home(door(online=True, last_seen_at=now, battery=24), alerts=open_)
    assert RULE.decide(wobbling, now).decisions == ()
    replaced = home(door(online=True, last_seen_at=now, battery=25), alerts=open_)
    assert RULE.decide(replaced, now).decisions == (Resolve(100, Closing.BATTERY_REPLACED),)


def test_a_home_with_no_devices_left_closes_its_offline_alert() -> None:
    # Somebody taken off the register: the runner hands the rule a home with no devices.
    facts = home(alerts=(alert(AlertType.DEVICE_OFFLINE, local(10, 9, 10)),))
    verdict = RULE.decide(facts, local(10, 12))
    assert verdict.decisions == (Resolve(100, Closing.DEVICE_ONLINE),)
    assert verdict.next_check is None
