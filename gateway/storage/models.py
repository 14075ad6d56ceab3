"""Database tables (SQLAlchemy 2 typed ORM). All timestamps UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from gateway.storage.types import (
    BlindIndex,
    EncryptedJSON,
    EncryptedText,
    RedactedText,
    UTCDateTime,
)

__all__ = [
    "BLIND_INDEXED",
    "Alert",
    "AlertNote",
    "AuditEntry",
    "AwayPeriod",
    "Base",
    "Device",
    "DeviceState",
    "EmergencyMode",
    "Event",
    "Helper",
    "LoginFailure",
    "Notification",
    "Person",
    "ProviderReceipt",
    "RegisterSnapshot",
    "RejectedMessage",
    "TeamMember",
    "Town",
    "UnknownDevice",
    "User",
    "Village",
    "Visit",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class Town(Base):
    """The single town this installation serves, with its duty line (民政办值班)."""

    __tablename__ = "town"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    duty_name: Mapped[str] = mapped_column(String(100))
    duty_phone: Mapped[str] = mapped_column(EncryptedText("town.duty_phone"))


class Village(Base):
    __tablename__ = "villages"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: The team's group robot (SPEC §11): ``{provider, url_env, secret_env}``, or None.
    team_robot: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    team: Mapped[list[TeamMember]] = relationship(
        back_populates="village", order_by="TeamMember.id", cascade="all, delete-orphan"
    )


class TeamMember(Base):
    """A member of the village's 应急救助志愿服务队."""

    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("village_id", "phone_bidx"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(EncryptedText("team_members.phone"))
    #: Keyed blind index of ``phone`` (kept by ``_fill_blind_indexes``); compare plain phones.
    phone_bidx: Mapped[str] = mapped_column(BlindIndex("phone"))
    role: Mapped[str] = mapped_column(String(50), default="")
    village: Mapped[Village] = relationship(back_populates="team")


class Helper(Base):
    """A 帮扶责任人."""

    __tablename__ = "helpers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(EncryptedText("helpers.phone"))
    phone_bidx: Mapped[str] = mapped_column(BlindIndex("phone"), unique=True)
    title: Mapped[str] = mapped_column(String(100), default="")
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    village: Mapped[Village] = relationship()


class Person(Base):
    """A 关爱对象 in the register."""

    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    gender: Mapped[str] = mapped_column(String(2))
    id_number: Mapped[str] = mapped_column(EncryptedText("persons.id_number"))
    id_number_bidx: Mapped[str] = mapped_column(BlindIndex("id_number"), unique=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    categories: Mapped[list[str]] = mapped_column(JSON)
    care_level: Mapped[str] = mapped_column(String(20))
    helper_id: Mapped[int | None] = mapped_column(ForeignKey("helpers.id"))
    measures: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str | None] = mapped_column(EncryptedText("persons.phone"))
    notes: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(200), default="")
    guardian_name: Mapped[str | None] = mapped_column(String(100))
    guardian_phone: Mapped[str | None] = mapped_column(EncryptedText("persons.guardian_phone"))
    # The notice's health record: 健康状况 / 生活方式 / 体检情况.
    health_status: Mapped[str] = mapped_column(
        EncryptedText("persons.health_status"), default="", server_default=""
    )
    lifestyle: Mapped[str] = mapped_column(
        EncryptedText("persons.lifestyle"), default="", server_default=""
    )
    medical_checkup: Mapped[str] = mapped_column(
        EncryptedText("persons.medical_checkup"), default="", server_default=""
    )
    rules_override: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_activity_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Left the register (moved away, died, no longer in difficulty); kept for the history.
    removed_at: Mapped[datetime | None]
    village: Mapped[Village] = relationship()
    helper: Mapped[Helper | None] = relationship()
    devices: Mapped[list[Device]] = relationship(back_populates="person", order_by="Device.id")


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(100), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    protocol: Mapped[str] = mapped_column(String(20))
    topic: Mapped[str] = mapped_column(String(255), unique=True)
    model: Mapped[str | None] = mapped_column(String(100))
    person: Mapped[Person] = relationship(back_populates="devices")
    state: Mapped[DeviceState | None] = relationship(
        back_populates="device", cascade="all, delete-orphan"
    )


