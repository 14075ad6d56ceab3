"""Prometheus metrics, one registry per app instance (no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """The counters SPEC §7 names, plus a few an operator needs to see a stall."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "homewatch_events",
            "Sensor messages by outcome: accepted/duplicate count events, "
            "rejected/unknown_device count messages",
            ["result"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "homewatch_rejected_messages",
            "Rejected payloads by reason",
            ["reason"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "homewatch_alerts", "Alerts raised by type", ["type"], registry=self.registry
        )
        self.notifications = Counter(
            "homewatch_notifications",
            "Notification attempts by channel and outcome",
            ["channel", "status"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "homewatch_ingest_commit_seconds",
            "Time to store one ingest batch",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.mqtt_connected = Gauge(
            "homewatch_mqtt_connected",
            "1 when the gateway holds a broker connection",
            registry=self.registry,
        )
        for result in ("accepted", "duplicate", "rejected", "unknown_device"):
            self.events.labels(result=result)

    def render(self) -> bytes:
        return generate_latest(self.registry)
