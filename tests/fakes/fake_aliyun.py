"""A local fake of Alibaba Cloud's SMS and voice APIs, and builders of their receipt pushes.

:class:`FakeAliyun` is a real HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, a
free port) that answers the RPC actions Homewatch uses the way ``dysmsapi.aliyuncs.com`` and
``dyvmsapi.aliyuncs.com`` do, so the official SDKs can be pointed at it
(HOMEWATCH_ALIYUN_SMS_ENDPOINT / _VOICE_ENDPOINT = ``fake.endpoint``,
HOMEWATCH_ALIYUN_PROTOCOL = ``http``). What the SDKs really send (checked against
``alibabacloud-tea-openapi`` 0.4): ``POST /?<action parameters>`` with an empty body, the
action in ``x-acs-action``, ``x-acs-version: 2017-05-25``, ``x-acs-date``,
``x-acs-signature-nonce``, ``x-acs-content-sha256`` and
``Authorization: ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=…,Signature=<hex>``.

The fake recomputes that signature over the canonical request with the one secret it knows:
a wrong one gets Aliyun's ``400 SignatureDoesNotMatch``, an unknown key id
``404 InvalidAccessKeyId.NotFound``, a reused nonce ``400 SignatureNonceUsed``. Business
refusals come as HTTP 200 with a ``Code`` other than ``OK``, as Aliyun sends them:
``isv.MOBILE_NUMBER_ILLEGAL``, ``isv.SMS_TEMPLATE_ILLEGAL`` (a code not filed),
``isv.SMS_SIGNATURE_ILLEGAL``, ``isv.INVALID_JSON_PARAM``, and
``isv.TEMPLATE_PARAMS_ILLEGAL`` for a variable carrying a link or a phone number (what the
carriers block). Success: ``{"RequestId", "Code": "OK", "Message": "OK", "BizId"}`` for
``SendSms``, ``{"RequestId", "Code": "OK", "Message": "OK", "CallId"}`` for ``IvrCall``.

Receipts — Aliyun pushing to our ``/receipts/aliyun/{token}/…`` — are built by
:meth:`FakeAliyun.sms_report`, :meth:`FakeAliyun.sms_up` and :meth:`FakeAliyun.voice_report`
in the batch-push shape (a JSON array of objects with snake_case fields).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = ["FakeAliyun", "carrier_would_block"]

DEFAULT_KEY_ID = "LTAI-fake-key-id"
DEFAULT_KEY_SECRET = "fake-aliyun-secret-0123456789"

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{9,11}$")
# What mainland carriers block in an SMS: links and phone numbers.
_LINK = re.compile(r"(?i)(https?://|www\.|\.(com|cn|net|org)\b)")
_PHONE_LIKE = re.compile(r"\d{7,}")


def carrier_would_block(text: str) -> bool:
    """Whether a mainland carrier would block this text (a link or a phone number)."""
    return bool(_LINK.search(text) or _PHONE_LIKE.search(text.replace(" ", "").replace("-", "")))


class _AliyunError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(slots=True)
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    sms: list[dict[str, str]] = field(default_factory=list)
    calls: list[dict[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (action, code)
    nonces: set[str] = field(default_factory=set)
    failures: list[tuple[int, str]] = field(default_factory=list)


class FakeAliyun:
    """Local ``SendSms`` and ``IvrCall``. Use as a context manager.

    Args:
        access_key_id: The only AccessKey the fake knows.
        access_key_secret: Its secret (what the signature is checked with).
        sign_name: The only filed SMS sign name; None accepts any.
        sms_templates: Filed SMS template codes; None accepts any ``SMS_…``.
        tts_templates: Filed TTS template codes; None accepts any ``TTS_…``.
    """

    def __init__(
        self,
        access_key_id: str = DEFAULT_KEY_ID,
        access_key_secret: str = DEFAULT_KEY_SECRET,
        *,
        sign_name: str | None = None,
        sms_templates: set[str] | None = None,
        tts_templates: set[str] | None = None,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.sms_templates = sms_templates
        self.tts_templates = tts_templates
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``: the value for the SDK's ``endpoint`` (with protocol http)."""
        assert self._server is not None, "FakeAliyun is not running"
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    # -- what was received -----------------------------------------------------------------

    @property
    def sms(self) -> list[dict[str, str]]:
        """Accepted ``SendSms`` requests (their parameters plus ``BizId``), oldest first."""
        with self._state.lock:
            return [dict(m) for m in self._state.sms]

    @property
    def calls(self) -> list[dict[str, str]]:
        """Accepted ``IvrCall`` requests (their parameters plus ``CallId``), oldest first."""
        with self._state.lock:
            return [dict(c) for c in self._state.calls]

    @property
    def refused(self) -> list[tuple[str, str]]:
        """Refused requests as (action, Aliyun error code)."""
        with self._state.lock:
            return list(self._state.refused)

    def fail_next(
        self, count: int = 1, *, status: int = 503, code: str = "ServiceUnavailable"
    ) -> None:
        """The next ``count`` requests get an error answer (an outage, or a refusal)."""
        with self._state.lock:
            self._state.failures.extend([(status, code)] * count)

    async def wait_for_async(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - the same call shape as FakeTwilio's
    ) -> None:
        import asyncio

        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise AssertionError(f"FakeAliyun: condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    # -- Aliyun -> us: receipt pushes ------------------------------------------------------

    def sms_report(self, sms: Mapping[str, str], *, success: bool = True) -> list[dict[str, Any]]:
        """The SmsReport push for one accepted SMS."""
        return [
            {
                "phone_number": sms["PhoneNumbers"],
                "send_time": _now_text(),
                "report_time": _now_text(),
                "success": success,
                "err_code": "DELIVERED" if success else "MK:0001",
                "err_msg": "用户接收成功" if success else "用户不在服务区",
                "sms_size": "1",
                "biz_id": sms["BizId"],
                "out_id": sms.get("OutId", ""),
            }
        ]

    @staticmethod
    def sms_up(phone_number: str, content: str, *, sign_name: str = "") -> list[dict[str, Any]]:
        """The SmsUp push of a reply ``content`` from ``phone_number`` (national form)."""
        return [
            {
                "phone_number": phone_number,
                "send_time": _now_text(),
                "content": content,
                "sign_name": sign_name,
                "dest_code": "1234",
                "sequence_id": secrets.randbelow(10**12),
            }
        ]

    @staticmethod
    def voice_report(
        call: Mapping[str, str], *, status_code: str = "200000", dtmf: str = ""
    ) -> list[dict[str, Any]]:
        """The VoiceReport push at the end of one accepted call."""
        return [
            {
                "call_id": call["CallId"],
                "start_time": _now_text(),
                "end_time": _now_text(),
                "duration": "12",
                "status_code": status_code,
                "status_msg": "用户听完语音" if status_code == "200000" else "呼叫失败",
                "out_id": call.get("OutId", ""),
                "dtmf": dtmf,
                "callee": call["CalledNumber"],
                "caller": call["CalledShowNumber"],
                "hangup_direction": "用户",
                "voice_type": "voice",
            }
        ]

    # -- the API -----------------------------------------------------------------------------

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        request_id = str(uuid.uuid4()).upper()
        action = headers.get("x-acs-action", "")
        try:
            with self._state.lock:
                if self._state.failures:
                    status, code = self._state.failures.pop(0)
                    raise _AliyunError(status, code, "injected by the test")
            params = self._check_signature(method, target, headers, body)
            if headers.get("x-acs-version") != "2017-05-25":
                raise _AliyunError(
                    400, "InvalidVersion", "Specified parameter Version is not valid."
                )
            if action == "SendSms":
                answer = self._send_sms(params)
            elif action == "IvrCall":
                answer = self._ivr_call(params)
            else:
                raise _AliyunError(
                    400, "InvalidAction.NotFound", f"Specified api {action} is not found."
                )
        except _AliyunError as error:
            with self._state.lock:
                self._state.refused.append((action, error.code))
                self._state.lock.notify_all()
            return error.status, {
                "RequestId": request_id,
                "Code": error.code,
                "Message": error.message,
                "HostId": "dysmsapi.aliyuncs.com",
            }
        return 200, {"RequestId": request_id, "Code": "OK", "Message": "OK", **answer}

    def _check_signature(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        auth = headers.get("authorization", "")
        match = re.fullmatch(
            r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})",
            auth,
        )
        if match is None:
            raise _AliyunError(400, "MissingAuthorization", "Authorization is mandatory.")
        key_id, signed, signature = match.groups()
        if key_id != self.access_key_id:
            raise _AliyunError(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        signed_names = signed.split(";")
        for required in (
            "host",
            "x-acs-action",
            "x-acs-content-sha256",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-version",
        ):
            if required not in signed_names:
                raise _AliyunError(400, "IncompleteSignature", f"{required} is not signed.")
        payload_hash = hashlib.sha256(body).hexdigest()
        if headers.get("x-acs-content-sha256") != payload_hash:
            raise _AliyunError(
                400, "IncompleteSignature", "x-acs-content-sha256 does not match the body."
            )
        when = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC
        )
        if abs(datetime.now(UTC) - when) > timedelta(minutes=15):
            raise _AliyunError(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        canonical_query = "&".join(
            f"{quote(k, safe='~')}={quote(params[k], safe='~')}" for k in sorted(params)
        )
        canonical_headers = "".join(
            f"{name}:{headers.get(name, '').strip()}\n" for name in signed_names
        )
        canonical = "\n".join(
            [method, parts.path or "/", canonical_query, canonical_headers, signed, payload_hash]
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(
            self.access_key_secret.encode(), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _AliyunError(
                400,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
            )
        nonce = headers.get("x-acs-signature-nonce", "")
        with self._state.lock:
            if nonce in self._state.nonces:
                raise _AliyunError(
                    400, "SignatureNonceUsed", "Specified signature nonce was used already."
                )
            self._state.nonces.add(nonce)
        return params

    def _send_sms(self, params: dict[str, str]) -> dict[str, str]:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                raise _AliyunError(400, "MissingParameter", f"{name} is mandatory for this action.")
        if not all(_MOBILE.match(n) for n in params["PhoneNumbers"].split(",")):
            return self._business("SendSms", "isv.MOBILE_NUMBER_ILLEGAL")
        if self.sign_name is not None and params["SignName"] != self.sign_name:
            return self._business("SendSms", "isv.SMS_SIGNATURE_ILLEGAL")
        code = params["TemplateCode"]
        if (
            self.sms_templates is not None and code not in self.sms_templates
        ) or not code.startswith("SMS_"):
            return self._business("SendSms", "isv.SMS_TEMPLATE_ILLEGAL")
        variables = _json_object(params.get("TemplateParam", "{}"))
        if variables is None:
            return self._business("SendSms", "isv.INVALID_JSON_PARAM")
        if any(carrier_would_block(value) for value in variables.values()):
            return self._business("SendSms", "isv.TEMPLATE_PARAMS_ILLEGAL")
        biz_id = f"{secrets.randbelow(10**12):012d}^0"
        with self._state.lock:
            self._state.sms.append({**params, "BizId": biz_id})
            self._state.lock.notify_all()
        return {"BizId": biz_id}

    def _ivr_call(self, params: dict[str, str]) -> dict[str, str]:
        for name in ("CalledNumber", "CalledShowNumber", "StartCode"):
            if not params.get(name):
                raise _AliyunError(400, "MissingParameter", f"{name} is mandatory for this action.")
        number = params["CalledNumber"]
        if not (_MOBILE.match(number) or _LANDLINE.match(number)):
            return self._business("IvrCall", "isv.MOBILE_NUMBER_ILLEGAL")
        codes = [params["StartCode"]] + [
            v for k, v in params.items() if re.fullmatch(r"MenuKeyMap\.\d+\.Code", k)
        ]
        for code in codes:
            if (
                self.tts_templates is not None and code not in self.tts_templates
            ) or not code.startswith("TTS_"):
                return self._business("IvrCall", "isv.TTS_TEMPLATE_ILLEGAL")
        for key in [k for k in params if k.endswith("TtsParams")]:
            if _json_object(params[key]) is None:
                return self._business("IvrCall", "isv.INVALID_JSON_PARAM")
        call_id = f"{secrets.randbelow(10**12):012d}^{secrets.randbelow(10**12):012d}"
        with self._state.lock:
            self._state.calls.append({**params, "CallId": call_id})
            self._state.lock.notify_all()
        return {"CallId": call_id}

    def _business(self, action: str, code: str) -> dict[str, str]:
        raise _AliyunError(200, code, "refused by the fake carrier")


def _json_object(text: str) -> dict[str, str] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None
    return value


def _now_text() -> str:
    return datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _make_handler(fake: FakeAliyun) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = fake._handle("POST", self.path, headers, body)
            payload = json.dumps(answer, ensure_ascii=False).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: tests read what the fake recorded."""

    return Handler
