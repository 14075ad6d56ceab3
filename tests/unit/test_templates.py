"""Message templates: every one renders, SMS fits two segments, alerts say how to acknowledge."""

from __future__ import annotations

import pytest

from alerts.templates import (
    ALERT_TEMPLATES,
    ALERT_TYPE_LABELS,
    SMS_MAX_UNITS,
    TEMPLATES,
    Channel,
    MissingParamsError,
    UnknownTemplateError,
    alert_template,
    format_people,
    render,
    sms_segments,
    sms_units,
)

# Realistic, long-ish values: the longest that occur in the town's register and config.
LONG_PARAMS: dict[str, str] = {
    "name": "欧阳明",
    "village": "坝芒村",
    "address": "坝芒村3组12号",
    "time": "23:45",
    "since": "12月31日23:45",
    "usual_by": "12月30日07:40",
    "now": "09:10",
    "phone": "+8613600000001",
    "code": "A7K2",
    "device": "门窗磁传感器",
    "battery": "15",
    "gateway": "homewatch-gateway-02",
    "fault": "门磁频繁开合",
    "taker": "李四光",
    "by": "李四光",
    "person": "坝芒村欧阳明",
    "what": ALERT_TYPE_LABELS["door_open_night"],
    "helper": "李四光",
    "week": "12月25日-12月31日",
    "count": "12",
    "alerts": "坝芒村欧阳明SOS求助（A7K2）、坝芒村张三丰跌倒（B3C4）",
    "people": format_people(
        ["张三丰", "王小二", "赵六一", "孙七七", "周八八", "吴九九", "郑十一", "冯十二"]
    ),
}

ALERT_TEMPLATE_NAMES = sorted(set(ALERT_TEMPLATES.values()))
SMS_TEMPLATES = sorted(name for name, t in TEMPLATES.items() if t.sms is not None)
ALL_RENDERINGS: list[tuple[str, Channel]] = [
    (name, channel) for name, t in sorted(TEMPLATES.items()) for channel in t.channels
]


def test_the_registry_holds_the_templates_the_spec_and_escalation_name() -> None:
    required = {
        "sos_alert",
        "fall_alert",
        "inactivity_alert",
        "door_open_night_alert",
        "inactivity_check",
        "device_fault",
        "battery_low",
        "gateway_link",
        "taken",
        "resolved",
        "visit_digest",
        "ack_confirm",
    }
    assert required <= TEMPLATES.keys()
    for name, template in TEMPLATES.items():
        assert template.name == name
        assert template.channels, f"{name} has no text at all"


@pytest.mark.parametrize(("name", "channel"), ALL_RENDERINGS)
def test_every_template_renders_with_realistic_parameters(name: str, channel: Channel) -> None:
    text = render(name, channel, LONG_PARAMS)
    assert text
    assert "{" not in text
    assert "}" not in text
    # Every parameter the text names ended up in it.
    for param in TEMPLATES[name].params(channel):
        assert LONG_PARAMS[param] in text


@pytest.mark.parametrize("name", SMS_TEMPLATES)
def test_every_sms_fits_two_ucs2_segments(name: str) -> None:
    text = render(name, "sms", LONG_PARAMS)
    assert sms_units(text) <= SMS_MAX_UNITS == 134, (sms_units(text), text)
    assert sms_segments(text) <= 2


@pytest.mark.parametrize("name", ALERT_TEMPLATE_NAMES)
def test_alert_sms_says_who_what_when_and_how_to_acknowledge(name: str) -> None:
    text = render(name, "sms", LONG_PARAMS)
    assert "坝芒村欧阳明" in text or "homewatch-gateway-02" in text
    assert "回复1接单" in text
    assert "或回复A7K2" in text


@pytest.mark.parametrize("name", ALERT_TEMPLATE_NAMES)
def test_alert_voice_ends_asking_for_key_1(name: str) -> None:
    text = render(name, "voice", LONG_PARAMS)
    assert text.endswith("收到请按1。")


@pytest.mark.parametrize("name", ["sos_alert", "fall_alert"])
def test_emergency_voice_repeats_the_key_facts(name: str) -> None:
    text = render(name, "voice", LONG_PARAMS)
    assert text.count("坝芒村欧阳明") >= 2
    assert text.count("坝芒村3组12号") >= 2


def test_sos_sms_reads_as_a_helper_needs_it() -> None:
    text = render("sos_alert", "sms", LONG_PARAMS)
    assert text == (
        "紧急求助：坝芒村欧阳明于23:45按了SOS求助按钮。地址坝芒村3组12号，"
        "本人电话+8613600000001。请马上电话联系或上门查看。回复1接单，或回复A7K2。"
    )


def test_fall_sms_names_a_suspected_fall() -> None:
    text = render("fall_alert", "sms", LONG_PARAMS)
    assert "疑似跌倒" in text
    assert "+8613600000001" in text


def test_inactivity_check_asks_the_resident_to_press_1() -> None:
    text = render("inactivity_check", "voice", {"name": "张三"})
    assert text.startswith("张三您好，这里是镇关爱平台")
    assert text.endswith("如果您平安，请按1。")


def test_taken_names_taker_person_and_type() -> None:
    params = {"taker": "李四", "person": "坝芒村张三", "what": "SOS求助", "code": "A7K2"}
    assert render("taken", "sms", params).startswith("李四已接单：坝芒村张三 SOS求助")


