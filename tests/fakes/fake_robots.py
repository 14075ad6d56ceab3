"""A local fake of the DingTalk and WeCom group-robot webhooks.

DingTalk: ``POST /robot/send?access_token=…&timestamp=…&sign=…`` with a JSON message; with
"加签" the ``sign`` must be base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")) and the
timestamp within an hour of now, else ``{"errcode": 310000, "errmsg": "sign not match"}``
(HTTP 200, as DingTalk answers). WeCom: ``POST /cgi-bin/webhook/send?key=…``; an unknown
key gets ``{"errcode": 93000, …}``. Success: ``{"errcode": 0, "errmsg": "ok"}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeRobots", "RobotPost"]


@dataclass(frozen=True, slots=True)
class RobotPost:
    provider: str  # dingtalk | wecom
    robot: str  # the access token or key
    text: str
    signed: bool


class FakeRobots:
    """One server for both kinds of robot. Use as a context manager.

    Args:
        dingtalk: access_token -> secret ("" for a robot without signing).
        wecom: the known WeCom keys.
    """

    def __init__(
        self, dingtalk: dict[str, str] | None = None, wecom: set[str] | None = None
    ) -> None:
        self.dingtalk = dict(dingtalk or {})
        self.wecom = set(wecom or ())
        self.posts: list[RobotPost] = []
        self.refused: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def dingtalk_url(self, token: str) -> str:
        return f"{self.base_url}/robot/send?access_token={token}"

    def wecom_url(self, key: str) -> str:
        return f"{self.base_url}/cgi-bin/webhook/send?key={key}"

    def _handle(self, target: str, body: bytes) -> dict[str, Any]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            message = json.loads(body)
            text = message["text"]["content"]
            assert message["msgtype"] == "text"
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._refuse(parts.path, 40035, "invalid message")
        if parts.path == "/robot/send":
            token = query.get("access_token", "")
            if token not in self.dingtalk:
                return self._refuse("dingtalk", 300001, "token is not exist")
            secret = self.dingtalk[token]
            if secret:
                timestamp = query.get("timestamp", "")
                if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > 3_600_000:
                    return self._refuse("dingtalk", 310000, "timestamp invalid")
                digest = hmac.new(
                    secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256
                ).digest()
                # parse_qs already url-unquoted the sign.
                if not hmac.compare_digest(
                    query.get("sign", ""), base64.b64encode(digest).decode()
                ):
                    return self._refuse("dingtalk", 310000, "sign not match")
            post = RobotPost("dingtalk", token, text, bool(secret))
        elif parts.path == "/cgi-bin/webhook/send":
            key = query.get("key", "")
            if key not in self.wecom:
                return self._refuse("wecom", 93000, "invalid webhook url")
            post = RobotPost("wecom", key, text, False)
        else:
            return self._refuse(parts.path, 404, "not found")
        with self._lock:
            self.posts.append(post)
        return {"errcode": 0, "errmsg": "ok"}

    def _refuse(self, what: str, code: int, message: str) -> dict[str, Any]:
        with self._lock:
            self.refused.append((what, code))
        return {"errcode": code, "errmsg": message}


def _make_handler(fake: FakeRobots) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.dumps(
                fake._handle(self.path, self.rfile.read(length)), ensure_ascii=False
            ).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: tests read :attr:`FakeRobots.posts`."""

    return Handler
