"""The receiving end of an ingest session: packets off the socket into a batch inbox.

aiomqtt reads one packet per event-loop iteration, then wraps each message and wakes a
task for it; paho builds an ``MQTTMessage`` (with a ``threading.Condition`` and MQTT 5
``Properties``) per PUBLISH. Profiling a backlog drain (issue #15) showed those per-message
costs above the cost of storing the messages. Here a reader drains every packet the socket
holds per wake-up and common PUBLISH packets are decoded straight into a deque the batch
loop takes from. Connecting, subscribing, publishing and acknowledging stay aiomqtt's and
paho's (pinned ``<3``: this reaches into paho's packet reader).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

import aiomqtt
from paho.mqtt.client import MQTTv5
from paho.mqtt.enums import MQTTErrorCode

__all__ = ["Inbox", "Received", "decode_publishes_directly", "read_in_bursts"]

#: A received PUBLISH: topic, payload, retain, QoS, packet id.
Received = tuple[str, bytes, bool, int, int]


class Inbox:
    """Messages read off the socket, waiting for the batch loop (filled on the event loop)."""

    def __init__(self) -> None:
        self.messages: deque[Received] = deque()
        self.ready = asyncio.Event()
        self.stopping = False

    def on_message(self, _client: object, _userdata: object, message: Any) -> None:
        """paho's callback, for the PUBLISH packets the fast path leaves to paho."""
        payload = message.payload
        self.messages.append(
            (message.topic, bytes(payload), bool(message.retain), message.qos, message.mid)
        )
        if not self.ready.is_set():
            self.ready.set()

    async def wait(self, within: float | None = None) -> bool:
        """Wait until a message (or a stop, or a disconnection) is in; False on timeout."""
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), within)
            except TimeoutError:
                return False
        self.ready.clear()
        return True


def decode_publishes_directly(paho: Any, inbox: Inbox) -> None:
    """Decode QoS 0/1 PUBLISH packets without properties straight into the inbox.

    paho builds an ``MQTTMessage`` per PUBLISH, with a ``threading.Condition``, an MQTT 5
    ``Properties`` object and a debug log line: that was most of a drain's time once the
    storage was batched. Our sessions never enable topic aliases, and the broker sends
    properties only when a publisher set some; anything unusual (QoS 2, any property) goes
    through paho's own handler and reaches ``on_message`` as before. Acknowledgement stays
    paho's ``ack()`` after commit (manual acks).
    """
    original = paho._handle_publish  # noqa: SLF001
    v5 = paho._protocol == MQTTv5  # noqa: SLF001
    messages = inbox.messages
    ready = inbox.ready

    def handle_publish() -> MQTTErrorCode:
        packet = paho._in_packet  # noqa: SLF001
        header: int = packet["command"]
        data: bytearray = packet["packet"]
        qos = (header & 0x06) >> 1
        if qos > 1:
            return cast(MQTTErrorCode, original())
        end = 2 + int.from_bytes(data[0:2], "big")
        topic = data[2:end]
        mid = 0
        if qos:
            mid = int.from_bytes(data[end : end + 2], "big")
            end += 2
        if v5:
            if end >= len(data) or data[end] != 0:  # properties present
                return cast(MQTTErrorCode, original())
            end += 1
        try:
            text = topic.decode("utf-8")
        except UnicodeDecodeError:
            return cast(MQTTErrorCode, original())
        messages.append((text, bytes(data[end:]), bool(header & 0x01), qos, mid))
        if not ready.is_set():
            ready.set()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    paho._handle_publish = handle_publish  # noqa: SLF001


#: Packets read per wake-up before other tasks get a turn.
_BURST_PACKETS = 500


def read_in_bursts(paho: Any, disconnected: asyncio.Future[None]) -> None:
    """Read every packet the socket holds per wake-up, not one (aiomqtt's reader): a loop
    iteration per message was the largest single cost of a backlog drain."""
    loop = asyncio.get_running_loop()
    sock = paho.socket()
    if sock is None:
        return

    def burst() -> None:
        try:
            for _ in range(_BURST_PACKETS):
                if paho._sock is None:  # noqa: SLF001
                    return
                rc = paho._packet_read()  # noqa: SLF001
                if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                    return
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    paho._loop_rc_handle(rc)  # noqa: SLF001 - as loop_read(): disconnect
                    return
            loop.call_soon(burst)  # more may be waiting; let the batch loop run first
        except Exception as exc:  # noqa: BLE001 - a broken connection, as aiomqtt's reader
            if not disconnected.done():
                disconnected.set_exception(aiomqtt.MqttError(str(exc)))

    loop.remove_reader(sock.fileno())
    loop.add_reader(sock.fileno(), burst)