class DeviceState(Base):
    """What the device last told us; kept current by ingest."""

    __tablename__ = "device_state"
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    online: Mapped[bool | None] = mapped_column(Boolean)
    last_seen_at: Mapped[datetime | None]
    battery: Mapped[int | None]
    link_quality: Mapped[int | None]
    door_open: Mapped[bool | None] = mapped_column(Boolean)
    door_changed_at: Mapped[datetime | None]
    #: Start of an unbroken run of "occupied" reports; a run of many hours means a stuck sensor.
    motion_since: Mapped[datetime | None]
    device: Mapped[Device] = relationship(back_populates="state")


class Event(Base):
    """One stored sensor event. ``dedup_key`` makes redeliveries and repeated ids no-ops."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("device_uid", "dedup_key", name="uq_events_device_dedup"),
        Index("ix_events_device_received", "device_uid", "received_at"),
        Index("ix_events_received", "received_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_uid: Mapped[str] = mapped_column(String(100))
    person_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[bool | None] = mapped_column(Boolean)
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    event_id: Mapped[str | None] = mapped_column(String(100))
    dedup_key: Mapped[str] = mapped_column(String(100))
    battery: Mapped[int | None]
    link_quality: Mapped[int | None]
    retained: Mapped[bool] = mapped_column(Boolean, default=False)
    timestamp_fallback: Mapped[bool] = mapped_column(Boolean, default=False)


class RejectedMessage(Base):
    """A payload no adapter could use, kept (bounded) for an operator to inspect."""

    __tablename__ = "rejected_messages"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(255))
    device_uid: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(50), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int]
    received_at: Mapped[datetime]


class UnknownDevice(Base):
    """A topic no registered device owns: counted, listed, never acted on."""

    __tablename__ = "unknown_devices"
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    message_count: Mapped[int] = mapped_column(BigInteger)
    last_payload: Mapped[bytes] = mapped_column(LargeBinary)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"))
    helper_id: Mapped[int | None] = mapped_column(ForeignKey("helpers.id"))
    created_at: Mapped[datetime]
    #: A disabled user can neither log in nor use a token issued before.
    disabled_at: Mapped[datetime | None]
    #: Carried in every token; bumped (by ``_end_sessions``) when the password changes or
    #: the user is disabled, which ends all her tokens and console sessions at once.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoginFailure(Base):
    """A failed login, kept for the throttle's window (SPEC §10): in the database, so that
    several gateways behind one address count together."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_username_at", "username", "at"),
        Index("ix_login_failures_client_at", "client", "at"),
        Index("ix_login_failures_at", "at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    username: Mapped[str] = mapped_column(String(100))
    client: Mapped[str] = mapped_column(String(64))


class Alert(Base):
    """An alert and its escalation cursor.

    ``version`` is bumped by every state change: a worker claims a due step with
    ``UPDATE … WHERE id = :id AND version = :seen``, so two gateway processes never send
    the same step twice (optimistic concurrency works the same on SQLite and PostgreSQL).
    """

    __tablename__ = "alerts"
    __table_args__ = (
        # One open alert per person and type (open or acknowledged = still being handled).
        Index(
            "uq_alerts_one_open",
            "person_id",
            "type",
            unique=True,
            sqlite_where=text("status IN ('open', 'acknowledged')"),
            postgresql_where=text("status IN ('open', 'acknowledged')"),
        ),
        Index("ix_alerts_due", "status", "next_step_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    type: Mapped[str] = mapped_column(String(30))
    group: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    device_uid: Mapped[str | None] = mapped_column(String(100))
    raised_at: Mapped[datetime]
    last_trigger_at: Mapped[datetime]
    trigger_count: Mapped[int] = mapped_column(Integer, default=1)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The escalation chain as it was configured when the alert was raised (steps with
    #: notify, channels, wait_seconds, repeat): later steps follow it, never the live
    #: configuration. NULL only for alerts raised before migration 0008, until their next
    #: step writes the live chain onto them.
    escalation_chain: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    step_index: Mapped[int] = mapped_column(Integer, default=-1)
    step_round: Mapped[int] = mapped_column(Integer, default=0)
    next_step_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=0)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    #: Why it was closed, from the console's list (real, false_alarm, test, away, …).
    close_cause: Mapped[str | None] = mapped_column(String(20))
    cancelled_at: Mapped[datetime | None]
    person: Mapped[Person] = relationship()
    notifications: Mapped[list[Notification]] = relationship(
        back_populates="alert", order_by="Notification.id"
    )


class AlertNote(Base):
    """What the duty officer wrote while handling an alert (called the daughter, …)."""

    __tablename__ = "alert_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)


class Notification(Base):
    """One delivery attempt of one message to one recipient on one channel."""

    __tablename__ = "notifications"
    __table_args__ = (
        # The outbox claims WHERE status = 'pending' ORDER BY priority, not_before.
        Index("ix_notifications_claim", "status", "priority", "not_before"),
        Index("ix_notifications_phone", "recipient_phone_bidx"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    purpose: Mapped[str] = mapped_column(String(20))  # alert, taken, resolved, confirm, digest
    template: Mapped[str] = mapped_column(String(50))
    step_index: Mapped[int | None]
    step_round: Mapped[int | None]
    recipient_role: Mapped[str] = mapped_column(String(20))
    recipient_name: Mapped[str] = mapped_column(String(100))
    recipient_phone: Mapped[str] = mapped_column(EncryptedText("notifications.recipient_phone"))
    recipient_phone_bidx: Mapped[str] = mapped_column(BlindIndex("phone"))
    channel: Mapped[str] = mapped_column(String(10))
    #: The provider that carried it (``twilio``, ``aliyun_sms``, ``dingtalk`` …), once sent.
    provider: Mapped[str | None] = mapped_column(String(20), nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    #: pending -> sending -> sent -> (queued/delivered/completed/failed/...), or failed.
    status: Mapped[str] = mapped_column(String(20))
    #: alerts.outbox.Priority: 0 emergency, 1 wellbeing, 2 technical, 3 routine; lower first.
    priority: Mapped[int] = mapped_column(SmallInteger, default=3, server_default="3")
    not_before: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    #: Template parameters, so a retry on the other channel renders that channel's wording.
    params: Mapped[dict[str, Any]] = mapped_column(
        EncryptedJSON("notifications.params"), default=dict
    )
    #: The rendered text names the resident and her phone, so it is encrypted too.
    body: Mapped[str] = mapped_column(EncryptedText("notifications.body"))
    error: Mapped[str | None] = mapped_column(RedactedText)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    #: Set once the failure of this attempt has been handled (retry or fallback scheduled).
    failure_handled: Mapped[bool] = mapped_column(Boolean, default=False)
    alert: Mapped[Alert | None] = relationship(back_populates="notifications")


class Visit(Base):
    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    helper_phone: Mapped[str] = mapped_column(EncryptedText("visits.helper_phone"))
    helper_phone_bidx: Mapped[str] = mapped_column(BlindIndex("phone"), index=True)
    visited_at: Mapped[datetime]
    services: Mapped[list[str]] = mapped_column(JSON)
    notes: Mapped[str] = mapped_column(Text, default="")
    photo_path: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))


class AuditEntry(Base):
    """Who changed what in the register, with before/after."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(100))
    # Register snapshots carry ID numbers and phones.
    before: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON("audit_log.before"))
    after: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON("audit_log.after"))


class AwayPeriod(Base):
    """The resident is away (住女儿家, hospital): inactivity is not watched meanwhile."""

    __tablename__ = "away_periods"
    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


class EmergencyMode(Base):
    """A town-wide emergency period (突发公共事件或重大灾害); open while ``ended_at`` is null."""

    __tablename__ = "emergency_modes"
    id: Mapped[int] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    #: Inactivity quiet periods are multiplied by this (0.5 halves them).
    inactivity_factor: Mapped[float]
    #: Required visits are multiplied by this (and rounded up).
    visit_factor: Mapped[float]
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(100))
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(100))


class RegisterSnapshot(Base):
    """The register of one village as it stood at the end of a month (每月动态调整)."""

    __tablename__ = "register_snapshots"
    __table_args__ = (UniqueConstraint("village_id", "month"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id", ondelete="CASCADE"))
    month: Mapped[str] = mapped_column(String(7))
    taken_at: Mapped[datetime]
    persons: Mapped[list[dict[str, Any]]] = mapped_column(
        EncryptedJSON("register_snapshots.persons")
    )


class ProviderReceipt(Base):
    """A provider's receipt already acted on: providers retry and batch their pushes, and
    the same receipt must count once (SPEC §11)."""

    __tablename__ = "provider_receipts"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_provider_receipts_kind_key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: ``aliyun.sms-report``, ``aliyun.sms-up``, ``aliyun.voice-report``.
    kind: Mapped[str] = mapped_column(String(40))
    #: What identifies one receipt of that kind (e.g. the biz id and the outcome).
    key: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime]


# -- blind indexes follow their plain columns ------------------------------------------------

#: (plain attribute, blind index attribute) per model. The index column's type hashes
#: whatever plain value is assigned, so copying the plain value over is all it takes.
BLIND_INDEXED: dict[type[Base], tuple[tuple[str, str], ...]] = {
    Person: (("id_number", "id_number_bidx"),),
    Helper: (("phone", "phone_bidx"),),
    TeamMember: (("phone", "phone_bidx"),),
    Notification: (("recipient_phone", "recipient_phone_bidx"),),
    Visit: (("helper_phone", "helper_phone_bidx"),),
}


def _fill_blind_indexes_on_insert(_mapper: Any, _connection: Any, target: Base) -> None:
    for plain, index in BLIND_INDEXED[type(target)]:
        setattr(target, index, getattr(target, plain))


def _fill_blind_indexes_on_update(_mapper: Any, _connection: Any, target: Base) -> None:
    state = inspect(target)
    for plain, index in BLIND_INDEXED[type(target)]:
        if state.attrs[plain].history.has_changes():
            setattr(target, index, getattr(target, plain))


for _model in BLIND_INDEXED:
    event.listen(_model, "before_insert", _fill_blind_indexes_on_insert)
    event.listen(_model, "before_update", _fill_blind_indexes_on_update)


def _end_sessions(_mapper: Any, _connection: Any, target: User) -> None:
    """A new password or a disabled account ends every token and session issued before."""
    state = inspect(target)
    if state.attrs.password_hash.history.has_changes() or (
        state.attrs.disabled_at.history.has_changes() and target.disabled_at is not None
    ):
        target.token_version = (target.token_version or 0) + 1


event.listen(User, "before_update", _end_sessions)


def _audit_user_changes(session: Session, _context: Any, _instances: Any) -> None:
    """Every change of a user, wherever it is made (provisioning, the command line, the
    console), lands in the audit trail; ``session.info["actor"]`` names who made it."""
    actor = str(session.info.get("actor", "system"))
    for user in [*session.new, *session.dirty]:
        if not isinstance(user, User):
            continue
        state = inspect(user)
        changed = sorted(
            "password" if attr.key == "password_hash" else attr.key
            for attr in state.attrs
            if attr.key != "token_version" and attr.history.has_changes()
        )
        if not changed:
            continue
        if user in session.new:
            action = "create"
        elif "disabled_at" in changed:
            action = "disable" if user.disabled_at is not None else "enable"
        else:
            action = "update"
        session.add(
            AuditEntry(
                at=datetime.now(UTC),
                actor=actor,
                action=action,
                entity="user",
                entity_id=user.username,
                before=None,
                after={
                    "changed": changed,
                    "role": user.role,
                    "village_id": user.village_id,
                    "helper_id": user.helper_id,
                },
            )
        )


event.listen(Session, "before_flush", _audit_user_changes)
