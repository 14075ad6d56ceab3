"""TLS to the broker (``mqtts://``): the system's CA store by default, or a private CA
(``HOMEWATCH_MQTT_CA_FILE``), and a client certificate when the broker asks for one
(``HOMEWATCH_MQTT_CLIENT_CERT`` / ``HOMEWATCH_MQTT_CLIENT_KEY``)."""

from __future__ import annotations

import ssl

from gateway.config import Settings

__all__ = ["mqtt_tls_context"]


def mqtt_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """None for plain ``mqtt://``; otherwise a verifying context (host name included)."""
    if not settings.mqtt_tls:
        return None
    context = ssl.create_default_context(cafile=settings.mqtt_ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.mqtt_client_cert:
        context.load_cert_chain(settings.mqtt_client_cert, settings.mqtt_client_key)
    return context
