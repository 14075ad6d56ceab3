"""Village team robots from the register: WeCom by key, DingTalk signed, and what a missing
or wrong credential does — against the local fake robot server, on both databases."""

from __future__ import annotations

import pytest

from alerts.channels.base import Outgoing
from alerts.channels.team_robot import TeamRobots
from alerts.notifiers.base import DeliveryError
from gateway.clock import ManualClock
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import Database
from tests.fakes.fake_robots import FakeRobots
from tests.helpers import register_yaml

ENV = {"HW_TEST_ADMIN_PASSWORD": "correct-horse-battery"}


async def _register(db: Database, clock: ManualClock, robot: str) -> None:
    text = register_yaml("rb", persons=1).replace(
        "    emergency_team:\n", f"    team_robot: {robot}\n    emergency_team:\n", 1
    )
    await apply_provisioning(db, parse_provisioning(text, env=ENV), clock.now())


def _post(text: str = "紧急求助：坝芒村老人0（A7K2）") -> Outgoing:
    return Outgoing(7, "", "robot", "sos_alert", {}, text, "tok", "team_robot", "坝芒村", 3)


async def test_a_wecom_robot_gets_the_text_by_its_key(db: Database, clock: ManualClock) -> None:
    await _register(db, clock, "{provider: wecom, url_env: WECOM_URL}")
    with FakeRobots(wecom={"k-1"}) as fake:
        robots = TeamRobots(db, {"WECOM_URL": fake.wecom_url("k-1")})
        delivery = await robots.send(_post())
        assert delivery.sid == "wecom-7" and delivery.status == "delivered"
        [post] = fake.posts
        assert (post.provider, post.robot, post.text) == ("wecom", "k-1", _post().body)

        wrong = TeamRobots(db, {"WECOM_URL": fake.wecom_url("k-2")})
        with pytest.raises(DeliveryError, match="errcode 93000") as caught:
            await wrong.send(_post())
        assert not caught.value.retryable


async def test_a_dingtalk_robot_is_signed_and_a_wrong_secret_refused(
    db: Database, clock: ManualClock
) -> None:
    await _register(db, clock, "{provider: dingtalk, url_env: DT_URL, secret_env: DT_SECRET}")
    with FakeRobots(dingtalk={"tok-1": "SECright"}) as fake:
        env = {"DT_URL": fake.dingtalk_url("tok-1"), "DT_SECRET": "SECright"}
        await TeamRobots(db, env).send(_post())
        assert [p.signed for p in fake.posts] == [True]

        with pytest.raises(DeliveryError, match="errcode 310000"):
            await TeamRobots(db, {**env, "DT_SECRET": "SECwrong"}).send(_post())
        assert len(fake.posts) == 1


async def test_an_unset_url_variable_is_named_and_not_retried(
    db: Database, clock: ManualClock
) -> None:
    await _register(db, clock, "{provider: wecom, url_env: WECOM_URL}")
    with pytest.raises(DeliveryError, match="'WECOM_URL' is not set") as caught:
        await TeamRobots(db, {}).send(_post())
    assert not caught.value.retryable
