"""Field encryption at rest (SPEC §10): AES-256-GCM per value, a key id with each value, and a
keyed blind index so that look-ups by ID number or phone stay one indexed equality.

A stored value reads ``v1:<kid>:<base64(nonce || ciphertext+tag)>``. The key id lets a
gateway hold several keys at once (the current one encrypts, retired ones only decrypt), so a
key can be rotated without downtime for reads; ``homewatch rotate-key`` re-encrypts.

Keys are derived with HKDF-SHA256 from a secret string (``HOMEWATCH_DATA_KEY``, else
``HOMEWATCH_SECRET_KEY``). The column name is the AEAD's associated data, so a value copied
into another column (an ID number pasted over a phone) fails to decrypt instead of leaking.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "DEVELOPMENT_SECRET",
    "DataKey",
    "DecryptionError",
    "Keyring",
    "is_encrypted",
    "keyring_for",
    "normalise_for_index",
]

_VERSION = "v1"
_NONCE_BYTES = 12
_SALT = b"homewatch field encryption"

#: Used only when no secret is configured (tests, a first `homewatch provision` on a laptop).
#: It is public, so values under it are as good as clear text: `homewatch run` refuses to run
#: without a real secret and re-encrypts such values at start (see gateway.storage.rekey).
DEVELOPMENT_SECRET = "homewatch-development-key-not-secret"  # noqa: S105 - public on purpose


class DecryptionError(ValueError):
    """A stored value that no key of the keyring opens (wrong key, or tampered)."""


def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(secret.encode())


@dataclass(frozen=True, slots=True)
class DataKey:
    """One key: its id (derived from the key itself, so no bookkeeping), AEAD and index keys."""

    kid: str
    aead_key: bytes
    index_key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> DataKey:
        kid = _derive(secret, b"key id").hex()[:8]
        return cls(kid, _derive(secret, b"aes-256-gcm"), _derive(secret, b"blind index"))


def normalise_for_index(value: str) -> str:
    """The form a blind index is computed over: an ID number's ``x`` and stray spaces must
    not make the same person two people."""
    return "".join(value.split()).upper()


def is_encrypted(value: str) -> bool:
    return value.startswith(_VERSION + ":") and value.count(":") >= 2


class Keyring:
    """The current key (encrypts, indexes) and retired keys (decrypt only)."""

    def __init__(self, current: str, retired: Iterable[str] = ()) -> None:
        self.current = DataKey.from_secret(current)
        keys = [self.current, *(DataKey.from_secret(s) for s in retired if s)]
        # The development key always decrypts, so data written before a secret was set can
        # still be read and then re-encrypted under the real key.
        keys.append(DataKey.from_secret(DEVELOPMENT_SECRET))
        self._by_kid = {key.kid: key for key in reversed(keys)}

    @classmethod
    def development(cls) -> Keyring:
        return cls(DEVELOPMENT_SECRET)

    @property
    def is_development(self) -> bool:
        return self.current.kid == DataKey.from_secret(DEVELOPMENT_SECRET).kid

    def encrypt(self, plain: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.current.aead_key).encrypt(nonce, plain.encode(), context.encode())
        return f"{_VERSION}:{self.current.kid}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str, context: str) -> str:
        try:
            version, kid, body = stored.split(":", 2)
        except ValueError as error:
            raise DecryptionError(f"{context}: not an encrypted value") from error
        if version != _VERSION:
            raise DecryptionError(f"{context}: unknown format {version!r}")
        key = self._by_kid.get(kid)
        if key is None:
            raise DecryptionError(
                f"{context}: encrypted under key {kid}, which this gateway does not have "
                "(add the old secret to HOMEWATCH_RETIRED_DATA_KEYS)"
            )
        raw = base64.b64decode(body)
        try:
            plain = AESGCM(key.aead_key).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()
            )
        except InvalidTag as error:
            raise DecryptionError(f"{context}: value fails authentication under {kid}") from error
        return plain.decode()

    def kid_of(self, stored: str) -> str:
        return stored.split(":", 2)[1]

    def blind_index(self, value: str, purpose: str) -> str:
        """HMAC-SHA256 of the normalised value under the current key; ``purpose`` keeps an ID
        number and a phone with the same digits apart."""
        message = purpose.encode() + b"\x00" + normalise_for_index(value).encode()
        return hmac.new(self.current.index_key, message, hashlib.sha256).hexdigest()


def keyring_for(data_key: str | None, secret_key: str | None, retired: str = "") -> Keyring:
    """The keyring the settings describe: ``HOMEWATCH_DATA_KEY``, else one derived from
    ``HOMEWATCH_SECRET_KEY``, else the development key (nothing configured)."""
    current = data_key or secret_key or DEVELOPMENT_SECRET
    return Keyring(current, [s.strip() for s in retired.split(",") if s.strip()])
