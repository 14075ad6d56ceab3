"""personal data encrypted at rest, blind indexes for look-ups

ID numbers, phones, the health record, notification texts, audit before/after and register
snapshots become AES-GCM ciphertext (``v1:<kid>:…``); the unique constraints and the
look-up index move to keyed blind indexes. Existing rows are encrypted in place with the
keyring the CLI hands to Alembic (the development key when none is configured; `homewatch
run` then re-encrypts under the real one).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.privacy import redact
from gateway.storage.types import keyring_of

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, was JSON) — the AEAD context is "table.column", as in the models.
_ENCRYPTED: tuple[tuple[str, str, bool], ...] = (
    ("town", "duty_phone", False),
    ("team_members", "phone", False),
    ("helpers", "phone", False),
    ("persons", "id_number", False),
    ("persons", "phone", False),
    ("persons", "guardian_phone", False),
    ("persons", "health_status", False),
    ("persons", "lifestyle", False),
    ("persons", "medical_checkup", False),
    ("notifications", "recipient_phone", False),
    ("notifications", "body", False),
    ("notifications", "params", True),
    ("visits", "helper_phone", False),
    ("audit_log", "before", True),
    ("audit_log", "after", True),
    ("register_snapshots", "persons", True),
)
# (table, plain column, index column, purpose)
_INDEXED: tuple[tuple[str, str, str, str], ...] = (
    ("persons", "id_number", "id_number_bidx", "id_number"),
    ("helpers", "phone", "phone_bidx", "phone"),
    ("team_members", "phone", "phone_bidx", "phone"),
    ("notifications", "recipient_phone", "recipient_phone_bidx", "phone"),
    ("visits", "helper_phone", "helper_phone_bidx", "phone"),
)


def _columns_of(table: str) -> list[tuple[str, bool]]:
    return [(column, was_json) for t, column, was_json in _ENCRYPTED if t == table]


def _tables() -> list[str]:
    return list(dict.fromkeys(t for t, _, _ in _ENCRYPTED))


def _rewrite(table: str, *, encrypt: bool) -> None:
    """Encrypt (or, going down, decrypt) every value of the table's personal columns and
    fill its blind indexes, row by row in Python: the key never reaches SQL."""
    bind = op.get_bind()
    keyring = keyring_of(bind.dialect)
    columns = [column for column, _ in _columns_of(table)]
    indexes = [(plain, index, purpose) for t, plain, index, purpose in _INDEXED if t == table]
    written = columns + ([index for _, index, _ in indexes] if encrypt else [])
    source = sa.table(table, sa.column("id"), *(sa.column(c, sa.Text) for c in written))
    rows = bind.execute(sa.select(source.c.id, *(source.c[c] for c in columns))).all()
    updates = []
    for row in rows:
        values: dict[str, str | None] = {}
        plain_values: dict[str, str | None] = {}
        for column, value in zip(columns, row[1:], strict=True):
            context = f"{table}.{column}"
            if value is None or value == "":
                values[column] = value
                plain_values[column] = value
            elif encrypt:
                values[column] = keyring.encrypt(value, context)
                plain_values[column] = value
            else:
                values[column] = keyring.decrypt(value, context)
        if encrypt:
            for plain, index, purpose in indexes:
                value = plain_values[plain]
                values[index] = None if value is None else keyring.blind_index(value, purpose)
        updates.append({"row_id": row[0], **{f"v_{k}": v for k, v in values.items()}})
    if updates:
        statement = (
            sa.update(source)
            .where(source.c.id == sa.bindparam("row_id"))
            .values({c: sa.bindparam(f"v_{c}") for c in written})
        )
        bind.execute(statement, updates)


def _redact_errors() -> None:
    """Providers' error messages quote the number they refused."""
    bind = op.get_bind()
    notifications = sa.table("notifications", sa.column("id"), sa.column("error", sa.Text))
    rows = bind.execute(
        sa.select(notifications.c.id, notifications.c.error).where(
            notifications.c.error.is_not(None)
        )
    ).all()
    updates = [{"row_id": i, "v_error": redact(e)} for i, e in rows if redact(e) != e]
    if updates:
        bind.execute(
            sa.update(notifications)
            .where(notifications.c.id == sa.bindparam("row_id"))
            .values(error=sa.bindparam("v_error")),
            updates,
        )


def _retype(table: str, *, to_text: bool) -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table(table) as batch_op:
        for column, was_json in _columns_of(table):
            if to_text:
                batch_op.alter_column(
                    column,
                    type_=sa.Text(),
                    postgresql_using=f'"{column}"::text' if postgresql and was_json else None,
                )
            elif was_json:
                batch_op.alter_column(
                    column,
                    type_=sa.JSON(),
                    postgresql_using=f'"{column}"::json' if postgresql else None,
                )
            else:
                batch_op.alter_column(column, type_=sa.String(length=200))


