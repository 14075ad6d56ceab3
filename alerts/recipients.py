"""Who hears about an alert, and what their message says.

An escalation step names a kind of recipient (``helper``, ``village_team`` …); this module
looks the people up in the register, adds a village team's group robot for an emergency
(SPEC §11), fills the template parameters, and finds everybody already notified when the
alert is taken or closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.channels.dispatch import ROBOT_CHANNEL
from alerts.channels.team_robot import ROBOT_ROLE, village_has_robot
from alerts.outbox import Recipient, enqueue
from alerts.templates import alert_template
from alerts.types import ALERT_LABELS, AlertGroup, AlertType
from gateway.config import EscalationStep
from gateway.register.phones import national_digits, takes_sms
from gateway.storage.models import Alert, Helper, Notification, Person, TeamMember, Town, Village

__all__ = ["Recipients", "national_phone", "tell_everyone", "town_duty"]


def national_phone(e164: str | None) -> str:
    """What a Chinese reader dials: +8613700000001 -> 13700000001, +861012345678 (a Beijing
    landline, whose area code also begins with 1) -> 01012345678."""
    if not e164:
        return "无"
    if e164.startswith("+86"):
        return national_digits(e164)
    return e164


async def town_duty(session: AsyncSession) -> Recipient | None:
    town = (await session.execute(select(Town).limit(1))).scalar_one_or_none()
    return Recipient("town_duty", town.duty_name, town.duty_phone) if town else None


class Recipients:
    """Recipients and message parameters of alert steps.

    Args:
        timezone: Local time in the messages.
        robots: Whether team robots are set up at all (no robot posts otherwise).
    """

    def __init__(self, timezone: tzinfo, *, robots: bool) -> None:
        self.tz = timezone
        self.robots = robots

    async def of_step(self, session: AsyncSession, person: Person, notify: str) -> list[Recipient]:
        """The people a step of kind ``notify`` reaches for ``person``."""
        if notify == "resident":
            return [Recipient("resident", person.name, person.phone)] if person.phone else []
        if notify == "helper":
            if person.helper_id is None:
                return []
            helper = await session.get(Helper, person.helper_id)
            return [Recipient("helper", helper.name, helper.phone)] if helper else []
        if notify == "village_team":
            members = (
                await session.execute(
                    select(TeamMember)
                    .where(TeamMember.village_id == person.village_id)
                    .order_by(TeamMember.id)
                )
            ).scalars()
            return [Recipient("village_team", m.name, m.phone) for m in members]
        if notify == "town_duty":
            duty = await town_duty(session)
            return [duty] if duty else []
        raise ValueError(f"unknown recipient kind {notify!r}")

    async def team_robot(
        self, session: AsyncSession, alert: Alert, step: EscalationStep
    ) -> str | None:
        """An emergency step for the village team also goes to its group robot (SPEC §11):
        the village whose robot to post to, or None."""
        if not self.robots or step.notify != "village_team":
            return None
        if alert.group != AlertGroup.EMERGENCY.value:
            return None
        return await village_has_robot(session, alert.person.village_id)

    @staticmethod
    def template(alert: Alert, step: EscalationStep, params: Mapping[str, str]) -> str:
        if step.notify == "resident" and alert.group == AlertGroup.WELLBEING.value:
            return "inactivity_check"
        return alert_template(alert.type, params)

    async def params(self, session: AsyncSession, alert: Alert) -> dict[str, str]:
        """The template parameters of ``alert`` (its ``person`` must be loaded)."""
        person = alert.person
        village = await session.get(Village, person.village_id)
        village_name = village.name if village else ""
        local = alert.raised_at.astimezone(self.tz)
        return {
            "name": person.name,
            "village": village_name,
            "address": person.address or village_name,
            "time": alert.detail.get("time", local.strftime("%H:%M")),
            "date": local.strftime("%m月%d日"),
            "phone": national_phone(person.phone),
            "code": alert.code,
            "what": ALERT_LABELS[AlertType(alert.type)],
            "person": f"{village_name}{person.name}",
            "since": alert.detail.get("since", local.strftime("%H:%M")),
            "device": alert.detail.get("device_label", alert.device_uid or "设备"),
            "battery": alert.detail.get("battery", ""),
            "gateway": alert.detail.get("gateway", ""),
            "fault": alert.detail.get("fault_label", ""),
            # A learned routine's reason (SPEC §6): "usually active by 07:40, not yet at 09:10".
            "usual_by": alert.detail.get("usual_by", ""),
            "now": alert.detail.get("now", ""),
        }


async def tell_everyone(
    session: AsyncSession,
    alert_id: int,
    template: str,
    params: dict[str, str],
    now: datetime,
    *,
    except_phone: str | None,
) -> None:
    """Queue ``template`` once to everybody an alert step reached (not the resident, not
    ``except_phone``): who took it, or that it is over. A number that cannot take an SMS (a
    landline) is left out: it was called, and a second call just to say this is noise."""
    rows = (
        await session.execute(
            select(
                Notification.recipient_phone,
                Notification.recipient_name,
                Notification.recipient_role,
            )
            .where(
                Notification.alert_id == alert_id,
                Notification.purpose == "alert",
                Notification.status.notin_(["pending", "skipped"]),
            )
            .order_by(Notification.id)
        )
    ).all()
    seen: set[str] = set()
    for phone, name, role in rows:
        if phone in seen or phone == except_phone or role == "resident":
            continue
        if role != ROBOT_ROLE and not takes_sms(phone):
            continue
        seen.add(phone)
        enqueue(
            session,
            alert_id=alert_id,
            purpose=template,
            template=template,
            recipient=Recipient(role, name, phone),
            channel=ROBOT_CHANNEL if role == ROBOT_ROLE else "sms",
            params=params,
            now=now,
        )
