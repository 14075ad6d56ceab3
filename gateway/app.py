"""The composition root: the one place that builds and starts every part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from alerts.channels.setup import build_dispatcher
from alerts.notifiers import ConsoleNotifier, Notifier, TwilioNotifier
from alerts.service import AlertService
from gateway.api.app import create_app
from gateway.api.deps import ApiContext
from gateway.clock import Clock, SystemClock
from gateway.config import ConfigError, Settings
from gateway.devices import DeviceSpec
from gateway.ingest import MqttIngest
from gateway.metrics import Metrics
from gateway.mqtt_lanes import LaneLedger, combined_mqtt_state, is_emergency_device
from gateway.partitions import (
    LeaseBoard,
    PartitionSupervisor,
    RegisterLoader,
    SessionKind,
    partitions_of,
)
from gateway.register.digest import digest_loop
from gateway.registry import DeviceRegistry
from gateway.rules_runner import RulesRunner
from gateway.storage.db import Database, migrate
from gateway.storage.rekey import rotate_keys

__all__ = ["Gateway", "build_notifier", "run_gateway"]

log = logging.getLogger(__name__)

OwnsDevice = Callable[[DeviceSpec], bool]


def build_notifier(settings: Settings, name: str | None = None) -> Notifier:
    """The notifier ``name`` (by default the one SPEC §2's HOMEWATCH_NOTIFIER picks)."""
    if (name or settings.notifier_name) == "twilio":
        if not (
            settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
        ):
            raise ConfigError(
                "the twilio notifier needs HOMEWATCH_TWILIO_ACCOUNT_SID, "
                "HOMEWATCH_TWILIO_AUTH_TOKEN and HOMEWATCH_TWILIO_FROM"
            )
        return TwilioNotifier(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from,
            api_base=settings.twilio_api_base,
        )
    return ConsoleNotifier()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Gateway:
    """Everything `homewatch run` (and the demo) runs in one process."""

    settings: Settings
    secret_key: str
    clock: Clock = field(default_factory=SystemClock)
    notifier: Notifier | None = None

    def __post_init__(self) -> None:
        self.db = Database(self.settings.database_url, keyring=self.settings.keyring())
        self.metrics = Metrics()
        self.registry = DeviceRegistry()
        notifier = self.notifier or build_notifier(self.settings)
        channels = build_dispatcher(
            self.settings,
            self.db,
            self.clock,
            notifier,
            make_notifier=lambda name: build_notifier(self.settings, name),
        )
        self.alerts = AlertService(
            self.db,
            self.clock,
            notifier,
            escalation=self.settings.escalation,
            rules=self.settings.rules,
            public_url=self.settings.public_url,
            timezone=self.settings.tz,
            # Partitioned gateways share one client id, and two hosts may share a pid.
            worker_id=f"{self.settings.mqtt_client_id}:{socket.gethostname()}:{os.getpid()}",
            outbox=self.settings.outbox,
            on_alert_raised=lambda alert: self.metrics.alerts.labels(type=alert.type).inc(),
            on_notification=lambda channel, status: self.metrics.notifications.labels(
                channel=channel, status=status
            ).inc(),
            channels=channels,
        )
        self.runner = RulesRunner(
            self.settings,
            self.db,
            self.alerts,
            self.clock,
            link_up=lambda: self.mqtt.connected,
            poll_seconds=self.settings.rules_tick.total_seconds(),
        )
        # SOS and fall reports get an MQTT session of their own so that they never queue
        # behind routine traffic (gateway.mqtt_lanes); a message both receive is stored once.
        lanes = LaneLedger()
        self.ingest = self._session(self.registry, ledger=lanes)
        self.emergency_ingest = self._session(
            self.registry,
            client_id=f"{self.settings.mqtt_client_id}-emergency",
            owns=is_emergency_device,
            exact_topics=True,
            ledger=lanes,
        )
        #: What holds the broker link: the single session, or leased partitions of sessions.
        #: Partitioned, the emergency lane is partitioned too: a second kind of session whose
        #: exact topics are the SOS and fall devices', which the routine kind leaves out.
        self.mqtt: MqttIngest | PartitionSupervisor = self.ingest
        if self.settings.mqtt_partitions:
            self.mqtt = self._partition_supervisor(
                [
                    SessionKind("ingest", covers=_routine_device),
                    SessionKind("emergency", "-emergency", covers=is_emergency_device),
                ]
            )
        self.api: FastAPI = create_app(
            ApiContext(
                settings=self.settings,
                db=self.db,
                clock=self.clock,
                metrics=self.metrics,
                alerts=self.alerts,
                secret_key=self.secret_key,
                health=self._mqtt_state,
            )
        )

    def _session(
        self,
        registry: DeviceRegistry,
        *,
        client_id: str | None = None,
        owns: OwnsDevice | None = None,
        exact_topics: bool = False,
        ledger: LaneLedger | None = None,
    ) -> MqttIngest:
        """One MQTT session feeding the rules runner: the routine one, the emergency lane's,
        or a leased partition's."""
        return MqttIngest(
            self.settings,
            self.db,
            registry,
            self.clock,
            self.metrics,
            on_events=self.runner.on_events,
            activity_judge=self.runner.judge,
            client_id=client_id,
            owns=owns,
            exact_topics=exact_topics,
            ledger=ledger,
        )

    def _partition_supervisor(self, kinds: list[SessionKind]) -> PartitionSupervisor:
        settings = self.settings

        def session(client_id: str, registry: DeviceRegistry, owns: OwnsDevice) -> MqttIngest:
            return self._session(registry, client_id=client_id, owns=owns)

        return PartitionSupervisor(
            partitions_of(kinds, settings.mqtt_partitions, settings.mqtt_client_id),
            LeaseBoard(settings.database_url),
            RegisterLoader(self.db, max_age=10.0),
            session,
            poll_seconds=settings.mqtt_partition_poll.total_seconds(),
        )

    async def run(
        self,
        stop: asyncio.Event,
        *,
        run_migrations: bool = True,
        serve_api: bool = True,
        sockets: list[socket.socket] | None = None,
    ) -> None:
        if run_migrations:
            await migrate(self.settings.database_url, self.settings.keyring())
        # Values a keyless command (provision, migrate) wrote under the public development
        # key are re-encrypted under the real one before anything looks them up.
        await rotate_keys(self.db, only_development=True)
        # Per-person rules must be known before the first report is judged (learned routines
        # warm in the background meanwhile: gateway.rules_runner.runner).
        await self.runner.refresh()
        tasks = [
            *self._mqtt_tasks(stop),
            asyncio.create_task(self.alerts.run(stop), name="escalation"),
            asyncio.create_task(self.runner.run(stop), name="rules"),
            asyncio.create_task(
                digest_loop(
                    stop,
                    self.db,
                    self.clock,
                    self.settings.tz,
                    self.settings.digest,
                    on_queued=self.alerts.wake.set,
                ),
                name="visit-digest",
            ),
        ]
        server: _Server | None = None
        if serve_api:
            server = _Server(
                uvicorn.Config(
                    self.api,
                    host=self.settings.api_host,
                    port=self.settings.api_port,
                    log_level="warning",
                    lifespan="off",
                    # Open console boards hold live streams; they reconnect to another
                    # process or after the restart, so shutdown need not wait for them.
                    timeout_graceful_shutdown=2,
                )
            )
            tasks.append(asyncio.create_task(server.serve(sockets=sockets), name="api"))
        log.info("gateway running (API on %s:%s)", self.settings.api_host, self.settings.api_port)
        try:
            stop_wait = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stop_wait], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_wait and task.exception() is not None:
                    log.error("%s stopped unexpectedly", task.get_name(), exc_info=task.exception())
            stop.set()
            if server is not None:
                server.should_exit = True
            await asyncio.wait(tasks, timeout=15)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.db.dispose()
        log.info("gateway stopped")

    def _mqtt_state(self) -> str:
        if isinstance(self.mqtt, PartitionSupervisor):
            return self.mqtt.mqtt_state
        return combined_mqtt_state((self.ingest, self.emergency_ingest))

    def _mqtt_tasks(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        if isinstance(self.mqtt, PartitionSupervisor):
            return [asyncio.create_task(self.mqtt.run(stop), name="ingest")]
        return [
            asyncio.create_task(self.ingest.run(stop), name="ingest"),
            asyncio.create_task(self.emergency_ingest.run(stop), name="ingest-emergency"),
        ]


def _routine_device(spec: DeviceSpec) -> bool:
    return not is_emergency_device(spec)


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


async def run_gateway(settings: Settings, *, run_migrations: bool = True) -> None:
    """`homewatch run`: until SIGTERM/SIGINT."""
    secret = settings.require_production_secret()
    if settings.require_chosen_notifier() == "console":
        log.warning("console notifier: SMS and calls are only printed here, nobody is reached")
    stop = asyncio.Event()
    install_stop_signals(stop)
    gateway = Gateway(settings, secret)
    await gateway.run(stop, run_migrations=run_migrations)