def upgrade() -> None:
    _throttle_and_sessions()
    with op.batch_alter_table("persons") as batch_op:
        batch_op.drop_constraint("uq_persons_id_number", type_="unique")
        batch_op.add_column(sa.Column("id_number_bidx", sa.String(length=64), nullable=True))
    with op.batch_alter_table("helpers") as batch_op:
        batch_op.drop_constraint("uq_helpers_phone", type_="unique")
        batch_op.add_column(sa.Column("phone_bidx", sa.String(length=64), nullable=True))
    with op.batch_alter_table("team_members") as batch_op:
        batch_op.drop_constraint("uq_team_members_village_id", type_="unique")
        batch_op.add_column(sa.Column("phone_bidx", sa.String(length=64), nullable=True))
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_index("ix_notifications_phone")
        batch_op.add_column(sa.Column("recipient_phone_bidx", sa.String(length=64), nullable=True))
    with op.batch_alter_table("visits") as batch_op:
        batch_op.add_column(sa.Column("helper_phone_bidx", sa.String(length=64), nullable=True))
    for table in _tables():
        _retype(table, to_text=True)
        _rewrite(table, encrypt=True)
    _redact_errors()
    with op.batch_alter_table("persons") as batch_op:
        batch_op.alter_column("id_number_bidx", nullable=False)
        batch_op.create_unique_constraint("uq_persons_id_number_bidx", ["id_number_bidx"])
    with op.batch_alter_table("helpers") as batch_op:
        batch_op.alter_column("phone_bidx", nullable=False)
        batch_op.create_unique_constraint("uq_helpers_phone_bidx", ["phone_bidx"])
    with op.batch_alter_table("team_members") as batch_op:
        batch_op.alter_column("phone_bidx", nullable=False)
        batch_op.create_unique_constraint(
            "uq_team_members_village_id", ["village_id", "phone_bidx"]
        )
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.alter_column("recipient_phone_bidx", nullable=False)
        batch_op.create_index("ix_notifications_phone", ["recipient_phone_bidx"], unique=False)
    with op.batch_alter_table("visits") as batch_op:
        batch_op.alter_column("helper_phone_bidx", nullable=False)
        batch_op.create_index("ix_visits_helper_phone_bidx", ["helper_phone_bidx"], unique=False)
    _append_only_audit()


_IMMUTABLE = ("at", "actor", "action", "entity", "entity_id")


def _append_only_audit() -> None:
    """The trail refuses DELETE and any change of who/what/when; only the encrypted
    before/after may be rewritten (re-encryption under a new key)."""
    if op.get_bind().dialect.name == "postgresql":
        changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _IMMUTABLE)
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$ BEGIN "
            "IF TG_OP = 'DELETE' OR " + changed + " THEN "
            "RAISE EXCEPTION 'audit_log is append-only'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
        return
    op.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    )
    op.execute(
        f"CREATE TRIGGER audit_log_no_rewrite BEFORE UPDATE OF {', '.join(_IMMUTABLE)} "
        "ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    )


def _drop_append_only_audit() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
        return
    op.execute("DROP TRIGGER audit_log_no_delete")
    op.execute("DROP TRIGGER audit_log_no_rewrite")


def _throttle_and_sessions() -> None:
    """Login throttling and ending a user's sessions (SPEC §10)."""
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures") as batch_op:
        batch_op.create_index("ix_login_failures_username_at", ["username", "at"], unique=False)
        batch_op.create_index("ix_login_failures_client_at", ["client", "at"], unique=False)
        batch_op.create_index("ix_login_failures_at", ["at"], unique=False)


def downgrade() -> None:
    _drop_append_only_audit()
    op.drop_table("login_failures")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("token_version")
        batch_op.drop_column("disabled_at")
    for table in _tables():
        _rewrite(table, encrypt=False)
        _retype(table, to_text=False)
    with op.batch_alter_table("visits") as batch_op:
        batch_op.drop_index("ix_visits_helper_phone_bidx")
        batch_op.drop_column("helper_phone_bidx")
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_index("ix_notifications_phone")
        batch_op.drop_column("recipient_phone_bidx")
        batch_op.create_index("ix_notifications_phone", ["recipient_phone"], unique=False)
    with op.batch_alter_table("team_members") as batch_op:
        batch_op.drop_constraint("uq_team_members_village_id", type_="unique")
        batch_op.drop_column("phone_bidx")
        batch_op.create_unique_constraint("uq_team_members_village_id", ["village_id", "phone"])
    with op.batch_alter_table("helpers") as batch_op:
        batch_op.drop_constraint("uq_helpers_phone_bidx", type_="unique")
        batch_op.drop_column("phone_bidx")
        batch_op.create_unique_constraint("uq_helpers_phone", ["phone"])
    with op.batch_alter_table("persons") as batch_op:
        batch_op.drop_constraint("uq_persons_id_number_bidx", type_="unique")
        batch_op.drop_column("id_number_bidx")
        batch_op.create_unique_constraint("uq_persons_id_number", ["id_number"])
