"""Settings: env beats the YAML file, unknown keys and placeholder secrets are refused."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings, parse_duration, unknown_environment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("PT4H", timedelta(hours=4)),
        (30, timedelta(seconds=30)),
        ("30", timedelta(seconds=30)),
        (" 1.5 ", timedelta(seconds=1.5)),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_environment_overrides_the_file_and_unknown_keys_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "homewatch.yaml"
    config.write_text("api_port: 9100\nrules:\n  sos_debounce: 10s\n", encoding="utf-8")
    monkeypatch.setenv("HOMEWATCH_API_PORT", "9200")
    settings = load_settings(config)
    assert settings.api_port == 9200
    assert settings.rules.sos_debounce == timedelta(seconds=10)
    config.write_text("api_prot: 9100\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="api_prot: unknown setting"):
        load_settings(config)
    config.write_text(
        "escalation:\n  emergency:\n    - {notify: helper, channels: [sms], "
        "wait: 1m, repeat: true}\n    - {notify: town_duty, channels: [sms], "
        "wait: 1m}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="only the last step may repeat"):
        load_settings(config)


@pytest.mark.parametrize("secret", [None, "changeme", "short"])
def test_run_refuses_missing_or_placeholder_secrets(secret: str | None) -> None:
    with pytest.raises(ConfigError, match="HOMEWATCH_SECRET_KEY"):
        load_settings(secret_key=secret).require_production_secret()


def test_unknown_homewatch_variables_are_named_with_the_setting_they_resemble() -> None:
    environ = {
        "HOMEWATCH_TIMEZNE": "UTC",
        "HOMEWATCH_TIMEZONE": "Asia/Shanghai",
        "HOMEWATCH_RULES__BATTERY_LOW": "20",
        "HOMEWATCH_CONFIG": "homewatch.yaml",
        "HOMEWATCH_TEST_PG": "postgresql://",
        "HOMEWATCH_ADMIN_PASSWORD": "a provisioning file's password_env",
        "HOMEWATCH_SHINY": "1",
        "PATH": "/usr/bin",
    }
    assert unknown_environment(environ) == [
        "HOMEWATCH_SHINY is not a setting and is ignored",
        "HOMEWATCH_TIMEZNE is not a setting and is ignored: did you mean HOMEWATCH_TIMEZONE?",
    ]


def test_loading_settings_warns_about_a_misspelled_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HOMEWATCH_SECRET_KY", "x" * 32)
    with caplog.at_level(logging.WARNING, logger="gateway.config"):
        load_settings()
    assert "did you mean HOMEWATCH_SECRET_KEY?" in caplog.text


def test_run_refuses_to_fall_back_to_the_console_unless_it_is_chosen() -> None:
    with pytest.raises(ConfigError, match="HOMEWATCH_NOTIFIER=console"):
        load_settings().require_chosen_notifier()
    assert load_settings(notifier="console").require_chosen_notifier() == "console"
    assert load_settings(twilio_account_sid="AC1").require_chosen_notifier() == "twilio"


def test_a_channels_default_for_sms_and_voice_is_a_chosen_notifier() -> None:
    aliyun = {"default": {"sms": "aliyun_sms", "voice": "aliyun_voice"}}
    load_settings(channels=aliyun).require_chosen_notifier()  # does not raise
    with pytest.raises(ConfigError, match="HOMEWATCH_NOTIFIER=console"):
        load_settings(channels={"default": {"sms": "aliyun_sms"}}).require_chosen_notifier()
    with pytest.raises(ConfigError, match="HOMEWATCH_NOTIFIER=console"):
        load_settings(
            channels={"default": {"sms": "console", "voice": "console"}}
        ).require_chosen_notifier()


@pytest.mark.parametrize(("given", "expected"), [(5, "5"), ("5", "5"), ("3.1.1", "3.1.1")])
def test_the_mqtt_protocol_is_5_or_3_1_1_from_the_file_or_the_environment(
    given: object, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().mqtt_protocol == "5"
    assert load_settings(mqtt_protocol=given).mqtt_protocol == expected
    monkeypatch.setenv("HOMEWATCH_MQTT_PROTOCOL", str(given))
    assert load_settings().mqtt_protocol == expected


@pytest.mark.parametrize("given", [3, "3.1", 3.1, "v5", True])
def test_an_unknown_mqtt_protocol_is_refused_naming_the_setting(given: object) -> None:
    with pytest.raises(ConfigError, match=r"mqtt_protocol: Input should be '5' or '3\.1\.1'"):
        load_settings(mqtt_protocol=given)


def test_the_rules_tick_is_a_positive_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().rules_tick == timedelta(seconds=5)
    with pytest.raises(ConfigError, match="rules_tick: Value error, must be positive"):
        load_settings(rules_tick="0s")
    monkeypatch.setenv("HOMEWATCH_RULES_TICK", "1m")
    assert load_settings().rules_tick == timedelta(minutes=1)
    monkeypatch.setenv("HOMEWATCH_RULES_TICK", "10")
    assert load_settings().rules_tick == timedelta(seconds=10)
    monkeypatch.setenv("HOMEWATCH_RULES_TICK", "soon")
    with pytest.raises(ConfigError, match="rules_tick: Value error, not a duration"):
        load_settings()
