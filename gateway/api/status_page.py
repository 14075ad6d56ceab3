"""A plain Chinese status page at ``/``: open alerts and device health at a glance.

Read-only and without personal details beyond names, so that it can be shown on the duty
office's screen without a login.
"""

from __future__ import annotations

import html

from sqlalchemy import func, select

from alerts.templates import ALERT_TYPE_LABELS
from gateway.api.deps import ApiContext
from gateway.storage.models import Alert, Device, DeviceState, Person, Village

__all__ = ["render_status_page"]

_STATUS_LABELS = {
    "open": "待处理",
    "acknowledged": "已接单",
    "resolved": "已处理",
    "cancelled": "已取消",
}


async def render_status_page(context: ApiContext) -> str:
    tz = context.settings.tz
    async with context.db.session() as session:
        alerts = (
            await session.execute(
                select(Alert, Person.name, Village.name)
                .join(Person, Person.id == Alert.person_id)
                .join(Village, Village.id == Person.village_id)
                .order_by(Alert.id.desc())
                .limit(20)
            )
        ).all()
        devices = (await session.execute(select(func.count(Device.id)))).scalar_one()
        online = (
            await session.execute(select(func.count()).where(DeviceState.online.is_(True)))
        ).scalar_one()
        persons = (
            await session.execute(select(func.count(Person.id)).where(Person.removed_at.is_(None)))
        ).scalar_one()
    rows = "".join(
        "<tr><td>{code}</td><td>{type}</td><td>{village}{name}</td><td>{time}</td>"
        "<td class='{status}'>{label}</td><td>{by}</td></tr>".format(
            code=html.escape(a.code),
            type=ALERT_TYPE_LABELS.get(a.type, a.type),
            village=html.escape(village),
            name=html.escape(name),
            time=a.raised_at.astimezone(tz).strftime("%m-%d %H:%M:%S"),
            status=a.status,
            label=_STATUS_LABELS.get(a.status, a.status),
            by=html.escape(a.acknowledged_by or ""),
        )
        for a, name, village in alerts
    )
    mqtt = "已连接" if context.health() == "connected" else "未连接"
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5"><title>智慧看家 · 状态</title>
<style>body{{font-family:sans-serif;margin:1.5em;}}table{{border-collapse:collapse;}}
td,th{{border:1px solid #ccc;padding:.3em .6em;}}.open{{color:#c00;font-weight:bold;}}
.acknowledged{{color:#c60;}}.resolved,.cancelled{{color:#080;}}</style></head><body>
<h1>智慧看家 · 运行状态</h1>
<p>消息服务器：{mqtt}　关爱对象：{persons}人　设备：{online}/{devices}在线</p>
<h2>最近告警</h2><table><tr><th>编号</th><th>类型</th><th>对象</th><th>时间</th>
<th>状态</th><th>接单人</th></tr>{rows or "<tr><td colspan=6>暂无告警</td></tr>"}</table>
<p><a href="/docs">API 文档</a></p></body></html>"""
