"""Named message templates: the only way text reaches a resident, helper or official.

Every SMS body and every call's speech is rendered from a template in :data:`TEMPLATES`
with named parameters, never assembled ad hoc (SPEC §6). Mainland carriers only deliver
pre-approved templates whose variables are filled in, so the set below is exactly what
would be filed with a carrier (Alibaba Cloud SMS, voice IVR) next to the Twilio reference.

Texts are written for a volunteer helper with a basic phone: who, what, when, where, the
person's phone, and how to acknowledge (``回复1接单``, or the alert's code when several alerts
are open). Voice texts repeat the key facts, because a rural line is noisy and people miss the
first words, and alert voice texts end with ``收到请按1``.

Chinese SMS is sent as UCS-2: 70 characters in one segment, 67 per segment when split. Every
SMS template stays within two segments (:data:`SMS_MAX_UNITS`) with realistic parameters;
the unit tests hold that line.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from alerts.types import ALERT_LABELS

__all__ = [
    "ALERT_TEMPLATES",
    "ALERT_TYPE_LABELS",
    "DEVICE_LABELS",
    "DUTY_LANDLINE_VOICE",
    "RESOLUTION_NOTES",
    "SENSOR_FAULT_LABELS",
    "SMS_MAX_UNITS",
    "SYSTEM_ACTOR",
    "TEMPLATES",
    "Channel",
    "MissingParamsError",
    "Template",
    "UnknownTemplateError",
    "alert_template",
    "format_people",
    "plain_variant",
    "render",
    "sms_segments",
    "sms_units",
]

Channel = Literal["sms", "voice"]

#: Two UCS-2 segments of 67 characters: the most an SMS template may render to.
SMS_MAX_UNITS = 2 * 67

# Alert SMS all close the same way so helpers learn one habit: "1" takes the most recent
# alert sent to their phone, the code picks one when several are open.
_ACK_SMS = "回复1接单，或回复{code}。"
_ACK_VOICE = "收到请按1。"


class UnknownTemplateError(KeyError):
    """No template of that name, or the template has no text for that channel."""


class MissingParamsError(ValueError):
    """A template was rendered without all of the parameters its text names."""


@dataclass(frozen=True, slots=True)
class Template:
    """One named message: its SMS text, its voice text, or both.

    Attributes:
        name: The registry key, e.g. ``sos_alert``.
        purpose: Who receives it and when (English, for operators and carrier filings).
        sms: The SMS text with ``{param}`` placeholders, or None if never sent as SMS.
        voice: The call speech with ``{param}`` placeholders, or None if never spoken.
    """

    name: str
    purpose: str
    sms: str | None = None
    voice: str | None = None

    def text(self, channel: Channel) -> str:
        """The raw text for ``channel``.

        Raises:
            UnknownTemplateError: The template has no version for that channel.
        """
        text = self.sms if channel == "sms" else self.voice
        if text is None:
            raise UnknownTemplateError(f"template {self.name!r} has no {channel} version")
        return text

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels this template can be rendered for."""
        found: list[Channel] = []
        if self.sms is not None:
            found.append("sms")
        if self.voice is not None:
            found.append("voice")
        return tuple(found)

    def params(self, channel: Channel) -> frozenset[str]:
        """The parameter names the ``channel`` text needs."""
        return frozenset(
            field
            for _, field, _, _ in string.Formatter().parse(self.text(channel))
            if field is not None
        )


def _alert(name: str, purpose: str, sms_lead: str, voice_lead: str, voice_repeat: str) -> Template:
    """An alert template: the common acknowledgement tail is appended here, once."""
    return Template(
        name=name,
        purpose=purpose,
        sms=sms_lead + _ACK_SMS,
        voice=voice_lead + "重复一遍：" + voice_repeat + _ACK_VOICE,
    )


