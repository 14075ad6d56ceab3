"""The console notifier prints every SMS and call readably and "delivers" them."""

from __future__ import annotations

import asyncio
import io

import pytest

from alerts.notifiers import ConsoleNotifier, Delivery, DeliveryError, Notifier
from alerts.templates import render

HELPER = "+8613700000001"


async def test_sms_prints_recipient_name_and_body() -> None:
    out = io.StringIO()
    notifier = ConsoleNotifier(out, directory={HELPER: "李四"}, run_tag="r1")
    body = render(
        "taken", "sms", {"taker": "王五", "person": "坝芒村张三", "what": "SOS求助", "code": "A7K2"}
    )

    delivery = await notifier.send_sms(HELPER, body, status_callback="http://x/twilio/status")

    assert delivery == Delivery(sid="console-SM-1-r1", status="delivered")
    text = out.getvalue()
    assert "[短信] → +8613700000001（李四）" in text
    assert body in text
    assert "console-SM-1-r1" in text


async def test_call_prints_speech_and_completes() -> None:
    out = io.StringIO()
    notifier = ConsoleNotifier(out, run_tag="r1")
    await notifier.send_sms(HELPER, "第一条")

    delivery = await notifier.place_call(
        HELPER, speech="紧急求助。收到请按1。", twiml_url="http://x/twilio/voice/t"
    )

    # One counter for both kinds, so a sid never repeats across SMS and calls.
    assert delivery == Delivery(sid="console-CA-2-r1", status="completed")
    text = out.getvalue()
    assert "[电话] → +8613700000001" in text
    assert "紧急求助。收到请按1。" in text
    assert "（" not in text.splitlines()[-2]  # unknown numbers get no name label


async def test_a_restarted_notifier_never_reuses_the_last_runs_sids() -> None:
    # Sids are unique in the database; a gateway or demo restarted on the same database
    # counts from 1 again.
    first, second = ConsoleNotifier(io.StringIO()), ConsoleNotifier(io.StringIO())
    assert (await first.send_sms(HELPER, "x")).sid != (await second.send_sms(HELPER, "x")).sid


async def test_multiline_body_is_indented_under_its_header() -> None:
    out = io.StringIO()
    await ConsoleNotifier(out).send_sms(HELPER, "第一行\n第二行")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[短信]")
    assert lines[1:] == ["    第一行", "    第二行"]


async def test_defaults_to_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleNotifier().send_sms(HELPER, "你好")
    assert "你好" in capsys.readouterr().out


async def test_is_a_notifier() -> None:
    notifier = ConsoleNotifier(io.StringIO())
    assert isinstance(notifier, Notifier)
    assert notifier.name == "console"


async def test_concurrent_sends_keep_messages_whole_and_sids_unique() -> None:
    out = io.StringIO()
    notifier = ConsoleNotifier(out)

    async def one(i: int) -> Delivery:
        # Half from worker threads, as a caller using asyncio.to_thread would.
        if i % 2:
            return await asyncio.to_thread(asyncio.run, notifier.send_sms(HELPER, f"消息{i}"))
        return await notifier.send_sms(HELPER, f"消息{i}")

    deliveries = await asyncio.gather(*(one(i) for i in range(40)))

    assert len({d.sid for d in deliveries}) == 40
    lines = out.getvalue().splitlines()
    assert len(lines) == 80
    for header, body in zip(lines[::2], lines[1::2], strict=True):
        assert header.startswith("[短信]")
        assert body.startswith("    消息")


async def test_a_terminal_that_cannot_show_chinese_does_not_fail_the_send() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    delivery = await ConsoleNotifier(stream).send_sms(HELPER, "张三")
    assert delivery.status == "delivered"
    assert "\\u5f20\\u4e09" in raw.getvalue().decode("ascii")


async def test_a_closed_stream_is_a_delivery_error() -> None:
    out = io.StringIO()
    out.close()
    with pytest.raises(DeliveryError) as info:
        await ConsoleNotifier(out).send_sms(HELPER, "x")
    assert info.value.retryable is False
