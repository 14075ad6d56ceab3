"""The emergency lane: SOS buttons and fall detectors on an MQTT session of their own.

A routine backlog (thousands of motion reports queued at the broker after an outage, or a
sustained flood) must never delay a call for help. The broker delivers each session's
messages in order, so the only way past a queue is another queue: the emergency devices'
exact topics get a second session with its own batches and commits.

The routine session still subscribes to the protocol families (``homewatch/+/event``,
``zigbee2mqtt/+`` ...) so that unregistered devices are noticed, and those wildcards cover
the emergency devices too: such a message reaches both sessions. :class:`LaneLedger` makes
sure it is stored once. It matches receipts, not ids (a Zigbee SOS carries none): whichever
session sees a message first stores it, the other drops its copy. A message that only one
session received (published before the emergency session subscribed) finds no match and is
stored by the one that has it, so nothing is lost while the lanes come up.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from gateway.devices import DeviceSpec
from gateway.register.vocabulary import DeviceKind

__all__ = ["EMERGENCY_KINDS", "LaneLedger", "combined_mqtt_state", "is_emergency_device"]

#: Devices whose messages take the emergency lane.
EMERGENCY_KINDS = frozenset({DeviceKind.SOS, DeviceKind.FALL})
#: An unmatched receipt is forgotten after this long: the other session either got its
#: copy long ago or never will (it was not subscribed when the message was published).
_KEEP_SECONDS = 900.0
_MAX_PENDING = 50_000

_Key = tuple[str, bytes, bool]


def is_emergency_device(spec: DeviceSpec) -> bool:
    """Does this device belong on the emergency lane?"""
    return spec.kind in EMERGENCY_KINDS


class LaneLedger:
    """Stores a message that reached two sessions once (see the module docstring)."""

    def __init__(
        self,
        covers: Callable[[DeviceSpec], bool] = is_emergency_device,
        *,
        keep_seconds: float = _KEEP_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.covers = covers
        self._keep = keep_seconds
        self._now = monotonic
        #: Per session: receipts the other session has not matched yet, oldest first.
        self._pending: dict[str, dict[_Key, deque[float]]] = {}
        self._size = 0

    def first_sight(self, session: str, topic: str, payload: bytes, retain: bool) -> bool:
        """True: this session stores the message. False: another session already has it."""
        now = self._now()
        key = (topic, payload, retain)
        for other, receipts in self._pending.items():
            if other == session:
                continue
            seen = receipts.get(key)
            while seen and now - seen[0] > self._keep:
                seen.popleft()
                self._size -= 1
            if seen:
                seen.popleft()
                self._size -= 1
                if not seen:
                    del receipts[key]
                return False
        if self._size >= _MAX_PENDING:
            self._forget_expired(now)
        self._pending.setdefault(session, {}).setdefault(key, deque()).append(now)
        self._size += 1
        return True

    def _forget_expired(self, now: float) -> None:
        for receipts in self._pending.values():
            for key in list(receipts):
                seen = receipts[key]
                while seen and (now - seen[0] > self._keep or self._size >= _MAX_PENDING):
                    seen.popleft()
                    self._size -= 1
                if not seen:
                    del receipts[key]


class _HasMqttState(Protocol):
    mqtt_state: str


def combined_mqtt_state(sessions: Iterable[_HasMqttState]) -> str:
    """What /healthz reports for several sessions: ``connected`` only when every one is
    subscribed, otherwise the worst state among them."""
    order = ("disconnected", "subscribing", "connected")
    states = [s.mqtt_state for s in sessions]
    return min(states, key=lambda s: order.index(s) if s in order else -1, default="connected")