_ALL: tuple[Template, ...] = (
    _alert(
        "sos_alert",
        "SOS button pressed; to helper, village team, town duty (sms+voice).",
        "紧急求助：{village}{name}于{time}按了SOS求助按钮。地址{address}，本人电话{phone}。"
        "请马上电话联系或上门查看。",
        "紧急求助。{village}{name}，在{time}按了求救按钮，地址{address}。",
        "{village}{name}按了求救按钮，地址{address}。请马上联系或上门查看。",
    ),
    _alert(
        "fall_alert",
        "Fall detected; to helper, village team, town duty (sms+voice).",
        "紧急：{village}{name}家中于{time}检测到疑似跌倒。地址{address}，本人电话{phone}。"
        "请马上电话联系或上门查看。",
        "紧急情况。{village}{name}家中，在{time}检测到疑似跌倒，地址{address}。",
        "{village}{name}疑似跌倒，地址{address}。请马上联系或上门查看。",
    ),
    _alert(
        "inactivity_alert",
        "No activity at home for too long (``since`` = last activity, HH:MM); to helper.",
        "关爱提醒：{village}{name}家中自{since}起长时间没有活动。地址{address}，"
        "本人电话{phone}。请尽快电话联系或上门看看。",
        "关爱提醒。{village}{name}家中，从{since}起一直没有活动，地址{address}。",
        "{village}{name}家中长时间没有活动。请尽快联系或上门看看。",
    ),
    # The same alert when a learned routine decided: it says why ("通常 07:40 前有活动，现在
    # 09:10 仍无活动"). A separate template, not an optional part of the one above: a carrier
    # files each template with a fixed set of variables.
    _alert(
        "inactivity_alert_usual",
        "No activity at home where there usually is by now (learned routine: ``usual_by``, "
        "``now`` HH:MM); to helper.",
        "关爱提醒：{village}{name}家中通常{usual_by}前有活动，现在{now}仍无活动。"
        "地址{address}，本人电话{phone}。请尽快电话联系或上门看看。",
        "关爱提醒。{village}{name}家中，平时{usual_by}前会有活动，现在{now}了还没有活动，"
        "地址{address}。",
        "{village}{name}家中{now}了还没有活动。请尽快联系或上门看看。",
    ),
    _alert(
        "door_open_night_alert",
        "Front door left open at night (``time`` = opened at, HH:MM); to helper.",
        "关爱提醒：{village}{name}家的大门夜间{time}起一直开着。地址{address}，"
        "本人电话{phone}。请尽快联系确认是否平安。",
        "关爱提醒。{village}{name}家的大门，夜里从{time}起一直开着，地址{address}。",
        "{village}{name}家大门夜间没关。请尽快联系确认是否平安。",
    ),
    Template(
        "inactivity_check",
        "Wellbeing pre-alarm call (or SMS) to the resident themself: press/reply 1 if fine.",
        sms="{name}您好，这里是镇关爱平台。如果您平安，请回复1。",
        voice="{name}您好，这里是镇关爱平台，我们想确认您是否平安。如果您平安，请按1。",
    ),
    _alert(
        "device_fault",
        "A device went silent (``device`` e.g. SOS按钮, ``since`` e.g. 3月5日08:15); to helper.",
        "设备提醒：{village}{name}家的{device}自{since}起没有信号，可能断电或损坏。"
        "请方便时上门检查。",
        "设备提醒。{village}{name}家的{device}没有信号了。",
        "{village}{name}家的设备没有信号，请方便时上门检查。",
    ),
    _alert(
        "battery_low",
        "A device battery is low (``battery`` = percent, digits only); to helper.",
        "设备提醒：{village}{name}家的{device}电量只剩{battery}%，请尽快上门更换电池。",
        "设备提醒。{village}{name}家的{device}电量不足。",
        "{village}{name}家的设备电量不足，请尽快上门更换电池。",
    ),
    _alert(
        "sensor_fault",
        "A sensor misbehaves (``fault`` e.g. 门磁频繁开合); to helper.",
        "设备提醒：{village}{name}家的{device}工作异常（{fault}），暂时不能用来判断老人是否"
        "有活动。请方便时上门检查。",
        "设备提醒。{village}{name}家的{device}工作异常。",
        "{village}{name}家的设备工作异常，请方便时上门检查。",
    ),
    # Sent straight to the duty line, outside any alert: there is nothing to reply to, so
    # the voice texts (a landline duty line is called) ask for no key. Said twice, as the
    # alert calls are: a duty officer picking up late still hears it whole.
    Template(
        "gateway_link",
        "The gateway lost its MQTT broker (``gateway`` = client id, ``since`` HH:MM); to duty "
        "(a call when the duty line is a landline).",
        sms="系统故障：看家网关{gateway}自{since}起与消息服务器断开，各户的求助和跌倒报警"
        "可能无法送达。请尽快通知技术人员检查。",
        voice="系统故障。看家网关{gateway}从{since}起与消息服务器断开，各户的求助和跌倒报警"
        "可能无法送达。重复一遍：看家网关与消息服务器断开，报警可能无法送达。"
        "请尽快通知技术人员检查。",
    ),
    Template(
        "gateway_link_restored",
        "The gateway has its broker back (``gateway``, ``since`` = back at HH:MM); to duty "
        "(a call when the duty line is a landline).",
        sms="系统恢复：看家网关{gateway}已于{since}重新连上消息服务器，报警恢复正常。",
        voice="系统恢复。看家网关{gateway}已在{since}重新连上消息服务器，报警恢复正常。"
        "重复一遍：看家网关已经恢复，报警恢复正常。",
    ),
    Template(
        "alerts_open",
        "Several alerts to one mainland number at once, in one SMS (carriers limit repeats); "
        "``alerts`` = person+label+code of each, ``count`` how many.",
        sms="紧急：您有{count}起报警待处理：{alerts}。请马上联系或上门查看。回复对应编号接单。",
    ),
    Template(
        "taken",
        "Someone acknowledged; to everybody already notified (``person`` = village+name).",
        sms="{taker}已接单：{person} {what}（{code}），其他人无需再处理，谢谢。",
    ),
    Template(
        "resolved",
        "The alert was closed; to everybody already notified.",
        sms="处理完毕：{person} {what}（{code}），处理人{by}。谢谢大家！",
    ),
    Template(
        "visit_digest",
        "Weekly list of people due a visit; to each helper (``people`` via format_people).",
        sms="{helper}您好，本周（{week}）您有{count}位关爱对象需要走访：{people}。"
        "走访后请及时登记。",
    ),
    Template(
        "ack_confirm",
        "Reply to whoever acknowledged (SMS reply, or after pressing 1 in a call).",
        sms="已确认，谢谢！{person} {what}（{code}）由您跟进，已通知其他人无需再处理。",
        voice="已确认，谢谢您。请尽快联系或上门查看。再见。",
    ),
    Template(
        "resident_ok",
        "Reply to a resident who answered the wellbeing check with 1.",
        sms="收到，谢谢您！祝您身体健康。",
        voice="好的，收到，谢谢您。祝您身体健康，再见。",
    ),
    Template(
        "reply_unknown",
        "Reply to an inbound SMS that matches no open alert for that phone.",
        sms="未能识别您的回复。接单请回复1，或回复报警短信中的编号。",
    ),
)

