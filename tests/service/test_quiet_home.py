"""Quiet-home rules over simulated days: real storage path (parse → route → store → judge),
both databases, a manual clock (2026-03-10 00:00 UTC = 08:00 in the town), no broker."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import aiomqtt
import pytest
from sqlalchemy import select

from alerts.types import AlertType
from gateway.app import Gateway
from gateway.clock import ManualClock
from gateway.config import load_settings
from gateway.ingest import StoreBatch
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from gateway.storage.models import Alert, AwayPeriod, EmergencyMode, Person
from tests.helpers import id_number, register_yaml
from tests.service.test_escalation import DUTY, HELPER, RecordingNotifier

P = "qh"
RESIDENT = "+8613600000000"
_ids = itertools.count()


class Home:
    """One registered resident (老人0) and a gateway that is fed messages by hand."""

    def __init__(self, gateway: Gateway, clock: ManualClock, notifier: RecordingNotifier) -> None:
        self.gateway = gateway
        self.clock = clock
        self.notifier = notifier

    async def send(self, topic: str, payload: object, *, deliver: bool = True) -> None:
        batch = StoreBatch()
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        message = aiomqtt.Message(topic, body, 1, False, next(_ids) % 60000 + 1, None)
        self.gateway.ingest.classify(batch, message, self.clock.now())
        stored = await self.gateway.ingest.flush(batch)
        if deliver:
            await self.gateway.runner.on_events(stored.new_events)

    async def motion(self, state: bool = True) -> None:
        await self.send(
            f"{P}/homewatch/{P}-p0-pir/event",
            {"type": "motion", "state": state, "id": f"m{next(_ids)}"},
        )

    async def check_in(self) -> None:
        # A press of the pendant's second button (native check_in).
        await self.send(
            f"{P}/homewatch/{P}-p0-sos/event", {"type": "check_in", "id": f"c{next(_ids)}"}
        )

    async def door(self, open_: bool, battery: int = 90) -> None:
        await self.send(f"{P}-z2m/{P}-p0-door", {"contact": not open_, "battery": battery})

    async def tick(self) -> None:
        await self.gateway.runner.tick()
        await self.gateway.alerts.tick()

    async def advance(self, total: timedelta, step: timedelta = timedelta(minutes=5)) -> None:
        end = self.clock.now() + total
        while self.clock.now() < end:
            self.clock.advance(min(step, end - self.clock.now()))
            await self.tick()

    async def alerts(self, alert_type: AlertType) -> list[Alert]:
        async with self.gateway.db.session() as session:
            rows = await session.execute(
                select(Alert).where(Alert.type == alert_type.value).order_by(Alert.id)
            )
            return list(rows.scalars())

    async def person_id(self) -> int:
        async with self.gateway.db.session() as session:
            return (
                await session.execute(select(Person.id).where(Person.name == "老人0"))
            ).scalar_one()


def _gateway(
    db: Database, clock: ManualClock, notifier: RecordingNotifier, **rules: object
) -> Gateway:
    settings = load_settings(
        database_url=db.url, mqtt_topic_prefix=P, secret_key="k" * 32, rules=rules
    )
    return Gateway(settings, "k" * 32, clock=clock, notifier=notifier)


@pytest.fixture
async def home(db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml(P, persons=1)), clock.now())
    notifier = RecordingNotifier()
    gateway = _gateway(db, clock, notifier)
    await gateway.registry.load(gateway.db)
    await gateway.runner.refresh()
    return Home(gateway, clock, notifier)


async def test_four_quiet_hours_by_day_call_the_resident_and_check_in_cancels(home: Home) -> None:
    await home.motion()  # 08:00
    await home.advance(timedelta(hours=3, minutes=55))
    assert await home.alerts(AlertType.INACTIVITY) == []
    await home.advance(timedelta(minutes=5))  # 12:00: four quiet hours
    [alert] = await home.alerts(AlertType.INACTIVITY)
    assert alert.status == "open" and alert.detail["since"] == "08:00"
    # The pre-alarm is a call to the resident, nobody else yet.
    assert [p for _c, p, _t in home.notifier.sent] == [RESIDENT]
    assert "请按1" in home.notifier.to(RESIDENT, "voice")[0]
    await home.check_in()
    [alert] = await home.alerts(AlertType.INACTIVITY)
    assert alert.status == "cancelled" and alert.resolved_by == "resident"
    await home.advance(timedelta(minutes=30))
    assert home.notifier.to(HELPER) == [], "a cancelled pre-alarm goes no further"


async def test_an_unanswered_pre_alarm_goes_to_the_helper(home: Home) -> None:
    await home.motion()
    await home.advance(timedelta(hours=4))
    assert home.notifier.to(RESIDENT, "voice")
    await home.advance(timedelta(minutes=5))
    assert home.notifier.to(HELPER, "sms") and home.notifier.to(HELPER, "voice")
    assert "自08:00起长时间没有活动" in home.notifier.to(HELPER, "sms")[0]


async def test_an_early_sleeper_is_not_alarmed_at_dawn(home: Home) -> None:
    await home.advance(timedelta(hours=12))  # 20:00, with activity along the day
    for _ in range(3):
        await home.motion()
        await home.advance(timedelta(minutes=1))
    # Bed at 20:03; day window opens 06:00 but only 4 quiet hours *inside* it count.
    await home.advance(timedelta(hours=11, minutes=55), step=timedelta(minutes=15))
    assert await home.alerts(AlertType.INACTIVITY) == [], "no alarm before 08:03"
    await home.advance(timedelta(minutes=15))
    [alert] = await home.alerts(AlertType.INACTIVITY)
    assert alert.detail["since"] == "20:02"


async def test_night_bathroom_trip_moves_the_deadline_to_four_hours_into_the_day(
    home: Home,
) -> None:
    await home.advance(timedelta(hours=18), step=timedelta(hours=1))  # 02:00 local
    await home.motion()
    await home.advance(timedelta(hours=7, minutes=55), step=timedelta(minutes=15))  # 09:55
    assert await home.alerts(AlertType.INACTIVITY) == []
    await home.advance(timedelta(minutes=10))
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1


async def test_a_restart_mid_silence_neither_forgets_nor_repeats(db: Database, home: Home) -> None:
    await home.motion()
    await home.advance(timedelta(hours=2))
    # A new process: no memory but the database.
    restarted = Home(_gateway(db, home.clock, home.notifier), home.clock, home.notifier)
    await restarted.gateway.runner.refresh()
    await restarted.advance(timedelta(hours=2, minutes=5))
    assert len(await restarted.alerts(AlertType.INACTIVITY)) == 1
    again = Home(_gateway(db, home.clock, home.notifier), home.clock, home.notifier)
    await again.advance(timedelta(minutes=10))
    assert len(await again.alerts(AlertType.INACTIVITY)) == 1
    assert len(home.notifier.to(RESIDENT, "voice")) == 1, "one pre-alarm call, not one per process"


async def test_a_home_already_silent_when_the_gateway_starts_is_caught(
    db: Database, home: Home
) -> None:
    await home.motion()
    home.clock.advance(timedelta(hours=6))  # the gateway was down all this time
    fresh = Home(_gateway(db, home.clock, home.notifier), home.clock, home.notifier)
    await fresh.tick()
    [alert] = await fresh.alerts(AlertType.INACTIVITY)
    assert alert.detail["since"] == "08:00"


async def test_zigbee_contact_repeats_and_no_motion_are_not_signs_of_life(home: Home) -> None:
    await home.door(open_=False)  # first report: the door's position becomes known
    await home.motion()
    await home.motion(False)
    for _ in range(8):
        await home.advance(timedelta(minutes=30))
        await home.door(open_=False, battery=89)  # battery report repeating contact
        await home.motion(False)
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1


async def test_resumed_movement_withdraws_an_untaken_inactivity_alert(home: Home) -> None:
    await home.motion()
    await home.advance(timedelta(hours=4))
    await home.motion()
    await home.tick()
    [alert] = await home.alerts(AlertType.INACTIVITY)
    assert alert.status == "cancelled" and alert.resolution_note == "activity resumed"


async def test_away_suspends_inactivity_and_it_resumes_after_return(home: Home) -> None:
    await home.motion()
    now = home.clock.now()
    async with home.gateway.db.session() as session, session.begin():
        session.add(
            AwayPeriod(
                person_id=await home.person_id(),
                starts_at=now,
                ends_at=now + timedelta(days=2),
                reason="住女儿家",
                created_by="test",
                created_at=now,
            )
        )
    await home.advance(timedelta(days=2), step=timedelta(hours=1))
    assert await home.alerts(AlertType.INACTIVITY) == [], "away: no inactivity alert"
    # Back at 08:00 on the 12th: a fresh 4 quiet hours are needed, not an instant alarm.
    await home.advance(timedelta(hours=3, minutes=55))
    assert await home.alerts(AlertType.INACTIVITY) == []
    await home.advance(timedelta(minutes=10))
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1


async def test_emergency_mode_halves_the_quiet_period(home: Home) -> None:
    await home.motion()
    async with home.gateway.db.session() as session, session.begin():
        session.add(
            EmergencyMode(
                reason="洪水",
                inactivity_factor=0.5,
                visit_factor=2.0,
                started_at=home.clock.now(),
                started_by="test",
            )
        )
    await home.advance(timedelta(hours=2))
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1


async def test_a_door_left_open_at_night_alerts_and_closing_it_withdraws(home: Home) -> None:
    await home.advance(timedelta(hours=13), step=timedelta(hours=1))  # 21:00
    await home.door(open_=True)
    await home.advance(timedelta(hours=1, minutes=10))  # 22:10
    assert await home.alerts(AlertType.DOOR_OPEN_NIGHT) == []
    await home.advance(timedelta(minutes=5))  # 22:15
    [alert] = await home.alerts(AlertType.DOOR_OPEN_NIGHT)
    assert alert.detail["time"] == "21:00"
    await home.door(open_=False)
    await home.tick()
    [alert] = await home.alerts(AlertType.DOOR_OPEN_NIGHT)
    assert alert.status == "cancelled"


async def test_a_flapping_door_is_a_fault_not_a_person(home: Home) -> None:
    await home.motion()
    for n in range(24):
        home.clock.advance(timedelta(seconds=2))
        await home.door(open_=n % 2 == 0)
    [fault] = await home.alerts(AlertType.SENSOR_FAULT)
    assert fault.detail["fault"] == "flapping"
    await home.tick()
    assert home.notifier.to(HELPER, "sms") and not home.notifier.to(HELPER, "voice")
    # Once seen as flapping, its changes stop counting: four hours on, the home is quiet.
    await home.advance(timedelta(hours=4))
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1
    [fault] = await home.alerts(AlertType.SENSOR_FAULT)
    assert fault.status == "resolved", "calm for 10 minutes: healthy again"


async def test_a_motion_sensor_stuck_on_is_a_fault_and_does_not_hide_silence(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    await apply_provisioning(db, parse_provisioning(register_yaml(P, persons=1)), clock.now())
    notifier = RecordingNotifier()
    gateway = _gateway(db, clock, notifier, stuck_motion="3h")
    await gateway.registry.load(gateway.db)
    home = Home(gateway, clock, notifier)
    await gateway.runner.refresh()
    for _ in range(3 * 6 + 1):  # "occupied" every 10 minutes for three hours
        await home.motion()
        await home.advance(timedelta(minutes=10), step=timedelta(minutes=10))
    [fault] = await home.alerts(AlertType.SENSOR_FAULT)
    assert fault.detail["fault"] == "stuck"
    for _ in range(4 * 6 + 1):
        await home.motion()
        await home.advance(timedelta(minutes=10), step=timedelta(minutes=10))
    # Reports before the fault was seen counted; four hours of "motion" after it did not.
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1


async def test_offline_device_alerts_the_helper_by_sms_and_closes_when_back(home: Home) -> None:
    await home.door(open_=False)
    await home.send(f"{P}-z2m/{P}-p0-door/availability", {"state": "offline"})
    await home.advance(timedelta(minutes=5))
    assert await home.alerts(AlertType.DEVICE_OFFLINE) == [], "a blip is not a fault"
    await home.advance(timedelta(minutes=5))
    [alert] = await home.alerts(AlertType.DEVICE_OFFLINE)
    assert alert.device_uid == f"{P}-p0-door"
    sms = home.notifier.to(HELPER, "sms")
    assert sms and "门磁" in sms[0] and not home.notifier.to(HELPER, "voice")
    await home.send(f"{P}-z2m/{P}-p0-door/availability", {"state": "online"})
    await home.tick()
    [alert] = await home.alerts(AlertType.DEVICE_OFFLINE)
    assert alert.status == "resolved"


async def test_a_device_silent_for_25_hours_is_offline(home: Home) -> None:
    await home.door(open_=False)
    await home.motion()
    await home.check_in()
    await home.advance(timedelta(hours=24, minutes=55), step=timedelta(hours=1))
    assert await home.alerts(AlertType.DEVICE_OFFLINE) == []
    await home.advance(timedelta(minutes=10))
    assert len(await home.alerts(AlertType.DEVICE_OFFLINE)) == 1


async def test_low_battery_alerts_once_and_closes_after_replacement(home: Home) -> None:
    await home.door(open_=False, battery=14)
    await home.tick()
    await home.door(open_=False, battery=16)  # wobbling around the threshold
    await home.tick()
    await home.door(open_=False, battery=13)
    await home.tick()
    [alert] = await home.alerts(AlertType.BATTERY_LOW)
    assert alert.status == "open" and alert.detail["battery"] == "14"
    await home.door(open_=False, battery=100)
    await home.tick()
    [alert] = await home.alerts(AlertType.BATTERY_LOW)
    assert alert.status == "resolved"


async def test_a_stored_sos_that_never_reached_the_rules_is_raised_by_the_sweep(
    home: Home,
) -> None:
    await home.send(f"{P}/homewatch/{P}-p0-sos/event", {"type": "sos", "id": "lost"}, deliver=False)
    await home.tick()
    assert await home.alerts(AlertType.SOS) == [], "the normal path gets its chance first"
    home.clock.advance(timedelta(seconds=15))
    await home.tick()
    [alert] = await home.alerts(AlertType.SOS)
    assert alert.status == "open"
    assert home.notifier.to(HELPER, "sms")


async def test_losing_the_broker_tells_the_duty_line_directly(home: Home) -> None:
    gateway = home.gateway
    assert not gateway.ingest.connected
    await gateway.runner.check_broker_link()
    home.clock.advance(timedelta(minutes=4))
    await gateway.runner.check_broker_link()
    await gateway.alerts.tick()
    assert home.notifier.to(DUTY) == []
    home.clock.advance(timedelta(minutes=1))
    await gateway.runner.check_broker_link()
    await gateway.runner.check_broker_link()
    await gateway.alerts.tick()
    # The duty line is the register's landline (023-76000000): it is called, never texted.
    [call] = home.notifier.to(DUTY)
    assert home.notifier.to(DUTY, "voice") == [call]
    assert "与消息服务器断开" in call and "08:00" in call
    gateway.ingest.connected = True
    await gateway.runner.check_broker_link()
    await gateway.alerts.tick()
    calls = home.notifier.to(DUTY, "voice")
    assert len(calls) == 2 and "恢复" in calls[1]
    assert home.notifier.to(DUTY, "sms") == []


BED_BOUND = f"""  - name: 卧床老人
    gender: 女
    id_number: "{id_number("19380505", 77, False)}"
    village: 坝芒村
    categories: [severe_disability]
    care_level: special
    helper: "+8613700000001"
    phone: "+8613600009999"
    rules:
      inactivity:
        day: {{quiet: 2h}}
        ignore_devices: [{P}-bed-pir]
    devices:
      - {{uid: {P}-bed-pir, kind: motion, protocol: native, topic: {P}/homewatch/{P}-bed-pir}}
      - {{uid: {P}-bed-door, kind: door, protocol: native, topic: {P}/homewatch/{P}-bed-door}}
