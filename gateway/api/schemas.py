"""Public shapes of the HTTP API (separate from the table models)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gateway.register.idnumber import mask
from gateway.storage.models import Alert, Device, Event, Notification, Person, UnknownDevice

__all__ = [
    "AlertDetailOut",
    "AlertOut",
    "DeviceOut",
    "EventOut",
    "EventPage",
    "NotificationOut",
    "PersonOut",
    "Token",
    "UnknownDeviceOut",
]


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 scheme name, not a secret


class DeviceOut(BaseModel):
    uid: str
    kind: str
    protocol: str
    topic: str
    model: str | None
    person_id: int
    online: bool | None
    last_seen_at: datetime | None
    battery: int | None
    link_quality: int | None
    door_open: bool | None

    @classmethod
    def of(cls, device: Device) -> DeviceOut:
        state = device.state
        return cls(
            uid=device.uid,
            kind=device.kind,
            protocol=device.protocol,
            topic=device.topic,
            model=device.model,
            person_id=device.person_id,
            online=state.online if state else None,
            last_seen_at=state.last_seen_at if state else None,
            battery=state.battery if state else None,
            link_quality=state.link_quality if state else None,
            door_open=state.door_open if state else None,
        )


class PersonOut(BaseModel):
    id: int
    name: str
    gender: str
    id_number: str
    village: str
    categories: list[str]
    care_level: str
    helper_name: str | None
    helper_phone: str | None
    measures: str
    phone: str | None
    notes: str
    address: str
    last_activity_at: datetime | None
    devices: list[str]
    removed_at: datetime | None = None

    @classmethod
    def of(cls, person: Person, *, mask_id: bool) -> PersonOut:
        return cls(
            id=person.id,
            name=person.name,
            gender=person.gender,
            id_number=mask(person.id_number) if mask_id else person.id_number,
            village=person.village.name,
            categories=list(person.categories),
            care_level=person.care_level,
            helper_name=person.helper.name if person.helper else None,
            helper_phone=person.helper.phone if person.helper else None,
            measures=person.measures,
            phone=person.phone,
            notes=person.notes,
            address=person.address,
            last_activity_at=person.last_activity_at,
            devices=[d.uid for d in person.devices],
            removed_at=person.removed_at,
        )


class EventOut(BaseModel):
    id: int
    device: str
    person_id: int | None
    kind: str
    state: bool | None
    occurred_at: datetime
    received_at: datetime
    event_id: str | None
    battery: int | None
    link_quality: int | None
    retained: bool
    timestamp_fallback: bool

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            device=event.device_uid,
            person_id=event.person_id,
            kind=event.kind,
            state=event.state,
            occurred_at=event.occurred_at,
            received_at=event.received_at,
            event_id=event.event_id,
            battery=event.battery,
            link_quality=event.link_quality,
            retained=event.retained,
            timestamp_fallback=event.timestamp_fallback,
        )


class EventPage(BaseModel):
    total: int
    items: list[EventOut]


class UnknownDeviceOut(BaseModel):
    topic: str
    first_seen_at: datetime
    last_seen_at: datetime
    message_count: int
    last_payload: str

    @classmethod
    def of(cls, row: UnknownDevice) -> UnknownDeviceOut:
        return cls(
            topic=row.topic,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
            message_count=row.message_count,
            last_payload=row.last_payload.decode("utf-8", errors="replace"),
        )


class AlertOut(BaseModel):
    id: int
    code: str
    type: str
    group: str
    status: str
    person_id: int
    person_name: str
    village: str
    device_uid: str | None
    raised_at: datetime
    trigger_count: int
    step_index: int
    next_step_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        return cls(
            id=alert.id,
            code=alert.code,
            type=alert.type,
            group=alert.group,
            status=alert.status,
            person_id=alert.person_id,
            person_name=alert.person.name,
            village=alert.person.village.name,
            device_uid=alert.device_uid,
            raised_at=alert.raised_at,
            trigger_count=alert.trigger_count,
            step_index=alert.step_index,
            next_step_at=alert.next_step_at,
            acknowledged_at=alert.acknowledged_at,
            acknowledged_by=alert.acknowledged_by,
            resolved_at=alert.resolved_at,
            resolved_by=alert.resolved_by,
            resolution_note=alert.resolution_note,
        )


class NotificationOut(BaseModel):
    id: int
    purpose: str
    template: str
    step: int | None
    round: int | None
    recipient_role: str
    recipient_name: str
    recipient_phone: str
    channel: str
    #: Which provider carried it (``twilio``, ``aliyun_sms``, ``dingtalk`` …; SPEC §11).
    provider: str | None = None
    attempt: int
    status: str
    sid: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, row: Notification) -> NotificationOut:
        return cls(
            id=row.id,
            purpose=row.purpose,
            template=row.template,
            step=row.step_index,
            round=row.step_round,
            recipient_role=row.recipient_role,
            recipient_name=row.recipient_name,
            recipient_phone=row.recipient_phone,
            channel=row.channel,
            provider=row.provider,
            attempt=row.attempt,
            status=row.status,
            sid=row.sid,
            error=row.error,
            created_at=row.created_at,
            sent_at=row.sent_at,
            updated_at=row.updated_at,
        )


class AlertDetailOut(AlertOut):
    notifications: list[NotificationOut]


class ResolveIn(BaseModel):
    note: str | None = None


class ReopenIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


class HandoverIn(BaseModel):
    to: str = Field(min_length=1, max_length=100)
    note: str = Field(default="", max_length=2000)
