"""A local fake of Twilio's REST API, and helpers that play Twilio calling our webhooks.

:class:`FakeTwilio` is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, a
free port, a background thread) that answers the two resources Homewatch uses the way
api.twilio.com does, so the real ``twilio`` client can be pointed at it
(``TwilioNotifier(api_base=fake.base_url)``)::

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json   To, From, Body, StatusCallback
    POST /2010-04-01/Accounts/{AccountSid}/Calls.json      To, From, Url, Method, StatusCallback
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   (and Calls/{Sid}.json)

Basic auth must be ``account_sid:auth_token`` (else 401, Twilio error 20003); invalid or
missing parameters get Twilio's 400 answers (21211 invalid 'To', 21604 no 'To', …); success
is ``201 Created`` with Twilio's JSON (``sid`` ``SM…``/``CA…`` of 34 characters, ``status``
``queued``, ``to``, ``from``, ``date_created``, ``uri``…).

Test controls: :meth:`FakeTwilio.fail_next` (an outage), :meth:`FakeTwilio.set_delay`
(a slow Twilio), :meth:`FakeTwilio.wait_for` / :meth:`FakeTwilio.wait_for_async`.

The other direction — Twilio POSTing to our ``/twilio/*`` webhooks — is :func:`post_signed`
(async) / :func:`post_signed_sync`, which sign the request exactly as Twilio does
(``X-Twilio-Signature`` over the public URL and the form parameters), plus builders for the
parameters Twilio sends (:meth:`FakeTwilio.message_status_params`,
:meth:`FakeTwilio.inbound_sms_params`, :meth:`FakeTwilio.gather_params`, …).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import httpx

from alerts.channels.twilio.signatures import SIGNATURE_HEADER, sign

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FakeTwilio",
    "RecordedRequest",
    "post_signed",
    "post_signed_sync",
]

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
API_VERSION = "2010-04-01"

_RESOURCE_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<kind>Messages|Calls)"
    r"(?:/(?P<sid>[^/]+))?\.json$"
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MAX_BODY = 1600  # Twilio's limit for a Message body


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received, whatever its outcome.

    Attributes:
        method: ``GET`` or ``POST``.
        path: The request path, e.g. ``/2010-04-01/Accounts/AC…/Messages.json``.
        params: The form (or query) parameters, each with all its values.
        status: The HTTP status the fake answered with.
    """

    method: str
    path: str
    params: dict[str, list[str]]
    status: int


@dataclass(slots=True)
class _Failure:
    remaining: int
    status: int
    code: int | None
    message: str | None


@dataclass(slots=True)
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    messages: list[dict[str, str]] = field(default_factory=list)
    calls: list[dict[str, str]] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[_Failure] = field(default_factory=list)
    delay: float = 0.0