"""


async def test_per_person_overrides_ignore_a_bedroom_pir_and_shorten_the_day_quiet(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    text = register_yaml(P, persons=1, extra_person_yaml=BED_BOUND)
    await apply_provisioning(db, parse_provisioning(text), clock.now())
    notifier = RecordingNotifier()
    home = Home(_gateway(db, clock, notifier), clock, notifier)
    await home.gateway.registry.load(home.gateway.db)
    await home.gateway.runner.refresh()
    await home.send(f"{P}/homewatch/{P}-bed-door/event", {"type": "door", "state": "open"})
    await home.send(f"{P}/homewatch/{P}-bed-door/event", {"type": "door", "state": "closed"})
    await home.motion()  # 老人0 keeps the default rules
    for _ in range(12):  # the bed-bound resident's own bedroom PIR: not a sign of life
        await home.advance(timedelta(minutes=10), step=timedelta(minutes=10))
        await home.send(
            f"{P}/homewatch/{P}-bed-pir/event",
            {"type": "motion", "state": True, "id": f"b{next(_ids)}"},
        )
    async with db.session() as session:
        names = (
            (
                await session.execute(
                    select(Person.name)
                    .join(Alert, Alert.person_id == Person.id)
                    .where(Alert.type == "inactivity")
                )
            )
            .scalars()
            .all()
        )
    assert names == ["卧床老人"], "two quiet hours for her, four for 老人0"


async def test_no_inactivity_alarm_while_a_fall_is_being_handled(home: Home) -> None:
    await home.motion()
    await home.send(f"{P}/homewatch/{P}-p0-sos/event", {"type": "fall", "id": "f1"})
    [fall] = await home.alerts(AlertType.FALL)
    await home.gateway.alerts.acknowledge(fall.id, by="李四")
    await home.advance(timedelta(hours=5))
    assert await home.alerts(AlertType.INACTIVITY) == [], "the fall is being handled"
    await home.gateway.alerts.resolve(fall.id, by="李四", note="送医")
    await home.tick()
    assert len(await home.alerts(AlertType.INACTIVITY)) == 1, "still silent once it is closed"
