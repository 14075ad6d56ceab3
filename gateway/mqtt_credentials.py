"""Per-device MQTT credentials for Mosquitto (SPEC §10: ``homewatch mqtt-credentials``).

From the register, into one directory:

* ``passwd`` — a Mosquitto password file, PBKDF2-SHA512 hashes in the ``$7$`` format that
  ``mosquitto_passwd`` (2.x) writes;
* ``acl`` — each device user may publish only to its own topics (state/event and
  availability); the gateway user reads everything and writes its status topic;
* ``devices.csv`` — ``uid,username,password`` for the installer;
* ``gateway.env`` — ``HOMEWATCH_MQTT_USERNAME`` / ``HOMEWATCH_MQTT_PASSWORD``.

A rerun reads ``devices.csv`` and ``gateway.env`` back and keeps every password it finds, so
devices already installed keep working; new devices get new passwords, removed ones lose
theirs.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from gateway.devices import DeviceSpec, device_topics
from gateway.register.vocabulary import DeviceKind, Protocol
from gateway.storage.db import Database
from gateway.storage.models import Device

__all__ = [
    "CredentialsReport",
    "device_username",
    "mosquitto_hash",
    "register_devices",
    "verify_mosquitto_hash",
    "write_credentials",
]

#: What ``mosquitto_passwd`` uses; device passwords are random (144 bits), so more rounds
#: would only slow every device's connect without making a guess any likelier.
_ITERATIONS = 101
_SALT_BYTES = 12
_DEVICE_PREFIX = "hw-"


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS
) -> str:
    """``$7$<iterations>$<salt>$<hash>``: PBKDF2-HMAC-SHA512 as Mosquitto 2.x checks it."""
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_mosquitto_hash(password: str, stored: str) -> bool:
    _, scheme, iterations, salt, _digest = stored.split("$")
    if scheme != "7":
        return False
    expected = mosquitto_hash(password, salt=base64.b64decode(salt), iterations=int(iterations))
    return secrets.compare_digest(expected, stored)


def device_username(uid: str) -> str:
    return _DEVICE_PREFIX + uid


@dataclass
class CredentialsReport:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    gateway_username: str = ""

    def lines(self) -> list[str]:
        return [
            f"devices: {len(self.created)} new, {len(self.kept)} kept, {len(self.removed)} removed",
            f"gateway user: {self.gateway_username}",
        ]


def _read_existing_devices(path: Path) -> dict[str, tuple[str, str]]:
    if not path.exists():
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        return {
            row["uid"]: (row["username"], row["password"])
            for row in csv.DictReader(handle)
            if row.get("uid") and row.get("username") and row.get("password")
        }


def _read_env(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def _write_private(path: Path, text: str) -> None:
    """Written readable by the owner only, atomically (a broker reloading mid-write must not
    see half a password file)."""
    scratch = path.with_name(path.name + ".new")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    scratch.replace(path)


def _acl_topic(topic: str) -> str:
    if any(c in topic for c in "\n\r"):
        raise ValueError(f"topic {topic!r} cannot be written to a Mosquitto ACL")
    return topic


async def register_devices(db: Database) -> list[DeviceSpec]:
    """Every device in the register, as the adapters know it."""
    async with db.session() as session:
        devices = (await session.execute(select(Device).order_by(Device.uid))).scalars().all()
    return [
        DeviceSpec(
            uid=d.uid,
            kind=DeviceKind(d.kind),
            protocol=Protocol(d.protocol),
            topic=d.topic,
            model=d.model,
        )
        for d in devices
    ]


def write_credentials(
    devices: list[DeviceSpec],
    out: Path,
    *,
    gateway_username: str,
    status_topic_prefix: str,
) -> CredentialsReport:
    """Write the four files for ``devices`` (see the module docstring).

    ``status_topic_prefix``: the gateway's topic prefix (``homewatch``); its user may write
    ``<prefix>/gateway/+/status`` (any client id, so several gateways share the user).
    """
    out.mkdir(parents=True, exist_ok=True)
    csv_path, env_path = out / "devices.csv", out / "gateway.env"
    existing = _read_existing_devices(csv_path)
    env = _read_env(env_path)
    gateway_password = env.get("HOMEWATCH_MQTT_PASSWORD") or secrets.token_urlsafe(24)
    if env.get("HOMEWATCH_MQTT_USERNAME") not in (None, gateway_username):
        # A renamed gateway user keeps no password of the old name.
        gateway_password = secrets.token_urlsafe(24)

    report = CredentialsReport(gateway_username=gateway_username)
    rows: list[tuple[str, str, str]] = []
    acl = [
        "# Generated by `homewatch mqtt-credentials`; rerun it after changing the register.",
        "# Anonymous clients get nothing (allow_anonymous false in mosquitto.conf).",
        "",
        f"user {gateway_username}",
        "topic read #",
        f"topic write {_acl_topic(status_topic_prefix)}/gateway/+/status",
    ]
    for spec in devices:
        kept = existing.get(spec.uid)
        if kept is not None:
            username, password = kept
            report.kept.append(spec.uid)
        else:
            username, password = device_username(spec.uid), secrets.token_urlsafe(18)
            report.created.append(spec.uid)
        rows.append((spec.uid, username, password))
        acl += ["", f"user {username}"]
        acl += [f"topic write {_acl_topic(t)}" for t in sorted(device_topics(spec))]
    report.removed = sorted(set(existing) - {d.uid for d in devices})

    passwd = [f"{gateway_username}:{mosquitto_hash(gateway_password)}"]
    passwd += [f"{username}:{mosquitto_hash(password)}" for _, username, password in rows]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["uid", "username", "password"])
    writer.writerows(rows)

    _write_private(out / "passwd", "\n".join(passwd) + "\n")
    _write_private(out / "acl", "\n".join(acl) + "\n")
    _write_private(csv_path, buffer.getvalue())
    _write_private(
        env_path,
        f"HOMEWATCH_MQTT_USERNAME={gateway_username}\nHOMEWATCH_MQTT_PASSWORD={gateway_password}\n",
    )
    return report
