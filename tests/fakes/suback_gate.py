"""A TCP proxy in front of a real MQTT broker that can hold back or refuse SUBACKs.

Mosquitto answers a SUBSCRIBE within microseconds and (2.0) grants every filter, so "the
gateway is connected but cannot hear yet" and "the broker refused a subscription" cannot be
provoked on the broker itself. Everything passes through unchanged, byte for byte, except
SUBACK packets (type 9) from the broker: while :attr:`SubackGate.hold` is set they wait for
:meth:`SubackGate.release`; while :attr:`SubackGate.refuse` is set their reason codes become
0x87 (not authorised) — what a broker with a subscribe ACL answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self

__all__ = ["SubackGate"]

_SUBACK = 9
_NOT_AUTHORISED = 0x87


class SubackGate:
    """Proxy ``127.0.0.1:<port>`` → ``127.0.0.1:<broker_port>`` (MQTT 5 clients)."""

    def __init__(self, broker_port: int, *, hold: bool = False, refuse: bool = False) -> None:
        self.broker_port = broker_port
        self.hold = hold
        self.refuse = refuse
        self.subacks = 0
        self.suback_arrived = asyncio.Event()
        self._released = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    def release(self) -> None:
        """Let held SUBACKs (and all later ones) through."""
        self.hold = False
        self._released.set()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.broker_port)
        for coroutine in (self._up(client_r, broker_w), self._down(broker_r, client_w)):
            task = asyncio.create_task(coroutine)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _down(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                first = await reader.readexactly(1)
                length_bytes, length = await _read_varint(reader)
                body = await reader.readexactly(length)
                if first[0] >> 4 == _SUBACK:
                    self.subacks += 1
                    self.suback_arrived.set()
                    if self.hold:
                        await self._released.wait()
                    if self.refuse:
                        body = _refused(body)
                writer.write(first + length_bytes + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_varint(reader: asyncio.StreamReader) -> tuple[bytes, int]:
    raw = b""
    value, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        raw += bytes([byte])
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return raw, value


def _refused(body: bytes) -> bytes:
    """An MQTT 5 SUBACK body with every reason code turned into 'not authorised'."""
    props_length, shift, index = 0, 0, 2  # after the packet identifier
    while True:
        byte = body[index]
        index += 1
        props_length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    start = index + props_length
    return body[:start] + bytes([_NOT_AUTHORISED]) * (len(body) - start)