#: Every template by name. Read-only: templates change only with a carrier re-filing.
TEMPLATES: Mapping[str, Template] = MappingProxyType({t.name: t for t in _ALL})

#: Templates whose voice text is only ever spoken to a town duty line that cannot take SMS
#: (a landline). A carrier account filed before they had one need not file it: only a town
#: whose duty line is a landline does (docs/CHINA_CHANNELS.md).
DUTY_LANDLINE_VOICE: frozenset[str] = frozenset({"gateway_link", "gateway_link_restored"})

#: Alert type (SPEC §6) -> the template that announces it.
ALERT_TEMPLATES: Mapping[str, str] = MappingProxyType(
    {
        "sos": "sos_alert",
        "fall": "fall_alert",
        "inactivity": "inactivity_alert",
        "door_open_night": "door_open_night_alert",
        "device_offline": "device_fault",
        "battery_low": "battery_low",
        "sensor_fault": "sensor_fault",
        # gateway_link is no per-person alert: the duty line gets the "gateway_link"
        # message directly (AlertService.notify_town_duty).
    }
)

#: Alert template -> a variant that explains itself, used when the alert's parameters carry
#: everything the variant names (an inactivity alert decided by a learned routine).
_EXPLAINED: Mapping[str, str] = MappingProxyType({"inactivity_alert": "inactivity_alert_usual"})
_PLAIN: Mapping[str, str] = MappingProxyType({v: k for k, v in _EXPLAINED.items()})


def plain_variant(name: str) -> str | None:
    """The plain template an explaining variant stands in for, or None. A carrier account
    need not file the variants: a provider without a code for one sends the plain text."""
    return _PLAIN.get(name)


