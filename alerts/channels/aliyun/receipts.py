"""Aliyun's receipt pushes (SPEC §11): SMS delivery reports, SMS replies, call reports.

Aliyun pushes a JSON array per POST, may batch several receipts into one and pushes again
when it did not get ``{"code": 0}`` in time. Each receipt is therefore recorded
(:class:`~gateway.storage.models.ProviderReceipt`) before it is acted on, and a receipt seen
before is skipped: the same reply "1" pushed twice must not acknowledge a second alert.

Acting on a receipt goes through the same doors as Twilio's webhooks: a reply through
:meth:`AlertService.acknowledge_by_sms`, key 1 through
:meth:`AlertService.acknowledge_by_call`, an outcome through
:meth:`AlertService.status_callback` (whose failed statuses drive retry and fallback).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from gateway.clock import Clock
from gateway.register.phones import normalize_phone
from gateway.storage.db import Database
from gateway.storage.models import Notification, ProviderReceipt

if TYPE_CHECKING:
    from alerts.service import AlertService

__all__ = ["AliyunReceipts", "call_status"]

log = logging.getLogger(__name__)

# Aliyun's call result codes (呼叫状态码) in the words of our status callbacks: the
# failed ones retry the call, then fall back to SMS, exactly as Twilio's do.
_ANSWERED = frozenset({"200000", "200001", "200008", "200100", "300000"})
_BUSY = frozenset({"200002", "200112"})
_NO_ANSWER = frozenset({"200003", "200113"})


def call_status(status_code: str) -> str:
    """``completed``, ``busy``, ``no-answer`` or ``failed`` for an Aliyun call result code."""
    if status_code in _ANSWERED:
        return "completed"
    if status_code in _BUSY:
        return "busy"
    if status_code in _NO_ANSWER:
        return "no-answer"
    return "failed"


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return "" if value is None else str(value).strip()


class AliyunReceipts:
    """Acts on Aliyun's pushes, each receipt once.

    Args:
        db: Where receipts are remembered and notifications looked up.
        clock: The injected clock.
        alerts: The alert service whose acknowledgement and status doors are used.
    """

    def __init__(self, db: Database, clock: Clock, alerts: AlertService) -> None:
        self.db = db
        self.clock = clock
        self.alerts = alerts

    async def sms_report(self, items: Sequence[Mapping[str, Any]]) -> int:
        """SmsReport: ``success`` -> ``delivered``, else ``undelivered`` (retried)."""
        done = 0
        for item in items:
            biz_id = _text(item, "biz_id")
            if not biz_id:
                continue
            success = item.get("success") in (True, "true", "True", 1)
            status = "delivered" if success else "undelivered"
            err_code = _text(item, "err_code")

            error = None if success else err_code

            async def act(
                biz_id: str = biz_id, status: str = status, err: str | None = error
            ) -> None:
                if not await self.alerts.status_callback(biz_id, status, err):
                    log.info("aliyun SMS report for an unknown biz id %s", biz_id)

            done += await self._once("aliyun.sms-report", f"{biz_id}|{status}|{err_code}", act)
        return done

    async def sms_up(self, items: Sequence[Mapping[str, Any]]) -> int:
        """SmsUp: a reply ``1`` or an alert's code acknowledges, as a Twilio SMS reply does."""
        done = 0
        for item in items:
            raw_phone = _text(item, "phone_number")
            content = _text(item, "content")
            try:
                phone = normalize_phone(raw_phone)
            except ValueError:
                log.warning("aliyun SMS reply from an unreadable number: ignored")
                continue
            key = "|".join((phone, _text(item, "send_time"), _text(item, "sequence_id"), content))

            async def act(phone: str = phone, content: str = content) -> None:
                result = await self.alerts.acknowledge_by_sms(phone, content)
                if result is None:
                    log.info("aliyun SMS reply from %s acknowledged nothing", phone)

            done += await self._once("aliyun.sms-up", key, act)
        return done

    async def voice_report(self, items: Sequence[Mapping[str, Any]]) -> int:
        """VoiceReport: ``dtmf`` 1 acknowledges; the outcome updates the call's attempt."""
        done = 0
        for item in items:
            call_id = _text(item, "call_id")
            out_id = _text(item, "out_id")
            status_code = _text(item, "status_code")
            dtmf = _text(item, "dtmf")
            key = f"{call_id or out_id}|{status_code}|{dtmf}"

            async def act(
                call_id: str = call_id,
                out_id: str = out_id,
                code: str = status_code,
                dtmf: str = dtmf,
            ) -> None:
                row = await self._call_row(call_id, out_id)
                if row is None:
                    log.info("aliyun call report for an unknown call %s", call_id or out_id)
                    return
                if dtmf[:1] == "1":
                    await self.alerts.acknowledge_by_call(row.token, "1")
                if code and row.sid:
                    await self.alerts.status_callback(row.sid, call_status(code))

            done += await self._once("aliyun.voice-report", key, act)
        return done

    async def _call_row(self, call_id: str, out_id: str) -> Notification | None:
        conditions = []
        if call_id:
            conditions.append(Notification.sid == call_id)
        if out_id.isdigit():
            conditions.append(Notification.id == int(out_id))
        if not conditions:
            return None
        async with self.db.session() as session:
            rows = (
                (
                    await session.execute(
                        select(Notification).where(
                            or_(*conditions), Notification.channel == "voice"
                        )
                    )
                )
                .scalars()
                .all()
            )
        # The CallId is authoritative; the OutId only when the call id is unknown to us.
        for row in rows:
            if row.sid == call_id:
                return row
        return rows[0] if rows else None

    async def _once(self, kind: str, key: str, act: Callable[[], Awaitable[None]]) -> int:
        """Run ``act`` unless this receipt was acted on before; 1 when it ran."""
        key = key[:255]
        try:
            async with self.db.session() as session, session.begin():
                session.add(ProviderReceipt(kind=kind, key=key, received_at=self.clock.now()))
        except IntegrityError:
            log.debug("%s %s: pushed again, already handled", kind, key)
            return 0
        try:
            await act()
        except Exception:
            # Forget it, so that Aliyun's next push (it retries without our "成功") tries again.
            async with self.db.session() as session, session.begin():
                await session.execute(
                    delete(ProviderReceipt).where(
                        ProviderReceipt.kind == kind, ProviderReceipt.key == key
                    )
                )
            raise
        return 1
