"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, String, Text
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

from gateway.crypto import Keyring
from gateway.privacy import redact

__all__ = [
    "BlindIndex",
    "EncryptedJSON",
    "EncryptedText",
    "RedactedText",
    "UTCDateTime",
    "bind_keyring",
    "keyring_of",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware.

    SQLite has no time zone support and returns naive datetimes; normalising here keeps
    every comparison in the code aware-vs-aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# -- personal data encrypted at rest (SPEC §10) ----------------------------------------------

_KEYRING_ATTRIBUTE = "homewatch_keyring"


def bind_keyring(dialect: Dialect, keyring: Keyring) -> None:
    """Give one engine (through its dialect) the keys its encrypted columns use.

    The keyring travels with the engine rather than in a module global, so two gateways in
    one process (tests, the demo) each use their own keys.
    """
    setattr(dialect, _KEYRING_ATTRIBUTE, keyring)


def keyring_of(dialect: Dialect) -> Keyring:
    keyring = getattr(dialect, _KEYRING_ATTRIBUTE, None)
    if keyring is None:
        keyring = Keyring.development()
        bind_keyring(dialect, keyring)
    assert isinstance(keyring, Keyring)
    return keyring


#: Comparisons that can never match a randomised ciphertext.
_NEVER_MATCH = frozenset(
    {
        operators.eq,
        operators.ne,
        operators.in_op,
        operators.not_in_op,
        operators.like_op,
        operators.not_like_op,
        operators.ilike_op,
        operators.not_ilike_op,
        operators.startswith_op,
        operators.endswith_op,
        operators.contains_op,
    }
)


class _RefuseComparison(TypeDecorator.Comparator[Any]):
    """``Person.id_number == x`` would compile, run, and silently match nothing: refuse it
    when the query is built, pointing at the blind index."""

    def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
        if op in _NEVER_MATCH and not (len(other) == 1 and other[0] is None):
            raise TypeError(
                f"{self.expr} is encrypted: compare its blind index (e.g. phone_bidx, "
                "id_number_bidx) with the plain value instead"
            )
        return super().operate(op, *other, **kwargs)


class EncryptedText(TypeDecorator[str]):
    """A string stored AES-GCM encrypted; the ORM reads and writes plain values.

    ``context`` (the column's ``table.column``) is authenticated with each value. Equality
    on this column never matches (every encryption is different): compare the column's
    :class:`BlindIndex` instead.
    """

    impl = Text
    cache_ok = True
    comparator_factory = _RefuseComparison

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).encrypt(value, self.context)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        assert isinstance(value, str)
        if value == "":
            # A server default (the health record's columns) or a raw insert; it says nothing.
            return ""
        return keyring_of(dialect).decrypt(value, self.context)


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document (audit before/after, register snapshots) stored encrypted."""

    impl = Text
    cache_ok = True
    comparator_factory = _RefuseComparison

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return keyring_of(dialect).encrypt(plain, self.context)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        assert isinstance(value, str)
        return json.loads(keyring_of(dialect).decrypt(value, self.context))


class BlindIndex(TypeDecorator[str]):
    """A keyed HMAC of a value: assign or compare the *plain* value, the column holds and
    matches its HMAC, so ``where(Helper.phone_index == "+86…")`` is one indexed look-up."""

    impl = String(64)
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring_of(dialect).blind_index(value, self.purpose)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)


class RedactedText(TypeDecorator[str]):
    """Free text from outside (a provider's error message) with digit runs masked on the way
    in: "The 'To' number +86137… is not valid" must not keep the number in clear text."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else redact(value)
