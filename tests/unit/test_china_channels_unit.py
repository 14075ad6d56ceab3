"""SPEC §11 pieces on their own: routing by prefix, the filed-template check, the texts a
mainland carrier gets, the team robot in the provisioning file, the DingTalk signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from alerts.channels.aliyun.receipts import call_status
from alerts.channels.carrier_texts import carrier_params, carrier_render, carrier_text
from alerts.channels.dingtalk import dingtalk_sign, signed_url
from alerts.channels.resolver import ChannelResolver
from alerts.channels.setup import check_carrier_templates
from alerts.templates import DUTY_LANDLINE_VOICE, TEMPLATES
from gateway.config import ConfigError, load_settings
from gateway.register.provisioning import TeamRobotSpec, parse_provisioning
from tests.fakes.fake_aliyun import carrier_would_block
from tests.unit.provisioning_file_support import BASE, ENV, edit, only_problem

SMS = {n: f"SMS_{i}" for i, n in enumerate(n for n, t in TEMPLATES.items() if "sms" in t.channels)}
TTS = {
    n: f"TTS_{i}" for i, n in enumerate(n for n, t in TEMPLATES.items() if "voice" in t.channels)
}
ROUTE_86: dict[str, Any] = {
    "routes": [{"prefix": "+86", "sms": "aliyun_sms", "voice": "aliyun_voice"}]
}
ALIYUN: dict[str, Any] = {
    "sms": {"sign_name": "隘口镇民政办", "templates": SMS},
    "voice": {"called_show_number": "02376000000", "templates": TTS},
}

# Realistic values, with the resident's phone among them (it must never reach the text).
PARAMS = {
    "name": "张三丰",
    "village": "坝芒村",
    "address": "坝芒村3组12号",
    "time": "08:15",
    "date": "03月10日",
    "phone": "13600000001",
    "code": "A7K2",
    "what": "SOS求助",
    "person": "坝芒村张三丰",
    "since": "03月09日20:15",
    "usual_by": "07:40",
    "now": "09:10",
    "device": "SOS按钮",
    "battery": "12",
    "gateway": "homewatch-gateway",
    "fault": "门磁频繁开合",
    "taker": "王五",
    "by": "王五",
    "helper": "李四",
    "week": "3月9日-15日",
    "count": "3",
    "people": "张三丰、王小二",
    "alerts": "坝芒村张三丰SOS求助（A7K2）、坝芒村王小二跌倒（B3C4）",
}


# -- routing --------------------------------------------------------------------------------


def test_without_channels_every_recipient_gets_the_single_notifier() -> None:
    resolver = ChannelResolver.from_config(None, "twilio")
    assert resolver.provider("+8613700000001", "sms") == "twilio"
    assert resolver.provider("+15005550006", "voice") == "twilio"


def test_routes_by_longest_prefix_and_fall_back_to_the_default() -> None:
    settings = load_settings(
        channels={
            "default": {"sms": "twilio", "voice": "twilio"},
            "routes": [
                {"prefix": "+86", "sms": "aliyun_sms", "voice": "aliyun_voice"},
                {"prefix": "+8602", "voice": "console"},
            ],
        },
        aliyun=ALIYUN,
    )
    resolver = ChannelResolver.from_config(settings.channels, "console")
    assert resolver.provider("+8613700000001", "sms") == "aliyun_sms"
    assert resolver.provider("+8613700000001", "voice") == "aliyun_voice"
    assert resolver.provider("+862376000000", "voice") == "aliyun_voice"
    assert resolver.provider("+8602376000000", "voice") == "console", "longest prefix wins"
    assert resolver.provider("+8602376000000", "sms") == "aliyun_sms", "other channel: +86"
    assert resolver.provider("+85291234567", "sms") == "twilio"


def test_a_prefix_must_be_e164_and_routed_once() -> None:
    with pytest.raises(ConfigError, match=r"channels\.routes\.0\.prefix"):
        load_settings(channels={"routes": [{"prefix": "86", "sms": "aliyun_sms"}]})
    with pytest.raises(ConfigError, match="routed twice"):
        load_settings(channels={"routes": [{"prefix": "+86"}, {"prefix": "+86"}]})
    with pytest.raises(ConfigError, match=r"channels\.default\.sms"):
        load_settings(channels={"default": {"sms": "aliyun_voice"}})


# -- filed templates ------------------------------------------------------------------------


def test_complete_template_codes_pass() -> None:
    settings = load_settings(channels=ROUTE_86, aliyun=ALIYUN)
    check_carrier_templates(settings.channels, settings.aliyun)


def test_a_route_needing_a_template_without_code_is_refused_naming_the_key() -> None:
    sms = dict(SMS)
    del sms["taken"]
    settings = load_settings(
        channels=ROUTE_86, aliyun={**ALIYUN, "sms": {**ALIYUN["sms"], "templates": sms}}
    )
    with pytest.raises(ConfigError, match=r"aliyun\.sms\.templates\.taken"):
        check_carrier_templates(settings.channels, settings.aliyun)


def test_a_voice_filing_from_before_landline_duty_calls_still_starts_and_says_what_is_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = {n: code for n, code in TTS.items() if n not in DUTY_LANDLINE_VOICE}
    settings = load_settings(
        channels=ROUTE_86, aliyun={**ALIYUN, "voice": {**ALIYUN["voice"], "templates": before}}
    )
    with caplog.at_level(logging.WARNING, logger="alerts.channels.setup"):
        check_carrier_templates(settings.channels, settings.aliyun)
    [warning] = caplog.records
    assert "gateway_link, gateway_link_restored" in warning.getMessage()
    assert "landline" in warning.getMessage()
    caplog.clear()
    complete = load_settings(channels=ROUTE_86, aliyun=ALIYUN)
    with caplog.at_level(logging.WARNING, logger="alerts.channels.setup"):
        check_carrier_templates(complete.channels, complete.aliyun)
    assert not caplog.records


def test_a_voice_route_without_the_voice_section_is_refused() -> None:
    settings = load_settings(channels=ROUTE_86, aliyun={"sms": ALIYUN["sms"]})
    with pytest.raises(ConfigError, match=r"aliyun\.voice"):
        check_carrier_templates(settings.channels, settings.aliyun)


def test_a_code_for_a_template_we_do_not_have_is_refused() -> None:
    settings = load_settings(
        channels=ROUTE_86,
        aliyun={**ALIYUN, "voice": {**ALIYUN["voice"], "templates": {**TTS, "sos_alrt": "TTS_9"}}},
    )
    with pytest.raises(ConfigError, match=r"aliyun\.voice\.templates\.sos_alrt"):
        check_carrier_templates(settings.channels, settings.aliyun)


def test_the_gateway_refuses_to_start_with_a_missing_code() -> None:
    from gateway.app import Gateway

    settings = load_settings(
        channels=ROUTE_86,
        aliyun={**ALIYUN, "sms": {**ALIYUN["sms"], "templates": {}}},
        aliyun_access_key_id="id",
        aliyun_access_key_secret="secret",
    )
    with pytest.raises(ConfigError, match=r"aliyun\.sms\.templates\.sos_alert"):
        Gateway(settings, "k" * 32)


def test_aliyun_routes_need_credentials() -> None:
    from gateway.app import Gateway

    settings = load_settings(channels=ROUTE_86, aliyun=ALIYUN)
    with pytest.raises(ConfigError, match="HOMEWATCH_ALIYUN_ACCESS_KEY_ID"):
        Gateway(settings, "k" * 32)


def test_aliyun_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEWATCH_ALIYUN_ACCESS_KEY_ID", "LTAI-id")
    monkeypatch.setenv("HOMEWATCH_ALIYUN_ACCESS_KEY_SECRET", "s3cret")
    monkeypatch.setenv("HOMEWATCH_ALIYUN_SMS_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("HOMEWATCH_ALIYUN_VOICE_ENDPOINT", "127.0.0.1:10")
    monkeypatch.setenv("HOMEWATCH_ALIYUN_PROTOCOL", "http")
    monkeypatch.setenv("HOMEWATCH_RECEIPT_TOKEN", "tok")
    settings = load_settings()
    assert (settings.aliyun_access_key_id, settings.aliyun_access_key_secret) == (
        "LTAI-id",
        "s3cret",
    )
    assert (settings.aliyun_sms_endpoint, settings.aliyun_voice_endpoint) == (
        "127.0.0.1:9",
        "127.0.0.1:10",
    )
    assert settings.aliyun_protocol == "http" and settings.receipt_token == "tok"


def test_aliyun_endpoints_default_to_the_public_ones() -> None:
    settings = load_settings()
    assert settings.aliyun_sms_endpoint == "dysmsapi.aliyuncs.com"
    assert settings.aliyun_voice_endpoint == "dyvmsapi.aliyuncs.com"
    assert settings.aliyun_protocol == "https"


# -- what the carrier gets ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "channel"),
    [(t.name, c) for t in TEMPLATES.values() for c in t.channels],
)
def test_no_text_to_a_mainland_phone_carries_a_link_or_a_phone_number(
    name: str, channel: str
) -> None:
    text = carrier_text(name, channel)  # type: ignore[arg-type]
    assert "{phone}" not in text
    rendered = carrier_render(name, channel, PARAMS)  # type: ignore[arg-type]
    assert not carrier_would_block(rendered), rendered
    assert PARAMS["phone"] not in rendered
    assert "phone" not in carrier_params(name, channel, PARAMS)  # type: ignore[arg-type]


def test_the_carrier_text_keeps_the_acknowledgement_tail() -> None:
    text = carrier_render("sos_alert", "sms", PARAMS)
    assert text.endswith("回复1接单，或回复A7K2。") and "地址坝芒村3组12号。" in text


def test_a_missing_parameter_is_named() -> None:
    with pytest.raises(KeyError, match="code"):
        carrier_params("sos_alert", "sms", {k: v for k, v in PARAMS.items() if k != "code"})


# -- receipts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("200000", "completed"),
        ("200002", "busy"),
        ("200003", "no-answer"),
        ("200005", "failed"),
        ("200010", "failed"),
        ("", "failed"),
    ],
)
def test_call_result_codes_read_as_status_callbacks(code: str, status: str) -> None:
    assert call_status(code) == status


# -- DingTalk -------------------------------------------------------------------------------


def test_dingtalk_sign_is_hmac_sha256_of_timestamp_and_secret_base64_url_quoted() -> None:
    secret, timestamp = "SECabc+/=", 1_700_000_000_000
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    url = signed_url("https://oapi.dingtalk.com/robot/send?access_token=T", secret, timestamp)
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["T"]
    assert query["timestamp"] == [str(timestamp)]
    assert query["sign"] == [base64.b64encode(digest).decode()]
    assert "+" not in dingtalk_sign(secret, timestamp) and "/" not in dingtalk_sign(
        secret, timestamp
    )


def test_dingtalk_without_secret_is_the_plain_url() -> None:
    assert (
        signed_url("https://x/robot/send?access_token=T", None, 1)
        == "https://x/robot/send?access_token=T"
    )


# -- provisioning ---------------------------------------------------------------------------


def _with_robot(robot: str) -> str:
    return edit("    emergency_team:\n", f"    team_robot: {robot}\n    emergency_team:\n")


def test_a_village_may_name_its_team_robot() -> None:
    doc = parse_provisioning(
        _with_robot("{provider: dingtalk, url_env: BM_ROBOT_URL, secret_env: BM_ROBOT_SECRET}"),
        env=ENV,
    )
    assert doc.villages[0].team_robot == TeamRobotSpec(
        "dingtalk", "BM_ROBOT_URL", "BM_ROBOT_SECRET"
    )
    wecom = parse_provisioning(_with_robot("{provider: wecom, url_env: BM_WECOM}"), env=ENV)
    assert wecom.villages[0].team_robot == TeamRobotSpec("wecom", "BM_WECOM", None)
    assert parse_provisioning(BASE, env=ENV).villages[0].team_robot is None


@pytest.mark.parametrize(
    ("robot", "path", "message"),
    [
        ("{provider: feishu, url_env: X}", "team_robot.provider", "not one of: dingtalk, wecom"),
        ("{provider: dingtalk, secret_env: S}", "team_robot.url_env", "is required"),
        ("{provider: dingtalk, url_env: X}", "team_robot.secret_env", "required for a dingtalk"),
        ("{provider: wecom, url_env: X, secret_env: S}", "team_robot.secret_env", "not signed"),
        (
            '{provider: wecom, url_env: "https://qyapi.weixin.qq.com/x?key=1"}',
            "team_robot.url_env",
            "not an environment variable name",
        ),
        ("{provider: wecom, url_env: X, colour: red}", "team_robot.colour", "unknown field"),
        ("dingtalk", "team_robot", "must be a mapping"),
    ],
)
def test_an_invalid_team_robot_is_refused_with_line_and_field(
    robot: str, path: str, message: str
) -> None:
    line, where, text = only_problem(_with_robot(robot))
    assert line == 5
    assert where.startswith("villages[0] (坝芒村)") and where.endswith(path)
    assert message in text


# -- docs and example stay true -------------------------------------------------------------


def test_the_example_configuration_is_complete() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "examples" / "config-china.yaml")
    check_carrier_templates(settings.channels, settings.aliyun)


def test_the_filing_guide_lists_every_text_as_sent() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "CHINA_CHANNELS.md").read_text()
    for template in TEMPLATES.values():
        for channel in template.channels:
            text = carrier_text(template.name, channel).replace("{", "${")
            assert f"| `{template.name}` | {channel} |" in guide
            assert text in guide, f"docs/CHINA_CHANNELS.md: {template.name} ({channel}) drifted"


@pytest.mark.parametrize("name", [t.name for t in TEMPLATES.values() if "sms" in t.channels])
def test_each_sms_variable_appears_once_as_aliyun_requires(name: str) -> None:
    # Aliyun refuses a notification template that uses one variable twice.
    variables = re.findall(r"\{(\w+)\}", carrier_text(name, "sms"))
    assert len(variables) == len(set(variables)), variables
    # ... and variable names it reserves.
    assert not set(variables) & {"email", "mobile", "id", "nick", "site"}