def test_ack_confirm_thanks_the_acker() -> None:
    params = {"person": "坝芒村张三", "what": "SOS求助", "code": "A7K2"}
    assert render("ack_confirm", "sms", params).startswith("已确认，谢谢")
    assert render("ack_confirm", "voice", params).startswith("已确认，谢谢")


def test_no_template_contains_a_link() -> None:
    # Mainland carriers block or delay SMS carrying links (SPEC §6).
    for template in TEMPLATES.values():
        for channel in template.channels:
            raw = template.text(channel)
            assert "http" not in raw
            assert "www." not in raw


def test_unknown_template_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no_such"):
        render("no_such", "sms", LONG_PARAMS)
    with pytest.raises(UnknownTemplateError):
        render("no_such", "voice", LONG_PARAMS)


def test_template_without_that_channel_is_a_key_error() -> None:
    with pytest.raises(UnknownTemplateError, match="no voice version"):
        render("visit_digest", "voice", LONG_PARAMS)


def test_unknown_channel_is_a_key_error() -> None:
    with pytest.raises(UnknownTemplateError, match="fax"):
        render("sos_alert", "fax", LONG_PARAMS)  # type: ignore[arg-type]


def test_missing_params_are_a_value_error_naming_them() -> None:
    params = {k: v for k, v in LONG_PARAMS.items() if k not in ("phone", "code")}
    with pytest.raises(ValueError, match="code, phone") as info:
        render("sos_alert", "sms", params)
    assert isinstance(info.value, MissingParamsError)


def test_voice_needs_fewer_params_than_sms() -> None:
    # The phone number is not read out (TTS mangles it), so a voice render works without it.
    params = {k: v for k, v in LONG_PARAMS.items() if k != "phone"}
    assert "欧阳明" in render("sos_alert", "voice", params)
    assert "phone" in TEMPLATES["sos_alert"].params("sms")
    assert "phone" not in TEMPLATES["sos_alert"].params("voice")


def test_extra_params_are_ignored_and_whitespace_flattened() -> None:
    text = render("inactivity_check", "sms", {"name": " 张\n三\t", "unused": "x"})
    assert text.startswith("张 三您好")
    assert "x" not in text


def test_braces_in_values_are_not_reinterpreted() -> None:
    text = render("inactivity_check", "sms", {"name": "{code}"})
    assert text.startswith("{code}您好")


def test_every_alert_type_has_a_template_and_a_label() -> None:
    alert_types = {
        "sos",
        "fall",
        "inactivity",
        "door_open_night",
        "device_offline",
        "battery_low",
        "sensor_fault",
    }
    assert set(ALERT_TEMPLATES) == alert_types
    assert set(ALERT_TYPE_LABELS) == alert_types | {"gateway_link"}
    for name in ALERT_TEMPLATES.values():
        assert set(TEMPLATES[name].channels) == {"sms", "voice"}


def test_a_learned_routines_inactivity_alert_says_when_there_usually_is_activity() -> None:
    explained = {**LONG_PARAMS, "usual_by": "07:40", "now": "09:10"}
    assert alert_template("inactivity", explained) == "inactivity_alert_usual"
    sms = render("inactivity_alert_usual", "sms", explained)
    assert "坝芒村欧阳明家中通常07:40前有活动，现在09:10仍无活动" in sms
    assert "回复1接单" in sms and "或回复A7K2" in sms
    assert render("inactivity_alert_usual", "voice", explained).endswith("收到请按1。")
    # Fixed windows (no usual time known): the plain text, as before.
    plain = {k: v for k, v in explained.items() if k != "usual_by"}
    assert alert_template("inactivity", plain) == "inactivity_alert"
    assert alert_template("inactivity", {**explained, "usual_by": ""}) == "inactivity_alert"
    assert alert_template("sos", explained) == "sos_alert"
    with pytest.raises(UnknownTemplateError):
        alert_template("no_such", explained)


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        TEMPLATES["sos_alert"] = TEMPLATES["fall_alert"]  # type: ignore[index]


def test_sms_units_count_ucs2_code_units() -> None:
    assert sms_units("张三") == 2
    assert sms_units("A1") == 2
    assert sms_units("😀") == 2  # outside the BMP: a surrogate pair
    assert sms_segments("字" * 70) == 1
    assert sms_segments("字" * 71) == 2
    assert sms_segments("字" * 134) == 2
    assert sms_segments("字" * 135) == 3


def test_format_people_cuts_long_lists() -> None:
    assert format_people(["张三", "李四"]) == "张三、李四"
    assert format_people(["甲", "乙", "丙"], limit=2) == "甲、乙等"
    assert format_people([]) == ""
    with pytest.raises(ValueError, match="limit"):
        format_people(["甲"], limit=0)


@pytest.mark.parametrize("name", ["gateway_link", "gateway_link_restored"])
def test_a_landline_duty_line_hears_the_gateway_link_twice_with_no_key_to_press(name: str) -> None:
    text = render(name, "voice", LONG_PARAMS)
    assert "按1" not in text and "按" not in text
    assert "重复一遍" in text and text.count("看家网关") == 2
    assert LONG_PARAMS["gateway"] in text and LONG_PARAMS["since"] in text