class _TwilioError(Exception):
    """An error answer in Twilio's shape: HTTP status plus Twilio error code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


class FakeTwilio:
    """A local Twilio REST API. Use as a context manager, or call :meth:`start`/:meth:`stop`.

    Args:
        account_sid: The only account the fake knows.
        auth_token: Its auth token (basic-auth password; also signs webhooks).
        host: Interface to listen on.
        port: Port; 0 picks a free one.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._host = host
        self._port = port
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._base_url: str | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("FakeTwilio is already running")
        self._stopping.clear()
        server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        # Handler threads must never keep a finished test run alive.
        server.daemon_threads = True
        self._server = server
        host, port = server.server_address[:2]
        self._base_url = f"http://{host!s}:{port}"
        # Remember the port so that a stop()/start() cycle comes back on the same address
        # (a test of "Twilio was down, now it is back").
        self._port = int(port)
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port (connections to it are then refused)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # cut short any set_delay() sleep
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, the value for ``api_base`` / HOMEWATCH_TWILIO_API_BASE."""
        if self._base_url is None:
            raise RuntimeError("FakeTwilio has not been started")
        return self._base_url

    @property
    def running(self) -> bool:
        """Whether the server is currently accepting requests."""
        return self._server is not None

    # -- what was received ---------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, str]]:
        """Accepted Messages creations, oldest first: the form params plus ``sid``.

        A snapshot: safe to read while sends are in flight.
        """
        with self._state.lock:
            return [dict(m) for m in self._state.messages]

    @property
    def calls(self) -> list[dict[str, str]]:
        """Accepted Calls creations, oldest first: the form params plus ``sid``."""
        with self._state.lock:
            return [dict(c) for c in self._state.calls]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, including refused and failed ones."""
        with self._state.lock:
            return list(self._state.requests)

    def resource(self, sid: str) -> dict[str, Any]:
        """The JSON resource the fake returned for ``sid`` (with its current status)."""
        with self._state.lock:
            return dict(self._state.resources[sid])

    def set_status(self, sid: str, status: str) -> None:
        """Change a message's or call's status, as later fetched by GET."""
        with self._state.lock:
            self._state.resources[sid]["status"] = status

    def reset(self) -> None:
        """Forget everything received and any pending failures or delay."""
        with self._state.lock:
            self._state.messages.clear()
            self._state.calls.clear()
            self._state.requests.clear()
            self._state.resources.clear()
            self._state.failures.clear()
            self._state.delay = 0.0

    # -- fault injection -----------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``n`` create (POST) requests with an error, as in an outage.

        Args:
            n: How many requests fail.
            status: HTTP status, e.g. 500, 503, 429, 400.
            code: Twilio error code in the body; a plausible one by default.
            message: Error message in the body.
        """
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._state.lock:
            self._state.failures.append(_Failure(n, status, code, message))

    def set_delay(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each request (a slow Twilio); 0 to stop."""
        with self._state.lock:
            self._state.delay = max(0.0, seconds)

    # -- waiting -------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` is true; re-checked whenever a request arrives.

        Do not call this from a coroutine whose event loop must make the request happen
        (it would block that loop): use :meth:`wait_for_async` there.

        Raises:
            AssertionError: Still false after ``timeout`` seconds.
        """
        with self._state.lock:
            if self._state.lock.wait_for(predicate, timeout=timeout):
                return
        raise AssertionError(f"FakeTwilio: condition not met within {timeout}s")

    async def wait_for_async(
        self,
        predicate: Callable[[], object],
        timeout: float = 5.0,  # noqa: ASYNC109 - same call shape as wait_for(), for tests
        *,
        interval: float = 0.01,
    ) -> None:
        """Like :meth:`wait_for`, but polls with ``asyncio.sleep`` so the loop keeps running.

        Raises:
            AssertionError: Still false after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise AssertionError(f"FakeTwilio: condition not met within {timeout}s")
            await asyncio.sleep(interval)

    # -- Twilio -> us: webhook parameters ------------------------------------------------

    def message_status_params(
        self, message: Mapping[str, str], status: str, *, error_code: int | None = None
    ) -> dict[str, str]:
        """What Twilio POSTs to a Message's StatusCallback (``sent``, ``delivered``, …).

        Args:
            message: An entry of :attr:`messages`.
            status: ``queued``, ``sent``, ``delivered``, ``undelivered`` or ``failed``.
            error_code: Twilio error code, for ``undelivered``/``failed``.
        """
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": message["From"],
            "To": message["To"],
            "MessageSid": message["sid"],
            "SmsSid": message["sid"],
            "MessageStatus": status,
            "SmsStatus": status,
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return params

    def voice_params(self, call: Mapping[str, str], status: str = "in-progress") -> dict[str, str]:
        """What Twilio POSTs to a Call's ``Url`` when it is answered, to fetch the TwiML."""
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call["sid"],
            "CallStatus": status,
            "Direction": "outbound-api",
            "From": call["From"],
            "Caller": call["From"],
            "To": call["To"],
            "Called": call["To"],
        }

    def gather_params(self, call: Mapping[str, str], digits: str) -> dict[str, str]:
        """What Twilio POSTs to a ``<Gather action>`` after the callee pressed ``digits``."""
        return {**self.voice_params(call), "Digits": digits, "FinishedOnKey": ""}

    def call_status_params(
        self, call: Mapping[str, str], status: str, *, duration: int | None = None
    ) -> dict[str, str]:
        """What Twilio POSTs to a Call's StatusCallback.

        Args:
            call: An entry of :attr:`calls`.
            status: ``completed``, ``busy``, ``no-answer``, ``failed``, ``canceled``, ….
            duration: Call length in seconds, sent with ``completed``.
        """
        params = {
            **self.voice_params(call, status),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": "0",
            "Timestamp": format_datetime(datetime.now(UTC), usegmt=True),
        }
        if duration is not None:
            params["CallDuration"] = str(duration)
            params["Duration"] = str(max(1, -(-duration // 60)))
        return params

    def inbound_sms_params(self, from_: str, body: str, *, to: str | None = None) -> dict[str, str]:
        """What Twilio POSTs to the number's SMS webhook when ``from_`` texts ``body`` to us.

        Args:
            from_: The sender (a helper's phone).
            body: The reply text, e.g. ``1`` or an alert code.
            to: Our number; by default the sender of the latest message we sent to ``from_``.

        Raises:
            ValueError: ``to`` not given and nothing was ever sent to ``from_``.
        """
        if to is None:
            sent = [m for m in self.messages if m.get("To") == from_]
            if not sent:
                raise ValueError(f"nothing was sent to {from_}: pass to= our number")
            to = sent[-1]["From"]
        sid = _new_sid("SM")
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "SmsStatus": "received",
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
        }

    async def post_signed(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        sign_url: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """:func:`post_signed` with this account's auth token."""
        return await post_signed(url, params, self.auth_token, sign_url=sign_url, client=client)

    # -- request handling (runs in server threads) ----------------------------------------

    def _handle(self, method: str, path: str, auth: str | None, raw: str) -> tuple[int, Any]:
        params = parse_qs(raw, keep_blank_values=True)
        status, body = self._answer(method, path, auth, params)
        with self._state.lock:
            self._state.requests.append(RecordedRequest(method, path, params, status))
            self._state.lock.notify_all()
        return status, body

    def _answer(
        self, method: str, path: str, auth: str | None, params: dict[str, list[str]]
    ) -> tuple[int, Any]:
        with self._state.lock:
            delay = self._state.delay
        if delay:
            self._stopping.wait(delay)
        try:
            if method == "POST":
                self._take_failure()
            match = _RESOURCE_PATH.match(path)
            if match is None:
                raise _TwilioError(404, 20404, f"The requested resource {path} was not found")
            self._check_auth(auth)
            if match["account"] != self.account_sid:
                raise _TwilioError(404, 20404, f"The requested resource {path} was not found")
            kind, sid = match["kind"], match["sid"]
            if method == "GET" and sid:
                with self._state.lock:
                    resource = self._state.resources.get(sid)
                if resource is None or not resource["uri"].startswith(path[: -len(".json")]):
                    raise _TwilioError(404, 20404, f"The requested resource {path} was not found")
                return 200, resource
            if method != "POST" or sid:
                raise _TwilioError(405, 20004, "Method not allowed")
            flat = {k: " ".join(v) for k, v in params.items()}
            if kind == "Messages":
                return 201, self._create_message(flat)
            return 201, self._create_call(flat)
        except _TwilioError as exc:
            return exc.status, exc.body()

    def _take_failure(self) -> None:
        with self._state.lock:
            if not self._state.failures:
                return
            failure = self._state.failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._state.failures.pop(0)
        status = failure.status
        code = failure.code if failure.code is not None else 20000 + status
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        raise _TwilioError(status, code, failure.message or phrase)

    def _check_auth(self, header: str | None) -> None:
        denied = _TwilioError(401, 20003, "Authenticate")
        if not header or not header.startswith("Basic "):
            raise denied
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise denied from None
        user, _, password = decoded.partition(":")
        if (user, password) != (self.account_sid, self.auth_token):
            raise denied

    def _create_message(self, params: dict[str, str]) -> dict[str, Any]:
        to, from_, body = params.get("To", ""), params.get("From", ""), params.get("Body")
        if not to:
            raise _TwilioError(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            raise _TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_ and not params.get("MessagingServiceSid"):
            raise _TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body and not params.get("MediaUrl"):
            raise _TwilioError(400, 21602, "Message body is required.")
        if body and len(body) > _MAX_BODY:
            raise _TwilioError(400, 21617, "The concatenated message body exceeds 1600 chars.")
        _check_callback(params, "StatusCallback", 21609)
        sid = _new_sid("SM")
        now = format_datetime(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body or "",
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_ or None,
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(_segments(body or "")),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": to,
            "uri": uri,
        }
        self._store(self._state.messages, params, resource)
        return resource

    def _create_call(self, params: dict[str, str]) -> dict[str, Any]:
        to, from_ = params.get("To", ""), params.get("From", "")
        if not to:
            raise _TwilioError(400, 21201, "No 'To' number is specified")
        if not _E164.match(to):
            raise _TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_:
            raise _TwilioError(400, 21213, "No 'From' number is specified")
        if not (params.get("Url") or params.get("Twiml") or params.get("ApplicationSid")):
            raise _TwilioError(400, 21205, "Url parameter is required.")
        _check_callback(params, "Url", 21205)
        _check_callback(params, "StatusCallback", 21609)
        sid = _new_sid("CA")
        now = format_datetime(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}.json"
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": from_,
            "from_formatted": from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN" + "0" * 32,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {"notifications": uri.replace(".json", "/Notifications.json")},
            "to": to,
            "to_formatted": to,
            "trunk_sid": None,
            "uri": uri,
        }
        self._store(self._state.calls, params, resource)
        return resource

    def _store(
        self, records: list[dict[str, str]], params: dict[str, str], resource: dict[str, Any]
    ) -> None:
        with self._state.lock:
            records.append({**params, "sid": resource["sid"]})
            self._state.resources[resource["sid"]] = resource
            # _handle() notifies waiters after recording the request itself.


def _new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + uuid.uuid4().hex


def _segments(body: str) -> int:
    """Segments Twilio would bill: UCS-2 (70/67) if any non-ASCII char, else GSM-ish (160/153)."""
    if all(ord(ch) < 128 for ch in body):
        single, part = 160, 153
    else:
        single, part = 70, 67
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= single else -(-units // part)


def _check_callback(params: Mapping[str, str], key: str, code: int) -> None:
    value = params.get(key)
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _TwilioError(400, code, f"{key} is not a valid URL: {value}")


def _make_handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so stop() never leaves a pooled keep-alive
        # connection behind that would hide "connection refused".
        protocol_version = "HTTP/1.0"
        server_version = "FakeTwilio/1.0"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            self._respond(*fake._handle("POST", self.path, self.headers.get("Authorization"), raw))

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            self._respond(*fake._handle("GET", path, self.headers.get("Authorization"), query))

        def _respond(self, status: int, body: Any) -> None:
            payload = json.dumps(body, ensure_ascii=False).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout): exactly what a test may provoke

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging; tests read :attr:`FakeTwilio.requests`."""

    return Handler


def _signed_headers(
    url: str, params: Mapping[str, str], auth_token: str, sign_url: str | None
) -> dict[str, str]:
    return {
        SIGNATURE_HEADER: sign(auth_token, sign_url or url, params),
        "User-Agent": "TwilioProxy/1.1",
    }


async def post_signed(
    url: str,
    params: Mapping[str, str],
    auth_token: str,
    *,
    sign_url: str | None = None,
    client: httpx.AsyncClient | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 - the HTTP client's timeout, not a deadline
) -> httpx.Response:
    """POST ``params`` form-encoded to ``url``, signed the way Twilio signs webhooks.

    Args:
        url: Where to send it (our webhook).
        params: The form parameters (see the ``*_params`` builders on :class:`FakeTwilio`).
        auth_token: The Twilio auth token the app verifies with.
        sign_url: The URL to sign, if it differs from where the request is sent: Twilio signs
            the *public* URL (HOMEWATCH_PUBLIC_URL + path), e.g. when the app sits behind a
            proxy or is reached through an in-process ASGI transport.
        client: An httpx client to send with (e.g. one on ``httpx.ASGITransport(app)``).
        timeout: Seconds, when no client is given.

    Returns:
        The webhook's response.
    """
    headers = _signed_headers(url, params, auth_token, sign_url)
    if client is not None:
        return await client.post(url, data=dict(params), headers=headers)
    async with httpx.AsyncClient(timeout=timeout) as own:
        return await own.post(url, data=dict(params), headers=headers)


def post_signed_sync(
    url: str,
    params: Mapping[str, str],
    auth_token: str,
    *,
    sign_url: str | None = None,
    client: httpx.Client | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """Blocking :func:`post_signed`, for an app served from another thread or process.

    Never call it from the event loop that serves the app: it would wait on itself.
    """
    headers = _signed_headers(url, params, auth_token, sign_url)
    if client is not None:
        return client.post(url, data=dict(params), headers=headers)
    with httpx.Client(timeout=timeout) as own:
        return own.post(url, data=dict(params), headers=headers)
