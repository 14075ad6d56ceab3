"""Re-opening a closed alert and handing an acknowledged one over (issue #12): in the
service with a ManualClock and a recording notifier, through the API, and on the console's
alert page; on both real databases."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from alerts.service import AlertConflictError, AlertService, AlertStateError
from alerts.types import AlertStatus, AlertTrigger, AlertType
from gateway.clock import ManualClock
from gateway.storage.db import Database
from gateway.storage.models import Alert, AlertNote, AuditEntry
from tests.service.api_support import Api, add_user, running_api
from tests.service.test_console import _context, _csrf, _raise, login
from tests.service.test_escalation import HELPER, TEAM, RecordingNotifier, _register, _service


def _alert_calls(notifier: RecordingNotifier, phone: str) -> int:
    """Alert messages (not the 'taken' / 'resolved' notices) sent to ``phone``."""
    return sum(1 for text in notifier.to(phone) if "已接单" not in text and "处理完毕" not in text)


async def _audit_actions(db: Database, alert_id: int) -> list[str]:
    async with db.session() as session:
        rows = await session.execute(
            select(AuditEntry.action)
            .where(AuditEntry.entity == "alert", AuditEntry.entity_id == str(alert_id))
            .order_by(AuditEntry.id)
        )
        return list(rows.scalars())


async def _notes(db: Database, alert_id: int) -> list[str]:
    async with db.session() as session:
        rows = await session.execute(
            select(AlertNote.text).where(AlertNote.alert_id == alert_id).order_by(AlertNote.id)
        )
        return list(rows.scalars())


async def _sos(service: AlertService, person_id: int, clock: ManualClock) -> Alert:
    alert, new = await service.raise_alert(AlertTrigger(AlertType.SOS, person_id, clock.now()))
    assert new
    return alert


async def test_reopen_restarts_the_escalation_from_the_helper(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    notifier = RecordingNotifier()
    service = _service(db, clock, notifier)
    alert = await _sos(service, person_id, clock)
    await service.tick()
    assert [c for c, _, _ in notifier.sent] == ["sms", "voice"]
    await service.resolve(alert.id, "admin", "按错了")
    await service.tick()
    clock.advance(timedelta(minutes=20))
    await service.tick()
    assert _alert_calls(notifier, HELPER) == 2, "nothing more while it is closed"

    reopened = await service.reopen(alert.id, "admin", "老人仍不舒服")
    assert reopened.status == AlertStatus.OPEN.value
    assert reopened.resolved_at is None and reopened.acknowledged_by is None
    await service.tick()
    assert _alert_calls(notifier, HELPER) == 4, "the helper is called again, SMS and voice"
    assert not notifier.to(TEAM[0]), "the team waits the helper's 3 minutes as for a new alert"
    clock.advance(timedelta(minutes=3))
    await service.tick()
    assert len(notifier.to(TEAM[0], "voice")) == 1, "and the ladder goes on from there"

    assert await _audit_actions(db, alert.id) == ["resolve", "reopen"]
    assert await _notes(db, alert.id) == ["重新打开（此前处理完毕，admin）：老人仍不舒服"]


async def test_reopen_is_refused_while_another_alert_of_that_type_is_open(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    service = _service(db, clock, RecordingNotifier())
    first = await _sos(service, person_id, clock)
    with pytest.raises(AlertStateError, match="not closed"):
        await service.reopen(first.id, "admin", "还开着")
    await service.cancel(first.id, by="老人0", reason="resident_ok")
    clock.advance(timedelta(hours=1))  # past the SOS debounce: a press of its own
    second = await _sos(service, person_id, clock)

    with pytest.raises(AlertConflictError, match=second.code) as refused:
        await service.reopen(first.id, "admin", "误取消")
    assert refused.value.other_code == second.code
    async with db.session() as session:
        still = await session.get(Alert, first.id)
    assert still is not None and still.status == AlertStatus.CANCELLED.value
    assert "reopen" not in await _audit_actions(db, first.id)
    assert await _notes(db, first.id) == []


async def test_hand_over_changes_who_has_it_and_leaves_a_note(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    service = _service(db, clock, RecordingNotifier())
    alert = await _sos(service, person_id, clock)
    await service.acknowledge(alert.id, "张三", channel="web")

    handed = await service.hand_over(alert.id, "张三", "李四", "我下班了")
    assert handed.acknowledged_by == "李四"
    async with db.session() as session:
        stored = await session.get(Alert, alert.id)
    assert stored is not None and stored.acknowledged_by == "李四"
    assert stored.status == AlertStatus.ACKNOWLEDGED.value
    assert await _notes(db, alert.id) == ["交接：张三 → 李四（我下班了）"]
    assert await _audit_actions(db, alert.id) == ["acknowledge", "handover"]


async def test_hand_over_is_refused_on_an_open_alert(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    person_id = await _register(db, clock, monkeypatch)
    service = _service(db, clock, RecordingNotifier())
    alert = await _sos(service, person_id, clock)
    with pytest.raises(AlertStateError, match="only an acknowledged alert"):
        await service.hand_over(alert.id, "admin", "李四", "")
    async with db.session() as session:
        stored = await session.get(Alert, alert.id)
    assert stored is not None and stored.acknowledged_by is None
    assert await _notes(db, alert.id) == []


# -- the API and the console ---------------------------------------------------------------


@pytest.fixture
async def api(db: Database, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db, tmp_path) as running:
        yield running


async def test_api_reopen_and_handover(api: Api) -> None:
    admin = await api.login("admin")
    alert_id = await _raise(api, 1)
    url = f"/api/v1/alerts/{alert_id}"

    early = await api.client.post(f"{url}/handover", json={"to": "王五"}, headers=admin)
    assert early.status_code == 409 and "only an acknowledged alert" in early.text
    assert (await api.client.post(f"{url}/ack", headers=admin)).status_code == 200
    nameless = await api.client.post(f"{url}/handover", json={"to": ""}, headers=admin)
    assert nameless.status_code == 422 and "to" in nameless.text
    handed = await api.client.post(
        f"{url}/handover", json={"to": "王五", "note": "他离得近"}, headers=admin
    )
    assert handed.status_code == 200, handed.text
    assert handed.json()["acknowledged_by"] == "王五"

    still_open = await api.client.post(f"{url}/reopen", json={"note": "x"}, headers=admin)
    assert still_open.status_code == 409
    assert (await api.client.post(f"{url}/resolve", headers=admin)).status_code == 200
    noteless = await api.client.post(f"{url}/reopen", json={}, headers=admin)
    assert noteless.status_code == 422 and "note" in noteless.text
    reopened = await api.client.post(f"{url}/reopen", json={"note": "没事是误判"}, headers=admin)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["status"] == "open"

    await _context(api).alerts.resolve(alert_id, "admin")
    api.clock.advance(timedelta(hours=1))
    other = await _raise(api, 1)
    conflict = await api.client.post(f"{url}/reopen", json={"note": "再开"}, headers=admin)
    assert conflict.status_code == 409
    other_code = (await api.client.get(f"/api/v1/alerts/{other}", headers=admin)).json()["code"]
    assert other_code in conflict.json()["detail"]


async def test_api_a_helper_cannot_reopen_or_hand_over_another_persons_alert(
    api: Api,
) -> None:
    await add_user(api.db, "zhouqiang", "helper", helper="+8613700000003")  # 隘口村's helper
    stranger = await api.login("zhouqiang")
    own = await api.login("lisi")
    alert_id = await _raise(api, 1)
    url = f"/api/v1/alerts/{alert_id}"
    await _context(api).alerts.acknowledge(alert_id, "李四")
    refused = await api.client.post(f"{url}/handover", json={"to": "周强"}, headers=stranger)
    assert refused.status_code == 404
    await _context(api).alerts.resolve(alert_id, "李四")
    refused = await api.client.post(f"{url}/reopen", json={"note": "x"}, headers=stranger)
    assert refused.status_code == 404
    assert (await api.client.get(url, headers=own)).json()["status"] == "resolved"
    allowed = await api.client.post(f"{url}/reopen", json={"note": "老人又按了"}, headers=own)
    assert allowed.status_code == 200


async def test_console_hand_over_then_close_then_reopen(api: Api) -> None:
    await login(api.client, "admin")
    alert_id = await _raise(api, 1)
    page = await api.client.get(f"/alerts/{alert_id}")
    assert 'data-action="handover"' not in page.text and 'data-action="reopen"' not in page.text
    await _context(api).alerts.acknowledge(alert_id, "张三")

    page = await api.client.get(f"/alerts/{alert_id}")
    assert 'data-action="handover"' in page.text and 'data-action="reopen"' not in page.text
    form = {"to": "李四", "note": "换班"}
    assert (await api.client.post(f"/alerts/{alert_id}/handover", data=form)).status_code == 403
    handed = await api.client.post(
        f"/alerts/{alert_id}/handover", data=form | {"csrf_token": _csrf(page.text)}
    )
    assert handed.status_code == 303
    page = await api.client.get(f"/alerts/{alert_id}")
    assert "交接：张三 → 李四（换班）" in page.text
    assert 'data-status="acknowledged"' in page.text and "李四 ·" in page.text

    await _context(api).alerts.resolve(alert_id, "李四")
    page = await api.client.get(f"/alerts/{alert_id}")
    assert 'data-action="reopen"' in page.text and 'data-action="handover"' not in page.text
    reopened = await api.client.post(
        f"/alerts/{alert_id}/reopen", data={"note": "老人仍不舒服", "csrf_token": _csrf(page.text)}
    )
    assert reopened.status_code == 303
    page = await api.client.get(f"/alerts/{alert_id}")
    assert (
        'data-status="open"' in page.text
        and "重新打开（此前处理完毕，李四）：老人仍不舒服" in page.text
    )
    assert 'data-action="ack"' in page.text


async def test_console_reopen_refused_names_the_open_alert(api: Api) -> None:
    await login(api.client, "admin")
    first = await _raise(api, 1)
    await _context(api).alerts.resolve(first, "admin")
    api.clock.advance(timedelta(hours=1))
    second = await _raise(api, 1)
    page = await api.client.get(f"/alerts/{first}")
    refused = await api.client.post(
        f"/alerts/{first}/reopen", data={"note": "误关", "csrf_token": _csrf(page.text)}
    )
    assert refused.status_code == 409
    assert 'data-refused="reopen_conflict"' in refused.text and "仍未关闭" in refused.text
    other = await api.client.get(f"/alerts/{second}")
    code = re.search(r'data-alert-code="([A-Z0-9]+)"', other.text)
    assert code and code.group(1) in refused.text
    page = await api.client.get(f"/alerts/{first}")
    assert 'data-status="resolved"' in page.text
