"""Aliyun SMS and voice through Alibaba Cloud's official SDKs (SPEC §11).

``alibabacloud-dysmsapi20170525`` sends ``SendSms`` and ``alibabacloud-dyvmsapi20170525``
places ``IvrCall``; both sign every request (ACS3-HMAC-SHA256 over the canonical request,
``Authorization`` header) and POST the action's parameters as the query string of ``/`` on
the configured endpoint. The endpoint and protocol come from configuration so that a test
points the real clients at a local fake.

A carrier answers HTTP 200 with ``Code`` other than ``OK`` for business refusals (unknown
template, the carrier's own flow control, an invalid number): those are not worth
retrying. Its 5xx, a timeout or a refused connection are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as SmsClient
from alibabacloud_dyvmsapi20170525 import models as voice_models
from alibabacloud_dyvmsapi20170525.client import Client as VoiceClient
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import (
    AlibabaCloudException,
    ClientException,
    ThrottlingException,
)
from darabonba.runtime import RuntimeOptions

from alerts.channels.base import Outgoing
from alerts.channels.carrier_texts import carrier_params
from alerts.notifiers.base import Delivery, DeliveryError
from alerts.templates import plain_variant
from gateway.register.phones import national_digits

__all__ = ["AliyunAccount", "AliyunSms", "AliyunVoice", "national_number"]

_log = logging.getLogger(__name__)

#: The carrier's own per-number flow control: the message will not go today.
CARRIER_LIMIT_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL"})


@dataclass(frozen=True, slots=True)
class AliyunAccount:
    """Credentials and transport, shared by SMS and voice.

    Attributes:
        access_key_id: HOMEWATCH_ALIYUN_ACCESS_KEY_ID.
        access_key_secret: HOMEWATCH_ALIYUN_ACCESS_KEY_SECRET.
        protocol: ``https``, or ``http`` for a local test server.
        timeout_ms: Connect and read timeout per request.
    """

    access_key_id: str
    access_key_secret: str
    protocol: str = "https"
    timeout_ms: int = 10_000

    def config(self, endpoint: str) -> open_api_models.Config:
        return open_api_models.Config(
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            endpoint=endpoint,
            protocol=self.protocol,
            read_timeout=self.timeout_ms,
            connect_timeout=self.timeout_ms,
        )

    def runtime(self) -> RuntimeOptions:
        # No SDK-level retry: the escalation's own retry and fallback decide what comes next.
        return RuntimeOptions(
            autoretry=False, read_timeout=self.timeout_ms, connect_timeout=self.timeout_ms
        )


def national_number(e164: str) -> str:
    """How Aliyun wants a number: mainland without ``+86`` (a landline with its trunk 0, as
    ``IvrCall`` needs to call the duty line), others with the country code."""
    if e164.startswith("+86"):
        return national_digits(e164)
    return e164.lstrip("+")


def _json(values: Mapping[str, str]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


class _AliyunProvider:
    name = "aliyun"
    what = "request"
    channel = "sms"

    def __init__(self, templates: Mapping[str, str]) -> None:
        self.templates = dict(templates)

    def _filed(self, template: str) -> str:
        """``template``, or the plain text it explains when the account filed no code for
        the explaining variant (carriers approve each template; a town may not have asked)."""
        plain = plain_variant(template)
        if plain is not None and not self.templates.get(template):
            return plain
        return template

    def _code(self, template: str) -> str:
        code = self.templates.get(template)
        if not code:
            # Configuration refuses this at start; a template added later still must not
            # vanish silently.
            raise DeliveryError(
                f"{self.name}: no template code filed for {template!r} "
                f"(aliyun.{self.channel}.templates.{template})",
                retryable=False,
            )
        return code

    async def _accepted(self, to: str, call: Any, id_attr: str) -> Delivery:
        """Await the SDK call; the answer's ``BizId``/``CallId`` becomes the sid."""
        body = await self._call(to, call)
        sid = getattr(body, id_attr, None)
        if not sid:
            raise DeliveryError(
                f"{self.name} {self.what} to {to}: answer carried no {id_attr}", retryable=True
            )
        _log.debug("%s %s to %s accepted: %s", self.name, self.what, to, sid)
        return Delivery(sid=str(sid), status="sent")

    async def _call(self, to: str, call: Any) -> Any:
        try:
            response = await call
        except ThrottlingException as exc:
            raise DeliveryError(
                f"{self.name} {self.what} to {to}: throttled ({exc.code})",
                retryable=True,
                status=str(exc.status_code),
            ) from exc
        except ClientException as exc:
            raise DeliveryError(
                f"{self.name} refused {self.what} to {to}: HTTP {exc.status_code} {exc.code}",
                retryable=exc.status_code in (408, 429),
                status=str(exc.status_code),
            ) from exc
        except AlibabaCloudException as exc:  # ServerException: 5xx
            raise DeliveryError(
                f"{self.name} {self.what} to {to}: HTTP {exc.status_code} {exc.code}",
                retryable=True,
                status=str(exc.status_code),
            ) from exc
        except Exception as exc:
            # Unreachable, timeout, unreadable answer: unsure whether it went out; for an
            # alarm a duplicate beats a miss.
            raise DeliveryError(
                f"{self.name} {self.what} to {to}: no usable answer ({exc})", retryable=True
            ) from exc
        body = response.body
        if body is None or body.code != "OK":
            code = getattr(body, "code", None)
            message = getattr(body, "message", None)
            raise DeliveryError(
                f"{self.name} refused {self.what} to {to}: {code} {message}",
                retryable=not str(code).startswith("isv."),
                status="throttled" if code in CARRIER_LIMIT_CODES else str(code),
            )
        return body


