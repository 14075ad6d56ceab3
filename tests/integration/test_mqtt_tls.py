"""The gateway over mqtts:// with a private CA and a client certificate (docs/TRUST.md's
example), against a real Mosquitto that requires one."""

from __future__ import annotations

import asyncio
import getpass
import ipaddress
import json
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from alerts.notifiers import ConsoleNotifier
from gateway.app import Gateway
from gateway.clock import SystemClock
from gateway.config import load_settings
from gateway.register.apply import apply_provisioning
from gateway.register.provisioning import parse_provisioning
from gateway.storage.db import migrate
from gateway.storage.models import Event
from tests.conftest import wait_until
from tests.helpers import register_yaml
from tests.services import mosquitto

pytestmark = pytest.mark.integration


def _issue(
    directory: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    certificate = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate, key


async def test_the_gateway_speaks_mqtts_with_a_private_ca_and_a_client_certificate(
    sqlite_url: str, mqtt_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = _issue(tmp_path, "ca", None)
    _issue(tmp_path, "broker", ca, server=True)
    _issue(tmp_path, "gateway", ca)
    access = (
        f"user {getpass.getuser()}\nallow_anonymous true\n"
        f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'broker.pem'}\n"
        f"keyfile {tmp_path / 'broker.key'}\nrequire_certificate true\n"
    )
    monkeypatch.setenv("HW_TEST_ADMIN_PASSWORD", "correct-horse-battery")
    with mosquitto(access) as port:
        settings = load_settings(
            database_url=sqlite_url,
            mqtt_url=f"mqtts://127.0.0.1:{port}",
            mqtt_ca_file=str(tmp_path / "ca.pem"),
            mqtt_client_cert=str(tmp_path / "gateway.pem"),
            mqtt_client_key=str(tmp_path / "gateway.key"),
            mqtt_client_id=f"gw-{mqtt_prefix}",
            mqtt_topic_prefix=mqtt_prefix,
            secret_key="x" * 32,
        )
        await migrate(sqlite_url, settings.keyring())
        gateway = Gateway(settings, "x" * 32, clock=SystemClock(), notifier=ConsoleNotifier())
        await apply_provisioning(
            gateway.db, parse_provisioning(register_yaml(mqtt_prefix, persons=1)), datetime.now(UTC)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop, run_migrations=False, serve_api=False))
        try:
            await wait_until(lambda: gateway.ingest.connected, within=10)
            device = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            device.load_cert_chain(str(tmp_path / "gateway.pem"), str(tmp_path / "gateway.key"))
            async with aiomqtt.Client("127.0.0.1", port, tls_context=device) as home:
                body = json.dumps({"type": "heartbeat", "id": "tls-1"}).encode()
                await home.publish(
                    f"{mqtt_prefix}/homewatch/{mqtt_prefix}-p0-sos/event", body, qos=1
                )

            async def stored() -> int:
                async with gateway.db.session() as session:
                    return (await session.execute(select(func.count(Event.id)))).scalar_one()

            await wait_until(stored, within=10)
            # Without a client certificate the broker refuses the TLS handshake.
            refused = await asyncio.to_thread(
                subprocess.run,
                [
                    "mosquitto_pub",
                    "-p",
                    str(port),
                    "--cafile",
                    str(tmp_path / "ca.pem"),
                    "-t",
                    "x",
                    "-m",
                    "1",
                ],
                capture_output=True,
                text=True,
                timeout=10,
            )
            assert refused.returncode != 0
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            await gateway.db.dispose()
