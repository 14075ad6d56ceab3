"""Village team group robots (SPEC §11): who is posted to, and the post itself.

A village may name a DingTalk or WeCom robot in the provisioning file
(``villages[].team_robot``). The robot's URL and secret are not in the register: the file
names the environment variables that hold them (``url_env``, ``secret_env``), so the
register and its exports never carry a credential.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.channels.base import Outgoing
from alerts.channels.dingtalk import post_dingtalk
from alerts.channels.wecom import post_wecom
from alerts.notifiers.base import Delivery, DeliveryError
from gateway.storage.db import Database
from gateway.storage.models import Village

__all__ = ["ROBOT_ROLE", "TeamRobots", "village_has_robot"]

#: ``recipient_role`` of a robot post; its ``recipient_name`` is the village.
ROBOT_ROLE = "team_robot"


async def village_has_robot(session: AsyncSession, village_id: int) -> str | None:
    """The village's name when it has a team robot, else None."""
    village = await session.get(Village, village_id)
    if village is None or not village.team_robot:
        return None
    return village.name


class TeamRobots:
    """Posts a notification's text to its village's group robot.

    Args:
        db: The register (villages and their ``team_robot``).
        env: Where ``url_env``/``secret_env`` are looked up; the process environment by
            default.
        timeout: Seconds per HTTP request.
    """

    name = "team_robot"

    def __init__(
        self,
        db: Database,
        env: Mapping[str, str] | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.db = db
        self.env = env if env is not None else os.environ
        self.timeout = timeout

    async def send(self, message: Outgoing) -> Delivery:
        async with self.db.session() as session:
            robot = (
                await session.execute(
                    select(Village.team_robot).where(Village.name == message.recipient_name)
                )
            ).scalar_one_or_none()
        if not robot:
            raise DeliveryError(
                f"village {message.recipient_name!r} has no team robot", retryable=False
            )
        provider = robot.get("provider", "")
        url = self.env.get(robot.get("url_env", ""), "")
        if not url:
            raise DeliveryError(
                f"{provider} robot of {message.recipient_name}: "
                f"environment variable {robot.get('url_env')!r} is not set",
                retryable=False,
            )
        if provider == "dingtalk":
            secret = self.env.get(robot.get("secret_env") or "", "") or None
            # Wall time, not the injected clock: DingTalk refuses a timestamp an hour off,
            # and the demo's clock runs faster than the world.
            timestamp_ms = int(time.time() * 1000)
            await post_dingtalk(
                url, secret, message.body, timestamp_ms=timestamp_ms, request_timeout=self.timeout
            )
        elif provider == "wecom":
            await post_wecom(url, message.body, request_timeout=self.timeout)
        else:
            raise DeliveryError(f"unknown team robot provider {provider!r}", retryable=False)
        # Robots return no id of their own; ours keeps the sid unique and names the provider.
        return Delivery(sid=f"{provider}-{message.notification_id}", status="delivered")