class AliyunSms(_AliyunProvider):
    """``SendSms``: the filed template with its parameters; our row id as ``OutId``.

    Args:
        account: Credentials and transport.
        endpoint: HOMEWATCH_ALIYUN_SMS_ENDPOINT.
        sign_name: The filed sign name (签名), e.g. 隘口镇民政办.
        templates: Our template name -> the carrier's TemplateCode (``SMS_…``).
    """

    name = "aliyun_sms"
    what = "SMS"

    def __init__(
        self, account: AliyunAccount, endpoint: str, sign_name: str, templates: Mapping[str, str]
    ) -> None:
        super().__init__(templates)
        self.account = account
        self.sign_name = sign_name
        self._client = SmsClient(account.config(endpoint))

    async def send(self, message: Outgoing) -> Delivery:
        request = sms_models.SendSmsRequest(
            phone_numbers=national_number(message.to),
            sign_name=self.sign_name,
            template_code=self._code(self._filed(message.template)),
            template_param=_json(
                carrier_params(self._filed(message.template), "sms", message.params)
            ),
            out_id=str(message.notification_id),
        )
        return await self._accepted(
            message.to,
            self._client.send_sms_with_options_async(request, self.account.runtime()),
            "biz_id",
        )


class AliyunVoice(_AliyunProvider):
    """``IvrCall``: the filed TTS template, then key 1 plays the confirmation.

    Args:
        account: Credentials and transport.
        endpoint: HOMEWATCH_ALIYUN_VOICE_ENDPOINT.
        called_show_number: The purchased number shown to the callee.
        templates: Our template name -> the carrier's TTS code (``TTS_…``).
        play_times: How often the start prompt is played.
        key_timeout_ms: How long to wait for a key.
    """

    name = "aliyun_voice"
    what = "call"
    channel = "voice"

    def __init__(
        self,
        account: AliyunAccount,
        endpoint: str,
        called_show_number: str,
        templates: Mapping[str, str],
        *,
        play_times: int = 2,
        key_timeout_ms: int = 10_000,
    ) -> None:
        super().__init__(templates)
        self.account = account
        self.called_show_number = called_show_number
        self.play_times = play_times
        self.key_timeout_ms = key_timeout_ms
        self._client = VoiceClient(account.config(endpoint))

    async def send(self, message: Outgoing) -> Delivery:
        template = self._filed(message.template)
        start_code = self._code(template)
        start_params = _json(carrier_params(template, "voice", message.params))
        if message.alert_id is None:
            # A notice outside any alert (a landline duty line told the gateway lost its
            # broker): nothing to acknowledge, but IvrCall requires a MenuKeyMap, so key 1
            # plays the notice once more; its receipt acknowledges nothing (no alert).
            key_code, key_params = start_code, start_params
        else:
            # Key 1 is the acknowledgement (SPEC §6); what it plays mirrors Twilio's <Gather>
            # reply.
            reply = "resident_ok" if message.recipient_role == "resident" else "ack_confirm"
            key_code = self._code(reply)
            key_params = _json(carrier_params(reply, "voice", message.params))
        request = voice_models.IvrCallRequest(
            called_number=national_number(message.to),
            called_show_number=self.called_show_number,
            start_code=start_code,
            start_tts_params=start_params,
            menu_key_map=[
                voice_models.IvrCallRequestMenuKeyMap(key="1", code=key_code, tts_params=key_params)
            ],
            play_times=self.play_times,
            timeout=self.key_timeout_ms,
            out_id=str(message.notification_id),
        )
        return await self._accepted(
            message.to,
            self._client.ivr_call_with_options_async(request, self.account.runtime()),
            "call_id",
        )
