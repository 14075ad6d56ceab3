"""A notifier that prints each SMS and call: ``homewatch demo`` and development.

Output is plain text with no emoji, so that it survives any terminal, including a GBK Windows
console or a container with an ASCII locale (where it degrades to escapes, never to an
exception that would make a demo alert "fail").
"""

from __future__ import annotations

import itertools
import secrets
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

from alerts.notifiers.base import Delivery, DeliveryError

__all__ = ["ConsoleNotifier"]


class ConsoleNotifier:
    """Prints messages instead of sending them; every message is "delivered".

    Args:
        stream: Where to print; standard output by default.
        directory: Optional phone -> name map, so the output reads ``+8613700000001（李四）``.
        run_tag: Ends every sid (``console-SM-1-<tag>``); random by default. Sids are unique
            in the database, and a restarted gateway (or demo) on the same database counts
            from 1 again: the tag keeps one run's sids apart from the last run's.
    """

    name = "console"

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        directory: Mapping[str, str] | None = None,
        run_tag: str | None = None,
    ) -> None:
        # Resolved at call time, not as a default argument, so that pytest's capsys and a
        # redirected sys.stdout are honoured.
        self._stream = stream
        self._directory = dict(directory or {})
        self._run_tag = run_tag if run_tag is not None else secrets.token_hex(3)
        # One counter for both kinds: sids are unique across SMS and calls, like Twilio's.
        self._counter = itertools.count(1)
        # Calls may come from several threads (asyncio.to_thread users) as well as tasks;
        # the lock keeps one message's lines together and the numbering gap-free.
        self._lock = threading.Lock()

    async def send_sms(self, to: str, body: str, *, status_callback: str | None = None) -> Delivery:
        """Print the SMS; returns ``console-SM-<n>-<tag>``, status ``delivered``."""
        return self._emit("SM", "短信", to, body, "delivered")

    async def place_call(
        self, to: str, *, speech: str, twiml_url: str, status_callback: str | None = None
    ) -> Delivery:
        """Print the call's speech; returns ``console-CA-<n>-<tag>``, status ``completed``."""
        return self._emit("CA", "电话", to, speech, "completed")

    def _label(self, to: str) -> str:
        name = self._directory.get(to)
        return f"{to}（{name}）" if name else to

    def _emit(self, prefix: str, kind: str, to: str, text: str, status: str) -> Delivery:
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            sid = f"console-{prefix}-{next(self._counter)}-{self._run_tag}"
            body = "\n".join(f"    {line}" for line in text.splitlines() or [""])
            block = f"[{kind}] → {self._label(to)}  ({sid})\n{body}\n"
            try:
                try:
                    stream.write(block)
                except UnicodeEncodeError:
                    encoding = getattr(stream, "encoding", None) or "ascii"
                    stream.write(block.encode(encoding, "backslashreplace").decode(encoding))
                stream.flush()
            except (OSError, ValueError) as exc:  # closed stream, broken pipe
                raise DeliveryError(f"console output failed: {exc}", retryable=False) from exc
        return Delivery(sid=sid, status=status)