def alert_template(alert_type: str, params: Mapping[str, str]) -> str:
    """The template announcing an alert of ``alert_type`` (SPEC §6), given its parameters:
    the explaining variant when ``params`` has all it needs (``usual_by`` and ``now`` for
    inactivity), else the plain one.

    Raises:
        UnknownTemplateError: No template for that alert type.
    """
    try:
        name = ALERT_TEMPLATES[alert_type]
    except KeyError:
        raise UnknownTemplateError(f"no alert template for {alert_type!r}") from None
    variant = _EXPLAINED.get(name)
    if variant is not None:
        template = TEMPLATES[variant]
        needed = template.params("sms") | template.params("voice")
        if all(params.get(key) for key in needed):
            return variant
    return name


#: Alert type -> the short Chinese label used as ``what`` in ``taken``/``resolved``/``ack_confirm``.
ALERT_TYPE_LABELS: Mapping[str, str] = MappingProxyType(
    {alert_type.value: label for alert_type, label in ALERT_LABELS.items()}
)

# A line break or tab inside a parameter (a copy-pasted register cell) would break the
# message layout on a basic phone; flatten them rather than refuse to send an alert.
_WHITESPACE_RUN = re.compile(r"[\s\u3000]+")


def _clean(value: str) -> str:
    return _WHITESPACE_RUN.sub(" ", value).strip()


def render(name: str, channel: Channel, params: Mapping[str, str]) -> str:
    """Render template ``name`` for ``channel`` with ``params``.

    Parameters the text does not use are ignored, so one mapping can render both the SMS and
    the voice version. Whitespace runs inside values (line breaks from a spreadsheet cell)
    are flattened to one space.

    Args:
        name: A key of :data:`TEMPLATES`.
        channel: ``"sms"`` or ``"voice"``.
        params: Values for the ``{placeholders}``; all strings.

    Returns:
        The finished text.

    Raises:
        UnknownTemplateError: No such template, or it has no version for ``channel``
            (a :class:`KeyError`).
        MissingParamsError: A placeholder has no value (a :class:`ValueError`).
    """
    try:
        template = TEMPLATES[name]
    except KeyError:
        raise UnknownTemplateError(f"no message template named {name!r}") from None
    if channel not in ("sms", "voice"):
        raise UnknownTemplateError(f"no channel {channel!r} (expected 'sms' or 'voice')")
    text = template.text(channel)
    needed = template.params(channel)
    missing = sorted(needed - params.keys())
    if missing:
        raise MissingParamsError(
            f"template {name!r} ({channel}) is missing parameters: {', '.join(missing)}"
        )
    # format_map with only the needed keys: a stray "{" in a value is never re-interpreted,
    # because str.format substitutes values verbatim.
    return text.format_map({key: _clean(str(params[key])) for key in needed})


def sms_units(text: str) -> int:
    """Length in UCS-2 code units, the way a carrier counts a Chinese SMS.

    Characters outside the Basic Multilingual Plane (emoji) count twice.
    """
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """How many UCS-2 segments a carrier bills ``text`` as (70 single, 67 per part)."""
    units = sms_units(text)
    if units <= 70:
        return 1
    return -(-units // 67)


def format_people(names: Sequence[str], limit: int = 6) -> str:
    """Join names for ``visit_digest``, cut to ``limit`` with ``等`` so the SMS stays short.

    >>> format_people(["张三丰", "王小二"])
    '张三丰、王小二'
    >>> format_people(["甲", "乙", "丙"], limit=2)
    '甲、乙等'
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    shown = "、".join(_clean(n) for n in names[:limit])
    return shown + "等" if len(names) > limit else shown


# -- labels the rules runner renders into alert parameters ---------------------------------

#: What a helper calls each kind of device (``{device_label}``).
DEVICE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "sos": "SOS按钮",
        "fall": "跌倒报警器",
        "motion": "人体感应器",
        "door": "门磁",
        "multi": "传感器",
    }
)
#: A sensor fault (``flapping``/``stuck``) as the alert's ``{fault_label}``, and the device
#: it implies as its ``{device_label}``.
SENSOR_FAULT_LABELS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"flapping": ("门磁频繁开合", "门磁"), "stuck": ("一直报告有人", "人体感应器")}
)
#: Who the system is when it closes an alert itself.
SYSTEM_ACTOR = "系统"
#: The note on an alert the system resolves, by the rules' reason.
RESOLUTION_NOTES: Mapping[str, str] = MappingProxyType(
    {
        "device_online": "设备恢复在线",
        "battery_replaced": "电池已更换",
        "sensor_healthy": "设备恢复正常",
    }
)
